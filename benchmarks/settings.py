"""LumaPay's settings for the throughput benchmark's gunicorn: the same, with a URLconf that adds
the bare Django view the dashboard is compared with (``benchmarks/urls.py``). Never used to serve
the product."""

from lumapay.settings import *  # noqa: F401,F403 (the product's settings, unchanged but for the URLconf)

ROOT_URLCONF = "benchmarks.urls"
