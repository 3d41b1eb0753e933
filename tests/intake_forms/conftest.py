# The Stripe fixtures (localstripe, the recording client that fails a test sending PHI to Stripe).
from ..transactions.conftest import localstripe_server, stripe_organization, stripe_world  # noqa: F401
