"""Money for the Sandbox to pay out, made the way patients and staff make it (through the real
Sandbox processor), then moved to a chosen moment: the payout schedule runs on dates.

``at`` helps name moments in UTC; ``week_where`` finds a week whose Wednesday payout the Sandbox
returns (or not), since which payout fails is drawn from its id (the organization and the day).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from django.test import TestCase

from transactions.models import Refund, SandboxCharge, SandboxRefund, Transaction
from transactions.sandbox import payouts as sandbox_payouts
from transactions.services.refunds import refund_create

from .payments import paid_transaction


def at(day: date, hour: int = 0, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=timezone.utc)


def paid_on(organization, moment: datetime, amount_cents: int = 5000, **kwargs) -> Transaction:
    """A payment the patient made at ``moment`` (its Sandbox charge moved there)."""
    transaction = paid_transaction(organization=organization, amount_cents=amount_cents, **kwargs)
    assert SandboxCharge.objects.filter(id=transaction.gateway_charge_id).update(created_at=moment) == 1
    return transaction


def refunded_on(transaction: Transaction, moment: datetime, amount_cents: int, *, actor) -> Refund:
    """A refund staff made at ``moment`` (its Sandbox refund moved there)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        refund = refund_create(
            organization=transaction.organization,
            actor=actor,
            transaction=transaction,
            amount_cents=amount_cents,
            reason="Insurance paid the visit in full",
        )
    assert SandboxRefund.objects.filter(id=refund.gateway_refund_id).update(created_at=moment) == 1
    return refund


def week_where(organization, *, fails: bool, start: date = date(2026, 3, 2)) -> date:
    """A Monday (from ``start`` on) whose Wednesday payout the bank returns (``fails``) or pays."""
    monday = start - timedelta(days=start.weekday())
    for _ in range(500):
        payout_id = sandbox_payouts.payout_id_for(organization.pk, "usd", monday + timedelta(days=2))
        if (sandbox_payouts.payout_failure(payout_id) is not None) == fails:
            return monday
        monday += timedelta(days=7)
    raise AssertionError("no such week in ten years")
