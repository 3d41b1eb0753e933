"""Cards on file at Stripe: saved through Checkout in setup mode, charged off-session, or held
before a visit (manual capture) and then captured or released.
"""

from __future__ import annotations

import logging
import stripe
from django.utils import timezone

from org_profile.models import Organization

from ..base import ChargeFact, CheckoutStart, GatewayError, GatewayUnavailable, SavedCardFact
from .client import (
    CHECKOUT_LIFETIME,
    METADATA_ORGANIZATION,
    METADATA_SAVED_CARD,
    METADATA_TRANSACTION,
    account_of,
    application_fee,
    as_dict,
    id_of,
    idempotency_key,
    idempotency_key as stripe_idempotency_key,
    stripe_call,
    stripe_client,
    timestamp_of,
)
from .facts import charge_fact_from_payment_intent

logger = logging.getLogger(__name__)


class StripeSavedCards:
    """Cards on file (part of ``StripeGateway``)."""

    def customer_create(self, *, organization: Organization, patient_id: int) -> str:
        """A Customer on the clinic's account to keep one patient's cards under. It carries no
        name, e-mail or phone: we know whose it is, Stripe does not need to. One per patient: a
        retry (the first answer lost, or the card's checkout failing after it) gets the same one."""
        with stripe_call("keeping the card"):
            customer = stripe_client().v1.customers.create(
                {"metadata": {METADATA_ORGANIZATION: str(organization.pk)}},
                {
                    "stripe_account": account_of(organization),
                    "idempotency_key": idempotency_key(row="patient", pk=patient_id, action="customer"),
                },
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
        with stripe_call("starting the card's checkout"):
            session = stripe_client().v1.checkout.sessions.create(
                params,
                {
                    "stripe_account": account_of(organization),
                    "idempotency_key": idempotency_key(row="saved_card", pk=saved_card_id, action="card_setup"),
                },
            )
        return CheckoutStart(checkout_id=session.id, redirect_url=session.url, expires_at=timestamp_of(session.expires_at))

    def card_setup_outcome(self, *, organization: Organization, setup_id: str) -> SavedCardFact | None:
        """The card the patient saved through that checkout; None while it is not saved (yet)."""
        account = account_of(organization)
        with stripe_call("reading the card's checkout"):
            session = as_dict(stripe_client().v1.checkout.sessions.retrieve(setup_id, options={"stripe_account": account}))
        setup_intent = id_of(session.get("setup_intent"))
        if not setup_intent:
            return None
        with stripe_call("reading the saved card"):
            intent = as_dict(
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

    def saved_card_charge(self, *, transaction, saved_card, capture: bool, idempotency_key: str = "") -> tuple[str, ChargeFact]:
        """Charge (or, without ``capture``, only hold) a card on file while the patient is away.

        Returns the PaymentIntent's id and what became of it. A decline is an outcome, not an
        error: it comes back as a failed fact. The idempotency key is the transaction's (or the
        caller's ``idempotency_key``, e.g. a plan instalment's attempt), so a retried request never
        charges twice. A charge pays the platform's fee at once; a hold pays
        it when captured, on the amount captured (``authorization_capture``).
        """
        organization = transaction.organization
        account = account_of(organization)
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
        if capture:
            params.update(application_fee(organization, transaction.amount_cents))
        try:
            with stripe_call("charging the card on file"):
                intent = stripe_client().v1.payment_intents.create(
                    params,
                    {
                        "stripe_account": account,
                        "idempotency_key": idempotency_key
                        or stripe_idempotency_key(row="transaction", pk=transaction.pk, action="charge"),
                    },
                )
        except GatewayUnavailable:
            raise
        except GatewayError as error:
            declined = error.__cause__ if isinstance(error.__cause__, stripe.CardError) else None
            if declined is None:
                raise
            body = (declined.json_body or {}).get("error") or {}
            payment_intent = id_of(body.get("payment_intent"))
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
        account = account_of(transaction.organization)
        try:
            with stripe_call("capturing the held payment"):
                # The whole hold is captured: the platform's fee is worked out on that amount.
                stripe_client().v1.payment_intents.capture(
                    transaction.gateway_checkout_id,
                    application_fee(transaction.organization, transaction.amount_cents),
                    {
                        "stripe_account": account,
                        "idempotency_key": idempotency_key(row="transaction", pk=transaction.pk, action="capture"),
                    },
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
        account = account_of(transaction.organization)
        try:
            with stripe_call("releasing the held payment"):
                stripe_client().v1.payment_intents.cancel(
                    transaction.gateway_checkout_id,
                    options={
                        "stripe_account": account,
                        "idempotency_key": idempotency_key(row="transaction", pk=transaction.pk, action="release"),
                    },
                )
        except GatewayUnavailable:
            raise
        except GatewayError:
            fact = charge_fact_from_payment_intent(self.payment_intent_retrieve(transaction.gateway_checkout_id, account=account))
            if fact.status != "released":
                raise
            return fact
        return charge_fact_from_payment_intent(self.payment_intent_retrieve(transaction.gateway_checkout_id, account=account))

    def authorization_outcome(self, *, transaction) -> ChargeFact:
        """What became of the card-on-file PaymentIntent, as Stripe has it now."""
        account = account_of(transaction.organization)
        return charge_fact_from_payment_intent(self.payment_intent_retrieve(transaction.gateway_checkout_id, account=account))

    def saved_card_detach(self, *, saved_card) -> None:
        """Stripe forgets the card (it can never be charged again)."""
        try:
            with stripe_call("removing the card"):
                stripe_client().v1.payment_methods.detach(
                    saved_card.gateway_payment_method_id,
                    options={
                        "stripe_account": account_of(saved_card.organization),
                        "idempotency_key": idempotency_key(row="saved_card", pk=saved_card.pk, action="detach"),
                    },
                )
        except GatewayUnavailable:
            raise
        except GatewayError as error:
            # Detached already (a retry, or removed in the Stripe dashboard): the outcome we want.
            logger.info("stripe payment method %s not detached: %s", saved_card.gateway_payment_method_id, error.message)

