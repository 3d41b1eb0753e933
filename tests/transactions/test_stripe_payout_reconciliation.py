"""A Stripe clinic's payouts, end to end: Stripe's payout events reach the webhook, the payout is
recorded, its balance transactions are read from the clinic's connected account and reconciled with
the ledger to the cent, each linked to the payment it concerns.

Payouts, balance transactions and Connect are not in localstripe: ``FakePayouts``
(tests/stripe_support.py) serves them from the project's builders; the payments themselves are real
PaymentIntents at localstripe. The ``stripe_world`` fixture fails a test whose requests carried PHI.
"""

import pytest

from payouts.models import Payout, PayoutLine
from payouts.services import payouts_reconcile_organization
from transactions.enums import GatewayEventStatus
from transactions.models import GatewayEvent

from ..stripe_support import (
    adjustment_line,
    charge_line,
    dispute_reinstatement_line,
    dispute_withdrawal_line,
    event_receive,
    payment_intent_event,
    refund_line,
    stripe_checkout_paid,
    stripe_event,
    stripe_fee_line,
)

pytestmark = pytest.mark.django_db


def _deliver(capture, *events):
    with capture(execute=True):
        for event in events:
            event_receive(event)


def test_a_paid_payout_of_charges_refunds_fees_disputes_and_an_adjustment_reconciles_to_the_cent(
    stripe_world, stripe_organization, django_capture_on_commit_callbacks
):
    account = stripe_organization.stripe_account_id
    kept = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=10000)
    refunded = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=4500)
    disputed = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=6000)
    lines = [
        charge_line(10000, payment_intent=kept.gateway_charge_id, application_fee_cents=150),
        charge_line(4500, payment_intent=refunded.gateway_charge_id),
        charge_line(6000, payment_intent=disputed.gateway_charge_id),
        refund_line(2250, payment_intent=refunded.gateway_charge_id),
        dispute_withdrawal_line(6000, payment_intent=disputed.gateway_charge_id),
        dispute_reinstatement_line(6000, payment_intent=disputed.gateway_charge_id, fee_returned_cents=1500),
        stripe_fee_line(199),
        adjustment_line(-17),
    ]
    created = stripe_world.payouts.payout_add(account, lines, status="in_transit")
    paid = stripe_world.payouts.payout_update(created["id"], status="paid")

    _deliver(
        django_capture_on_commit_callbacks,
        stripe_event("payout.created", created, account=account, created=created["created"]),
        stripe_event("payout.paid", paid, account=account, created=created["created"] + 60),
    )

    payout = Payout.objects.get(organization=stripe_organization)
    assert (payout.gateway, payout.gateway_payout_id, payout.status) == ("stripe", created["id"], "paid")
    assert payout.amount_cents == sum(line["net"] for line in lines)
    assert (payout.reconciliation, payout.lines_count, payout.difference_cents) == ("matched", len(lines), 0)
    stored = list(PayoutLine.objects.filter(payout=payout).order_by("created_at", "id"))
    assert sum(line.net_cents for line in stored) == payout.amount_cents
    assert sum(line.amount_cents - line.fee_cents for line in stored) == payout.amount_cents
    linked = {(line.kind, line.transaction_id) for line in stored}
    assert linked == {
        ("charge", kept.pk),
        ("charge", refunded.pk),
        ("charge", disputed.pk),
        ("refund", refunded.pk),
        ("dispute", disputed.pk),
        ("dispute_reversal", disputed.pk),
        ("fee", None),
        ("adjustment", None),
    }
    # Every payout request went to the clinic's connected account.
    reads = stripe_world.http.sent("GET", "/v1/balance_transactions")
    assert reads and {read.account for read in reads} == {account}
    assert not GatewayEvent.objects.filter(event_type__startswith="payout.").exclude(status=GatewayEventStatus.PROCESSED).exists()


def test_a_failed_payout_keeps_the_banks_reason(stripe_world, stripe_organization, django_capture_on_commit_callbacks):
    account = stripe_organization.stripe_account_id
    payment = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=7000)
    created = stripe_world.payouts.payout_add(account, [charge_line(7000, payment_intent=payment.gateway_charge_id)])
    failed = stripe_world.payouts.payout_update(
        created["id"], status="failed", failure_code="account_closed", failure_message="The bank account has been closed."
    )

    _deliver(django_capture_on_commit_callbacks, stripe_event("payout.failed", failed, account=account))

    payout = Payout.objects.get(organization=stripe_organization)
    assert (payout.status, payout.failure_code, payout.failure_message) == (
        "failed", "account_closed", "The bank account has been closed."
    )
    assert payout.reconciliation == "matched" and payout.lines.get().transaction_id == payment.pk


def test_a_payout_event_before_its_payments_events_links_them_once_they_arrive(
    stripe_world, stripe_organization, django_capture_on_commit_callbacks
):
    account = stripe_organization.stripe_account_id
    # Paid at Stripe, but nothing has reached LumaPay yet: no confirmation page, no event.
    payment = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=8800, record=False)
    assert payment.gateway_charge_id == ""
    intent_id = stripe_world.checkout.sessions[payment.gateway_checkout_id]["payment_intent"]
    created = stripe_world.payouts.payout_add(account, [charge_line(8800, payment_intent=intent_id)], status="paid")

    _deliver(django_capture_on_commit_callbacks, stripe_event("payout.paid", created, account=account))

    line = PayoutLine.objects.get(payout__gateway_payout_id=created["id"])
    assert line.transaction_id is None and line.payout.reconciliation == "matched"

    # The payment's own event arrives; the next pass of the beat links the line.
    _deliver(django_capture_on_commit_callbacks, payment_intent_event(stripe_world, payment))
    payment.refresh_from_db()
    assert payment.gateway_charge_id == intent_id
    with django_capture_on_commit_callbacks(execute=True):
        payouts_reconcile_organization(organization=stripe_organization)

    line.refresh_from_db()
    assert line.transaction_id == payment.pk


def test_a_payout_asked_for_by_hand_is_not_itemized_and_stripe_is_not_asked_for_its_lines(
    stripe_world, stripe_organization, django_capture_on_commit_callbacks
):
    # Stripe refuses BalanceTransaction.list(payout=) for a manual payout ("can only be filtered
    # on automatic transfers"): LumaPay does not ask, and the payout is not retried forever.
    account = stripe_organization.stripe_account_id
    payment = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=5000)
    instant = stripe_world.payouts.payout_add(
        account, [charge_line(5000, payment_intent=payment.gateway_charge_id)], status="paid", automatic=False, method="instant"
    )

    _deliver(django_capture_on_commit_callbacks, stripe_event("payout.paid", instant, account=account))
    with django_capture_on_commit_callbacks(execute=True):
        totals = payouts_reconcile_organization(organization=stripe_organization)

    payout = Payout.objects.get(organization=stripe_organization)
    assert (payout.method, payout.automatic, payout.reconciliation) == ("instant", False, "not_itemized")
    assert stripe_world.http.sent("GET", "/v1/balance_transactions") == []
    assert totals["reconcile_queued"] == 0
