"""Reconciliation: a payout's lines fetched from its gateway and stored in place of the old ones,
linked to the transactions they concern, with whether they add up to the payout to the cent."""

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.test import TestCase

from lumapay.enums import AuditAction
from lumapay.models import AuditEvent
from payouts import services
from payouts.models import Payout, PayoutLine
from transactions.gateways.base import GatewayError, GatewayUnavailable
from transactions.gateways.sandbox import SandboxGateway
from transactions.models import Dispute, Refund, SandboxCharge, SandboxPayout
from transactions.sandbox import processor as sandbox_processor
from transactions.services.ledger_facts import charge_fact_record

from ..transactions.payments import SUCCEEDS, checkout_transaction, paid_transaction
from ..transactions.payouts_support import at, paid_on, week_where
from .support import StandInGateway, advance_with_events, line, payout_fact

pytestmark = pytest.mark.django_db


@pytest.fixture
def stand_in(monkeypatch):
    """The payouts app asks this gateway for lines (the Sandbox makes no disputes or adjustments)."""
    gateway = StandInGateway()
    monkeypatch.setattr(services, "payouts_for", lambda organization: gateway)
    monkeypatch.setattr(services, "gateway_named", lambda name: gateway)
    return gateway


def _payout(organization, amount_cents: int) -> Payout:
    services.payout_fact_apply(gateway="sandbox", fact=payout_fact(organization, amount_cents=amount_cents, status="paid"))
    return Payout.objects.get(organization=organization, gateway_payout_id="po_test_1")


def test_charges_refunds_fees_disputes_and_an_adjustment_reconcile_to_the_cent(organization, stand_in):
    paid = paid_transaction(organization=organization, amount_cents=10000)
    disputed = paid_transaction(organization=organization, amount_cents=6000)
    refund = Refund.objects.create(
        organization=organization, transaction=paid, amount_cents=2500, reason="Overcharged",
        status="succeeded", gateway_refund_id="re_test_1",
    )  # fmt: skip
    Dispute.objects.create(
        organization=organization, transaction=disputed, gateway_dispute_id="dp_test_1", amount_cents=6000, status="lost"
    )
    stand_in.lines = [
        line("txn_1", "charge", 10000, 320, source_id="ch_other", charge_id=paid.gateway_charge_id),
        line("txn_2", "charge", 6000, 204, source_id=disputed.gateway_charge_id),
        line("txn_3", "refund", -2500, source_id=refund.gateway_refund_id, charge_id="ch_unknown"),
        line("txn_4", "dispute", -6000, 1500, source_id="dp_test_1"),
        line("txn_5", "dispute_reversal", 6000, -1500, source_id="dp_unknown", charge_id=disputed.gateway_charge_id),
        line("txn_6", "adjustment", -125, source_id="adj_1", charge_id=disputed.gateway_charge_id),
        line("txn_7", "fee", -200, source_id="fee_1"),
    ]
    total = 9680 + 5796 - 2500 - 7500 + 7500 - 125 - 200
    payout = _payout(organization, total)

    services.payout_reconcile(payout_id=payout.pk)

    payout.refresh_from_db()
    assert (payout.reconciliation, payout.lines_count, payout.lines_net_cents, payout.difference_cents) == (
        "matched", 7, total, 0
    )
    links = dict(PayoutLine.objects.filter(payout=payout).values_list("gateway_line_id", "transaction_id"))
    assert links == {
        "txn_1": paid.pk, "txn_2": disputed.pk, "txn_3": paid.pk, "txn_4": disputed.pk,
        "txn_5": disputed.pk, "txn_6": disputed.pk, "txn_7": None,
    }  # fmt: skip
    audit = AuditEvent.objects.get(organization=organization, action=AuditAction.PAYOUT_RECONCILED)
    assert audit.changes["reconciliation"] == ["waiting", "matched"]


def test_lines_that_do_not_add_up_flag_the_payout_with_the_difference(organization, stand_in):
    stand_in.lines = [line("txn_1", "charge", 10000, 320), line("txn_2", "refund", -1000)]
    payout = _payout(organization, 9000)

    services.payout_reconcile(payout_id=payout.pk)

    payout.refresh_from_db()
    assert (payout.reconciliation, payout.lines_net_cents, payout.difference_cents) == ("difference", 8680, 320)

    # Fetched again, the lines are replaced, not added to.
    stand_in.lines = [line("txn_1", "charge", 10000, 1000)]
    services.payout_reconcile(payout_id=payout.pk)
    payout.refresh_from_db()
    assert (payout.reconciliation, payout.lines_count, PayoutLine.objects.filter(payout=payout).count()) == ("matched", 1, 1)
    assert AuditEvent.objects.filter(organization=organization, action=AuditAction.PAYOUT_RECONCILED).count() == 2


def test_a_failed_fetch_is_recorded_and_retried(organization, stand_in):
    payout = _payout(organization, 9680)
    stand_in.error = GatewayError("The payout is not visible on this account.")

    services.payout_reconcile(payout_id=payout.pk)

    payout.refresh_from_db()
    assert payout.reconciliation == "waiting" and payout.reconciled_at is None
    assert payout.reconcile_error == "GatewayError: The payout is not visible on this account."

    stand_in.error = GatewayUnavailable("Stripe timed out.")
    with pytest.raises(GatewayUnavailable):  # the task retries it with backoff
        services.payout_reconcile(payout_id=payout.pk)
    payout.refresh_from_db()
    assert payout.reconcile_error == "GatewayUnavailable: Stripe timed out."

    # The beat's next pass queues it again; this time the gateway answers.
    stand_in.error = None
    stand_in.lines = [line("txn_1", "charge", 10000, 320)]
    stand_in.payouts_list = lambda **kwargs: iter(())
    stand_in.balance = lambda **kwargs: services.BalanceFact(organization_id=organization.pk, amounts=())
    stand_in.next_payouts = lambda **kwargs: []
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.payouts_reconcile_organization(organization=organization, now=payout.created_at + timedelta(days=1))
    payout.refresh_from_db()
    assert (payout.reconciliation, payout.reconcile_error) == ("matched", "")


def test_a_payout_whose_event_comes_before_its_charges_is_linked_on_a_later_pass(organization):
    monday = week_where(organization, fails=False)
    early = paid_on(organization, at(monday, 9), amount_cents=3000)
    # The patient pays, but the Sandbox's charge event has not reached LumaPay yet (nor has the
    # confirmation page asked): our transaction does not know its charge.
    late = checkout_transaction(organization=organization, amount_cents=5000)
    sandbox_processor.card_submit(
        session_id=late.gateway_checkout_id, card_number=SUCCEEDS, expiry_month="12", expiry_year="2030", cvc="123"
    )
    SandboxCharge.objects.filter(session_id=late.gateway_checkout_id).update(created_at=at(monday, 10))
    late.refresh_from_db()
    assert late.gateway_charge_id == ""

    advance_with_events(organization, at(monday + timedelta(days=2), 1))

    payout = Payout.objects.get(organization=organization)
    assert payout.reconciliation == "matched"  # the amounts add up: the gateway's word
    lines = dict(PayoutLine.objects.filter(payout=payout).values_list("amount_cents", "transaction_id"))
    assert lines == {3000: early.pk, 5000: None}

    # The charge's news arrives; the beat's next pass links the line.
    charge_fact_record(transaction=late, fact=SandboxGateway().checkout_outcome(transaction=late))
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.payouts_reconcile_organization(organization=organization, now=at(monday + timedelta(days=2), 2))
    lines = dict(PayoutLine.objects.filter(payout=payout).values_list("amount_cents", "transaction_id"))
    assert lines == {3000: early.pk, 5000: late.pk}
    assert late.payout_lines.get().payout == payout


def test_reconciling_again_changes_nothing(organization):
    monday = week_where(organization, fails=False)
    paid_on(organization, at(monday, 9), amount_cents=3000)
    advance_with_events(organization, at(monday + timedelta(days=2), 1))
    payout = Payout.objects.get(organization=organization)
    before = list(PayoutLine.objects.filter(payout=payout).values_list("gateway_line_id", "net_cents", "transaction_id"))

    services.payout_reconcile(payout_id=payout.pk)
    services.payout_reconcile(payout_id=payout.pk)

    after = list(PayoutLine.objects.filter(payout=payout).values_list("gateway_line_id", "net_cents", "transaction_id"))
    assert after == before and len(after) == 1
    assert AuditEvent.objects.filter(organization=organization, action=AuditAction.PAYOUT_RECONCILED).count() == 1


@pytest.mark.reliability
@pytest.mark.django_db(transaction=True)
def test_concurrent_reconciliations_store_each_line_once(organization):
    monday = week_where(organization, fails=False)
    for hour in (9, 10, 11):
        paid_on(organization, at(monday, hour), amount_cents=1000 * hour)
    from transactions.sandbox import payouts as sandbox_payouts

    sandbox_payouts.payouts_advance(organization.pk, now=at(monday + timedelta(days=2), 1), notify=False)
    sandbox = SandboxPayout.objects.get(organization=organization)
    services.payout_fact_apply(
        gateway="sandbox", fact=SandboxGateway().payout_get(organization=organization, gateway_payout_id=sandbox.id),
        reconcile=False,
    )  # fmt: skip
    payout = Payout.objects.get(organization=organization)
    barrier = threading.Barrier(4)
    errors = []

    def run():
        try:
            barrier.wait()
            services.payout_reconcile(payout_id=payout.pk)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    payout.refresh_from_db()
    assert (payout.lines_count, PayoutLine.objects.filter(payout=payout).count()) == (3, 3)
    assert payout.reconciliation == "matched"
