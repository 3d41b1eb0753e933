"""Turning what a gateway says (a ``ChargeFact`` or ``RefundFact``) into ledger events.

Three paths report the same facts: the patient's confirmation page (which asks the gateway),
gateway events (webhooks, and the Sandbox's deliveries), and the refund service's own call. They
all land here, and the idempotency keys below make them converge on one ledger event per fact.
"""

from __future__ import annotations

import logging

from django.db import transaction as db_transaction
from django.utils import timezone

from lumapay.audit import audit_event_record
from lumapay.models import ActorType

from ..enums import PaymentRequestStatus, RefundStatus, TransactionEventKind as Kind
from ..gateways.base import ChargeFact, LedgerFact, RefundFact
from ..locks import payment_request_lock, refund_lock, transaction_lock
from ..models import Refund, Transaction
from .ledger import transaction_event_append

logger = logging.getLogger(__name__)


def charge_event_key(fact: ChargeFact) -> str:
    return f"charge:{fact.charge_id}:{fact.status}"


def refund_event_key(fact: RefundFact, *, refund: Refund) -> str:
    # A refund the gateway refused outright has no gateway id: our own idempotency key names it.
    return f"refund:{fact.gateway_refund_id or refund.idempotency_key}:{fact.status}"


def charge_fact_record(
    *, transaction: Transaction, fact: ChargeFact, actor_type: str = ActorType.GATEWAY, gateway_event_id: str = ""
) -> bool:
    """Record a charge's outcome once. Returns True when this call wrote the event."""
    if fact.status not in ("succeeded", "failed"):
        return False
    from ..tasks import receipt_email_send

    with db_transaction.atomic():
        if transaction.payment_request_id:
            payment_request = payment_request_lock(payment_request_id=transaction.payment_request_id)
        locked = transaction_lock(transaction_id=transaction.pk)
        kind = Kind.CHARGE_SUCCEEDED if fact.status == "succeeded" else Kind.CHARGE_FAILED
        event, created = transaction_event_append(
            transaction=locked,
            kind=kind,
            amount_cents=fact.amount_cents if fact.status == "succeeded" else 0,
            idempotency_key=charge_event_key(fact),
            actor_type=actor_type,
            gateway_reference=fact.charge_id,
            gateway_event_id=gateway_event_id,
            message=fact.failure_message,
        )
        if not created:
            return False
        if fact.status == "succeeded":
            locked.gateway_charge_id = fact.charge_id
            locked.card_brand = fact.card_brand
            locked.card_last4 = fact.card_last4
            locked.authorization_code = fact.authorization_code
            locked.fee_cents = fact.fee_cents
            locked.save(
                update_fields=["gateway_charge_id", "card_brand", "card_last4", "authorization_code", "fee_cents"]
            )
            if transaction.payment_request_id and payment_request.status != PaymentRequestStatus.PAID:
                old_status = payment_request.status
                payment_request.status = PaymentRequestStatus.PAID
                payment_request.paid_at = timezone.now()
                payment_request.save(update_fields=["status", "paid_at"])
                audit_event_record(
                    organization=locked.organization,
                    action="payment_request.paid",
                    actor_type=actor_type,
                    patient=locked.patient,
                    payment_request=payment_request,
                    transaction=locked,
                    changes={"status": [old_status, PaymentRequestStatus.PAID]},
                )
            # robust: a mail server that is down must not turn the patient's confirmation into an error.
            db_transaction.on_commit(lambda: receipt_email_send.delay(locked.pk), robust=True)
        elif locked.charged_cents == 0:
            # Show the card that was declined, unless another card has already paid.
            locked.card_brand, locked.card_last4 = fact.card_brand, fact.card_last4
            locked.save(update_fields=["card_brand", "card_last4"])
        _copy_to(transaction, locked)
        return True


def refund_fact_record(*, refund: Refund, fact: RefundFact, actor_type: str = ActorType.GATEWAY, gateway_event_id: str = "") -> bool:
    """Record a refund's outcome once. Returns True when this call wrote the event."""
    if fact.status not in ("succeeded", "failed"):
        return False
    with db_transaction.atomic():
        transaction_lock(transaction_id=refund.transaction_id)
        locked_refund = refund_lock(refund_id=refund.pk)
        kind = Kind.REFUND_SUCCEEDED if fact.status == "succeeded" else Kind.REFUND_FAILED
        event, created = transaction_event_append(
            transaction=locked_refund.transaction,
            kind=kind,
            amount_cents=fact.amount_cents,
            idempotency_key=refund_event_key(fact, refund=locked_refund),
            actor_type=actor_type,
            refund=locked_refund,
            gateway_reference=fact.gateway_refund_id,
            gateway_event_id=gateway_event_id,
            message=fact.failure_message,
        )
        locked_refund.gateway_refund_id = fact.gateway_refund_id or locked_refund.gateway_refund_id
        locked_refund.status = RefundStatus.SUCCEEDED if fact.status == "succeeded" else RefundStatus.FAILED
        locked_refund.failure_message = fact.failure_message[:500]
        locked_refund.save(update_fields=["gateway_refund_id", "status", "failure_message", "updated_at"])
        refund.status, refund.gateway_refund_id = locked_refund.status, locked_refund.gateway_refund_id
        refund.failure_message = locked_refund.failure_message
        return created


def ledger_fact_apply(*, gateway: str, fact: LedgerFact, gateway_event_id: str = "") -> bool:
    """Apply one fact from a gateway event. Unknown transactions or refunds are logged and skipped
    (an event for an object we never created must not fail the webhook)."""
    transaction = None
    if fact.checkout_id:
        transaction = Transaction.objects.filter(vendor=gateway, gateway_checkout_id=fact.checkout_id).first()
    if transaction is None and fact.charge_id:
        transaction = Transaction.objects.filter(vendor=gateway, gateway_charge_id=fact.charge_id).first()
    if transaction is None:
        logger.info("gateway %s event %s names no transaction of ours; skipped", gateway, gateway_event_id)
        return False
    if fact.charge is not None:
        return charge_fact_record(transaction=transaction, fact=fact.charge, gateway_event_id=gateway_event_id)
    if fact.refund is not None:
        refund = _refund_for(transaction, fact.refund)
        if refund is None:
            logger.info("gateway %s refund %s is not one of ours; skipped", gateway, fact.refund.gateway_refund_id)
            return False
        return refund_fact_record(refund=refund, fact=fact.refund, gateway_event_id=gateway_event_id)
    return False


def _refund_for(transaction: Transaction, fact: RefundFact) -> Refund | None:
    refunds = Refund.objects.filter(transaction=transaction)
    found = refunds.filter(gateway_refund_id=fact.gateway_refund_id).first()
    if found is None and fact.idempotency_key:
        found = refunds.filter(idempotency_key=fact.idempotency_key).first()
    return found


def _copy_to(target: Transaction, source: Transaction) -> None:
    for field in (
        "charged_cents", "refunded_cents", "status", "last_error", "paid_at",
        "gateway_charge_id", "card_brand", "card_last4", "authorization_code", "fee_cents",
    ):
        setattr(target, field, getattr(source, field))
