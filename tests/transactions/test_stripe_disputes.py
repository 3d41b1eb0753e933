"""Disputes from Stripe's charge.dispute.* events (localstripe has none: the disputes are built by
tests/stripe_builders.py, about a real localstripe payment). Only a dispute's balance transactions
move money: a chargeback withdraws the disputed amount with a dispute fee when it opens, and the
amount is reinstated only if the clinic wins. An inquiry withdraws nothing."""

import datetime

import pytest

from lumapay.errors import ApplicationError
from transactions.enums import DisputeStatus, TransactionEventKind as Kind, TransactionStatus
from transactions.models import Dispute, TransactionEvent
from transactions.selectors.ledger import transaction_net_cents, transaction_refundable_cents, transaction_timeline
from transactions.services.refunds import refund_create

from ..stripe_support import (
    DISPUTE_FEE_CENTS,
    dispute_funds_reinstated,
    dispute_funds_withdrawn,
    dispute_object,
    event_receive,
    stripe_checkout_paid,
    stripe_event,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid(stripe_world, stripe_organization):
    return stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=10000)


@pytest.fixture
def dispute_events(stripe_world, stripe_organization, paid):
    """dispute_events(amount, *statuses) → one charge.dispute.* event per status, a second apart,
    each carrying the dispute's balance transactions so far, as Stripe's do: the withdrawal (with
    the dispute fee) from the first chargeback status on, and the reinstatement once won."""
    intent = stripe_world.server.call("GET", f"/v1/payment_intents/{paid.gateway_charge_id}")
    charge_id = intent["latest_charge"]["id"]
    dispute_id = f"dp_test_{paid.pk}"

    def make(amount_cents, *statuses, start=None, fee_returned_cents=0):
        start = start or 1_800_000_000
        withdrawal = dispute_funds_withdrawn(dispute_id=dispute_id, charge=charge_id, amount_cents=amount_cents)
        reinstatement = dispute_funds_reinstated(
            dispute_id=dispute_id, charge=charge_id, amount_cents=amount_cents, fee_returned_cents=fee_returned_cents
        )
        events, funds = [], []
        for index, status in enumerate(statuses):
            event_type = "charge.dispute.created" if index == 0 else (
                "charge.dispute.closed" if status in ("won", "lost", "warning_closed") else "charge.dispute.updated"
            )
            if not status.startswith("warning_") and withdrawal not in funds:
                funds.append(withdrawal)
            if status == "won":
                funds.append(reinstatement)
            obj = dispute_object(
                charge=charge_id,
                payment_intent=paid.gateway_charge_id,
                amount_cents=amount_cents,
                status=status,
                dispute_id=dispute_id,
                balance_transactions=funds,
            )
            events.append(stripe_event(event_type, obj, account=stripe_organization.stripe_account_id, created=start + index))
        return events

    return make


def _ledger(transaction):
    return list(
        TransactionEvent.objects.filter(transaction=transaction)
        .exclude(kind=Kind.CHARGE_REQUESTED)
        .order_by("id")
        .values_list("kind", "amount_cents", "idempotency_key")
    )


def _receive_all(events, capture):
    with capture(execute=True):
        for event in events:
            event_receive(event)


def test_an_opened_dispute_withdraws_the_amount_and_the_dispute_fee(paid, dispute_events, django_capture_on_commit_callbacks):
    (created,) = dispute_events(10000, "needs_response")
    (withdrawal,) = created["data"]["object"]["balance_transactions"]

    _receive_all([created], django_capture_on_commit_callbacks)

    paid.refresh_from_db()
    dispute = Dispute.objects.get()
    due_by = datetime.datetime.fromtimestamp(created["data"]["object"]["evidence_details"]["due_by"], tz=datetime.timezone.utc)
    assert (dispute.transaction, dispute.amount_cents, dispute.reason, dispute.status, dispute.evidence_due_by) == (
        paid, 10000, "fraudulent", DisputeStatus.NEEDS_RESPONSE, due_by
    )
    assert (paid.status, paid.charged_cents, paid.refunded_cents, paid.disputed_cents, paid.dispute_fee_cents) == (
        TransactionStatus.DISPUTED, 10000, 0, 10000, DISPUTE_FEE_CENTS
    )
    assert transaction_refundable_cents(transaction=paid) == 0
    assert transaction_net_cents(transaction=paid) == 0 - paid.fee_cents - DISPUTE_FEE_CENTS
    assert _ledger(paid)[1:] == [
        (Kind.DISPUTE_OPENED, 10000, f"dispute:{dispute.gateway_dispute_id}:opened"),
        (Kind.DISPUTE_FUNDS_WITHDRAWN, 10000, f"dispute:{dispute.gateway_dispute_id}:funds:{withdrawal['id']}"),
        (Kind.DISPUTE_FEE, DISPUTE_FEE_CENTS, f"dispute:{dispute.gateway_dispute_id}:fee:{withdrawal['id']}"),
    ]
    entries = [(e.title, e.actor, e.amount_cents, e.is_warning) for e in transaction_timeline(transaction=paid)]
    assert entries[-3:] == [
        ("Dispute opened", "Payment processor", 10000, True),
        ("Disputed amount withdrawn", "Payment processor", 10000, False),
        ("Dispute fee", "Payment processor", DISPUTE_FEE_CENTS, False),
    ]


@pytest.mark.parametrize("fee_returned_cents", [0, DISPUTE_FEE_CENTS])
def test_a_won_dispute_reinstates_the_amount(paid, dispute_events, fee_returned_cents, django_capture_on_commit_callbacks):
    _receive_all(
        dispute_events(10000, "needs_response", "under_review", "won", fee_returned_cents=fee_returned_cents),
        django_capture_on_commit_callbacks,
    )

    paid.refresh_from_db()
    assert (paid.status, paid.disputed_cents, paid.dispute_fee_cents) == (
        TransactionStatus.SUCCEEDED, 0, DISPUTE_FEE_CENTS - fee_returned_cents
    )
    assert transaction_refundable_cents(transaction=paid) == 10000
    assert transaction_net_cents(transaction=paid) == 10000 - paid.fee_cents - (DISPUTE_FEE_CENTS - fee_returned_cents)
    returned = [(Kind.DISPUTE_FEE_RETURNED, fee_returned_cents)] if fee_returned_cents else []
    assert [row[:2] for row in _ledger(paid)[1:]] == [
        (Kind.DISPUTE_OPENED, 10000), (Kind.DISPUTE_FUNDS_WITHDRAWN, 10000), (Kind.DISPUTE_FEE, DISPUTE_FEE_CENTS),
        (Kind.DISPUTE_UPDATED, 0),
        (Kind.DISPUTE_WON, 10000), (Kind.DISPUTE_FUNDS_REINSTATED, 10000), *returned,
    ]
    assert Dispute.objects.get().status == DisputeStatus.WON


def test_a_lost_dispute_keeps_the_amount_gone_and_nothing_more_can_be_refunded(
    stripe_world, stripe_organization, manager, paid, dispute_events, django_capture_on_commit_callbacks
):
    _receive_all(dispute_events(10000, "needs_response", "under_review", "lost"), django_capture_on_commit_callbacks)

    paid.refresh_from_db()
    assert (paid.status, paid.charged_cents, paid.refunded_cents, paid.disputed_cents) == (
        TransactionStatus.DISPUTE_LOST, 10000, 0, 10000
    )
    with pytest.raises(ApplicationError):
        refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=100, reason="Goodwill")
    assert stripe_world.http.sent("POST", "/v1/refunds") == []
    assert Dispute.objects.get().status == DisputeStatus.LOST


def test_a_partial_dispute_after_a_partial_refund_leaves_the_rest_refundable(
    stripe_organization, manager, paid, dispute_events, django_capture_on_commit_callbacks
):
    refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=2000, reason="Lab fee waived")

    _receive_all(dispute_events(3000, "needs_response", "lost"), django_capture_on_commit_callbacks)

    paid.refresh_from_db()
    assert (paid.refunded_cents, paid.disputed_cents, paid.status) == (2000, 3000, TransactionStatus.DISPUTE_LOST)
    assert transaction_refundable_cents(transaction=paid) == 5000


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (2, 0, 1), (1, 2, 0)])
def test_dispute_events_in_any_order_and_twice_give_the_same_ledger_and_the_newest_status(
    paid, dispute_events, order, django_capture_on_commit_callbacks
):
    events = dispute_events(10000, "needs_response", "under_review", "lost")
    shuffled = [events[i] for i in order] + [events[order[0]]]

    _receive_all(shuffled, django_capture_on_commit_callbacks)

    paid.refresh_from_db()
    dispute_id = Dispute.objects.get().gateway_dispute_id
    withdrawal = events[0]["data"]["object"]["balance_transactions"][0]["id"]
    assert sorted(_ledger(paid)[1:]) == sorted(
        [
            (Kind.DISPUTE_OPENED, 10000, f"dispute:{dispute_id}:opened"),
            (Kind.DISPUTE_FUNDS_WITHDRAWN, 10000, f"dispute:{dispute_id}:funds:{withdrawal}"),
            (Kind.DISPUTE_FEE, DISPUTE_FEE_CENTS, f"dispute:{dispute_id}:fee:{withdrawal}"),
            (Kind.DISPUTE_UPDATED, 0, f"dispute:{dispute_id}:under_review"),
            (Kind.DISPUTE_LOST, 10000, f"dispute:{dispute_id}:lost"),
        ]
    )
    assert (paid.status, paid.disputed_cents, paid.dispute_fee_cents) == (TransactionStatus.DISPUTE_LOST, 10000, DISPUTE_FEE_CENTS)
    assert Dispute.objects.get().status == DisputeStatus.LOST


def test_an_inquiry_holds_no_money_and_the_payment_can_still_be_refunded_in_full(
    stripe_world, stripe_organization, manager, paid, dispute_events, django_capture_on_commit_callbacks
):
    _receive_all(dispute_events(10000, "warning_needs_response"), django_capture_on_commit_callbacks)

    paid.refresh_from_db()
    assert (paid.status, paid.disputed_cents, paid.dispute_fee_cents) == (TransactionStatus.SUCCEEDED, 0, 0)
    assert transaction_refundable_cents(transaction=paid) == 10000
    assert Dispute.objects.get().status == DisputeStatus.WARNING_NEEDS_RESPONSE
    assert _ledger(paid)[1:] == [(Kind.INQUIRY_OPENED, 0, f"dispute:{Dispute.objects.get().gateway_dispute_id}:inquiry_opened")]
    inquiry = transaction_timeline(transaction=paid)[-1]
    assert (inquiry.title, inquiry.actor, inquiry.amount_cents, inquiry.is_warning, inquiry.detail) == (
        "Inquiry opened",
        "Payment processor",
        None,
        True,
        "The card issuer asks about $100.00 of this payment; no money was withdrawn. Reason: fraudulent",
    )

    refund = refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=10000, reason="Goodwill")

    paid.refresh_from_db()
    assert (refund.status, paid.status, paid.refunded_cents) == ("succeeded", TransactionStatus.REFUNDED, 10000)
    assert len(stripe_world.http.sent("POST", "/v1/refunds")) == 1


def test_an_inquiry_that_closes_without_a_chargeback_never_moved_money(paid, dispute_events, django_capture_on_commit_callbacks):
    _receive_all(dispute_events(10000, "warning_needs_response", "warning_closed"), django_capture_on_commit_callbacks)

    paid.refresh_from_db()
    assert (paid.status, paid.disputed_cents, paid.dispute_fee_cents) == (TransactionStatus.SUCCEEDED, 0, 0)
    assert [row[:2] for row in _ledger(paid)[1:]] == [(Kind.INQUIRY_OPENED, 0), (Kind.INQUIRY_CLOSED, 0)]


def test_an_inquiry_that_becomes_a_chargeback_withdraws_the_amount_then(paid, dispute_events, django_capture_on_commit_callbacks):
    _receive_all(dispute_events(10000, "warning_needs_response", "needs_response"), django_capture_on_commit_callbacks)

    paid.refresh_from_db()
    assert (paid.status, paid.disputed_cents, paid.dispute_fee_cents) == (TransactionStatus.DISPUTED, 10000, DISPUTE_FEE_CENTS)
    assert [row[:2] for row in _ledger(paid)[1:]] == [
        (Kind.INQUIRY_OPENED, 0), (Kind.DISPUTE_OPENED, 10000), (Kind.DISPUTE_FUNDS_WITHDRAWN, 10000), (Kind.DISPUTE_FEE, DISPUTE_FEE_CENTS)
    ]


def test_a_dispute_that_moved_no_money_yet_holds_nothing(paid, stripe_organization, django_capture_on_commit_callbacks):
    # Only balance transactions move money: a report without one changes the status, not the totals.
    dispute = dispute_object(charge="ch_unread", payment_intent=paid.gateway_charge_id, amount_cents=10000, status="needs_response")

    _receive_all(
        [stripe_event("charge.dispute.created", dispute, account=stripe_organization.stripe_account_id)],
        django_capture_on_commit_callbacks,
    )

    paid.refresh_from_db()
    assert (paid.status, paid.disputed_cents, paid.dispute_fee_cents) == (TransactionStatus.DISPUTED, 0, 0)


def test_a_dispute_about_a_payment_not_yet_recorded_records_the_payment_first(
    stripe_world, stripe_organization, django_capture_on_commit_callbacks
):
    transaction = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=7000, record=False)
    intent = stripe_world.server.call(
        "GET", f"/v1/payment_intents/{stripe_world.checkout.sessions[transaction.gateway_checkout_id]['payment_intent']}"
    )
    # Older API versions name only the charge: the gateway asks Stripe for its PaymentIntent.
    dispute = dispute_object(
        charge=intent["latest_charge"]["id"],
        payment_intent=None,
        amount_cents=7000,
        status="needs_response",
        dispute_id="dp_test_unrecorded",
        balance_transactions=[
            dispute_funds_withdrawn(dispute_id="dp_test_unrecorded", charge=intent["latest_charge"]["id"], amount_cents=7000)
        ],
    )

    _receive_all(
        [stripe_event("charge.dispute.created", dispute, account=stripe_organization.stripe_account_id)],
        django_capture_on_commit_callbacks,
    )

    transaction.refresh_from_db()
    assert (transaction.status, transaction.charged_cents, transaction.disputed_cents) == (
        TransactionStatus.DISPUTED, 7000, 7000
    )
    assert [row[0] for row in _ledger(transaction)] == [
        Kind.CHARGE_SUCCEEDED, Kind.DISPUTE_OPENED, Kind.DISPUTE_FUNDS_WITHDRAWN, Kind.DISPUTE_FEE
    ]
