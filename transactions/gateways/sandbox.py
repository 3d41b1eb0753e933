"""The Sandbox: a payment processor built into LumaPay for trying the product, never for money.

It keeps its own books (``SandboxCheckoutSession``, ``SandboxCharge``, ``SandboxRefund``), hosts
its own checkout page (``transactions.views.sandbox_checkout``), answers to test cards, and sends
its events, signed, through the same path as a real gateway's webhooks
(``transactions.services.gateway_events.gateway_event_receive``).

Test cards (any future expiry, any 3-digit CVC):

=====================  =============================================
4242 4242 4242 4242    succeeds (Visa)
5555 5555 5555 4444    succeeds (Mastercard)
3782 822463 10005      succeeds (American Express, 4-digit CVC)
6011 1111 1111 1117    succeeds (Discover)
4000 0000 0000 0002    declined
4000 0000 0000 9995    declined: insufficient funds
4000 0025 0000 3155    asks the patient to authenticate; passes or fails as they choose
4000 0000 0000 5126    succeeds, but any refund of it fails
=====================  =============================================
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import string
import time
from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.db import transaction as db_transaction
from django.urls import reverse
from django.utils import timezone

from ..enums import SandboxSessionStatus
from ..models import SandboxCharge, SandboxCheckoutSession, SandboxRefund
from .base import (
    ChargeFact,
    CheckoutStart,
    GatewayError,
    LedgerFact,
    RefundFact,
    VerifiedEvent,
    WebhookVerificationError,
)

SIGNATURE_HEADER = "Sandbox-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300
SESSION_LIFETIME = timedelta(hours=1)


@dataclass(frozen=True)
class TestCard:
    brand: str
    outcome: str  # "succeeds" | "declined" | "insufficient_funds" | "authenticate" | "refund_fails"


TEST_CARDS = {
    "4242424242424242": TestCard("visa", "succeeds"),
    "5555555555554444": TestCard("mastercard", "succeeds"),
    "378282246310005": TestCard("amex", "succeeds"),
    "6011111111111117": TestCard("discover", "succeeds"),
    "4000000000000002": TestCard("visa", "declined"),
    "4000000000009995": TestCard("visa", "insufficient_funds"),
    "4000002500003155": TestCard("visa", "authenticate"),
    "4000000000005126": TestCard("visa", "refund_fails"),
}

DECLINES = {
    "declined": ("card_declined", "Your card was declined."),
    "insufficient_funds": ("insufficient_funds", "Your card has insufficient funds."),
    "authentication_failed": (
        "authentication_failed",
        "We could not authenticate your payment method. Choose another payment method and try again.",
    ),
}


class CardEntryError(GatewayError):
    """What the patient typed is not a usable card (nothing was charged)."""


@dataclass(frozen=True)
class CardAttempt:
    """The result of submitting a card on the Sandbox checkout page."""

    outcome: str  # "succeeded" | "failed" | "authenticate"
    redirect_url: str = ""
    message: str = ""


def sandbox_fee_cents(amount_cents: int) -> int:
    """The Sandbox charges what a typical US card processor does: 2.9% + 30¢, rounded half up."""
    return (amount_cents * 29 + 500) // 1000 + 30


def _new_id(prefix: str) -> str:
    return f"{prefix}_sbx_{secrets.token_hex(12)}"


def _luhn_valid(number: str) -> bool:
    total = 0
    for index, digit in enumerate(reversed(number)):
        value = int(digit)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _sign(body: bytes, timestamp: int) -> str:
    mac = hmac.new(settings.SANDBOX_WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class SandboxGateway:
    name = "sandbox"

    # -- the interface -------------------------------------------------------------------------

    def checkout_start(self, *, transaction, success_url: str, cancel_url: str) -> CheckoutStart:
        session = SandboxCheckoutSession.objects.create(
            id=_new_id("cs"),
            organization_id=transaction.organization_id,
            amount_cents=transaction.amount_cents,
            currency=transaction.currency,
            client_reference=str(transaction.pk),
            merchant_name=transaction.organization.display_name,
            success_url=success_url,
            cancel_url=cancel_url,
            expires_at=timezone.now() + SESSION_LIFETIME,
        )
        url = settings.SITE_URL + reverse("sandbox:checkout", kwargs={"session_id": session.id})
        return CheckoutStart(checkout_id=session.id, redirect_url=url, expires_at=session.expires_at)

    def checkout_outcome(self, *, transaction) -> ChargeFact:
        charges = list(SandboxCharge.objects.filter(session_id=transaction.gateway_checkout_id).order_by("created_at"))
        paid = next((charge for charge in charges if charge.is_paid), None)
        if paid is not None:
            return _charge_fact(paid)
        if charges:
            return _charge_fact(charges[-1])
        return ChargeFact(status="pending")

    def checkout_expire(self, *, transaction) -> ChargeFact:
        with db_transaction.atomic():
            session = (
                SandboxCheckoutSession.objects.select_for_update().filter(id=transaction.gateway_checkout_id).first()
            )
            if session is not None and session.status != SandboxSessionStatus.COMPLETE:
                session.status = SandboxSessionStatus.EXPIRED
                session.save(update_fields=["status"])
        return self.checkout_outcome(transaction=transaction)

    def refund(self, *, refund) -> RefundFact:
        key = str(refund.idempotency_key)
        with db_transaction.atomic():
            existing = SandboxRefund.objects.filter(idempotency_key=key).first()
            if existing is not None:
                return _refund_fact(existing)
            charge = SandboxCharge.objects.select_for_update().filter(
                id=refund.transaction.gateway_charge_id, is_paid=True
            ).first()
            if charge is None:
                raise GatewayError("The Sandbox has no paid charge for this transaction.")
            remaining = charge.amount_cents - charge.amount_refunded_cents
            if refund.amount_cents > remaining:
                raise GatewayError(
                    f"The Sandbox refused the refund: only {remaining} cents of this charge remain refundable."
                )
            fails = TEST_CARDS.get(_card_key(charge), TestCard("", "")).outcome == "refund_fails"
            sandbox_refund = SandboxRefund.objects.create(
                id=_new_id("re"),
                charge=charge,
                amount_cents=refund.amount_cents,
                idempotency_key=key,
                status="failed" if fails else "succeeded",
                failure_message="The card issuer declined the refund. Refund the patient another way."
                if fails
                else "",
            )
            if not fails:
                charge.amount_refunded_cents += refund.amount_cents
                charge.save(update_fields=["amount_refunded_cents"])
            self._deliver_on_commit(
                "refund.failed" if fails else "refund.succeeded", _refund_payload(sandbox_refund), charge.session
            )
        return _refund_fact(sandbox_refund)

    def event_verify(self, *, body: bytes, headers) -> VerifiedEvent:
        header = headers.get(SIGNATURE_HEADER, "")
        try:
            parts = dict(item.split("=", 1) for item in header.split(","))
            timestamp = int(parts["t"])
            signature = parts["v1"]
        except (KeyError, ValueError):
            raise WebhookVerificationError("The Sandbox signature header is missing or malformed.")
        if abs(time.time() - timestamp) > SIGNATURE_TOLERANCE_SECONDS:
            raise WebhookVerificationError("The Sandbox event is too old (signature timestamp outside 300 s).")
        expected = _sign(body, timestamp).split("v1=", 1)[1]
        if not hmac.compare_digest(expected, signature):
            raise WebhookVerificationError("The Sandbox signature does not match the body.")
        try:
            event = json.loads(body)
            event_id, event_type, obj = event["id"], event["type"], event["data"]["object"]
        except (ValueError, KeyError, TypeError):
            raise WebhookVerificationError("The Sandbox event body is not a valid event.")
        return VerifiedEvent(event_id=event_id, event_type=event_type, payload=event, facts=_facts(event_type, obj))

    def facts_from_payload(self, *, payload: dict) -> list[LedgerFact]:
        return _facts(payload["type"], payload["data"]["object"])

    # -- the processor's own side: what its hosted checkout page calls ------------------------

    def card_submit(
        self, *, session_id: str, card_number: str, expiry_month: str, expiry_year: str, cvc: str
    ) -> CardAttempt:
        number = "".join(ch for ch in card_number if ch.isdigit())
        if len(number) < 13 or not _luhn_valid(number):
            raise CardEntryError("Your card number is incorrect.")
        try:
            month, year = int(expiry_month), int(expiry_year)
            if year < 100:
                year += 2000
            if not 1 <= month <= 12:
                raise ValueError
        except ValueError:
            raise CardEntryError("Your card's expiration date is incomplete.")
        today = date.today()
        if (year, month) < (today.year, today.month):
            raise CardEntryError("Your card's expiration date is in the past.")
        card = TEST_CARDS.get(number)
        if card is None:
            raise CardEntryError("This is the Sandbox: use a test card such as 4242 4242 4242 4242.")
        cvc_length = 4 if card.brand == "amex" else 3
        if not (cvc.isdigit() and len(cvc) == cvc_length):
            raise CardEntryError("Your card's security code is incomplete.")

        with db_transaction.atomic():
            session = self._open_session_for_update(session_id)
            if card.outcome == "authenticate":
                session.status = SandboxSessionStatus.AWAITING_AUTHENTICATION
                session.pending_card_brand, session.pending_card_last4 = card.brand, number[-4:]
                session.save(update_fields=["status", "pending_card_brand", "pending_card_last4"])
                return CardAttempt(outcome="authenticate")
            decline = DECLINES.get(card.outcome)
            return self._charge(session, brand=card.brand, last4=number[-4:], decline=decline)

    def authentication_complete(self, *, session_id: str, passed: bool) -> CardAttempt:
        with db_transaction.atomic():
            session = self._open_session_for_update(session_id)
            if session.status != SandboxSessionStatus.AWAITING_AUTHENTICATION:
                raise CardEntryError("There is no payment waiting for authentication.")
            brand, last4 = session.pending_card_brand, session.pending_card_last4
            session.status = SandboxSessionStatus.OPEN
            session.pending_card_brand = session.pending_card_last4 = ""
            session.save(update_fields=["status", "pending_card_brand", "pending_card_last4"])
            return self._charge(
                session, brand=brand, last4=last4, decline=None if passed else DECLINES["authentication_failed"]
            )

    def session_get(self, session_id: str) -> SandboxCheckoutSession | None:
        return SandboxCheckoutSession.objects.filter(id=session_id).first()

    # -- internals -----------------------------------------------------------------------------

    def _open_session_for_update(self, session_id: str) -> SandboxCheckoutSession:
        session = SandboxCheckoutSession.objects.select_for_update().filter(id=session_id).first()
        if session is None:
            raise CardEntryError("This checkout does not exist.")
        if session.status == SandboxSessionStatus.COMPLETE:
            raise CardEntryError("This checkout is already paid.")
        if session.expires_at <= timezone.now() or session.status == SandboxSessionStatus.EXPIRED:
            raise CardEntryError("This checkout has expired. Go back to the payment link to start again.")
        return session

    def _charge(self, session, *, brand: str, last4: str, decline) -> CardAttempt:
        charge = SandboxCharge.objects.create(
            id=_new_id("ch"),
            session=session,
            amount_cents=session.amount_cents,
            currency=session.currency,
            is_paid=decline is None,
            failure_code=decline[0] if decline else "",
            failure_message=decline[1] if decline else "",
            card_brand=brand,
            card_last4=last4,
            authorization_code="" if decline else "".join(secrets.choice(string.digits) for _ in range(6)),
        )
        if decline is None:
            session.status = SandboxSessionStatus.COMPLETE
            session.save(update_fields=["status"])
        self._deliver_on_commit(
            "charge.failed" if decline else "charge.succeeded", _charge_payload(charge), session
        )
        if decline:
            return CardAttempt(outcome="failed", message=decline[1])
        return CardAttempt(outcome="succeeded", redirect_url=session.success_url)

    def _deliver_on_commit(self, event_type: str, obj: dict, session) -> None:
        event = {
            "id": _new_id("evt"),
            "type": event_type,
            "created": int(time.time()),
            "account": session.organization_id,
            "data": {"object": obj},
        }
        # robust: our own webhook path failing must not fail the processor's side (a real
        # processor's delivery is a separate HTTP call); the ledger still converges through the
        # confirmation page and the refund call, which read the outcome directly.
        db_transaction.on_commit(lambda: sandbox_event_deliver(event), robust=True)


def sandbox_event_deliver(event: dict) -> None:
    """Sign an event and hand it to the webhook path, as the processor's servers would."""
    from ..services.gateway_events import gateway_event_receive

    body = json.dumps(event, separators=(",", ":")).encode()
    gateway_event_receive(
        gateway=SandboxGateway.name, body=body, headers={SIGNATURE_HEADER: _sign(body, int(time.time()))}
    )


def _card_key(charge: SandboxCharge) -> str:
    for number, card in TEST_CARDS.items():
        if number.endswith(charge.card_last4) and card.brand == charge.card_brand:
            return number
    return ""


def _charge_payload(charge: SandboxCharge) -> dict:
    return {
        "object": "charge",
        "id": charge.id,
        "checkout_session": charge.session_id,
        "client_reference": charge.session.client_reference,
        "amount": charge.amount_cents,
        "currency": charge.currency,
        "paid": charge.is_paid,
        "failure_code": charge.failure_code,
        "failure_message": charge.failure_message,
        "authorization_code": charge.authorization_code,
        "fee": sandbox_fee_cents(charge.amount_cents) if charge.is_paid else 0,
        "card": {"brand": charge.card_brand, "last4": charge.card_last4},
    }


def _refund_payload(refund: SandboxRefund) -> dict:
    return {
        "object": "refund",
        "id": refund.id,
        "charge": refund.charge_id,
        "checkout_session": refund.charge.session_id,
        "amount": refund.amount_cents,
        "status": refund.status,
        "idempotency_key": refund.idempotency_key,
        "failure_message": refund.failure_message,
    }


def _charge_fact(charge: SandboxCharge) -> ChargeFact:
    return ChargeFact(
        status="succeeded" if charge.is_paid else "failed",
        charge_id=charge.id,
        amount_cents=charge.amount_cents,
        card_brand=charge.card_brand,
        card_last4=charge.card_last4,
        authorization_code=charge.authorization_code,
        fee_cents=sandbox_fee_cents(charge.amount_cents) if charge.is_paid else 0,
        failure_code=charge.failure_code,
        failure_message=charge.failure_message,
    )


def _refund_fact(refund: SandboxRefund) -> RefundFact:
    return RefundFact(
        status=refund.status,
        gateway_refund_id=refund.id,
        amount_cents=refund.amount_cents,
        idempotency_key=refund.idempotency_key,
        failure_message=refund.failure_message,
    )


def _facts(event_type: str, obj: dict) -> list[LedgerFact]:
    if event_type in ("charge.succeeded", "charge.failed"):
        charge = ChargeFact(
            status="succeeded" if obj.get("paid") else "failed",
            charge_id=obj["id"],
            amount_cents=obj["amount"],
            card_brand=obj.get("card", {}).get("brand", ""),
            card_last4=obj.get("card", {}).get("last4", ""),
            authorization_code=obj.get("authorization_code", ""),
            fee_cents=obj.get("fee", 0),
            failure_code=obj.get("failure_code", ""),
            failure_message=obj.get("failure_message", ""),
        )
        return [LedgerFact(checkout_id=obj["checkout_session"], charge_id=obj["id"], charge=charge)]
    if event_type in ("refund.succeeded", "refund.failed"):
        refund = RefundFact(
            status=obj["status"],
            gateway_refund_id=obj["id"],
            amount_cents=obj["amount"],
            idempotency_key=obj.get("idempotency_key", ""),
            failure_message=obj.get("failure_message", ""),
        )
        return [LedgerFact(checkout_id=obj.get("checkout_session", ""), charge_id=obj["charge"], refund=refund)]
    return []
