"""Where `make dev` runs the development server: the one place that turns SITE_URL and PORT into
the ``host:port`` runserver listens on, so that the server, the start-up banner and the links in
e-mails and SMS agree.

    python -m lumapay.dev_server      # prints e.g. 127.0.0.1:8000

- The host is SITE_URL's when it is an IP address or ``localhost``; otherwise (a tunnel or proxy
  address such as ``https://clinic.example.test``) the server listens on 127.0.0.1.
- The port is ``PORT`` when it is set, else SITE_URL's own port when it names one, else 8000.
  (Without SITE_URL, settings make it ``http://127.0.0.1:<PORT>``.)
"""

from __future__ import annotations

import ipaddress
import os
import sys
from urllib.parse import urlsplit

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def listen_address(site_url: str, port: str | None = None) -> str:
    """``host:port`` for runserver, from SITE_URL and an optional PORT (see the module docstring)."""
    parts = urlsplit(site_url)
    hostname = parts.hostname or ""
    host = None
    if hostname == "localhost":
        host = hostname
    else:
        try:
            address = ipaddress.ip_address(hostname)
        except ValueError:
            pass  # a name elsewhere: a tunnel or proxy forwards to this machine
        else:
            host = f"[{address}]" if address.version == 6 else str(address)
    if port:
        listen_port = int(port)
    elif host and parts.port:
        listen_port = parts.port
    else:
        listen_port = DEFAULT_PORT
    return f"{host or DEFAULT_HOST}:{listen_port}"


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumapay.settings")
    from django.conf import settings

    print(listen_address(settings.SITE_URL, os.environ.get("PORT")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
