"""LumaPay's side of the Sandbox processor (``transactions.sandbox``), as ``stripe`` is Stripe's.

It calls the processor's API (open a checkout, read its charges, refund), checks the signature of
the events the processor posts to the webhook path, and turns them into facts. Like every gateway it
writes nothing to our ledger.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import date, datetime, timezone as dt_timezone

from org_profile.fees import platform_fee_cents

from ..sandbox import payouts as sandbox_payouts, processor
from ..sandbox.enums import SandboxBalanceType, SandboxCancellation, SandboxIntentStatus
from ..sandbox.models import SandboxBalanceTransaction, SandboxCharge, SandboxPaymentIntent, SandboxRefund
from .base import (
    BalanceAmount,
    BalanceFact,
    ChargeFact,
    CheckoutStart,
    GatewayError,
    GatewayFact,
    LedgerFact,
    NextPayout,
    PayoutFact,
    PayoutLineFact,
    RefundFact,
    SavedCardFact,
    VerifiedEvent,
    WebhookVerificationError,
)

SIGNATURE_HEADER = processor.SIGNATURE_HEADER
SIGNATURE_TOLERANCE_SECONDS = 300


class SandboxGateway:
    name = "sandbox"
    itemizes_manual_payouts = True

    def checkout_start(
        self, *, transaction, success_url: str, cancel_url: str, locale: str = processor.AUTO_LOCALE
    ) -> CheckoutStart:
        try:
            session = processor.session_create(
                organization_id=transaction.organization_id,
                amount_cents=transaction.amount_cents,
                currency=transaction.currency,
                client_reference=str(transaction.pk),
                merchant_name=transaction.organization.display_name,
                # The same fee, by the same rule, as on Stripe: `make dev` shows it on every payment.
                application_fee_cents=platform_fee_cents(transaction.organization, transaction.amount_cents),
                success_url=success_url,
                cancel_url=cancel_url,
                locale=locale,
            )
        except processor.SandboxError as error:
            raise GatewayError(error.message) from error
        return CheckoutStart(
            checkout_id=session.id, redirect_url=processor.checkout_url(session), expires_at=session.expires_at
        )

    def checkout_outcome(self, *, transaction) -> ChargeFact:
        charges = processor.session_charges(transaction.gateway_checkout_id)
        paid = next((charge for charge in charges if charge.is_paid), None)
        if paid is not None:
            return _charge_fact(paid)
        if charges:
            return _charge_fact(charges[-1])
        return ChargeFact(status="pending")

    def checkout_expire(self, *, transaction) -> ChargeFact:
        processor.session_expire(transaction.gateway_checkout_id)
        return self.checkout_outcome(transaction=transaction)

    def refund(self, *, refund) -> RefundFact:
        try:
            sandbox_refund = processor.refund_create(
                charge_id=refund.transaction.gateway_charge_id,
                amount_cents=refund.amount_cents,
                idempotency_key=str(refund.idempotency_key),
            )
        except processor.SandboxError as error:
            raise GatewayError(error.message) from error
        return _refund_fact(sandbox_refund)

    def charge_refunds(self, *, transaction) -> list[RefundFact]:
        if not transaction.gateway_charge_id:
            return []
        return [_refund_fact(refund) for refund in processor.charge_refunds(transaction.gateway_charge_id)]

    # -- cards on file (``base.CardsOnFile``) --

    def customer_create(self, *, organization, patient_id: int) -> str:
        return processor.customer_create(organization_id=organization.pk).id

    def card_setup_start(
        self, *, organization, customer_id: str, saved_card_id: int, success_url: str, cancel_url: str, locale: str = "auto"
    ) -> CheckoutStart:
        try:
            session = processor.setup_session_create(
                organization_id=organization.pk,
                customer_id=customer_id,
                client_reference=str(saved_card_id),
                merchant_name=organization.display_name,
                success_url=success_url,
                cancel_url=cancel_url,
                locale=locale if locale in processor.session_locales() else processor.AUTO_LOCALE,
            )
        except processor.SandboxError as error:
            raise GatewayError(error.message) from error
        return CheckoutStart(checkout_id=session.id, redirect_url=processor.setup_url(session), expires_at=session.expires_at)

    def card_setup_outcome(self, *, organization, setup_id: str) -> SavedCardFact | None:
        session = processor.setup_session_get(setup_id)
        if session is None or session.organization_id != organization.pk or session.payment_method is None:
            return None
        card = session.payment_method
        return SavedCardFact(
            payment_method_id=card.id,
            card_brand=card.card_brand,
            card_last4=card.card_last4,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
        )

    def saved_card_charge(
        self, *, transaction, saved_card, capture: bool, idempotency_key: str = ""
    ) -> tuple[str, ChargeFact]:
        """Charge or hold at the Sandbox; idempotent on the transaction (or ``idempotency_key``). A
        charge pays the platform's fee at once, a hold when it is captured (as on Stripe)."""
        try:
            intent = processor.payment_intent_create(
                organization_id=transaction.organization_id,
                customer_id=saved_card.gateway_customer_id,
                payment_method_id=saved_card.gateway_payment_method_id,
                amount_cents=transaction.amount_cents,
                currency=transaction.currency,
                capture=capture,
                client_reference=str(transaction.pk),
                idempotency_key=idempotency_key or f"lumapay:transaction:{transaction.pk}:charge",
                application_fee_cents=platform_fee_cents(transaction.organization, transaction.amount_cents),
            )
        except processor.SandboxError as error:
            raise GatewayError(error.message) from error
        return intent.id, _intent_fact(intent)

    def authorization_capture(self, *, transaction) -> ChargeFact:
        try:
            intent = processor.payment_intent_capture(transaction.gateway_checkout_id)
        except processor.SandboxError as error:
            raise GatewayError(error.message) from error
        return _intent_fact(intent)

    def authorization_release(self, *, transaction) -> ChargeFact:
        try:
            intent = processor.payment_intent_cancel(transaction.gateway_checkout_id)
        except processor.SandboxError as error:
            raise GatewayError(error.message) from error
        return _intent_fact(intent)

    def authorization_outcome(self, *, transaction) -> ChargeFact:
        intent = processor.payment_intent_get(transaction.gateway_checkout_id)
        if intent is None:
            return ChargeFact(status="pending")
        return _intent_fact(intent)

    def saved_card_detach(self, *, saved_card) -> None:
        processor.payment_method_detach(saved_card.gateway_payment_method_id)

    # -- balance and payouts (``base.Payouts``) --

    def payout_lines(self, *, organization, gateway_payout_id: str) -> Iterator[PayoutLineFact]:
        if sandbox_payouts.payout_get(organization.pk, gateway_payout_id) is None:
            raise GatewayError("The Sandbox has no such payout for this organization.")
        for row in sandbox_payouts.payout_balance_transactions(organization.pk, gateway_payout_id):
            yield _payout_line_fact(row)

    def payouts_list(self, *, organization, created_after: datetime) -> Iterator[PayoutFact]:
        as_of = int(time.time())
        for payout in sandbox_payouts.payouts_list(organization.pk, created_after=created_after):
            yield _payout_fact(sandbox_payouts.payout_payload(payout), as_of=as_of)

    def payout_get(self, *, organization, gateway_payout_id: str) -> PayoutFact:
        payout = sandbox_payouts.payout_get(organization.pk, gateway_payout_id)
        if payout is None:
            raise GatewayError("The Sandbox has no such payout for this organization.")
        return _payout_fact(sandbox_payouts.payout_payload(payout), as_of=int(time.time()))

    def balance(self, *, organization) -> BalanceFact:
        return _balance_fact(sandbox_payouts.balance_payload(organization.pk), as_of=int(time.time()))

    def next_payouts(self, *, organization) -> list[NextPayout]:
        return [
            NextPayout(
                currency=upcoming["currency"],
                payout_date=date.fromisoformat(upcoming["payout_date"]),
                estimated_cents=upcoming["amount"],
            )
            for upcoming in sandbox_payouts.next_payouts(organization.pk)
        ]

    # -- events --

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
        # Checked here, not with the processor's signing code: a fault in either side shows.
        expected = hmac.new(
            processor.webhook_secret().encode(), f"{timestamp}.".encode() + body, hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise WebhookVerificationError("The Sandbox signature does not match the body.")
        try:
            event = json.loads(body)
            event_id, event_type, obj = event["id"], event["type"], event["data"]["object"]
        except (ValueError, KeyError, TypeError):
            raise WebhookVerificationError("The Sandbox event body is not a valid event.")
        return VerifiedEvent(event_id=event_id, event_type=event_type, payload=event, facts=_event_facts(event))

    def organization_id_for_event(self, payload: dict) -> int | None:
        """The Sandbox's events name no clinic we trust: their facts' transaction decides."""
        return None

    def facts_from_payload(self, *, payload: dict) -> list[GatewayFact]:
        return _event_facts(payload)


def _event_facts(event: dict) -> list[GatewayFact]:
    obj = event["data"]["object"]
    if obj.get("object") == "payout" and event["type"].startswith("payout."):
        return [_payout_fact(obj, as_of=int(event.get("created") or 0))]
    if obj.get("object") == "balance" and event["type"] == "balance.available":
        return [_balance_fact(obj, as_of=int(event.get("created") or 0))]
    return _facts(event["type"], obj)


def _payout_fact(obj: dict, *, as_of: int) -> PayoutFact:
    bank = obj.get("bank_account") or {}
    return PayoutFact(
        organization_id=int(obj["account"]),
        gateway_payout_id=obj["id"],
        amount_cents=int(obj["amount"]),
        currency=obj["currency"],
        status=obj["status"],
        method=obj.get("method", "standard"),
        created=datetime.fromtimestamp(int(obj["created"]), tz=dt_timezone.utc),
        arrival_date=date.fromisoformat(obj["arrival_date"]),
        automatic=bool(obj.get("automatic", True)),
        bank_name=bank.get("bank_name", ""),
        bank_last4=bank.get("last4", ""),
        trace_id=obj.get("trace_id") or "",
        failure_code=obj.get("failure_code") or "",
        failure_message=obj.get("failure_message") or "",
        description=obj.get("description") or "",
        as_of=as_of,
    )


def _balance_fact(obj: dict, *, as_of: int) -> BalanceFact:
    pending = {row["currency"]: int(row["amount"]) for row in obj.get("pending", [])}
    amounts = tuple(
        BalanceAmount(currency=row["currency"], available_cents=int(row["amount"]), pending_cents=pending.pop(row["currency"], 0))
        for row in obj.get("available", [])
    ) + tuple(BalanceAmount(currency=currency, available_cents=0, pending_cents=cents) for currency, cents in pending.items())
    return BalanceFact(organization_id=int(obj["account"]), amounts=amounts, as_of=as_of)


# A balance transaction's type, as the payout's line kind (``payouts.enums.PayoutLineKind``'s values).
_LINE_KINDS = {
    SandboxBalanceType.CHARGE: "charge",
    SandboxBalanceType.REFUND: "refund",
    SandboxBalanceType.PAYOUT_FAILURE: "payout_failure",
}
_LINE_DESCRIPTIONS = {
    SandboxBalanceType.CHARGE: "Card payment",
    SandboxBalanceType.REFUND: "Refund",
    SandboxBalanceType.PAYOUT_FAILURE: "Returned by the bank: payout {source}",
}


def _payout_line_fact(row: SandboxBalanceTransaction) -> PayoutLineFact:
    return PayoutLineFact(
        gateway_line_id=row.id,
        kind=_LINE_KINDS.get(row.type, "other"),
        amount_cents=row.amount_cents,
        fee_cents=row.fee_cents,
        net_cents=row.net_cents,
        currency=row.currency,
        created=row.created_at,
        available_on=row.available_on,
        source_id=row.source_id,
        charge_id=row.charge_id,
        description=_LINE_DESCRIPTIONS.get(row.type, "").format(source=row.source_id),
    )


def _charge_fact(charge: SandboxCharge) -> ChargeFact:
    return ChargeFact(
        status="succeeded" if charge.is_paid else "failed",
        charge_id=charge.id,
        amount_cents=charge.amount_cents,
        card_brand=charge.card_brand,
        card_last4=charge.card_last4,
        authorization_code=charge.authorization_code,
        fee_cents=processor.sandbox_fee_cents(charge.amount_cents) if charge.is_paid else 0,
        platform_fee_cents=charge.source.application_fee_cents if charge.is_paid else 0,
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


HOLD_LAPSED = "The hold lapsed after 7 days at the payment processor: nothing was charged."


def _intent_fact(intent: SandboxPaymentIntent) -> ChargeFact:
    return _intent_fact_from_payload(processor.payment_intent_payload(intent))


def _intent_fact_from_payload(obj: dict) -> ChargeFact:
    """A card-on-file payment's outcome. Its id is the charge's id in every fact, as a Stripe
    PaymentIntent's is: the hold, its capture or release, a decline."""
    card = obj.get("card") or {}
    common = {
        "charge_id": obj["id"],
        "amount_cents": obj["amount"],
        "card_brand": card.get("brand", ""),
        "card_last4": card.get("last4", ""),
        "authorization_code": obj.get("authorization_code", ""),
    }
    status = obj["status"]
    if status == SandboxIntentStatus.SUCCEEDED:
        return ChargeFact(
            status="succeeded", fee_cents=obj.get("fee", 0), platform_fee_cents=obj.get("application_fee_amount", 0), **common
        )
    if status == SandboxIntentStatus.REQUIRES_CAPTURE:
        return ChargeFact(status="authorized", **common)
    if status == SandboxIntentStatus.CANCELED:
        lapsed = obj.get("cancellation_reason") == SandboxCancellation.EXPIRED
        return ChargeFact(status="released", failure_code="expired" if lapsed else "", failure_message=HOLD_LAPSED if lapsed else "", **common)
    return ChargeFact(
        status="failed", failure_code=obj.get("failure_code", ""), failure_message=obj.get("failure_message", ""),
        **{**common, "amount_cents": 0},
    )  # fmt: skip


def _facts(event_type: str, obj: dict) -> list[LedgerFact]:
    if obj.get("object") == "payment_intent":
        # charge.succeeded / .failed / .authorized / .captured / .released of a card on file
        return [LedgerFact(checkout_id=obj["id"], charge_id=obj["id"], charge=_intent_fact_from_payload(obj))]
    if event_type in ("charge.succeeded", "charge.failed"):
        charge = ChargeFact(
            status="succeeded" if obj.get("paid") else "failed",
            charge_id=obj["id"],
            amount_cents=obj["amount"],
            card_brand=obj.get("card", {}).get("brand", ""),
            card_last4=obj.get("card", {}).get("last4", ""),
            authorization_code=obj.get("authorization_code", ""),
            fee_cents=obj.get("fee", 0),
            platform_fee_cents=obj.get("application_fee_amount", 0),
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
