"""The Stripe gateway: the interface every gateway implements, and Stripe's own extras.

One class callers know (``StripeGateway``), assembled from the modules that each do one job:
``events`` (webhook events into facts, and listing missed ones), ``connect`` (the clinic's
account), ``saved_cards`` (cards on file), ``payouts`` (the clinic's payouts and balance). Here: the hosted checkout and refunds.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from org_profile.enums import PaymentGateway as GatewayName

from ..base import ChargeFact, CheckoutStart, GatewayError, GatewayUnavailable, RefundFact
from .client import (
    CHECKOUT_LIFETIME,
    METADATA_IDEMPOTENCY_KEY,
    METADATA_ORGANIZATION,
    METADATA_REFUND,
    METADATA_TRANSACTION,
    account_of,
    application_fee,
    as_dict,
    id_of,
    idempotency_key,
    payment_intent_retrieve,
    stripe_call,
    stripe_client,
    timestamp_of,
)
from .connect import StripeConnect
from .events import StripeEvents
from .payouts import StripePayouts
from .facts import charge_fact_from_payment_intent, refund_fact_from_refund
from .saved_cards import StripeSavedCards

logger = logging.getLogger(__name__)


class StripeGateway(StripeEvents, StripeConnect, StripeSavedCards, StripePayouts):
    name = GatewayName.STRIPE.value

    # -- the interface -------------------------------------------------------------------------

    def checkout_start(self, *, transaction, success_url: str, cancel_url: str, locale: str = "auto") -> CheckoutStart:
        organization = transaction.organization
        account = account_of(organization)
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
            "payment_intent_data": {"metadata": metadata, **application_fee(organization, transaction.amount_cents)},
            "success_url": success_url,
            "cancel_url": cancel_url,
            "expires_at": int(expires_at.timestamp()),
            # The language the patient read our pay page in ("auto": Stripe follows the browser).
            "locale": locale,
        }
        with stripe_call("starting the checkout"):
            session = stripe_client().v1.checkout.sessions.create(
                params,
                {
                    "stripe_account": account,
                    # A new checkout is a new transaction row, so a fresh one after expiry gets a new key.
                    "idempotency_key": idempotency_key(row="transaction", pk=transaction.pk, action="checkout"),
                },
            )
        return CheckoutStart(checkout_id=session.id, redirect_url=session.url, expires_at=timestamp_of(session.expires_at))

    def checkout_outcome(self, *, transaction) -> ChargeFact:
        account = account_of(transaction.organization)
        payment_intent = transaction.gateway_checkout_id
        if not payment_intent.startswith("pi_"):
            with stripe_call("reading the checkout"):
                session = as_dict(
                    stripe_client().v1.checkout.sessions.retrieve(payment_intent, options={"stripe_account": account})
                )
            payment_intent = id_of(session.get("payment_intent"))
            if not payment_intent:
                return ChargeFact(status="pending")
        return charge_fact_from_payment_intent(self.payment_intent_retrieve(payment_intent, account=account))

    def checkout_expire(self, *, transaction) -> ChargeFact:
        account = account_of(transaction.organization)
        try:
            with stripe_call("closing the checkout"):
                stripe_client().v1.checkout.sessions.expire(
                    transaction.gateway_checkout_id,
                    options={
                        "stripe_account": account,
                        "idempotency_key": idempotency_key(row="transaction", pk=transaction.pk, action="checkout_expire"),
                    },
                )
        except GatewayUnavailable:
            raise
        except GatewayError as error:
            # Already complete or expired: what matters is its outcome, read next.
            logger.info("stripe checkout %s not expired: %s", transaction.gateway_checkout_id, error.message)
        return self.checkout_outcome(transaction=transaction)

    def refund(self, *, refund) -> RefundFact:
        transaction = refund.transaction
        account = account_of(transaction.organization)
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
        with stripe_call("refunding"):
            created = stripe_client().v1.refunds.create(
                {
                    "payment_intent": payment_intent,
                    "amount": refund.amount_cents,
                    "metadata": {METADATA_REFUND: str(refund.pk), METADATA_IDEMPOTENCY_KEY: key},
                },
                # The key in metadata is the refund row's own (found again by _refund_made_with).
                {"stripe_account": account, "idempotency_key": idempotency_key(row="refund", pk=refund.pk, action="refund")},
            )
        return refund_fact_from_refund(as_dict(created))

    def charge_refunds(self, *, transaction) -> list[RefundFact]:
        """Every refund of the transaction's payment on the clinic's account, ours and those made
        in the clinic's Stripe Dashboard, as Stripe has them now."""
        payment_intent = transaction.gateway_charge_id
        if not payment_intent:
            return []
        account = account_of(transaction.organization)
        with stripe_call("reading the payment's refunds"):
            page = stripe_client().v1.refunds.list(
                {"payment_intent": payment_intent, "limit": 100}, {"stripe_account": account}
            )
            return [refund_fact_from_refund(as_dict(refund)) for refund in page.auto_paging_iter()]

    def payment_intent_retrieve(self, payment_intent: str, *, account: str) -> dict:
        return payment_intent_retrieve(payment_intent, account=account)

    # -- internals -----------------------------------------------------------------------------

    def _refund_made_with(self, key: str, *, payment_intent: str, account: str) -> dict | None:
        with stripe_call("looking for an earlier refund"):
            page = stripe_client().v1.refunds.list(
                {"payment_intent": payment_intent, "limit": 100}, {"stripe_account": account}
            )
            for refund in page.auto_paging_iter():
                refund = as_dict(refund)
                if (refund.get("metadata") or {}).get(METADATA_IDEMPOTENCY_KEY) == key:
                    return refund
        return None

