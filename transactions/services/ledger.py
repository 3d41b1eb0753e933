"""The ledger: append a fact about a transaction's money, then recalculate its cached totals.

Every money event goes through ``transaction_event_append``. The same fact reported twice (the
confirmation page and the webhook; a webhook delivered twice) carries the same idempotency key and
is written once: the unique constraint decides, not a check before the insert.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction as db_transaction
from django.db.models import Sum
from django.utils import timezone

from lumapay.models import ActorType

from ..enums import TransactionEventKind as Kind, TransactionStatus
from ..locks import transaction_lock
from ..models import Transaction, TransactionEvent


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
        _copy_to(transaction, locked)
        return event, True


DISPUTE_KINDS = (Kind.DISPUTE_OPENED, Kind.DISPUTE_WON, Kind.DISPUTE_LOST)


def transaction_recalculate(*, transaction: Transaction) -> Transaction:
    """Derive status and totals from the events. The caller holds the row lock.

    Disputes: the card network takes the disputed amount back when a dispute opens and returns
    it only if the clinic wins. So ``disputed_cents`` is what opened disputes took less what won
    ones gave back: it stays taken after a loss. Charged and refunded are unchanged by disputes
    (the patient paid, and the clinic refunded what it refunded); the refundable remainder
    leaves the disputed amount out. Status: "disputed" while any dispute is open, then "dispute
    lost" if one was lost (and not won on appeal), otherwise what refunds make it.
    """
    sums = dict(
        TransactionEvent.objects.filter(
            transaction=transaction, kind__in=[Kind.CHARGE_SUCCEEDED, Kind.REFUND_SUCCEEDED, *DISPUTE_KINDS]
        )
        .values_list("kind")
        .annotate(total=Sum("amount_cents"))
        .values_list("kind", "total")
    )
    charged = sums.get(Kind.CHARGE_SUCCEEDED, 0) or 0
    refunded = sums.get(Kind.REFUND_SUCCEEDED, 0) or 0
    # A refund can fail after it succeeded (the card was closed): the money came back to the
    # clinic, so it no longer counts, in whatever order the two reports arrived.
    failed_after_success = (
        TransactionEvent.objects.filter(transaction=transaction, kind=Kind.REFUND_SUCCEEDED, refund__isnull=False)
        .filter(refund_id__in=TransactionEvent.objects.filter(transaction=transaction, kind=Kind.REFUND_FAILED).values("refund_id"))
        .aggregate(total=Sum("amount_cents"))["total"]
    )
    refunded -= failed_after_success or 0
    disputed = max((sums.get(Kind.DISPUTE_OPENED, 0) or 0) - (sums.get(Kind.DISPUTE_WON, 0) or 0), 0)
    disputes: dict[str, set[str]] = {kind: set() for kind in DISPUTE_KINDS}
    for kind, reference in TransactionEvent.objects.filter(transaction=transaction, kind__in=DISPUTE_KINDS).values_list(
        "kind", "gateway_reference"
    ):
        disputes[kind].add(reference)
    open_disputes = disputes[Kind.DISPUTE_OPENED] - disputes[Kind.DISPUTE_WON] - disputes[Kind.DISPUTE_LOST]
    lost_disputes = disputes[Kind.DISPUTE_LOST] - disputes[Kind.DISPUTE_WON]
    last_charge_event = (
        TransactionEvent.objects.filter(
            transaction=transaction, kind__in=[Kind.CHARGE_REQUESTED, Kind.CHARGE_SUCCEEDED, Kind.CHARGE_FAILED]
        )
        .order_by("-created_at", "-id")
        .first()
    )
    last_failure = (
        TransactionEvent.objects.filter(transaction=transaction, kind__in=[Kind.CHARGE_FAILED, Kind.REFUND_FAILED])
        .order_by("-created_at", "-id")
        .values_list("message", flat=True)
        .first()
    )

    authorization = set(
        TransactionEvent.objects.filter(
            transaction=transaction, kind__in=[Kind.CHARGE_AUTHORIZED, Kind.AUTHORIZATION_RELEASED]
        ).values_list("kind", flat=True)
    )

    if charged == 0:
        failed = last_charge_event is not None and last_charge_event.kind == Kind.CHARGE_FAILED
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

    transaction.charged_cents = charged
    transaction.refunded_cents = refunded
    transaction.disputed_cents = disputed
    transaction.status = status
    transaction.last_error = last_failure or ""
    if charged and transaction.paid_at is None:
        transaction.paid_at = timezone.now()
    transaction.save(
        update_fields=[
            "charged_cents", "refunded_cents", "disputed_cents", "status", "last_error", "paid_at", "updated_at"
        ]
    )
    return transaction


def _copy_to(target: Transaction, source: Transaction) -> None:
    for field in ("charged_cents", "refunded_cents", "disputed_cents", "status", "last_error", "paid_at", "updated_at"):
        setattr(target, field, getattr(source, field))
