"""The Sandbox processor pays its clinics out (transactions/sandbox/payouts.py): each business day,
what became available (charges less the Sandbox's fee and the platform's fee, refunds) goes to the
bank; the payout is pending, then in transit, then paid, or, one in twenty, returned by the bank,
its money paid out again later. Its own books say exactly what each payout carries."""

import threading
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections

from transactions.gateways.sandbox import SandboxGateway
from transactions.models import SandboxBalanceTransaction, SandboxCharge, SandboxCheckoutSession, SandboxPayout, SandboxRefund
from transactions.sandbox import payouts as sandbox_payouts
from transactions.sandbox.processor import sandbox_fee_cents

from .payouts_support import at, paid_on, refunded_on, week_where

pytestmark = pytest.mark.django_db


@pytest.fixture
def clinic(organization):
    organization.platform_fee_percent = Decimal("1.5")
    organization.platform_fee_fixed_cents = 0
    organization.save(update_fields=["platform_fee_percent", "platform_fee_fixed_cents"])
    return organization


def _payouts(organization):
    return list(SandboxPayout.objects.filter(organization=organization).order_by("payout_date"))


def test_a_days_payout_is_its_charges_less_both_fees_and_its_refunds_to_the_cent(clinic, manager):
    monday = week_where(clinic, fails=False)
    first = paid_on(clinic, at(monday, 10), amount_cents=5000)
    second = paid_on(clinic, at(monday, 15, 30), amount_cents=12345)
    refunded_on(first, at(monday + timedelta(days=1), 10), 2000, actor=manager)

    sandbox_payouts.payouts_advance(clinic.pk, now=at(monday + timedelta(days=2), 1))

    [payout] = _payouts(clinic)
    # Available two business days after the charge: Wednesday's payout, made at its midnight.
    assert payout.payout_date == monday + timedelta(days=2)
    assert payout.created_at == at(monday + timedelta(days=2))
    # 5000 - 175 (2.9% + 30¢) - 75 (1.5%) + 12345 - 388 - 185 - 2000 refunded: worked out by hand.
    assert payout.amount_cents == 14522
    assert (payout.status, payout.method, payout.trace_id) == ("pending", "standard", "")
    assert payout.bank_name and len(payout.bank_last4) == 4

    lines = list(SandboxGateway().payout_lines(organization=clinic, gateway_payout_id=payout.id))
    assert sorted((line.kind, line.amount_cents, line.fee_cents, line.net_cents) for line in lines) == [
        ("charge", 5000, 175 + 75, 4750),
        ("charge", 12345, 388 + 185, 11772),
        ("refund", -2000, 0, -2000),
    ]
    assert sum(line.net_cents for line in lines) == payout.amount_cents
    # Each line names the charge it concerns, by the id LumaPay knows it by.
    assert sorted((line.kind, line.charge_id) for line in lines) == sorted(
        [("charge", first.gateway_charge_id), ("charge", second.gateway_charge_id), ("refund", first.gateway_charge_id)]
    )


def test_a_refund_after_the_payout_comes_out_of_a_later_one(clinic, manager):
    monday = week_where(clinic, fails=False)
    transaction = paid_on(clinic, at(monday, 10), amount_cents=10000)
    sandbox_payouts.payouts_advance(clinic.pk, now=at(monday + timedelta(days=2), 1))
    refunded_on(transaction, at(monday + timedelta(days=2), 9), 3000, actor=manager)
    paid_on(clinic, at(monday + timedelta(days=2), 11), amount_cents=4000)

    sandbox_payouts.payouts_advance(clinic.pk, now=at(monday + timedelta(days=4), 1))

    first, second = _payouts(clinic)
    assert first.amount_cents == 10000 - sandbox_fee_cents(10000) - 150
    # Friday: Wednesday's charge (available Friday) less Wednesday's refund.
    assert second.payout_date == monday + timedelta(days=4)
    assert second.amount_cents == 4000 - sandbox_fee_cents(4000) - 60 - 3000


def test_payouts_are_made_on_business_days_only(clinic):
    monday = week_where(clinic, fails=False)
    paid_on(clinic, at(monday + timedelta(days=3), 10), amount_cents=5000)  # Thursday
    paid_on(clinic, at(monday + timedelta(days=5), 10), amount_cents=7000)  # Saturday

    sandbox_payouts.payouts_advance(clinic.pk, now=at(monday + timedelta(days=9), 12))

    payouts = _payouts(clinic)
    # Thursday's money is available on Monday, Saturday's on Tuesday.
    assert [p.payout_date for p in payouts[:2]] == [monday + timedelta(days=7), monday + timedelta(days=8)]
    assert all(p.payout_date.weekday() < 5 for p in payouts)


def test_a_payout_is_pending_then_in_transit_then_paid_on_its_schedule(clinic):
    monday = week_where(clinic, fails=False)
    wednesday = monday + timedelta(days=2)
    paid_on(clinic, at(monday, 10))

    sandbox_payouts.payouts_advance(clinic.pk, now=at(wednesday, 9))
    [payout] = _payouts(clinic)
    assert payout.status == "pending"
    # It arrives one or two business days after the day it was made for.
    assert payout.arrival_date in (wednesday + timedelta(days=1), wednesday + timedelta(days=2))

    sandbox_payouts.payouts_advance(clinic.pk, now=at(wednesday + timedelta(days=1), 9))
    payout.refresh_from_db()
    assert payout.status == "in_transit"
    assert payout.in_transit_at == at(wednesday + timedelta(days=1))
    assert len(payout.trace_id) == 15 and payout.trace_id.isdigit()

    sandbox_payouts.payouts_advance(clinic.pk, now=at(payout.arrival_date, 23, 59))
    payout.refresh_from_db()
    assert payout.status == "in_transit"

    sandbox_payouts.payouts_advance(clinic.pk, now=at(payout.arrival_date + timedelta(days=1), 0, 1))
    payout.refresh_from_db()
    assert (payout.status, payout.failure_code, payout.settled_at) == (
        "paid", "", at(payout.arrival_date + timedelta(days=1))
    )


def test_one_payout_in_twenty_is_returned_by_the_bank_with_its_reason():
    ids = [sandbox_payouts.payout_id_for(7, "usd", date(2020, 1, 1) + timedelta(days=n)) for n in range(4000)]
    failures = [sandbox_payouts.payout_failure(payout_id) for payout_id in ids]
    returned = [failure for failure in failures if failure is not None]
    assert 150 <= len(returned) <= 250  # 200 expected
    assert {code for code, _message in returned} == {code for code, _message in sandbox_payouts.BANK_FAILURES}
    # Drawn from the id: the same payout always fails the same way.
    assert [sandbox_payouts.payout_failure(payout_id) for payout_id in ids] == failures


def test_a_returned_payouts_money_goes_out_again_in_a_later_payout(clinic):
    monday = week_where(clinic, fails=True)
    wednesday = monday + timedelta(days=2)
    paid_on(clinic, at(monday, 10), amount_cents=8000)
    sandbox_payouts.payouts_advance(clinic.pk, now=at(wednesday, 9))
    [failing] = _payouts(clinic)

    result = sandbox_payouts.payouts_advance(clinic.pk, now=at(failing.arrival_date + timedelta(days=8)))

    failing.refresh_from_db()
    code, message = sandbox_payouts.payout_failure(failing.id)
    assert (failing.status, failing.failure_code, failing.failure_message) == ("failed", code, message)
    assert code in {"account_closed", "no_account", "account_frozen", "could_not_process", "bank_account_restricted"}
    assert result.failed >= 1
    # Its lines stay its own (what it carried), and the money came back as a line of a later one.
    assert [line.kind for line in SandboxGateway().payout_lines(organization=clinic, gateway_payout_id=failing.id)] == ["charge"]
    returned = SandboxBalanceTransaction.objects.get(type="payout_failure", source_id=failing.id)
    assert (returned.amount_cents, returned.net_cents) == (failing.amount_cents, failing.amount_cents)
    assert returned.payout is not None and returned.payout.payout_date > failing.arrival_date
    assert returned.payout.amount_cents == failing.amount_cents


def test_charges_and_refunds_written_without_balance_transactions_are_booked_at_payout_time(clinic):
    """As the demo seed writes them: sessions, charges and refunds in bulk, nothing else."""
    monday = week_where(clinic, fails=False)
    session = SandboxCheckoutSession.objects.create(
        id="cs_sbx_bulk", organization=clinic, amount_cents=20000, client_reference="1", merchant_name="Riverside",
        application_fee_cents=300, success_url="http://testserver/ok", cancel_url="http://testserver/no",
        expires_at=at(monday, 11), status="complete",
    )  # fmt: skip
    charge = SandboxCharge.objects.create(
        id="ch_sbx_bulk", session=session, amount_cents=20000, is_paid=True, card_brand="visa", card_last4="4242",
        amount_refunded_cents=5000,
    )  # fmt: skip
    SandboxRefund.objects.create(id="re_sbx_bulk", charge=charge, amount_cents=5000, idempotency_key="k1", status="succeeded")
    SandboxRefund.objects.create(id="re_sbx_failed", charge=charge, amount_cents=5000, idempotency_key="k2", status="failed")
    SandboxCharge.objects.filter(pk=charge.pk).update(created_at=at(monday, 10))
    SandboxRefund.objects.filter(charge=charge).update(created_at=at(monday, 12))

    sandbox_payouts.payouts_advance(clinic.pk, now=at(monday + timedelta(days=2), 1))

    [payout] = _payouts(clinic)
    assert payout.amount_cents == 20000 - sandbox_fee_cents(20000) - 300 - 5000
    booked = SandboxBalanceTransaction.objects.filter(organization=clinic)
    assert sorted(booked.values_list("type", "source_id")) == [("charge", "ch_sbx_bulk"), ("refund", "re_sbx_bulk")]
    assert sandbox_payouts.books_update(clinic.pk) == 0  # booked once


def test_the_balance_and_the_next_payout(clinic):
    monday = week_where(clinic, fails=False)
    paid_on(clinic, at(monday, 10), amount_cents=5000)
    paid_on(clinic, at(monday + timedelta(days=2), 10), amount_cents=3000)
    now = at(monday + timedelta(days=2), 12)
    sandbox_payouts.payouts_advance(clinic.pk, now=now)

    net = 3000 - sandbox_fee_cents(3000) - 45
    assert sandbox_payouts.balance_amounts(clinic.pk, now=now) == {"usd": {"available": 0, "pending": net}}
    [upcoming] = sandbox_payouts.next_payouts(clinic.pk, now=now)
    friday = monday + timedelta(days=4)
    assert upcoming["payout_date"] == friday.isoformat() and upcoming["amount"] == net
    expected = sandbox_payouts.arrival_date_for(sandbox_payouts.payout_id_for(clinic.pk, "usd", friday), friday)
    assert upcoming["arrival_date"] == expected.isoformat()


def test_running_the_schedule_again_changes_nothing(clinic):
    monday = week_where(clinic, fails=False)
    paid_on(clinic, at(monday, 10))
    now = at(monday + timedelta(days=9), 12)
    first = sandbox_payouts.payouts_advance(clinic.pk, now=now)
    before = [(p.id, p.status, p.amount_cents) for p in _payouts(clinic)]

    again = sandbox_payouts.payouts_advance(clinic.pk, now=now)

    assert first.created == 1 and (again.booked, again.created, again.in_transit, again.paid, again.failed) == (0, 0, 0, 0, 0)
    assert [(p.id, p.status, p.amount_cents) for p in _payouts(clinic)] == before


def test_another_run_holding_the_clinics_lock_makes_this_one_skip(clinic):
    monday = week_where(clinic, fails=False)
    paid_on(clinic, at(monday, 10))
    import psycopg

    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [sandbox_payouts._LOCK_CLASS, clinic.pk])
        skipped = sandbox_payouts.payouts_advance(clinic.pk, now=at(monday + timedelta(days=2), 1))
        assert skipped.skipped and _payouts(clinic) == []
        other.execute("SELECT pg_advisory_unlock(%s, %s)", [sandbox_payouts._LOCK_CLASS, clinic.pk])
    assert sandbox_payouts.payouts_advance(clinic.pk, now=at(monday + timedelta(days=2), 1)).created == 1


@pytest.mark.reliability
@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_make_each_payout_once(clinic):
    monday = week_where(clinic, fails=False)
    for day in range(5):
        paid_on(clinic, at(monday + timedelta(days=day), 10), amount_cents=5000 + day)
    now = at(monday + timedelta(days=14), 12)
    barrier = threading.Barrier(4)
    errors = []

    def run():
        try:
            barrier.wait()
            sandbox_payouts.payouts_advance(clinic.pk, now=now, notify=False)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sandbox_payouts.payouts_advance(clinic.pk, now=now, notify=False)  # whoever was skipped: done now

    assert errors == []
    charges = SandboxBalanceTransaction.objects.filter(organization=clinic, type="charge")
    assert charges.count() == 5 and not charges.filter(payout__isnull=True).exists()
    paid_out = sum(p.amount_cents for p in _payouts(clinic) if p.status != "failed")
    in_balance = sum(SandboxBalanceTransaction.objects.filter(organization=clinic, payout__isnull=True).values_list("net_cents", flat=True))
    # Nothing paid out twice, nothing lost: what reached the bank and what is still in the balance
    # is what the charges brought in (a returned payout's money is in a later payout or the balance).
    assert paid_out + in_balance == sum(charges.values_list("net_cents", flat=True))
