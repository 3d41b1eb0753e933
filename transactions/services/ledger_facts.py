"""Turning what a gateway says (a ``ChargeFact`` or ``RefundFact``) into ledger events.

Three paths report the same facts: the patient's confirmation page (which asks the gateway),
gateway events (webhooks, and the Sandbox's deliveries), and the refund service's own call. They
all land here, and the idempotency keys below make them converge on one ledger event per fact.
"""

from __future__ import annotations

import logging
import uuid

from django.db import IntegrityError, transaction as db_transaction
from django.utils import timezone

from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction
from lumapay.models import ActorType
from lumapay.money import format_cents

from ..enums import DisputeStatus, PaymentRequestStatus, RefundStatus, TransactionEventKind as Kind
from ..gateways.base import ChargeFact, DisputeFact, LedgerFact, RefundFact
from ..locks import payment_request_lock, refund_lock, transaction_lock
from ..models import Dispute, Refund, Transaction
from ..selectors.gateway_events import gateway_transaction
from .ledger import transaction_event_append
from .patient_messages import receipt_owe

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
    if fact.status in ("authorized", "released"):
        return authorization_fact_record(
            transaction=transaction, fact=fact, actor_type=actor_type, gateway_event_id=gateway_event_id
        )
    if fact.status not in ("succeeded", "failed"):
        return False
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
            # Recorded already (the other tab, or the event before the confirmation page): the
            # caller still sees the row as it stands, paid, not as it read it before.
            _copy_to(transaction, locked)
            return False
        if fact.status == "succeeded":
            locked.gateway_charge_id = fact.charge_id
            locked.card_brand = fact.card_brand
            locked.card_last4 = fact.card_last4
            locked.authorization_code = fact.authorization_code
            locked.fee_cents = fact.fee_cents
            locked.platform_fee_cents = fact.platform_fee_cents
            locked.save(
                update_fields=[
                    "gateway_charge_id", "card_brand", "card_last4", "authorization_code", "fee_cents", "platform_fee_cents",
                ]
            )
            if transaction.payment_request_id and payment_request.status != PaymentRequestStatus.PAID:
                old_status = payment_request.status
                payment_request.status = PaymentRequestStatus.PAID
                payment_request.paid_at = timezone.now()
                payment_request.save(update_fields=["status", "paid_at"])
                audit_event_record(
                    organization=locked.organization,
                    action=AuditAction.PAYMENT_REQUEST_PAID,
                    actor_type=actor_type,
                    patient=locked.patient,
                    payment_request=payment_request,
                    transaction=locked,
                    changes={"status": [old_status, PaymentRequestStatus.PAID]},
                )
            # Owed with the charge, in this database transaction: a rollback owes nothing, a commit
            # cannot lose it, and the ledger's idempotency key makes it one per charge.
            receipt_owe(transaction=locked)
        elif locked.charged_cents == 0:
            # Show the card that was declined, unless another card has already paid.
            locked.card_brand, locked.card_last4 = fact.card_brand, fact.card_last4
            locked.save(update_fields=["card_brand", "card_last4"])
        _copy_to(transaction, locked)
        return True


def authorization_fact_record(
    *, transaction: Transaction, fact: ChargeFact, actor_type: str = ActorType.GATEWAY, gateway_event_id: str = ""
) -> bool:
    """Record that a card's amount is held ("authorized") or was let go ("released"), once each.
    Capturing it is a charge like any other (``charge_fact_record`` with "succeeded")."""
    with db_transaction.atomic():
        locked = transaction_lock(transaction_id=transaction.pk)
        held = fact.status == "authorized"
        _event, created = transaction_event_append(
            transaction=locked,
            kind=Kind.CHARGE_AUTHORIZED if held else Kind.AUTHORIZATION_RELEASED,
            amount_cents=fact.amount_cents,
            idempotency_key=f"authorization:{fact.charge_id}:{fact.status}",
            actor_type=actor_type,
            gateway_reference=fact.charge_id,
            gateway_event_id=gateway_event_id,
            # Why the gateway let it go by itself (the Sandbox: the hold lapsed), when it says.
            message="" if held else fact.failure_message,
        )
        if created and held and locked.charged_cents == 0 and fact.card_last4:
            locked.card_brand, locked.card_last4 = fact.card_brand, fact.card_last4
            locked.authorization_code = fact.authorization_code
            locked.save(update_fields=["card_brand", "card_last4", "authorization_code"])
        _copy_to(transaction, locked)
        return created


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
        # Failed is final: a refund can fail after it succeeded, never the other way round, so a
        # late report of its success does not undo a failure already recorded.
        if locked_refund.status != RefundStatus.FAILED:
            locked_refund.status = RefundStatus.SUCCEEDED if fact.status == "succeeded" else RefundStatus.FAILED
            locked_refund.failure_message = fact.failure_message[:500]
        locked_refund.save(update_fields=["gateway_refund_id", "status", "failure_message", "updated_at"])
        refund.status, refund.gateway_refund_id = locked_refund.status, locked_refund.gateway_refund_id
        refund.failure_message = locked_refund.failure_message
        return created


# Dispute statuses, by what they mean for the money (see ``ledger.transaction_recalculate``).
DISPUTE_WON_STATUSES = frozenset({DisputeStatus.WON, DisputeStatus.WARNING_CLOSED, DisputeStatus.PREVENTED})
DISPUTE_LOST_STATUSES = frozenset({DisputeStatus.LOST})
DISPUTE_REVIEW_STATUSES = frozenset(
    {
        DisputeStatus.UNDER_REVIEW,
        DisputeStatus.WARNING_UNDER_REVIEW,
        DisputeStatus.APPEAL_NEEDS_RESPONSE,
        DisputeStatus.APPEAL_UNDER_REVIEW,
    }
)
# Two reports from the same second: the later stage wins.
_DISPUTE_STAGE = {
    DisputeStatus.WARNING_NEEDS_RESPONSE: 0,
    DisputeStatus.NEEDS_RESPONSE: 0,
    DisputeStatus.WARNING_UNDER_REVIEW: 1,
    DisputeStatus.UNDER_REVIEW: 1,
    DisputeStatus.APPEAL_NEEDS_RESPONSE: 3,
    DisputeStatus.APPEAL_UNDER_REVIEW: 4,
}
_DISPUTE_MESSAGES = {
    DisputeStatus.UNDER_REVIEW: "Evidence submitted; the card issuer is reviewing it.",
    DisputeStatus.WARNING_UNDER_REVIEW: "Inquiry answered; the card issuer is reviewing it.",
    DisputeStatus.APPEAL_NEEDS_RESPONSE: "The dispute can be appealed.",
    DisputeStatus.APPEAL_UNDER_REVIEW: "Appeal submitted; the card network is reviewing it.",
    DisputeStatus.WON: "The card issuer decided for the clinic: the amount was returned.",
    DisputeStatus.WARNING_CLOSED: "The inquiry closed without a chargeback.",
    DisputeStatus.PREVENTED: "The dispute was prevented before it became a chargeback.",
    DisputeStatus.LOST: "The card issuer decided for the cardholder: the amount stays with them.",
}


def dispute_event_key(fact: DisputeFact, stage: str) -> str:
    return f"dispute:{fact.gateway_dispute_id}:{stage}"


def _dispute_stage(status: str) -> int:
    return _DISPUTE_STAGE.get(status, 2)  # closed (won, lost, ...) between review and appeal


def _dispute_stages(fact: DisputeFact, *, currency: str) -> list[tuple[str, str, int, str]]:
    """The ledger events (kind, stage, amount, message) the dispute's status implies. Their amounts
    say what is contested; none of them moves money (``_dispute_funds_stages`` does)."""
    if fact.status.startswith("warning_"):
        # An inquiry: the issuer asks about the charge; nothing is withdrawn until it becomes a
        # chargeback (its status then leaves "warning_", and it opens as a dispute below).
        asked = format_cents(fact.amount_cents, currency)
        stages = [
            (
                Kind.INQUIRY_OPENED,
                "inquiry_opened",
                0,
                f"The card issuer asks about {asked} of this payment; no money was withdrawn. "
                f"Reason: {fact.reason or 'not given'}",
            )
        ]
        if fact.status == DisputeStatus.WARNING_UNDER_REVIEW:
            stages.append((Kind.DISPUTE_UPDATED, fact.status, 0, _DISPUTE_MESSAGES[fact.status]))
        elif fact.status == DisputeStatus.WARNING_CLOSED:
            stages.append((Kind.INQUIRY_CLOSED, "inquiry_closed", 0, _DISPUTE_MESSAGES[fact.status]))
        return stages
    stages = [(Kind.DISPUTE_OPENED, "opened", fact.amount_cents, f"Reason: {fact.reason or 'not given'}")]
    if fact.status in DISPUTE_REVIEW_STATUSES:
        stages.append((Kind.DISPUTE_UPDATED, fact.status, 0, _DISPUTE_MESSAGES[fact.status]))
    elif fact.status in DISPUTE_WON_STATUSES:
        stages.append((Kind.DISPUTE_WON, "won", fact.amount_cents, _DISPUTE_MESSAGES[fact.status]))
    elif fact.status in DISPUTE_LOST_STATUSES:
        stages.append((Kind.DISPUTE_LOST, "lost", fact.amount_cents, _DISPUTE_MESSAGES[fact.status]))
    return stages


def _dispute_funds_stages(fact: DisputeFact) -> list[tuple[str, str, int, str]]:
    """The money the dispute moved, once per balance transaction whichever report carries it: the
    amount withdrawn or reinstated, and the dispute fee taken or given back."""
    stages = []
    for funds in fact.funds:
        if funds.amount_cents < 0:
            stages.append((Kind.DISPUTE_FUNDS_WITHDRAWN, f"funds:{funds.gateway_reference}", -funds.amount_cents, ""))
        elif funds.amount_cents > 0:
            stages.append((Kind.DISPUTE_FUNDS_REINSTATED, f"funds:{funds.gateway_reference}", funds.amount_cents, ""))
        if funds.fee_cents > 0:
            stages.append((Kind.DISPUTE_FEE, f"fee:{funds.gateway_reference}", funds.fee_cents, ""))
        elif funds.fee_cents < 0:
            stages.append((Kind.DISPUTE_FEE_RETURNED, f"fee:{funds.gateway_reference}", -funds.fee_cents, ""))
    return stages


def dispute_fact_record(
    *, transaction: Transaction, fact: DisputeFact, actor_type: str = ActorType.GATEWAY, gateway_event_id: str = ""
) -> bool:
    """Record what the gateway says about a dispute. Returns True when this call wrote a ledger event.

    The ledger gets one event per stage the dispute reached, whatever order the reports arrive
    in: "opened" always (a report of a closed dispute implies it opened), "updated" for each
    review status, and "won" or "lost" when it closed; an inquiry "inquiry opened" and "inquiry
    closed" instead. Money is only what the gateway moved: one event per balance transaction for
    the amount withdrawn or reinstated and one for its dispute fee. The ``Dispute`` row takes the
    newest report.
    The ledger events are the record of what the gateway said (as for refunds, no audit event).
    """
    with db_transaction.atomic():
        locked = transaction_lock(transaction_id=transaction.pk)
        dispute = Dispute.objects.filter(gateway_dispute_id=fact.gateway_dispute_id).first()
        if dispute is None:
            dispute = Dispute.objects.create(
                organization_id=locked.organization_id,
                transaction=locked,
                gateway_dispute_id=fact.gateway_dispute_id,
                amount_cents=fact.amount_cents,
                currency=locked.currency,
                reason=fact.reason[:100],
                status=fact.status,
                evidence_due_by=fact.evidence_due_by,
                status_as_of=fact.as_of,
            )
        elif dispute.transaction_id != locked.pk:
            logger.warning("dispute %s belongs to another transaction; skipped", fact.gateway_dispute_id)
            return False
        elif (fact.as_of, _dispute_stage(fact.status)) >= (dispute.status_as_of, _dispute_stage(dispute.status)):
            dispute.amount_cents = fact.amount_cents
            dispute.reason = fact.reason[:100] or dispute.reason
            dispute.status = fact.status
            dispute.evidence_due_by = fact.evidence_due_by or dispute.evidence_due_by
            dispute.status_as_of = fact.as_of
            dispute.save(
                update_fields=["amount_cents", "reason", "status", "evidence_due_by", "status_as_of", "updated_at"]
            )

        stages = _dispute_stages(fact, currency=locked.currency) + _dispute_funds_stages(fact)
        written = False
        for kind, stage, amount_cents, message in stages:
            _event, created = transaction_event_append(
                transaction=locked,
                kind=kind,
                amount_cents=amount_cents,
                idempotency_key=dispute_event_key(fact, stage),
                actor_type=actor_type,
                gateway_reference=fact.gateway_dispute_id,
                gateway_event_id=gateway_event_id,
                message=message,
            )
            written = written or created
        _copy_to(transaction, locked)
        return written


def ledger_fact_apply(*, gateway: str, fact: LedgerFact, gateway_event_id: str = "") -> bool:
    """Apply one fact about a transaction from a gateway event. Unknown transactions are logged and
    skipped (an event for a payment we never took must not fail the webhook); a refund of our
    transaction that LumaPay did not make is imported (``refund_fact_apply``)."""
    transaction = gateway_transaction(gateway=gateway, checkout_id=fact.checkout_id, charge_id=fact.charge_id)
    if transaction is None:
        logger.info("gateway %s event %s names no transaction of ours; skipped", gateway, gateway_event_id)
        return False
    if fact.charge is not None:
        return charge_fact_record(transaction=transaction, fact=fact.charge, gateway_event_id=gateway_event_id)
    if fact.refund is not None:
        return refund_fact_apply(transaction=transaction, fact=fact.refund, gateway_event_id=gateway_event_id)
    if fact.dispute is not None:
        return dispute_fact_record(transaction=transaction, fact=fact.dispute, gateway_event_id=gateway_event_id)
    return False


OUTSIDE_REFUND_REASON = "None given at the payment processor"


def refund_fact_apply(*, transaction: Transaction, fact: RefundFact, gateway_event_id: str = "") -> bool:
    """Record what the gateway says about one refund of the transaction's charge, whoever made it.

    A refund LumaPay made is found by its gateway id or by our idempotency key in its metadata (its
    events can arrive before our own call has heard back). Any other refund of the charge was made
    at the processor, outside LumaPay: it is imported once (``refund_import``), however many events
    and listings report it. Returns True when this call wrote anything.
    """
    refund = _refund_for(transaction, fact)
    imported = False
    if refund is None:
        refund, imported = refund_import(transaction=transaction, fact=fact, gateway_event_id=gateway_event_id)
        if refund is None:
            return False
    recorded = refund_fact_record(refund=refund, fact=fact, gateway_event_id=gateway_event_id)
    return imported or recorded


def refund_import(*, transaction: Transaction, fact: RefundFact, gateway_event_id: str = "") -> tuple[Refund | None, bool]:
    """A refund made at the processor outside LumaPay (the clinic's Stripe Dashboard): its refund
    row, marked ``is_made_outside``, and its "refund requested" ledger event, once per gateway
    refund id. Returns (refund, created); (None, False) when the gateway refund belongs to another
    transaction or has no id.

    The row is "requested" until ``refund_fact_record`` records the outcome, so a refund still
    pending at the processor is held back from the refundable amount as LumaPay's own are.
    """
    if not fact.gateway_refund_id or fact.amount_cents <= 0:
        logger.info("gateway refund without an id or an amount on transaction %s; skipped", transaction.pk)
        return None, False
    with db_transaction.atomic():
        locked = transaction_lock(transaction_id=transaction.pk)
        refund = _refund_for(locked, fact, everywhere=True)
        if refund is None:
            try:
                with db_transaction.atomic():
                    refund = Refund.objects.create(
                        organization_id=locked.organization_id,
                        transaction=locked,
                        amount_cents=fact.amount_cents,
                        currency=locked.currency,
                        reason=fact.reason or OUTSIDE_REFUND_REASON,
                        gateway_refund_id=fact.gateway_refund_id,
                        is_made_outside=True,
                    )
            except IntegrityError:
                refund = Refund.objects.filter(gateway_refund_id=fact.gateway_refund_id).first()
            else:
                transaction_event_append(
                    transaction=locked,
                    kind=Kind.REFUND_REQUESTED,
                    amount_cents=refund.amount_cents,
                    idempotency_key=f"refund_requested:{refund.pk}",
                    actor_type=ActorType.GATEWAY,
                    refund=refund,
                    gateway_reference=fact.gateway_refund_id,
                    gateway_event_id=gateway_event_id,
                    message=refund.reason,
                )
                _copy_to(transaction, locked)
                logger.info("refund %s made outside LumaPay imported on transaction %s", fact.gateway_refund_id, locked.pk)
                return refund, True
    if refund is None or refund.transaction_id != transaction.pk:
        logger.warning("gateway refund %s belongs to another transaction; skipped", fact.gateway_refund_id)
        return None, False
    return refund, False


def charge_refunds_import(*, transaction: Transaction, facts: list[RefundFact]) -> int:
    """Bring the ledger up to what the gateway lists for the charge's refunds (``charge_refunds``):
    import those made outside LumaPay, and record where each of those now stands. LumaPay's own
    refunds are left to their own call, its retry and their events. Returns how many changed the
    ledger."""
    changed = 0
    for fact in facts:
        ours = _refund_for(transaction, fact, everywhere=True)
        if ours is not None and not ours.is_made_outside:
            continue
        changed += refund_fact_apply(transaction=transaction, fact=fact)
    return changed


def ledger_fact_organization_id(*, gateway: str, fact: LedgerFact) -> int | None:
    """The clinic whose transaction the fact is about (None: not one of ours)."""
    transaction = gateway_transaction(gateway=gateway, checkout_id=fact.checkout_id, charge_id=fact.charge_id)
    return transaction.organization_id if transaction is not None else None


def _refund_for(transaction: Transaction, fact: RefundFact, *, everywhere: bool = False) -> Refund | None:
    """Our refund row for the gateway's refund: by its id, else by the idempotency key we put in its
    metadata. Within the transaction, or (``everywhere``) on any transaction."""
    refunds = Refund.objects.all() if everywhere else Refund.objects.filter(transaction=transaction)
    found = refunds.filter(gateway_refund_id=fact.gateway_refund_id).first() if fact.gateway_refund_id else None
    if found is None and fact.idempotency_key:
        try:
            key = uuid.UUID(fact.idempotency_key)
        except ValueError:
            return None  # metadata someone else wrote: not a key of ours
        found = refunds.filter(idempotency_key=key).first()
    return found


def _copy_to(target: Transaction, source: Transaction) -> None:
    for field in (
        "charged_cents", "refunded_cents", "disputed_cents", "dispute_fee_cents", "status", "last_error",
        "has_unresolved_problems", "paid_at", "gateway_charge_id", "card_brand", "card_last4", "authorization_code", "fee_cents",
        "platform_fee_cents",
    ):
        setattr(target, field, getattr(source, field))
