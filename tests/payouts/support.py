"""Payouts for the payouts app's tests, made by the real Sandbox processor (tests/transactions/
payouts_support.py builds the money) and delivered through its events, or, where the Sandbox has no
such thing (disputes, adjustments, a gateway that fails), a stand-in gateway that says so."""

from __future__ import annotations

from datetime import date, datetime, timezone

from django.test import TestCase

from transactions.gateways.base import GatewayError, PayoutFact, PayoutLineFact
from transactions.sandbox import payouts as sandbox_payouts


def advance_with_events(organization, now: datetime) -> None:
    """Run the Sandbox's payout schedule and let its events reach the webhook and be processed (and
    every task they queue run: the tests' Celery is eager)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        sandbox_payouts.payouts_advance(organization.pk, now=now)


def payout_fact(organization, **fields) -> PayoutFact:
    values = {
        "organization_id": organization.pk,
        "gateway_payout_id": "po_test_1",
        "amount_cents": 10000,
        "currency": "usd",
        "status": "pending",
        "method": "standard",
        "created": datetime(2026, 3, 4, tzinfo=timezone.utc),
        "arrival_date": date(2026, 3, 5),
        "as_of": 100,
    }
    values.update(fields)
    return PayoutFact(**values)


def line(gateway_line_id: str, kind: str, amount: int, fee: int = 0, **fields) -> PayoutLineFact:
    return PayoutLineFact(
        gateway_line_id=gateway_line_id,
        kind=kind,
        amount_cents=amount,
        fee_cents=fee,
        net_cents=amount - fee,
        currency="usd",
        created=datetime(2026, 3, 2, 10, tzinfo=timezone.utc),
        **fields,
    )


class StandInGateway:
    """A gateway whose payout lines the test sets: the Sandbox makes no disputes or adjustments,
    and cannot be made unreachable; Stripe's payout methods are another branch's."""

    name = "sandbox"

    def __init__(self, lines=(), error: Exception | None = None):
        self.lines = list(lines)
        self.error = error
        self.calls = 0

    def payout_lines(self, *, organization, gateway_payout_id):
        self.calls += 1
        if self.error is not None:
            raise self.error
        return iter(self.lines)


__all__ = ["GatewayError", "StandInGateway", "advance_with_events", "line", "payout_fact"]
