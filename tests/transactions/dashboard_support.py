"""Transactions for the dashboard and export tests, with their money written through the ledger.

``ledger_transaction`` creates the transaction, then appends its ledger events with
``transaction_event_append`` (charge requested, then succeeded or failed, then refunds), so status,
charged, refunded and last error are what the ledger derives; then it moves the row to the moment
the test needs (``created_at`` is stamped "now" on insert).
"""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from lumapay.models import ActorType
from transactions.enums import PaymentRequestKind, TransactionEventKind as Kind
from transactions.models import Transaction
from transactions.services.ledger import transaction_event_append

DECLINE_MESSAGE = "Your card was declined."
REFUND_FAILURE_MESSAGE = "The card issuer declined the refund."


def local(zone: str, *args) -> datetime.datetime:
    """An aware datetime from wall-clock parts in ``zone``: local("America/Los_Angeles", 2026, 3, 1, 0, 30)."""
    return datetime.datetime(*args, tzinfo=ZoneInfo(zone))


def ledger_transaction(
    *,
    organization,
    location,
    patient,
    created_at: datetime.datetime,
    amount_cents: int = 5000,
    kind: str = PaymentRequestKind.COPAY,
    billing_item: str = "Office visit copay",
    outcome: str = "paid",  # "paid" | "pending" | "declined"
    declined_first: bool = False,  # a declined card before the payment
    paid_at: datetime.datetime | None = None,
    refunded_cents: int = 0,
    refund_fails: bool = False,
    vendor: str | None = None,
    card_brand: str = "visa",
    card_last4: str = "4242",
) -> Transaction:
    transaction = Transaction.objects.create(
        organization=organization,
        patient=patient,
        location=location,
        kind=kind,
        billing_item=billing_item,
        amount_cents=amount_cents,
        vendor=vendor or organization.payment_gateway,
        card_brand="" if outcome == "pending" else card_brand,
        card_last4="" if outcome == "pending" else card_last4,
    )
    transaction_event_append(
        transaction=transaction,
        kind=Kind.CHARGE_REQUESTED,
        amount_cents=amount_cents,
        idempotency_key="checkout",
        actor_type=ActorType.PATIENT,
    )
    if outcome == "declined" or declined_first:
        transaction_event_append(
            transaction=transaction, kind=Kind.CHARGE_FAILED, amount_cents=0, idempotency_key="charge:0",
            message=DECLINE_MESSAGE,
        )
    if outcome == "paid":
        transaction_event_append(
            transaction=transaction, kind=Kind.CHARGE_SUCCEEDED, amount_cents=amount_cents, idempotency_key="charge:1"
        )
        if refunded_cents:
            transaction_event_append(
                transaction=transaction, kind=Kind.REFUND_SUCCEEDED, amount_cents=refunded_cents,
                idempotency_key="refund:1",
            )
        if refund_fails:
            transaction_event_append(
                transaction=transaction, kind=Kind.REFUND_FAILED, amount_cents=amount_cents,
                idempotency_key="refund:2", message=REFUND_FAILURE_MESSAGE,
            )
        paid_at = paid_at or created_at + datetime.timedelta(minutes=2)
    Transaction.objects.filter(pk=transaction.pk).update(created_at=created_at, paid_at=paid_at)
    transaction.refresh_from_db()
    return transaction
