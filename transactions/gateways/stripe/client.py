"""Talking to Stripe: the configured client, our metadata keys, and Stripe's errors turned into ours.

Only the official library's ``StripeClient`` is used, with the platform's keys and the pinned API
version from settings (``STRIPE_SECRET_KEY``, ``STRIPE_API_VERSION``).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone as dt_timezone

import stripe
from django.conf import settings
from django.utils.crypto import salted_hmac

# stripe-python prints every request's body (an EIN, an owner's date of birth) to stderr when the
# environment sets STRIPE_LOG=debug or info, whatever the logging configuration says: never here.
stripe.log = None

from lumapay.models import Installation
from org_profile.fees import platform_fee_cents
from org_profile.models import Organization

from ..base import GatewayError, GatewayUnavailable

# A patient who leaves the Checkout page open longer starts again from the payment link (Stripe
# allows 30 minutes to 24 hours). Matches the Sandbox's checkout lifetime.
CHECKOUT_LIFETIME = timedelta(hours=1)

METADATA_TRANSACTION = "lumapay_transaction_id"
METADATA_ORGANIZATION = "lumapay_organization_id"
METADATA_REFUND = "lumapay_refund_id"
METADATA_SAVED_CARD = "lumapay_saved_card_id"
METADATA_IDEMPOTENCY_KEY = "lumapay_idempotency_key"

# What the ledger needs from a PaymentIntent: its charge with the card and the fee.
PAYMENT_INTENT_EXPAND = ["latest_charge.balance_transaction", "payment_method"]

# Tests install a recording client here (tests/stripe_support.py). None: the library's own.
http_client: stripe.HTTPClient | None = None


def stripe_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def stripe_client() -> stripe.StripeClient:
    if not stripe_configured():
        raise GatewayError("Stripe is not configured: set STRIPE_SECRET_KEY.")
    base_addresses = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        stripe_version=settings.STRIPE_API_VERSION,
        base_addresses=base_addresses,
        # No silent retries inside the library: a request that timed out may have been carried
        # out, and whether to repeat it is decided by the caller with the stored idempotency key
        # (refunds look for the refund they may already have made before asking again).
        max_network_retries=0,
        http_client=http_client,
    )


def idempotency_namespace() -> str:
    """This installation's part of every key: ``STRIPE_IDEMPOTENCY_NAMESPACE``, or the random id
    the database was given (migration lumapay 0004; made here if the row is missing)."""
    if settings.STRIPE_IDEMPOTENCY_NAMESPACE:
        return settings.STRIPE_IDEMPOTENCY_NAMESPACE
    installation, _created = Installation.objects.get_or_create(pk=1)
    return installation.namespace


def idempotency_key(*, row: str, pk: int, action: str, attempt: int = 1, content: object = None) -> str:
    """The Idempotency-Key of every POST we send to Stripe: ``lumapay:<namespace>:<row>:<pk>:<action>:<attempt>``.

    The same row, action and attempt always give the same key, so a retry of a request whose answer
    we never heard (a timeout, a worker killed, the patient pressing again) gets Stripe's first
    answer instead of a second object. A deliberate new try (a fresh checkout after one expired, a
    new onboarding link) is a new row or a higher ``attempt``. The namespace keeps two installations
    sharing one platform account apart: bare database ids would collide. Stripe keeps a key for at
    least 24 hours.

    ``content``, for a request that sends what the row says when it is sent (an update pushed after
    an edit): a keyed digest of it ends the key, so a retry that finds the values changed since
    sends them under a new key (Stripe refuses a key reused with other parameters) and a retry of
    the same values keeps the key. The digest is an HMAC with ``SECRET_KEY``: nothing of the values
    can be read or guessed from it.
    """
    if not (row.replace("_", "").isalpha() and action.replace("_", "").isalpha() and int(pk) > 0 and int(attempt) > 0):
        raise ValueError(f"not an idempotency key: row={row!r} pk={pk!r} action={action!r} attempt={attempt!r}")
    key = f"lumapay:{idempotency_namespace()}:{row}:{int(pk)}:{action}:{int(attempt)}"
    if content is not None:
        serialized = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
        key += ":" + salted_hmac("lumapay.stripe.idempotency-content", serialized).hexdigest()[:20]
    return key


def application_fee(organization: Organization, amount_cents: int) -> dict:
    """``application_fee_amount`` for a charge of ``amount_cents`` on the clinic's account (a direct
    charge: the platform's fee goes from it to the platform's balance), left out when it is zero."""
    fee = platform_fee_cents(organization, amount_cents)
    return {"application_fee_amount": fee} if fee else {}


def error_message(error: stripe.StripeError) -> str:
    return (getattr(error, "user_message", None) or str(error) or type(error).__name__).strip()


@contextmanager
def stripe_call(action: str):
    """Turn the library's errors into ours: transient ones (no answer, timeout, rate limit,
    5xx, a concurrent request with the same idempotency key) may be retried with the same key;
    the rest are Stripe saying no, with its message."""
    try:
        yield
    except (stripe.APIConnectionError, stripe.RateLimitError) as error:
        raise GatewayUnavailable(f"Stripe did not answer while {action}: {error_message(error)}") from error
    except stripe.StripeError as error:
        status = getattr(error, "http_status", None) or 0
        if status >= 500 or status == 409 or isinstance(error, stripe.APIError):
            raise GatewayUnavailable(f"Stripe failed while {action}: {error_message(error)}") from error
        raise GatewayError(error_message(error)) from error


def id_of(value) -> str:
    """A Stripe reference is an id, or the object itself when expanded."""
    if isinstance(value, dict):
        return value.get("id") or ""
    return value or ""


def as_dict(obj) -> dict:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def timestamp_of(value) -> datetime | None:
    return datetime.fromtimestamp(value, tz=dt_timezone.utc) if value else None


def account_of(organization: Organization) -> str:
    if not organization.stripe_account_id:
        raise GatewayError(
            "This clinic has not connected a Stripe account yet. An administrator can connect one "
            "under Settings → Stripe."
        )
    if organization.stripe_disconnected_at is not None:
        raise GatewayError(
            "This clinic disconnected LumaPay from its Stripe account. An administrator can connect it "
            "again from the organization profile (Stripe settings)."
        )
    return organization.stripe_account_id


def organization_for_account(account: str) -> Organization | None:
    if not account:
        return None
    return Organization.objects.filter(stripe_account_id=account).first()



def payment_intent_retrieve(payment_intent: str, *, account: str) -> dict:
    """A PaymentIntent with what the ledger needs expanded: its charge, the card and the fee."""
    with stripe_call("reading the payment"):
        return as_dict(
            stripe_client().v1.payment_intents.retrieve(
                payment_intent, {"expand": PAYMENT_INTENT_EXPAND}, {"stripe_account": account}
            )
        )
