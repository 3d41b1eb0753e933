"""Fixtures for the Stripe gateway's tests (see tests/stripe_support.py).

``stripe_world`` points LumaPay at a real localstripe on 127.0.0.1 through the recording client,
and after the test fails it if any request LumaPay sent to Stripe carried a patient's PHI.
"""

import pytest

from transactions.gateways.stripe import client as stripe_gateway

from ..stripe_support import (
    PUBLISHABLE_KEY,
    SECRET_KEY,
    WEBHOOK_SECRET,
    STRIPE_TEST_PATIENTS,
    RecordingStripeClient,
    StripeWorld,
    stripe_clinic,
    stripe_test_patient,
)


# ``localstripe_server`` (one localstripe for the whole session) is in tests/conftest.py: the intake
# forms' tests use it too, and localstripe cannot start twice in one process.


@pytest.fixture
def stripe_world(localstripe_server, settings, monkeypatch):
    localstripe_server.flush()
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_PUBLISHABLE_KEY = PUBLISHABLE_KEY
    settings.STRIPE_WEBHOOK_SECRET = [WEBHOOK_SECRET]
    settings.STRIPE_API_BASE = localstripe_server.url
    http = RecordingStripeClient(localstripe_server)
    monkeypatch.setattr(stripe_gateway, "http_client", http)
    yield StripeWorld(server=localstripe_server, http=http)
    localstripe_server.flush()
    leaks = sorted({f"{leak.request.method} {leak.request.path}: {leak.what}" for leak in http.leaks})
    assert leaks == [], "LumaPay sent a patient's PHI to Stripe:\n" + "\n".join(leaks)


@pytest.fixture
def stripe_organization(stripe_world, organization):
    """The Riverside clinic, taking payments through Stripe on its onboarded connected account. Its
    patients include every one of ``STRIPE_TEST_PATIENTS`` (a Price, a Card, an Amount …), so
    each request a Stripe test sends is checked against names that are also Stripe's words."""
    for first_name, *_rest in STRIPE_TEST_PATIENTS:
        stripe_test_patient(organization, first_name)
    return stripe_clinic(stripe_world, organization)
