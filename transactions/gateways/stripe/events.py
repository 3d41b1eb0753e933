"""Stripe's events: verifying a delivered one, reading a stored one into facts, listing missed ones.

Events are turned into facts in ``facts_from_payload``. It runs when a stored event is processed
(in Celery), never in the webhook request, and it reads the current PaymentIntent from Stripe
where the event does not carry what the ledger needs (the card and the fee). A refund or dispute
that reaches us before the payment it belongs to brings the payment's fact with it, so any order
of delivery yields the same ledger.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import stripe
from django.conf import settings

from org_profile.models import Organization

from ...selectors.gateway_events import gateway_transaction
from ..base import (
    AccountFact,
    BalanceFact,
    ChargeFact,
    GatewayError,
    GatewayFact,
    GatewayUnavailable,
    LedgerFact,
    PayoutFact,
    VerifiedEvent,
    WebhookVerificationError,
)
from .client import (
    METADATA_TRANSACTION,
    as_dict,
    error_message,
    id_of,
    organization_for_account,
    stripe_call,
    stripe_client,
)
from .facts import (
    account_fact_from_account,
    balance_fact_from_balance,
    charge_fact_from_payment_intent,
    dispute_fact_from_dispute,
    payout_fact_from_payout,
    refund_fact_from_refund,
)

if TYPE_CHECKING:
    from ...models import Transaction

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Stripe-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300


def _signed_timestamp(header: str) -> int:
    """The ``t=`` of a Stripe-Signature header that has already verified (so it has one)."""
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            return int(value)
    raise WebhookVerificationError("The Stripe event does not verify: the signature has no timestamp.")


class StripeEvents:
    """Stripe's events (part of ``StripeGateway``)."""

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
                failure = error_message(error)
            except (ValueError, UnicodeDecodeError):
                raise WebhookVerificationError("The Stripe event body is not valid JSON.")
        else:
            raise WebhookVerificationError(f"The Stripe event does not verify: {failure}")
        # Stripe's library refuses only timestamps too far in the past; one far in the future (a
        # replay prepared ahead, a signing clock gone wrong) is refused here, by the same margin.
        drift = _signed_timestamp(header) - time.time()
        if drift > SIGNATURE_TOLERANCE_SECONDS:
            raise WebhookVerificationError(
                f"The Stripe event does not verify: its timestamp is {int(drift)} s in the future "
                f"(more than {SIGNATURE_TOLERANCE_SECONDS} s)."
            )
        try:
            event = json.loads(body)
            event_id, event_type = event["id"], event["type"]
            event["data"]["object"]
        except (ValueError, KeyError, TypeError):
            raise WebhookVerificationError("The Stripe event body is not a valid event.")
        return VerifiedEvent(event_id=event_id, event_type=event_type, payload=event)

    def organization_id_for_event(self, payload: dict) -> int | None:
        """The clinic whose connected account the event comes from (None: not one of ours)."""
        organization = organization_for_account(payload.get("account") or "")
        return organization.pk if organization is not None else None

    def facts_from_payload(self, *, payload: dict) -> list[GatewayFact]:
        handler = _EVENT_HANDLERS.get(payload.get("type", ""))
        if handler is None:
            return []
        organization = organization_for_account(payload.get("account") or "")
        if organization is None:
            logger.info(
                "stripe event %s (%s) comes from account %r, which is no clinic of ours; skipped",
                payload.get("id"),
                payload.get("type"),
                payload.get("account"),
            )
            return []
        return handler(self, organization, payload["data"]["object"], payload.get("created") or 0)

    def events_list(self, *, account: str, created_after: int) -> Iterator[dict]:
        """Events newer than ``created_after`` on a connected account ("" for the platform's own),
        each as Stripe would have delivered it."""
        options = {"stripe_account": account} if account else {}
        with stripe_call("listing events"):
            page = stripe_client().v1.events.list({"created": {"gt": created_after}, "limit": 100}, options)
            for event in page.auto_paging_iter():
                payload = event.to_dict(for_json=True)
                if account and not payload.get("account"):
                    payload["account"] = account
                yield payload

    # -- internals -----------------------------------------------------------------------------

    def _transaction_for_payment_intent(self, organization: Organization, payment_intent) -> Transaction | None:
        """Our transaction paid through this PaymentIntent, within the event's clinic only.

        Known by id once its payment is recorded (or when it is the transaction's own checkout);
        before that, by the transaction id we put in the PaymentIntent's metadata. Metadata can be
        written by whoever controls the connected account, so it is trusted only for that
        clinic's own transactions.
        """
        payment_intent_id = id_of(payment_intent)
        if not payment_intent_id:
            return None
        found = gateway_transaction(gateway=self.name, organization_id=organization.pk, charge_id=payment_intent_id)
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
        return gateway_transaction(gateway=self.name, organization_id=organization.pk, transaction_id=int(transaction_id))

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
            with stripe_call("reading the charge"):
                charge = stripe_client().v1.charges.retrieve(
                    charge_id, options={"stripe_account": organization.stripe_account_id}
                )
        except GatewayUnavailable:
            raise
        except GatewayError as error:
            logger.info("stripe charge %s is not readable (%s); not one of ours", charge_id, error.message)
            return ""
        return id_of(as_dict(charge).get("payment_intent"))

    # -- one handler per event type we act on ---------------------------------------------------

    def _on_checkout_session(self, organization, session: dict, as_of: int) -> list[LedgerFact]:
        if session.get("mode") != "payment":
            return []
        payment_intent = id_of(session.get("payment_intent"))
        transaction = gateway_transaction(gateway=self.name, organization_id=organization.pk, checkout_id=session["id"])
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
        payment_intent = id_of(charge.get("payment_intent"))
        transaction = self._transaction_for_payment_intent(organization, payment_intent)
        if transaction is None:
            return [LedgerFact(charge_id=payment_intent or charge["id"])]
        embedded = charge.get("refunds")
        if isinstance(embedded, dict) and not embedded.get("has_more") and embedded.get("data") is not None:
            refunds = embedded["data"]
        else:
            with stripe_call("listing the charge's refunds"):
                page = stripe_client().v1.refunds.list(
                    {"charge": charge["id"], "limit": 100}, {"stripe_account": organization.stripe_account_id}
                )
                refunds = [as_dict(refund) for refund in page.auto_paging_iter()]
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
        payment_intent = id_of(refund.get("payment_intent")) or self._payment_intent_of_charge(
            organization, id_of(refund.get("charge"))
        )
        fact = refund_fact_from_refund(refund)
        transaction = self._transaction_for_payment_intent(organization, payment_intent)
        if transaction is None:
            return [LedgerFact(charge_id=payment_intent or id_of(refund.get("charge")), refund=fact)]
        facts = self._payment_fact_if_unrecorded(organization, transaction, payment_intent)
        facts.append(LedgerFact(checkout_id=transaction.gateway_checkout_id, charge_id=payment_intent, refund=fact))
        return facts

    def _on_dispute(self, organization, dispute: dict, as_of: int) -> list[LedgerFact]:
        payment_intent = id_of(dispute.get("payment_intent")) or self._payment_intent_of_charge(
            organization, id_of(dispute.get("charge"))
        )
        fact = dispute_fact_from_dispute(dispute, as_of=as_of)
        transaction = self._transaction_for_payment_intent(organization, payment_intent)
        if transaction is None:
            return [LedgerFact(charge_id=payment_intent or id_of(dispute.get("charge")), dispute=fact)]
        facts = self._payment_fact_if_unrecorded(organization, transaction, payment_intent)
        facts.append(LedgerFact(checkout_id=transaction.gateway_checkout_id, charge_id=payment_intent, dispute=fact))
        return facts

    def _on_account_updated(self, organization, account: dict, as_of: int) -> list[AccountFact]:
        return [account_fact_from_account(account, as_of=as_of)]

    def _on_payout(self, organization, payout: dict, as_of: int) -> list[PayoutFact]:
        # The event is the payout as it was then (its status, failure); only the bank account,
        # which the event names by id, is read from Stripe (``StripePayouts._payout_bank``).
        bank = self._payout_bank(organization, payout)
        return [payout_fact_from_payout(payout, organization_id=organization.pk, as_of=as_of, bank=bank)]

    def _on_balance_available(self, organization, balance: dict, as_of: int) -> list[BalanceFact]:
        return [balance_fact_from_balance(balance, organization_id=organization.pk, as_of=as_of)]

    def _on_account_deauthorized(self, organization, application: dict, as_of: int) -> list[AccountFact]:
        # The event's object is our platform's application; the account is the event's own.
        return [
            AccountFact(
                account_id=organization.stripe_account_id,
                charges_enabled=False,
                payouts_enabled=False,
                details_submitted=organization.stripe_details_submitted,
                as_of=as_of,
                disconnected=True,
            )
        ]


_EVENT_HANDLERS = {
    "checkout.session.completed": StripeEvents._on_checkout_session,
    "checkout.session.async_payment_succeeded": StripeEvents._on_checkout_session,
    "checkout.session.async_payment_failed": StripeEvents._on_checkout_session,
    "payment_intent.succeeded": StripeEvents._on_payment_intent,
    "payment_intent.payment_failed": StripeEvents._on_payment_intent_failed,
    "payment_intent.amount_capturable_updated": StripeEvents._on_payment_intent,
    "payment_intent.canceled": StripeEvents._on_payment_intent,
    "charge.refunded": StripeEvents._on_charge_refunded,
    "refund.created": StripeEvents._on_refund,
    "refund.updated": StripeEvents._on_refund,
    "refund.failed": StripeEvents._on_refund,
    "charge.refund.updated": StripeEvents._on_refund,
    "charge.dispute.created": StripeEvents._on_dispute,
    "charge.dispute.updated": StripeEvents._on_dispute,
    "charge.dispute.closed": StripeEvents._on_dispute,
    "charge.dispute.funds_withdrawn": StripeEvents._on_dispute,
    "charge.dispute.funds_reinstated": StripeEvents._on_dispute,
    "account.updated": StripeEvents._on_account_updated,
    "payout.created": StripeEvents._on_payout,
    "payout.updated": StripeEvents._on_payout,
    "payout.paid": StripeEvents._on_payout,
    "payout.failed": StripeEvents._on_payout,
    "payout.canceled": StripeEvents._on_payout,
    "payout.reconciliation_completed": StripeEvents._on_payout,
    "balance.available": StripeEvents._on_balance_available,
    "account.application.deauthorized": StripeEvents._on_account_deauthorized,
}
