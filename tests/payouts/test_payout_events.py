"""The Sandbox's payout events become payouts (events → facts → Payout rows), each reconciled with
its lines to the cent and linked to the transactions it carries; a report older than the one stored
never overwrites it; the balance and the next payout are kept."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import TestCase
from django.utils import timezone

from lumapay.enums import AuditAction
from lumapay.models import AuditEvent
from payouts.models import GatewayBalance, Payout, PayoutLine
from payouts.services import balance_fact_apply, payout_fact_apply
from transactions.enums import GatewayEventStatus
from transactions.gateways.base import BalanceAmount, BalanceFact
from transactions.models import GatewayEvent, SandboxPayout
from transactions.sandbox import payouts as sandbox_payouts
from transactions.sandbox.processor import sandbox_fee_cents

from ..transactions.payments import paid_transaction
from ..transactions.payouts_support import at, paid_on, refunded_on, week_where
from .support import advance_with_events, payout_fact

pytestmark = pytest.mark.django_db


@pytest.fixture
def clinic(organization):
    organization.platform_fee_percent = Decimal("1.5")
    organization.save(update_fields=["platform_fee_percent"])
    return organization


def test_payout_events_become_a_payout_reconciled_to_the_cent_with_its_transactions(clinic, manager):
    monday = week_where(clinic, fails=False)
    first = paid_on(clinic, at(monday, 10), amount_cents=5000)
    second = paid_on(clinic, at(monday, 15), amount_cents=12345)
    refund = refunded_on(first, at(monday + timedelta(days=1), 10), 2000, actor=manager)
    sandbox_payout_date = monday + timedelta(days=2)

    advance_with_events(clinic, at(sandbox_payout_date, 1))
    payout = Payout.objects.get(organization=clinic)
    assert (payout.status, payout.amount_cents, payout.reconciliation) == ("pending", 14522, "matched")

    sandbox = SandboxPayout.objects.get(organization=clinic)
    advance_with_events(clinic, at(sandbox.arrival_date + timedelta(days=1), 1))

    payout.refresh_from_db()
    assert payout.gateway == "sandbox" and payout.gateway_payout_id == sandbox.id
    assert (payout.status, payout.method, payout.arrival_date) == ("paid", "standard", sandbox.arrival_date)
    assert payout.created_at == at(sandbox_payout_date)
    assert (payout.bank_name, payout.bank_last4) == sandbox_payouts.bank_account_for(clinic.pk)
    assert payout.trace_id == sandbox_payouts.trace_id_for(sandbox.id)
    types = set(GatewayEvent.objects.filter(gateway="sandbox").values_list("event_type", flat=True))
    assert {"payout.created", "payout.updated", "payout.paid", "balance.available"} <= types
    assert not GatewayEvent.objects.filter(event_type__startswith="payout.").exclude(status=GatewayEventStatus.PROCESSED).exists()

    # Its lines, to the cent, each linked to the transaction it concerns.
    assert (payout.lines_count, payout.lines_net_cents, payout.difference_cents) == (3, 14522, 0)
    assert payout.reconciled_at is not None and payout.reconcile_error == ""
    lines = sorted(PayoutLine.objects.filter(payout=payout).values_list("kind", "net_cents", "transaction_id", "source_id"))
    assert lines == sorted(
        [
            ("charge", 4750, first.pk, first.gateway_charge_id),
            ("charge", 11772, second.pk, second.gateway_charge_id),
            ("refund", -2000, first.pk, refund.gateway_refund_id),
        ]
    )
    assert AuditEvent.objects.filter(organization=clinic, action=AuditAction.PAYOUT_RECONCILED).count() == 1

    balance = GatewayBalance.objects.get(organization=clinic, currency="usd")
    assert (balance.available_cents, balance.pending_cents) == (0, 0)


def test_a_failed_payout_and_the_later_payout_that_carries_its_money_back(clinic):
    monday = week_where(clinic, fails=True)
    paid_on(clinic, at(monday, 10), amount_cents=8000)
    advance_with_events(clinic, at(monday + timedelta(days=2), 1))
    failing = SandboxPayout.objects.get(organization=clinic)

    advance_with_events(clinic, at(failing.arrival_date + timedelta(days=8)))

    failed = Payout.objects.get(gateway_payout_id=failing.id)
    code, message = sandbox_payouts.payout_failure(failing.id)
    assert (failed.status, failed.failure_code, failed.failure_message) == ("failed", code, message)
    assert failed.reconciliation == "matched"
    carrier = PayoutLine.objects.get(kind="payout_failure", source_id=failing.id).payout
    assert carrier.created_at > failed.created_at and carrier.reconciliation == "matched"
    assert carrier.lines.get(kind="payout_failure").net_cents == failed.amount_cents
    assert carrier.lines.get(kind="payout_failure").transaction is None


def test_an_older_report_never_overwrites_a_newer_one(clinic):
    assert payout_fact_apply(gateway="sandbox", fact=payout_fact(clinic, status="in_transit", trace_id="123", as_of=200))
    # Delivered late: the payout was pending before it left.
    assert not payout_fact_apply(gateway="sandbox", fact=payout_fact(clinic, status="pending", as_of=150))
    payout = Payout.objects.get(gateway_payout_id="po_test_1")
    assert (payout.status, payout.trace_id, payout.as_of, payout.organization_id) == ("in_transit", "123", 200, clinic.pk)

    # The same second: the later status wins, an earlier one does not.
    assert not payout_fact_apply(gateway="sandbox", fact=payout_fact(clinic, status="pending", as_of=200))
    assert payout_fact_apply(gateway="sandbox", fact=payout_fact(clinic, status="paid", trace_id="123", as_of=200))
    # Newer news: a paid payout returned by the bank.
    assert payout_fact_apply(
        gateway="sandbox",
        fact=payout_fact(clinic, status="failed", trace_id="123", failure_code="account_closed", as_of=300),
    )
    assert not payout_fact_apply(gateway="sandbox", fact=payout_fact(clinic, status="paid", trace_id="123", as_of=250))
    payout.refresh_from_db()
    assert (payout.status, payout.failure_code, payout.as_of) == ("failed", "account_closed", 300)
    assert Payout.objects.filter(gateway_payout_id="po_test_1").count() == 1


def test_a_payout_cannot_move_to_another_clinic(clinic, other_organization):
    payout_fact_apply(gateway="sandbox", fact=payout_fact(clinic))
    with pytest.raises(ValueError):
        payout_fact_apply(gateway="sandbox", fact=payout_fact(other_organization, as_of=500))
    assert Payout.objects.get(gateway_payout_id="po_test_1").organization_id == clinic.pk


def test_the_balance_is_kept_per_currency_newest_first_with_the_next_payout(clinic):
    paid_transaction(organization=clinic, amount_cents=5000)  # today: pending for two business days
    net = 5000 - sandbox_fee_cents(5000) - 75
    with TestCase.captureOnCommitCallbacks(execute=True):
        balance_fact_apply(
            gateway="sandbox",
            fact=BalanceFact(organization_id=clinic.pk, amounts=(BalanceAmount("usd", 1000, 2000),), as_of=100),
        )

    # After commit, the Sandbox was asked for the balance and the next payout as they are now.
    balance = GatewayBalance.objects.get(organization=clinic, currency="usd")
    assert (balance.available_cents, balance.pending_cents) == (0, net)
    assert balance.as_of > 100
    payout_day = sandbox_payouts.business_days_after(timezone.now().date(), 2)
    # The day the payout is sent, as Stripe's schedule gives it (the bank has it a day or two later).
    assert balance.next_payout_date == payout_day
    assert balance.next_payout_estimate_cents == net

    # An older report changes nothing; a newer one is kept.
    balance_fact_apply(
        gateway="sandbox", fact=BalanceFact(organization_id=clinic.pk, amounts=(BalanceAmount("usd", 1, 2),), as_of=50)
    )
    balance.refresh_from_db()
    assert (balance.available_cents, balance.pending_cents) == (0, net)
    balance_fact_apply(
        gateway="sandbox",
        fact=BalanceFact(organization_id=clinic.pk, amounts=(BalanceAmount("usd", 1, 2),), as_of=balance.as_of + 1),
    )
    balance.refresh_from_db()
    assert (balance.available_cents, balance.pending_cents) == (1, 2)
    assert GatewayBalance.objects.filter(organization=clinic).count() == 1


def test_a_currency_the_next_balance_report_leaves_out_is_emptied(organization):
    balance_fact_apply(gateway="sandbox", fact=BalanceFact(
        organization_id=organization.pk, as_of=100,
        amounts=(BalanceAmount("usd", 5000, 100), BalanceAmount("cad", 700, 0)),
    ))  # fmt: skip
    balance_fact_apply(gateway="sandbox", fact=BalanceFact(
        organization_id=organization.pk, as_of=200, amounts=(BalanceAmount("usd", 4000, 0),)
    ))  # fmt: skip

    balances = dict(GatewayBalance.objects.filter(organization=organization).values_list("currency", "available_cents"))
    assert balances == {"usd": 4000, "cad": 0}
