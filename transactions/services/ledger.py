"""The ledger: append a fact about a transaction's money, then recalculate its cached totals.

Every money event goes through ``transaction_event_append``. The same fact reported twice (the
confirmation page and the webhook; a webhook delivered twice) carries the same idempotency key and
is written once: the unique constraint decides, not a check before the insert.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction as db_transaction
from django.utils import timezone

from lumapay.models import ActorType

from ..enums import TransactionEventKind as Kind, TransactionStatus
from ..locks import transaction_lock
from ..models import Transaction, TransactionEvent
from ..problems import unresolved_failures
from .ehr_postings import ehr_posting_owe


def transaction_event_append(
    *,
    transaction: Transaction,
    kind: str,
    amount_cents: int,
    idempotency_key: str,
    actor_type: str = ActorType.GATEWAY,
    actor_user=None,
    refund=None,
    gateway_reference: str = "",
    gateway_event_id: str = "",
    message: str = "",
) -> tuple[TransactionEvent, bool]:
    """Write one ledger event (once) and recalculate. Returns (event, created).

    Locks the transaction row; the caller may already hold the lock.
    """
    with db_transaction.atomic():
        locked = transaction_lock(transaction_id=transaction.pk)
        try:
            with db_transaction.atomic():
                event = TransactionEvent.objects.create(
                    organization_id=locked.organization_id,
                    transaction=locked,
                    kind=kind,
                    amount_cents=amount_cents,
                    currency=locked.currency,
                    actor_type=actor_type,
                    actor_user=actor_user,
                    refund=refund,
                    gateway_reference=gateway_reference,
                    gateway_event_id=gateway_event_id,
                    message=message[:500],
                    idempotency_key=idempotency_key,
                )
        except IntegrityError:
            existing = TransactionEvent.objects.get(transaction=locked, idempotency_key=idempotency_key)
            return existing, False
        transaction_recalculate(transaction=locked)
        # A payment, refund or reversal is owed to the EHR with the event (ehr_postings).
        ehr_posting_owe(event=event)
        _copy_to(transaction, locked)
        return event, True


DISPUTE_KINDS = (Kind.DISPUTE_OPENED, Kind.DISPUTE_WON, Kind.DISPUTE_LOST)
DISPUTE_FUNDS_KINDS = (Kind.DISPUTE_FUNDS_WITHDRAWN, Kind.DISPUTE_FUNDS_REINSTATED)
# The key of a withdrawal or reinstatement written by migration 0013 from a dispute recorded before
# its balance transactions were read: used only until a report of those arrives.
LEGACY_DISPUTE_FUNDS_SUFFIX = ":before-balance-transactions"
# What the recalculation reads of each event: one query, oldest first.
_EVENT_FIELDS = ("id", "kind", "amount_cents", "refund_id", "gateway_reference", "message", "created_at", "idempotency_key")
# The fields the recalculation writes (and ``transaction_event_append`` copies to the caller's row).
RECALCULATED_FIELDS = (
    "charged_cents", "refunded_cents", "disputed_cents", "dispute_fee_cents", "status", "last_error",
    "has_unresolved_problems", "paid_at", "updated_at",
)


@dataclass(frozen=True)
class _Event:
    id: int
    kind: str
    amount_cents: int
    refund_id: int | None
    gateway_reference: str
    message: str
    created_at: datetime
    idempotency_key: str


def transaction_recalculate(*, transaction: Transaction) -> Transaction:
    """Derive status, totals and problems from the events. The caller holds the row lock.

    Reads the events once (one query, oldest first) and writes the row once; when this checkout
    is the one that paid its payment request, the request's other checkouts lose their declined
    attempts as problems (one more UPDATE, on that append only).

    Disputes: only the money the processor moved counts. ``disputed_cents`` is what disputes
    withdrew from the clinic's balance less what they reinstated (``dispute_funds_*``, one event
    per balance transaction): it stays withdrawn after a loss, and an inquiry, which withdraws
    nothing, holds nothing. ``dispute_fee_cents`` is the dispute fees taken less those given back.
    Charged and refunded are unchanged by disputes (the patient paid, and the clinic refunded what
    it refunded); the refundable remainder leaves the disputed amount out. Status: "disputed" while
    any chargeback is open, then "dispute lost" if one was lost (and not won on appeal), otherwise
    what refunds make it; inquiries do not change it.

    Problems: ``has_unresolved_problems`` and ``last_error`` (the newest unresolved failure's
    message) follow ``transactions.problems``: a failure a later success resolved is history.
    """
    events = [
        _Event(*row)
        for row in TransactionEvent.objects.filter(transaction=transaction)
        .order_by("created_at", "id")
        .values_list(*_EVENT_FIELDS)
    ]
    totals: dict[str, int] = defaultdict(int)
    disputes: dict[str, set[str]] = {kind: set() for kind in DISPUTE_KINDS}
    # Per dispute: its balance transactions' events, and those migration 0013 wrote before them.
    dispute_funds: dict[str, tuple[list[_Event], list[_Event]]] = defaultdict(lambda: ([], []))
    failed_refund_ids: set[int] = set()
    last_charge_kind = None
    authorization: set[str] = set()
    for event in events:
        totals[event.kind] += event.amount_cents
        if event.kind in DISPUTE_KINDS:
            disputes[event.kind].add(event.gateway_reference)
        elif event.kind in DISPUTE_FUNDS_KINDS:
            legacy = event.idempotency_key.endswith(LEGACY_DISPUTE_FUNDS_SUFFIX)
            dispute_funds[event.gateway_reference][legacy].append(event)
        elif event.kind == Kind.REFUND_FAILED and event.refund_id is not None:
            failed_refund_ids.add(event.refund_id)
        elif event.kind in (Kind.CHARGE_AUTHORIZED, Kind.AUTHORIZATION_RELEASED):
            authorization.add(event.kind)
        if event.kind in (Kind.CHARGE_REQUESTED, Kind.CHARGE_SUCCEEDED, Kind.CHARGE_FAILED):
            last_charge_kind = event.kind
    charged = totals[Kind.CHARGE_SUCCEEDED]
    # A refund can fail after it succeeded (the card was closed): the money came back to the
    # clinic, so it no longer counts, in whatever order the two reports arrived.
    refunded = sum(
        event.amount_cents
        for event in events
        if event.kind == Kind.REFUND_SUCCEEDED and event.refund_id not in failed_refund_ids
    )
    disputed = 0
    for reported, legacy in dispute_funds.values():
        for event in reported or legacy:
            disputed += event.amount_cents if event.kind == Kind.DISPUTE_FUNDS_WITHDRAWN else -event.amount_cents
    disputed = max(disputed, 0)
    dispute_fees = max(totals[Kind.DISPUTE_FEE] - totals[Kind.DISPUTE_FEE_RETURNED], 0)
    open_disputes = disputes[Kind.DISPUTE_OPENED] - disputes[Kind.DISPUTE_WON] - disputes[Kind.DISPUTE_LOST]
    lost_disputes = disputes[Kind.DISPUTE_LOST] - disputes[Kind.DISPUTE_WON]

    if charged == 0:
        failed = last_charge_kind == Kind.CHARGE_FAILED
        # An authorization is held until it is captured (a charge) or released; either is final.
        if Kind.AUTHORIZATION_RELEASED in authorization:
            status = TransactionStatus.RELEASED
        elif Kind.CHARGE_AUTHORIZED in authorization:
            status = TransactionStatus.AUTHORIZED
        else:
            status = TransactionStatus.FAILED if failed else TransactionStatus.PENDING
    elif open_disputes:
        status = TransactionStatus.DISPUTED
    elif lost_disputes:
        status = TransactionStatus.DISPUTE_LOST
    elif refunded >= charged:
        status = TransactionStatus.REFUNDED
    elif refunded > 0:
        status = TransactionStatus.PARTIALLY_REFUNDED
    else:
        status = TransactionStatus.SUCCEEDED

    problems = unresolved_failures(events)
    if problems and charged == 0 and transaction.payment_request_id and _request_paid_elsewhere(transaction):
        problems = unresolved_failures(events, paid_elsewhere=True)
    newly_paid = charged > 0 and transaction.charged_cents == 0

    transaction.charged_cents = charged
    transaction.refunded_cents = refunded
    transaction.disputed_cents = disputed
    transaction.dispute_fee_cents = dispute_fees
    transaction.status = status
    transaction.last_error = problems[-1].message if problems else ""
    transaction.has_unresolved_problems = bool(problems)
    if charged and transaction.paid_at is None:
        transaction.paid_at = timezone.now()
    transaction.save(update_fields=list(RECALCULATED_FIELDS))
    if newly_paid and transaction.payment_request_id:
        # The request is paid: declined attempts on its other checkouts are history now. They were
        # never paid (one paid checkout per request), so charge failures are all they can hold.
        Transaction.objects.filter(
            payment_request_id=transaction.payment_request_id, charged_cents=0, has_unresolved_problems=True
        ).exclude(pk=transaction.pk).update(has_unresolved_problems=False, last_error="", updated_at=timezone.now())
    return transaction


def _request_paid_elsewhere(transaction: Transaction) -> bool:
    return (
        Transaction.objects.filter(payment_request_id=transaction.payment_request_id, charged_cents__gt=0)
        .exclude(pk=transaction.pk)
        .exists()
    )


def _copy_to(target: Transaction, source: Transaction) -> None:
    for field in RECALCULATED_FIELDS:
        setattr(target, field, getattr(source, field))
