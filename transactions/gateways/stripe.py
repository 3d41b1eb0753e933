"""Stripe: the production gateway, through Stripe Connect (one connected account per clinic).

Every call made for a clinic carries ``stripe_account=<the clinic's connected account>``: the
Checkout Session, the PaymentIntent, refunds and disputes all live on the clinic's account (direct
charges). The platform's keys and the pinned API version come from settings
(``STRIPE_SECRET_KEY``, ``STRIPE_API_VERSION``); only the official library's ``StripeClient`` is
used.

No PHI goes to Stripe: the Checkout line item says "Payment to <clinic>", and metadata carries
our opaque ids only (transaction, organization, refund, idempotency key). Never a patient's
name, birth date, e-mail, phone, billing item or visit reason, and never the staff's free-text
refund reason.

Our "charge id" for a Stripe payment is its PaymentIntent id (``pi_…``): the Checkout Session,
the PaymentIntent's own events, refunds and disputes all name it, so every path reports the same
fact under the same ledger key (``charge:pi_…:succeeded``).

Events are turned into facts in ``facts_from_payload``. It runs when a stored event is processed
(in Celery), never in the webhook request, and it reads the current PaymentIntent from Stripe
where the event does not carry what the ledger needs (the card and the fee). A refund or dispute
that reaches us before the payment it belongs to brings the payment's fact with it, so any order
of delivery yields the same ledger.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone

import stripe
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from org_profile.enums import PaymentGateway as GatewayName
from org_profile.models import Organization

from .base import (
    AccountFact,
    ChargeFact,
    CheckoutStart,
    DisputeFact,
    GatewayError,
    GatewayUnavailable,
    LedgerFact,
    RefundFact,
    VerifiedEvent,
    WebhookVerificationError,
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Stripe-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300
# A patient who leaves the Checkout page open longer starts again from the payment link (Stripe
# allows 30 minutes to 24 hours). Matches the Sandbox's checkout lifetime.
CHECKOUT_LIFETIME = timedelta(hours=1)
# Standard accounts: the clinic has its own Stripe dashboard and is the merchant of record; we
# make direct charges on its account.
CONNECT_ACCOUNT_TYPE = "standard"

METADATA_TRANSACTION = "lumapay_transaction_id"
METADATA_ORGANIZATION = "lumapay_organization_id"
METADATA_REFUND = "lumapay_refund_id"
METADATA_SAVED_CARD = "lumapay_saved_card_id"
METADATA_IDEMPOTENCY_KEY = "lumapay_idempotency_key"

# What the ledger needs from a PaymentIntent: its charge with the card and the fee.
PAYMENT_INTENT_EXPAND = ["latest_charge.balance_transaction", "payment_method"]

REFUND_FAILURE_MESSAGES = {
    "lost_or_stolen_card": "The card was reported lost or stolen.",
    "expired_or_canceled_card": "The card has expired or was cancelled.",
    "charge_for_pending_refund_disputed": "The patient disputed the charge while the refund was pending.",
    "insufficient_funds": "The clinic's Stripe balance could not cover the refund.",
    "declined": "The card issuer declined the refund.",
    "merchant_request": "The refund was cancelled.",
    "unknown": "Stripe could not complete the refund.",
}

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


def _error_message(error: stripe.StripeError) -> str:
    return (getattr(error, "user_message", None) or str(error) or type(error).__name__).strip()


@contextmanager
def _stripe_call(action: str):
    """Turn the library's errors into ours: transient ones (no answer, timeout, rate limit,
    5xx, a concurrent request with the same idempotency key) may be retried with the same key;
    the rest are Stripe saying no, with its message."""
    try:
        yield
    except (stripe.APIConnectionError, stripe.RateLimitError) as error:
        raise GatewayUnavailable(f"Stripe did not answer while {action}: {_error_message(error)}") from error
    except stripe.StripeError as error:
        status = getattr(error, "http_status", None) or 0
        if status >= 500 or status == 409 or isinstance(error, stripe.APIError):
            raise GatewayUnavailable(f"Stripe failed while {action}: {_error_message(error)}") from error
        raise GatewayError(_error_message(error)) from error


def _id_of(value) -> str:
    """A Stripe reference is an id, or the object itself when expanded."""
    if isinstance(value, dict):
        return value.get("id") or ""
    return value or ""


def _dict(obj) -> dict:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _timestamp(value) -> datetime | None:
    return datetime.fromtimestamp(value, tz=dt_timezone.utc) if value else None


def _account_of(organization: Organization) -> str:
    if not organization.stripe_account_id:
        raise GatewayError(
            "This clinic has not connected a Stripe account yet. An administrator can connect one "
            "under Settings → Stripe."
        )
    return organization.stripe_account_id


def _organization_for_account(account: str) -> Organization | None:
    if not account:
        return None
    return Organization.objects.filter(stripe_account_id=account).first()


# -- reading Stripe's objects into facts ---------------------------------------------------------


def _card_of(pi: dict, charge: dict | None) -> dict:
    details = ((charge or {}).get("payment_method_details") or {}).get("card") or {}
    if details:
        return details
    for payment_method in (pi.get("payment_method"), (pi.get("last_payment_error") or {}).get("payment_method")):
        if isinstance(payment_method, dict) and payment_method.get("card"):
            return payment_method["card"]
    return {}


def charge_fact_from_payment_intent(pi: dict) -> ChargeFact:
    """What a PaymentIntent says about the payment. Its charge may be an id or, expanded, the
    charge with its balance transaction (the fee)."""
    charge = pi.get("latest_charge") if isinstance(pi.get("latest_charge"), dict) else None
    card = _card_of(pi, charge)
    brand, last4 = (card.get("brand") or "").lower(), card.get("last4") or ""
    status = pi.get("status")
    if status == "succeeded":
        balance_transaction = (charge or {}).get("balance_transaction")
        fee = (balance_transaction.get("fee") or 0) if isinstance(balance_transaction, dict) else 0
        return ChargeFact(
            status="succeeded",
            charge_id=pi["id"],
            amount_cents=pi.get("amount_received") or (charge or {}).get("amount_captured") or pi["amount"],
            card_brand=brand,
            card_last4=last4,
            authorization_code=card.get("authorization_code") or "",
            fee_cents=fee,
        )
    if status == "requires_capture":
        return ChargeFact(
            status="authorized",
            charge_id=pi["id"],
            amount_cents=pi.get("amount_capturable") or pi["amount"],
            card_brand=brand,
            card_last4=last4,
            authorization_code=card.get("authorization_code") or "",
        )
    error = pi.get("last_payment_error") or {}
    if status == "canceled" and not error and pi.get("capture_method") == "manual":
        return ChargeFact(status="released", charge_id=pi["id"], amount_cents=pi["amount"], card_brand=brand, card_last4=last4)
    if error and status in ("requires_payment_method", "canceled"):
        # Each declined attempt is its own charge: one ledger event per attempt.
        failed_charge = error.get("charge") or _id_of(pi.get("latest_charge")) or pi["id"]
        return ChargeFact(
            status="failed",
            charge_id=failed_charge,
            card_brand=brand,
            card_last4=last4,
            failure_code=error.get("decline_code") or error.get("code") or "",
            failure_message=error.get("message") or "The payment failed.",
        )
    return ChargeFact(status="pending", charge_id=pi["id"])


def refund_fact_from_refund(obj: dict) -> RefundFact:
    status = {"succeeded": "succeeded", "failed": "failed", "canceled": "failed"}.get(obj.get("status"), "pending")
    failure_message = ""
    if status == "failed":
        failure_message = REFUND_FAILURE_MESSAGES.get(obj.get("failure_reason") or "unknown", REFUND_FAILURE_MESSAGES["unknown"])
    return RefundFact(
        status=status,
        gateway_refund_id=obj["id"],
        amount_cents=obj["amount"],
        idempotency_key=(obj.get("metadata") or {}).get(METADATA_IDEMPOTENCY_KEY, ""),
        failure_message=failure_message,
    )


def dispute_fact_from_dispute(obj: dict, *, as_of: int = 0) -> DisputeFact:
    return DisputeFact(
        gateway_dispute_id=obj["id"],
        amount_cents=obj.get("amount") or 0,
        status=obj.get("status") or "needs_response",
        reason=obj.get("reason") or "",
        evidence_due_by=_timestamp((obj.get("evidence_details") or {}).get("due_by")),
        as_of=as_of,
    )


def account_fact_from_account(obj: dict, *, as_of: int = 0) -> AccountFact:
    requirements = obj.get("requirements") or {}
    due = set(requirements.get("currently_due") or []) | set(requirements.get("past_due") or [])
    return AccountFact(
        account_id=obj["id"],
        charges_enabled=bool(obj.get("charges_enabled")),
        payouts_enabled=bool(obj.get("payouts_enabled")),
        details_submitted=bool(obj.get("details_submitted")),
        requirements_due=sorted(due),
        disabled_reason=requirements.get("disabled_reason") or "",
        as_of=as_of,
    )


@dataclass(frozen=True)
class SavedCardFact:
    """A card Stripe keeps for a patient (a PaymentMethod attached to the patient's Customer)."""

    payment_method_id: str
    card_brand: str = ""
    card_last4: str = ""
    exp_month: int | None = None
    exp_year: int | None = None


class StripeGateway:
    name = GatewayName.STRIPE.value

    # -- the interface -------------------------------------------------------------------------

    def checkout_start(self, *, transaction, success_url: str, cancel_url: str) -> CheckoutStart:
        organization = transaction.organization
        account = _account_of(organization)
        if not organization.stripe_charges_enabled:
            raise GatewayError(
                "This clinic cannot take card payments through Stripe yet: its Stripe onboarding is not finished."
            )
        metadata = {METADATA_TRANSACTION: str(transaction.pk), METADATA_ORGANIZATION: str(organization.pk)}
        expires_at = timezone.now() + CHECKOUT_LIFETIME
        params = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": transaction.currency,
                        "unit_amount": transaction.amount_cents,
                        # Neutral on purpose: never the patient, the billing item or the visit.
                        "product_data": {"name": f"Payment to {organization.display_name}"},
                    },
                }
            ],
            "client_reference_id": str(transaction.pk),
            "metadata": metadata,
            # The PaymentIntent's own events name our transaction too.
            "payment_intent_data": {"metadata": metadata},
            "success_url": success_url,
            "cancel_url": cancel_url,
            "expires_at": int(expires_at.timestamp()),
        }
        with _stripe_call("starting the checkout"):
            session = stripe_client().v1.checkout.sessions.create(params, {"stripe_account": account})
        return CheckoutStart(checkout_id=session.id, redirect_url=session.url, expires_at=_timestamp(session.expires_at))

    def checkout_outcome(self, *, transaction) -> ChargeFact:
        account = _account_of(transaction.organization)
        payment_intent = transaction.gateway_checkout_id
        if not payment_intent.startswith("pi_"):
            with _stripe_call("reading the checkout"):
                session = _dict(
                    stripe_client().v1.checkout.sessions.retrieve(payment_intent, options={"stripe_account": account})
                )
            payment_intent = _id_of(session.get("payment_intent"))
            if not payment_intent:
                return ChargeFact(status="pending")
        return charge_fact_from_payment_intent(self.payment_intent_retrieve(payment_intent, account=account))

    def checkout_expire(self, *, transaction) -> ChargeFact:
        account = _account_of(transaction.organization)
        try:
            with _stripe_call("closing the checkout"):
                stripe_client().v1.checkout.sessions.expire(
                    transaction.gateway_checkout_id, options={"stripe_account": account}
                )
        except GatewayUnavailable:
            raise
        except GatewayError as error:
            # Already complete or expired: what matters is its outcome, read next.
            logger.info("stripe checkout %s not expired: %s", transaction.gateway_checkout_id, error.message)
        return self.checkout_outcome(transaction=transaction)

    def refund(self, *, refund) -> RefundFact:
        transaction = refund.transaction
        account = _account_of(transaction.organization)
        payment_intent = transaction.gateway_charge_id
        if not payment_intent:
            raise GatewayError("Stripe has no payment on record for this transaction.")
        key = str(refund.idempotency_key)
        # A retry after a timeout: Stripe may have made the refund although we never heard back.
        # Its idempotency key covers 24 hours (and test servers ignore it), so look first.
        existing = self._refund_made_with(key, payment_intent=payment_intent, account=account)
        if existing is not None:
            logger.info("refund %s: found at Stripe as %s; not asking again", refund.pk, existing["id"])
            return refund_fact_from_refund(existing)
        with _stripe_call("refunding"):
            created = stripe_client().v1.refunds.create(
                {
                    "payment_intent": payment_intent,
                    "amount": refund.amount_cents,
                    "metadata": {METADATA_REFUND: str(refund.pk), METADATA_IDEMPOTENCY_KEY: key},
                },
                {"stripe_account": account, "idempotency_key": key},
            )
        return refund_fact_from_refund(_dict(created))

    def event_verify(self, *, body: bytes, headers) -> VerifiedEvent:
        secrets = [secret for secret in settings.STRIPE_WEBHOOK_SECRET if secret]
        if not secrets:
            raise WebhookVerificationError("Stripe webhooks are not configured here: STRIPE_WEBHOOK_SECRET is not set.")
        header = headers.get(SIGNATURE_HEADER) or ""
        failure = "the Stripe-Signature header is missing."
        for secret in secrets:
            try:
                stripe.Webhook.construct_event(body, header, secret, tolerance=SIGNATURE_TOLERANCE_SECONDS)
                break
            except stripe.SignatureVerificationError as error:
                failure = _error_message(error)
            except (ValueError, UnicodeDecodeError):
                raise WebhookVerificationError("The Stripe event body is not valid JSON.")
        else:
            raise WebhookVerificationError(f"The Stripe event does not verify: {failure}")
        try:
            event = json.loads(body)
            event_id, event_type = event["id"], event["type"]
            event["data"]["object"]
        except (ValueError, KeyError, TypeError):
            raise WebhookVerificationError("The Stripe event body is not a valid event.")
        return VerifiedEvent(event_id=event_id, event_type=event_type, payload=event)

    def organization_id_for_event(self, payload: dict) -> int | None:
        """The clinic whose connected account the event comes from (None: not one of ours)."""
        organization = _organization_for_account(payload.get("account") or "")
        return organization.pk if organization is not None else None

    def facts_from_payload(self, *, payload: dict) -> list[LedgerFact]:
        handler = _EVENT_HANDLERS.get(payload.get("type", ""))
        if handler is None:
            return []
        organization = _organization_for_account(payload.get("account") or "")
        if organization is None:
            logger.info(
                "stripe event %s (%s) comes from account %r, which is no clinic of ours; skipped",
                payload.get("id"),
                payload.get("type"),
                payload.get("account"),
            )
            return []
        return handler(self, organization, payload["data"]["object"], payload.get("created") or 0)

    # -- Stripe only: Connect onboarding and event listing ---------------------------------------

    def account_create(self, *, organization: Organization) -> AccountFact:
        """A connected account for the clinic, with its business information only."""
        business_profile = {"name": organization.display_name}
        if organization.website:
            business_profile["url"] = organization.website
        if organization.support_email:
            business_profile["support_email"] = organization.support_email
        if organization.support_phone:
            business_profile["support_phone"] = organization.support_phone
        params = {
            "type": CONNECT_ACCOUNT_TYPE,
            "country": "US",
            "default_currency": organization.currency,
            "business_type": "company",
            "business_profile": business_profile,
            "metadata": {METADATA_ORGANIZATION: str(organization.pk)},
        }
        if organization.support_email:
            params["email"] = organization.support_email
        company = {"name": organization.legal_name or organization.name}
        address = {
            "line1": organization.address_line1,
            "line2": organization.address_line2,
            "city": organization.city,
            "state": organization.state,
            "postal_code": organization.postal_code,
        }
        address = {key: value for key, value in address.items() if value}
        if address:
            company["address"] = {**address, "country": "US"}
        params["company"] = company
        with _stripe_call("creating the clinic's Stripe account"):
            # The key makes a double submit return the same account instead of a second one.
            account = stripe_client().v1.accounts.create(
                params, {"idempotency_key": f"lumapay-organization-{organization.pk}-account"}
            )
        return account_fact_from_account(_dict(account), as_of=int(timezone.now().timestamp()))

    def account_retrieve(self, *, account_id: str) -> AccountFact:
        with _stripe_call("reading the clinic's Stripe account"):
            account = stripe_client().v1.accounts.retrieve(account_id)
        return account_fact_from_account(_dict(account), as_of=int(timezone.now().timestamp()))

    def account_link_create(self, *, account_id: str, return_url: str, refresh_url: str) -> str:
        with _stripe_call("starting Stripe onboarding"):
            link = stripe_client().v1.account_links.create(
                {"account": account_id, "type": "account_onboarding", "return_url": return_url, "refresh_url": refresh_url}
            )
        return link.url

    def events_list(self, *, account: str, created_after: int) -> Iterator[dict]:
        """Events newer than ``created_after`` on a connected account ("" for the platform's own),
        each as Stripe would have delivered it."""
        options = {"stripe_account": account} if account else {}
        with _stripe_call("listing events"):
            page = stripe_client().v1.events.list({"created": {"gt": created_after}, "limit": 100}, options)
            for event in page.auto_paging_iter():
                payload = event.to_dict(for_json=True)
                if account and not payload.get("account"):
                    payload["account"] = account
                yield payload

    def payment_intent_retrieve(self, payment_intent: str, *, account: str) -> dict:
        with _stripe_call("reading the payment"):
            return _dict(
                stripe_client().v1.payment_intents.retrieve(
                    payment_intent, {"expand": PAYMENT_INTENT_EXPAND}, {"stripe_account": account}
                )
            )

    # -- Stripe only: cards on file, charged off-session, held before a visit -------------------

    def customer_create(self, *, organization: Organization) -> str:
        """A Customer on the clinic's account to keep one patient's cards under. It carries no
        name, e-mail or phone: we know whose it is, Stripe does not need to."""
        with _stripe_call("keeping the card"):
            customer = stripe_client().v1.customers.create(
                {"metadata": {METADATA_ORGANIZATION: str(organization.pk)}}, {"stripe_account": _account_of(organization)}
            )
        return customer.id

    def card_setup_start(
        self, *, organization: Organization, customer_id: str, saved_card_id: int, success_url: str, cancel_url: str
    ) -> CheckoutStart:
        """Stripe Checkout in setup mode: the patient enters the card on Stripe's page, nothing is charged."""
        metadata = {METADATA_SAVED_CARD: str(saved_card_id), METADATA_ORGANIZATION: str(organization.pk)}
        expires_at = timezone.now() + CHECKOUT_LIFETIME
        params = {
            "mode": "setup",
            "customer": customer_id,
            "currency": organization.currency,
            "payment_method_types": ["card"],
            "metadata": metadata,
            "setup_intent_data": {"metadata": metadata},
            "success_url": success_url,
            "cancel_url": cancel_url,
            "expires_at": int(expires_at.timestamp()),
        }
        with _stripe_call("starting the card's checkout"):
            session = stripe_client().v1.checkout.sessions.create(params, {"stripe_account": _account_of(organization)})
        return CheckoutStart(checkout_id=session.id, redirect_url=session.url, expires_at=_timestamp(session.expires_at))

    def card_setup_outcome(self, *, organization: Organization, setup_id: str) -> SavedCardFact | None:
        """The card the patient saved through that checkout; None while it is not saved (yet)."""
        account = _account_of(organization)
        with _stripe_call("reading the card's checkout"):
            session = _dict(stripe_client().v1.checkout.sessions.retrieve(setup_id, options={"stripe_account": account}))
        setup_intent = _id_of(session.get("setup_intent"))
        if not setup_intent:
            return None
        with _stripe_call("reading the saved card"):
            intent = _dict(
                stripe_client().v1.setup_intents.retrieve(
                    setup_intent, {"expand": ["payment_method"]}, {"stripe_account": account}
                )
            )
        payment_method = intent.get("payment_method")
        if intent.get("status") != "succeeded" or not isinstance(payment_method, dict):
            return None
        card = payment_method.get("card") or {}
        return SavedCardFact(
            payment_method_id=payment_method["id"],
            card_brand=(card.get("brand") or "").lower(),
            card_last4=card.get("last4") or "",
            exp_month=card.get("exp_month"),
            exp_year=card.get("exp_year"),
        )

    def saved_card_charge(self, *, transaction, saved_card, capture: bool) -> tuple[str, ChargeFact]:
        """Charge (or, without ``capture``, only hold) a card on file while the patient is away.

        Returns the PaymentIntent's id and what became of it. A decline is an outcome, not an
        error: it comes back as a failed fact. The idempotency key is the transaction's, so a
        retried request never charges twice.
        """
        organization = transaction.organization
        account = _account_of(organization)
        params = {
            "amount": transaction.amount_cents,
            "currency": transaction.currency,
            "customer": saved_card.gateway_customer_id,
            "payment_method": saved_card.gateway_payment_method_id,
            "off_session": True,
            "confirm": True,
            "capture_method": "automatic" if capture else "manual",
            "metadata": {METADATA_TRANSACTION: str(transaction.pk), METADATA_ORGANIZATION: str(organization.pk)},
        }
        try:
            with _stripe_call("charging the card on file"):
                intent = stripe_client().v1.payment_intents.create(
                    params, {"stripe_account": account, "idempotency_key": f"lumapay-transaction-{transaction.pk}-payment"}
                )
        except GatewayUnavailable:
            raise
        except GatewayError as error:
            declined = error.__cause__ if isinstance(error.__cause__, stripe.CardError) else None
            if declined is None:
                raise
            body = (declined.json_body or {}).get("error") or {}
            payment_intent = _id_of(body.get("payment_intent"))
            return payment_intent, ChargeFact(
                status="failed",
                charge_id=body.get("charge") or payment_intent or f"declined:{transaction.pk}",
                card_brand=saved_card.card_brand,
                card_last4=saved_card.card_last4,
                failure_code=body.get("decline_code") or body.get("code") or "",
                failure_message=body.get("message") or "The card was declined.",
            )
        return intent.id, charge_fact_from_payment_intent(self.payment_intent_retrieve(intent.id, account=account))

    def authorization_capture(self, *, transaction) -> ChargeFact:
        """Charge the amount held on the card (at check-in)."""
        account = _account_of(transaction.organization)
        try:
            with _stripe_call("capturing the held payment"):
                stripe_client().v1.payment_intents.capture(
                    transaction.gateway_checkout_id,
                    options={"stripe_account": account, "idempotency_key": f"lumapay-transaction-{transaction.pk}-capture"},
                )
        except GatewayUnavailable:
            raise
        except GatewayError:
            # Captured already (a retry after a timeout), or no longer capturable: Stripe's state says.
            fact = charge_fact_from_payment_intent(self.payment_intent_retrieve(transaction.gateway_checkout_id, account=account))
            if fact.status != "succeeded":
                raise
            return fact
        return charge_fact_from_payment_intent(self.payment_intent_retrieve(transaction.gateway_checkout_id, account=account))

    def authorization_release(self, *, transaction) -> ChargeFact:
        """Let the held amount go without charging it (the visit was cancelled or missed)."""
        account = _account_of(transaction.organization)
        try:
            with _stripe_call("releasing the held payment"):
                stripe_client().v1.payment_intents.cancel(transaction.gateway_checkout_id, options={"stripe_account": account})
        except GatewayUnavailable:
            raise
        except GatewayError:
            fact = charge_fact_from_payment_intent(self.payment_intent_retrieve(transaction.gateway_checkout_id, account=account))
            if fact.status != "released":
                raise
            return fact
        return charge_fact_from_payment_intent(self.payment_intent_retrieve(transaction.gateway_checkout_id, account=account))

    def saved_card_detach(self, *, saved_card) -> None:
        """Stripe forgets the card (it can never be charged again)."""
        try:
            with _stripe_call("removing the card"):
                stripe_client().v1.payment_methods.detach(
                    saved_card.gateway_payment_method_id, options={"stripe_account": _account_of(saved_card.organization)}
                )
        except GatewayUnavailable:
            raise
        except GatewayError as error:
            # Detached already (a retry, or removed in the Stripe dashboard): the outcome we want.
            logger.info("stripe payment method %s not detached: %s", saved_card.gateway_payment_method_id, error.message)

    # -- internals -----------------------------------------------------------------------------

    def _refund_made_with(self, key: str, *, payment_intent: str, account: str) -> dict | None:
        with _stripe_call("looking for an earlier refund"):
            page = stripe_client().v1.refunds.list(
                {"payment_intent": payment_intent, "limit": 100}, {"stripe_account": account}
            )
            for refund in page.auto_paging_iter():
                refund = _dict(refund)
                if (refund.get("metadata") or {}).get(METADATA_IDEMPOTENCY_KEY) == key:
                    return refund
        return None

    def _transaction_for_payment_intent(self, organization: Organization, payment_intent) -> object | None:
        """Our transaction paid through this PaymentIntent, within the event's clinic only.

        Known by id once its payment is recorded (or when it is the transaction's own checkout);
        before that, by the transaction id we put in the PaymentIntent's metadata. Metadata can be
        written by whoever controls the connected account, so it is trusted only for that
        clinic's own transactions.
        """
        from ..models import Transaction

        payment_intent_id = _id_of(payment_intent)
        if not payment_intent_id:
            return None
        ours = Transaction.objects.filter(organization=organization, vendor=self.name)
        found = ours.filter(Q(gateway_charge_id=payment_intent_id) | Q(gateway_checkout_id=payment_intent_id)).first()
        if found is not None:
            return found
        pi = payment_intent if isinstance(payment_intent, dict) and "metadata" in payment_intent else None
        if pi is None:
            try:
                pi = self.payment_intent_retrieve(payment_intent_id, account=organization.stripe_account_id)
            except GatewayUnavailable:
                raise
            except GatewayError as error:
                logger.info("stripe payment %s is not readable (%s); not one of ours", payment_intent_id, error.message)
                return None
        transaction_id = str((pi.get("metadata") or {}).get(METADATA_TRANSACTION, ""))
        if not transaction_id.isdigit():
            return None
        return ours.filter(pk=int(transaction_id)).first()

    def _payment_fact(self, organization: Organization, transaction, payment_intent_id: str) -> LedgerFact:
        pi = self.payment_intent_retrieve(payment_intent_id, account=organization.stripe_account_id)
        return LedgerFact(
            checkout_id=transaction.gateway_checkout_id,
            charge_id=payment_intent_id,
            charge=charge_fact_from_payment_intent(pi),
        )

    def _payment_fact_if_unrecorded(self, organization, transaction, payment_intent_id: str) -> list[LedgerFact]:
        """A refund or dispute can reach us before the payment it belongs to: bring the payment's
        fact first, so the ledger never holds a refund without its charge."""
        if transaction.gateway_charge_id == payment_intent_id:
            return []
        return [self._payment_fact(organization, transaction, payment_intent_id)]

    def _payment_intent_of_charge(self, organization: Organization, charge_id: str) -> str:
        if not charge_id:
            return ""
        try:
            with _stripe_call("reading the charge"):
                charge = stripe_client().v1.charges.retrieve(
                    charge_id, options={"stripe_account": organization.stripe_account_id}
                )
        except GatewayUnavailable:
            raise
        except GatewayError as error:
            logger.info("stripe charge %s is not readable (%s); not one of ours", charge_id, error.message)
            return ""
        return _id_of(_dict(charge).get("payment_intent"))

    # -- one handler per event type we act on ---------------------------------------------------

    def _on_checkout_session(self, organization, session: dict, as_of: int) -> list[LedgerFact]:
        from ..models import Transaction

        if session.get("mode") != "payment":
            return []
        payment_intent = _id_of(session.get("payment_intent"))
        transaction = Transaction.objects.filter(
            organization=organization, vendor=self.name, gateway_checkout_id=session["id"]
        ).first()
        if transaction is None or not payment_intent:
            # Not ours, or nothing was paid: the ledger looks it up, logs and skips it.
            return [LedgerFact(checkout_id=session["id"], charge_id=payment_intent, charge=ChargeFact(status="pending"))]
        return [self._payment_fact(organization, transaction, payment_intent)]

    def _on_payment_intent(self, organization, pi: dict, as_of: int) -> list[LedgerFact]:
        transaction = self._transaction_for_payment_intent(organization, pi)
        if transaction is None:
            return [LedgerFact(charge_id=pi["id"], charge=ChargeFact(status="pending"))]
        return [self._payment_fact(organization, transaction, pi["id"])]

    def _on_payment_intent_failed(self, organization, pi: dict, as_of: int) -> list[LedgerFact]:
        # The event is the snapshot of this attempt: a later attempt may have paid since, so the
        # failure is read from the event, not from the PaymentIntent as it is now.
        transaction = self._transaction_for_payment_intent(organization, pi)
        fact = charge_fact_from_payment_intent(pi)
        if transaction is None:
            return [LedgerFact(charge_id=pi["id"], charge=fact)]
        return [LedgerFact(checkout_id=transaction.gateway_checkout_id, charge_id=pi["id"], charge=fact)]

    def _on_charge_refunded(self, organization, charge: dict, as_of: int) -> list[LedgerFact]:
        payment_intent = _id_of(charge.get("payment_intent"))
        transaction = self._transaction_for_payment_intent(organization, payment_intent)
        if transaction is None:
            return [LedgerFact(charge_id=payment_intent or charge["id"])]
        embedded = charge.get("refunds")
        if isinstance(embedded, dict) and not embedded.get("has_more") and embedded.get("data") is not None:
            refunds = embedded["data"]
        else:
            with _stripe_call("listing the charge's refunds"):
                page = stripe_client().v1.refunds.list(
                    {"charge": charge["id"], "limit": 100}, {"stripe_account": organization.stripe_account_id}
                )
                refunds = [_dict(refund) for refund in page.auto_paging_iter()]
        facts = self._payment_fact_if_unrecorded(organization, transaction, payment_intent)
        for refund in refunds:
            facts.append(
                LedgerFact(
                    checkout_id=transaction.gateway_checkout_id,
                    charge_id=payment_intent,
                    refund=refund_fact_from_refund(refund),
                )
            )
        return facts

    def _on_refund(self, organization, refund: dict, as_of: int) -> list[LedgerFact]:
        payment_intent = _id_of(refund.get("payment_intent")) or self._payment_intent_of_charge(
            organization, _id_of(refund.get("charge"))
        )
        fact = refund_fact_from_refund(refund)
        transaction = self._transaction_for_payment_intent(organization, payment_intent)
        if transaction is None:
            return [LedgerFact(charge_id=payment_intent or _id_of(refund.get("charge")), refund=fact)]
        facts = self._payment_fact_if_unrecorded(organization, transaction, payment_intent)
        facts.append(LedgerFact(checkout_id=transaction.gateway_checkout_id, charge_id=payment_intent, refund=fact))
        return facts

    def _on_dispute(self, organization, dispute: dict, as_of: int) -> list[LedgerFact]:
        payment_intent = _id_of(dispute.get("payment_intent")) or self._payment_intent_of_charge(
            organization, _id_of(dispute.get("charge"))
        )
        fact = dispute_fact_from_dispute(dispute, as_of=as_of)
        transaction = self._transaction_for_payment_intent(organization, payment_intent)
        if transaction is None:
            return [LedgerFact(charge_id=payment_intent or _id_of(dispute.get("charge")), dispute=fact)]
        facts = self._payment_fact_if_unrecorded(organization, transaction, payment_intent)
        facts.append(LedgerFact(checkout_id=transaction.gateway_checkout_id, charge_id=payment_intent, dispute=fact))
        return facts

    def _on_account_updated(self, organization, account: dict, as_of: int) -> list[LedgerFact]:
        return [LedgerFact(account=account_fact_from_account(account, as_of=as_of))]


_EVENT_HANDLERS = {
    "checkout.session.completed": StripeGateway._on_checkout_session,
    "checkout.session.async_payment_succeeded": StripeGateway._on_checkout_session,
    "checkout.session.async_payment_failed": StripeGateway._on_checkout_session,
    "payment_intent.succeeded": StripeGateway._on_payment_intent,
    "payment_intent.payment_failed": StripeGateway._on_payment_intent_failed,
    "payment_intent.amount_capturable_updated": StripeGateway._on_payment_intent,
    "payment_intent.canceled": StripeGateway._on_payment_intent,
    "charge.refunded": StripeGateway._on_charge_refunded,
    "refund.created": StripeGateway._on_refund,
    "refund.updated": StripeGateway._on_refund,
    "refund.failed": StripeGateway._on_refund,
    "charge.refund.updated": StripeGateway._on_refund,
    "charge.dispute.created": StripeGateway._on_dispute,
    "charge.dispute.updated": StripeGateway._on_dispute,
    "charge.dispute.closed": StripeGateway._on_dispute,
    "account.updated": StripeGateway._on_account_updated,
}
