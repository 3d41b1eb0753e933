"""Refunds made outside LumaPay: a clinic refunds a payment in its own Stripe Dashboard.

Stripe's side is a real localstripe (a refund made there straight, not through LumaPay's client,
is the Dashboard's refund); the events about it are built from what localstripe holds, or with
``refund_build`` for states localstripe never reaches (pending, cancelled, failed). Every refund
of a charge we own reaches the ledger once, whoever made it and however many events report it,
and a manager can never refund what Stripe already refunded.
"""

import pytest

from lumapay.errors import ApplicationError
from lumapay.models import ActorType
from transactions.enums import RefundStatus, TransactionEventKind as Kind, TransactionStatus
from transactions.gateways.sandbox import SandboxGateway
from transactions.models import Refund, TransactionEvent
from transactions.sandbox import processor
from transactions.selectors.ledger import transaction_net_cents, transaction_refundable_cents, transaction_timeline
from transactions.services.refunds import refund_create

from ..stripe_builders import refund_build
from ..stripe_support import (
    DISPUTE_FEE_CENTS,
    dispute_funds_withdrawn,
    dispute_object,
    event_receive,
    stripe_checkout_paid,
    stripe_event,
)
from .payments import paid_transaction

pytestmark = pytest.mark.django_db

# Who the timeline says made a refund at Stripe, and its outcome.
OUTSIDE_ACTOR = "Payment processor (outside LumaPay)"


@pytest.fixture
def paid(stripe_world, stripe_organization):
    return stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=5959)


def _dashboard_refund(stripe_world, transaction, amount_cents: int) -> dict:
    """The clinic refunds at Stripe, in its Dashboard: no metadata of ours."""
    return stripe_world.server.call("POST", "/v1/refunds", payment_intent=transaction.gateway_charge_id, amount=amount_cents)


def _receive_all(events, capture):
    with capture(execute=True):
        for event in events:
            event_receive(event)


def _ledger(transaction):
    return list(
        TransactionEvent.objects.filter(transaction=transaction)
        .exclude(kind=Kind.CHARGE_REQUESTED)
        .order_by("id")
        .values_list("kind", "amount_cents", "actor_type")
    )


def _charge(stripe_world, transaction) -> dict:
    return stripe_world.server.call("GET", f"/v1/payment_intents/{transaction.gateway_charge_id}")["latest_charge"]


def test_a_dashboard_refund_is_imported_once_however_many_events_report_it(
    stripe_world, stripe_organization, paid, django_capture_on_commit_callbacks
):
    stripe_refund = _dashboard_refund(stripe_world, paid, 700)
    account = stripe_organization.stripe_account_id
    charge = _charge(stripe_world, paid)
    charge.pop("refunds", None)  # as Stripe sends it since 2022-11-15: LumaPay lists them
    events = [
        stripe_event("refund.created", stripe_refund, account=account),
        stripe_event("charge.refunded", charge, account=account),
        stripe_event("charge.refund.updated", stripe_refund, account=account),
        stripe_event("refund.updated", stripe_refund, account=account),
    ]

    _receive_all(events + events[:2], django_capture_on_commit_callbacks)

    paid.refresh_from_db()
    refund = Refund.objects.get()
    assert (refund.transaction, refund.amount_cents, refund.status, refund.gateway_refund_id, refund.is_made_outside) == (
        paid, 700, RefundStatus.SUCCEEDED, stripe_refund["id"], True
    )
    assert (refund.requested_by, refund.reason) == (None, "None given at the payment processor")
    assert (paid.status, paid.charged_cents, paid.refunded_cents) == (TransactionStatus.PARTIALLY_REFUNDED, 5959, 700)
    assert transaction_refundable_cents(transaction=paid) == 5259
    assert _ledger(paid) == [
        (Kind.CHARGE_SUCCEEDED, 5959, ActorType.GATEWAY),
        (Kind.REFUND_REQUESTED, 700, ActorType.GATEWAY),
        (Kind.REFUND_SUCCEEDED, 700, ActorType.GATEWAY),
    ]
    entries = [(e.title, e.actor, e.amount_cents, e.detail) for e in transaction_timeline(transaction=paid)]
    assert entries[-2:] == [
        ("Refund made outside LumaPay", OUTSIDE_ACTOR, 700, "Reason: None given at the payment processor"),
        ("Refund succeeded", OUTSIDE_ACTOR, 700, ""),
    ]


def test_a_manager_cannot_refund_what_was_already_refunded_at_stripe(stripe_world, stripe_organization, manager, paid):
    # No event about the Dashboard's refund has arrived: LumaPay reads the charge's refunds first.
    stripe_refund = _dashboard_refund(stripe_world, paid, 700)

    with pytest.raises(ApplicationError) as error:
        refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=5959, reason="Overcharged")

    assert error.value.message == (
        "You can refund at most $52.59 of this payment, after $7.00 refunded outside LumaPay (at the payment processor)."
    )
    assert stripe_world.http.sent("POST", "/v1/refunds") == []
    (listed,) = stripe_world.http.sent("GET", "/v1/refunds")
    assert (listed.account, listed.params) == (
        stripe_organization.stripe_account_id, {"payment_intent": paid.gateway_charge_id, "limit": "100"}
    )
    # What was read is in the ledger, once, and what is left can be refunded.
    assert Refund.objects.values_list("gateway_refund_id", "is_made_outside", "status").get() == (
        stripe_refund["id"], True, RefundStatus.SUCCEEDED
    )

    refund = refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=5259, reason="Overcharged")

    paid.refresh_from_db()
    assert (refund.status, refund.is_made_outside) == (RefundStatus.SUCCEEDED, False)
    assert (paid.status, paid.refunded_cents) == (TransactionStatus.REFUNDED, 5959)
    assert sorted(r["amount"] for r in stripe_world.server.refunds_of(paid.gateway_charge_id)) == [700, 5259]


def test_lumapay_own_refund_is_not_imported_again_when_its_events_come_back(
    stripe_world, stripe_organization, manager, paid, django_capture_on_commit_callbacks
):
    refund = refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=2000, reason="Overcharged")
    (stripe_refund,) = stripe_world.server.refunds_of(paid.gateway_charge_id)
    account = stripe_organization.stripe_account_id

    _receive_all(
        [
            stripe_event("refund.created", stripe_refund, account=account),
            stripe_event("charge.refunded", _charge(stripe_world, paid), account=account),
        ],
        django_capture_on_commit_callbacks,
    )
    refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=1000, reason="Lab fee waived")

    assert list(Refund.objects.order_by("id").values_list("amount_cents", "is_made_outside", "status")) == [
        (2000, False, RefundStatus.SUCCEEDED), (1000, False, RefundStatus.SUCCEEDED)
    ]
    assert refund.gateway_refund_id == stripe_refund["id"]
    paid.refresh_from_db()
    assert paid.refunded_cents == 3000
    assert [row[:2] for row in _ledger(paid)] == [
        (Kind.CHARGE_SUCCEEDED, 5959),
        (Kind.REFUND_REQUESTED, 2000), (Kind.REFUND_SUCCEEDED, 2000),
        (Kind.REFUND_REQUESTED, 1000), (Kind.REFUND_SUCCEEDED, 1000),
    ]


@pytest.mark.parametrize(
    ("later_status", "failure_reason", "message"),
    [
        ("canceled", None, "The refund was cancelled at Stripe before it reached the card."),
        ("failed", "expired_or_canceled_card", "The card has expired or was cancelled."),
    ],
)
def test_a_pending_dashboard_refund_is_held_back_until_it_fails_or_is_cancelled(
    stripe_world, stripe_organization, paid, later_status, failure_reason, message, django_capture_on_commit_callbacks
):
    charge = _charge(stripe_world, paid)
    pending = refund_build(
        amount=1500, status="pending", charge=charge["id"], payment_intent=paid.gateway_charge_id, reason="requested_by_customer"
    )
    ended = {**pending, "status": later_status, **({"failure_reason": failure_reason} if failure_reason else {})}
    account = stripe_organization.stripe_account_id

    _receive_all([stripe_event("refund.created", pending, account=account)], django_capture_on_commit_callbacks)

    paid.refresh_from_db()
    refund = Refund.objects.get()
    assert (refund.status, refund.reason, paid.refunded_cents) == (RefundStatus.REQUESTED, "Requested by the customer", 0)
    assert transaction_refundable_cents(transaction=paid) == 5959 - 1500

    _receive_all([stripe_event("refund.updated", ended, account=account)], django_capture_on_commit_callbacks)

    paid.refresh_from_db()
    refund.refresh_from_db()
    assert (refund.status, refund.failure_message) == (RefundStatus.FAILED, message)
    assert (paid.status, paid.refunded_cents) == (TransactionStatus.SUCCEEDED, 0)
    assert transaction_refundable_cents(transaction=paid) == 5959
    assert [row[:2] for row in _ledger(paid)] == [
        (Kind.CHARGE_SUCCEEDED, 5959), (Kind.REFUND_REQUESTED, 1500), (Kind.REFUND_FAILED, 1500)
    ]
    failed = transaction_timeline(transaction=paid)[-1]
    assert (failed.title, failed.actor, failed.detail) == ("Refund failed", OUTSIDE_ACTOR, message)


def test_a_dashboard_refund_that_fails_after_it_succeeded_gives_the_money_back(
    stripe_world, stripe_organization, paid, django_capture_on_commit_callbacks
):
    stripe_refund = _dashboard_refund(stripe_world, paid, 700)
    failed = {**stripe_refund, "status": "failed", "failure_reason": "lost_or_stolen_card"}
    account = stripe_organization.stripe_account_id

    _receive_all(
        [stripe_event("refund.created", stripe_refund, account=account), stripe_event("refund.failed", failed, account=account)],
        django_capture_on_commit_callbacks,
    )

    paid.refresh_from_db()
    assert (paid.status, paid.refunded_cents) == (TransactionStatus.SUCCEEDED, 0)
    assert Refund.objects.values_list("status", "failure_message").get() == (
        RefundStatus.FAILED, "The card was reported lost or stolen."
    )


def test_the_ledger_totals_with_refunds_from_both_sides_and_a_lost_dispute(
    stripe_world, stripe_organization, manager, paid, django_capture_on_commit_callbacks
):
    _dashboard_refund(stripe_world, paid, 700)
    refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=1000, reason="Lab fee waived")
    charge_id = _charge(stripe_world, paid)["id"]
    dispute_id = f"dp_test_{paid.pk}"
    withdrawal = dispute_funds_withdrawn(dispute_id=dispute_id, charge=charge_id, amount_cents=3000)
    account = stripe_organization.stripe_account_id
    opened, lost = (
        dispute_object(
            charge=charge_id, payment_intent=paid.gateway_charge_id, amount_cents=3000, status=status,
            dispute_id=dispute_id, balance_transactions=[withdrawal],
        )
        for status in ("needs_response", "lost")
    )

    _receive_all(
        [
            stripe_event("charge.dispute.created", opened, account=account, created=1_800_000_000),
            stripe_event("charge.dispute.funds_withdrawn", opened, account=account, created=1_800_000_000),
            stripe_event("charge.dispute.closed", lost, account=account, created=1_800_000_001),
        ],
        django_capture_on_commit_callbacks,
    )

    paid.refresh_from_db()
    assert (paid.status, paid.charged_cents, paid.refunded_cents, paid.disputed_cents, paid.dispute_fee_cents) == (
        TransactionStatus.DISPUTE_LOST, 5959, 1700, 3000, DISPUTE_FEE_CENTS
    )
    assert transaction_refundable_cents(transaction=paid) == 5959 - 1700 - 3000
    assert transaction_net_cents(transaction=paid) == 5959 - 1700 - 3000 - paid.fee_cents - DISPUTE_FEE_CENTS
    with pytest.raises(ApplicationError) as error:
        refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=1260, reason="Goodwill")
    assert error.value.message == (
        "You can refund at most $12.59 of this payment, after $7.00 refunded outside LumaPay (at the payment processor)."
    )


def test_the_sandbox_lists_its_own_refunds_and_a_refund_made_there_is_imported(organization, manager, patient, location):
    payment = paid_transaction(organization=organization, patient=patient, location=location, amount_cents=5959)
    # The Sandbox processor's own refund, not asked by LumaPay (its key is none of ours).
    processor.refund_create(charge_id=payment.gateway_charge_id, amount_cents=700, idempotency_key="made-in-the-sandbox")

    facts = SandboxGateway().charge_refunds(transaction=payment)

    assert [(f.status, f.amount_cents, f.idempotency_key) for f in facts] == [("succeeded", 700, "made-in-the-sandbox")]
    with pytest.raises(ApplicationError) as error:
        refund_create(organization=organization, actor=manager, transaction=payment, amount_cents=5959, reason="Overcharged")
    assert "You can refund at most $52.59 of this payment" in error.value.message
    assert Refund.objects.values_list("amount_cents", "is_made_outside", "status").get() == (700, True, RefundStatus.SUCCEEDED)
