# The Stripe fixtures of tests/transactions (the recording client fails a test that sends PHI to
# Stripe); the session's localstripe is tests/conftest.py's.
from ..transactions.conftest import stripe_organization, stripe_world  # noqa: F401
