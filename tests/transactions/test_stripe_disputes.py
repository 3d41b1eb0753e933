"""Disputes from Stripe's charge.dispute.* events (localstripe has none: the disputes are Stripe's own
example object, about a real localstripe payment). The card network takes the disputed amount back
when a dispute opens and returns it only if the clinic wins."""

import datetime

import pytest

from lumapay.errors import ApplicationError
from transactions.enums import DisputeStatus, TransactionEventKind as Kind, TransactionStatus
from transactions.models import Dispute, TransactionEvent
from transactions.selectors.ledger import transaction_refundable_cents, transaction_timeline
from transactions.services.refunds import refund_create

from ..stripe_support import dispute_object, event_receive, stripe_checkout_paid, stripe_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid(stripe_world, stripe_organization):
    return stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=10000)


@pytest.fixture
def dispute_events(stripe_world, stripe_organization, paid):
    """dispute_events(amount, *statuses) → one charge.dispute.* event per status, a second apart."""
    intent = stripe_world.server.call("GET", f"/v1/payment_intents/{paid.gateway_charge_id}")
    charge_id = intent["latest_charge"]["id"]
    dispute_id = f"dp_test_{paid.pk}"

    def make(amount_cents, *statuses, start=None):
        start = start or 1_800_000_000
        events = []
        for index, status in enumerate(statuses):
            event_type = "charge.dispute.created" if index == 0 else (
                "charge.dispute.closed" if status in ("won", "lost", "warning_closed") else "charge.dispute.updated"
            )
            obj = dispute_object(
                charge=charge_id, payment_intent=paid.gateway_charge_id, amount_cents=amount_cents, status=status, dispute_id=dispute_id
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


def test_an_opened_dispute_holds_the_amount_back(paid, dispute_events, django_capture_on_commit_callbacks):
    (created,) = dispute_events(10000, "needs_response")

    _receive_all([created], django_capture_on_commit_callbacks)

    paid.refresh_from_db()
    dispute = Dispute.objects.get()
    due_by = datetime.datetime.fromtimestamp(created["data"]["object"]["evidence_details"]["due_by"], tz=datetime.timezone.utc)
    assert (dispute.transaction, dispute.amount_cents, dispute.reason, dispute.status, dispute.evidence_due_by) == (
        paid, 10000, "fraudulent", DisputeStatus.NEEDS_RESPONSE, due_by
    )
    assert (paid.status, paid.charged_cents, paid.refunded_cents, paid.disputed_cents) == (
        TransactionStatus.DISPUTED, 10000, 0, 10000
    )
    assert transaction_refundable_cents(transaction=paid) == 0
    assert _ledger(paid)[1:] == [(Kind.DISPUTE_OPENED, 10000, f"dispute:{dispute.gateway_dispute_id}:opened")]
    titles = [entry.title for entry in transaction_timeline(transaction=paid)]
    assert "Dispute opened" in titles


def test_a_won_dispute_gives_the_amount_back(paid, dispute_events, django_capture_on_commit_callbacks):
    _receive_all(dispute_events(10000, "needs_response", "under_review", "won"), django_capture_on_commit_callbacks)

    paid.refresh_from_db()
    assert (paid.status, paid.disputed_cents) == (TransactionStatus.SUCCEEDED, 0)
    assert transaction_refundable_cents(transaction=paid) == 10000
    assert [row[:2] for row in _ledger(paid)[1:]] == [
        (Kind.DISPUTE_OPENED, 10000), (Kind.DISPUTE_UPDATED, 0), (Kind.DISPUTE_WON, 10000)
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
    assert sorted(_ledger(paid)[1:]) == sorted(
        [
            (Kind.DISPUTE_OPENED, 10000, f"dispute:{dispute_id}:opened"),
            (Kind.DISPUTE_UPDATED, 0, f"dispute:{dispute_id}:under_review"),
            (Kind.DISPUTE_LOST, 10000, f"dispute:{dispute_id}:lost"),
        ]
    )
    assert (paid.status, paid.disputed_cents) == (TransactionStatus.DISPUTE_LOST, 10000)
    assert Dispute.objects.get().status == DisputeStatus.LOST


def test_an_inquiry_that_closes_without_a_chargeback_releases_the_amount(paid, dispute_events, django_capture_on_commit_callbacks):
    _receive_all(dispute_events(10000, "warning_needs_response", "warning_closed"), django_capture_on_commit_callbacks)

    paid.refresh_from_db()
    assert (paid.status, paid.disputed_cents) == (TransactionStatus.SUCCEEDED, 0)
    assert [row[0] for row in _ledger(paid)[1:]] == [Kind.DISPUTE_OPENED, Kind.DISPUTE_WON]


def test_a_dispute_about_a_payment_not_yet_recorded_records_the_payment_first(
    stripe_world, stripe_organization, django_capture_on_commit_callbacks
):
    transaction = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=7000, record=False)
    intent = stripe_world.server.call(
        "GET", f"/v1/payment_intents/{stripe_world.checkout.sessions[transaction.gateway_checkout_id]['payment_intent']}"
    )
    # Older API versions name only the charge: the gateway asks Stripe for its PaymentIntent.
    dispute = dispute_object(
        charge=intent["latest_charge"]["id"], payment_intent=None, amount_cents=7000, status="needs_response"
    )

    _receive_all(
        [stripe_event("charge.dispute.created", dispute, account=stripe_organization.stripe_account_id)],
        django_capture_on_commit_callbacks,
    )

    transaction.refresh_from_db()
    assert (transaction.status, transaction.charged_cents, transaction.disputed_cents) == (
        TransactionStatus.DISPUTED, 7000, 7000
    )
    assert [row[0] for row in _ledger(transaction)] == [Kind.CHARGE_SUCCEEDED, Kind.DISPUTE_OPENED]
