import pytest

from lumapay import sms
from org_profile.enums import Role

from .factories import LocationFactory, MembershipFactory, OrganizationFactory, PatientFactory
from .two_step import VerifiedClient

TEST_PROFILE_KEY = "dGVzdC1vbmx5LW9yZ2FuaXphdGlvbi1wcm9maWxlLWs="


@pytest.fixture(autouse=True)
def _test_settings(settings):
    # Hashing a password properly takes most of a second; tests make many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.SMS_BACKEND = "memory"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SITE_URL = "http://testserver"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # The organization profile's secrets (org_profile/profile_secrets.py): a key made for the tests.
    settings.ORGANIZATION_PROFILE_KEYS = [TEST_PROFILE_KEY]
    sms.outbox.clear()
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def client():
    """Django's test client whose ``force_login`` also passes the second step of signing in
    (tests/two_step.py): most tests are about what a signed-in member does. Tests of the second
    step use ``django.test.Client``."""
    return VerifiedClient()


@pytest.fixture
def organization(db):
    return OrganizationFactory(name="Riverside Family Medicine")


@pytest.fixture
def location(organization):
    return LocationFactory(organization=organization, name="Downtown Clinic")


@pytest.fixture
def other_location(organization):
    return LocationFactory(organization=organization, name="Northside Clinic")


@pytest.fixture
def administrator(organization):
    return MembershipFactory(organization=organization, role=Role.ADMINISTRATOR).user


@pytest.fixture
def manager(organization):
    return MembershipFactory(organization=organization, role=Role.MANAGER).user


@pytest.fixture
def staff_user(organization, location):
    """A sub-account user limited to the Downtown Clinic."""
    return MembershipFactory(organization=organization, role=Role.STAFF, locations=[location]).user


@pytest.fixture
def patient(organization):
    return PatientFactory(organization=organization)


@pytest.fixture
def other_organization(db):
    return OrganizationFactory(name="Lakeside Pediatrics")


@pytest.fixture
def client_for(client):
    """client_for(user) → Django's test client, signed in as that user."""

    def sign_in(user):
        client.force_login(user)
        return client

    return sign_in


@pytest.fixture(scope="session")
def localstripe_server():
    """One localstripe for the session (tests/stripe_support.py), for every directory's Stripe tests."""
    from .stripe_support import LocalStripeServer

    server = LocalStripeServer()
    server.start()
    yield server
    server.stop()
