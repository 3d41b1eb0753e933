"""Reliability of the Stripe path: real PostgreSQL, real threads, a real localstripe.

localstripe is more lenient than Stripe (it accepts over-refunds and ignores idempotency keys), so
these show that LumaPay's own guards hold: the refundable remainder under the transaction's row
lock, the refund looked up by its stored key before it is asked again, one row per event id, and
ledger keys that make any order of events converge.
"""

import random
import threading
import time

import pytest
from django.db import connections

from lumapay.errors import ApplicationError
from transactions.enums import (
    GatewayEventStatus,
    PaymentRequestStatus,
    RefundStatus,
    TransactionEventKind as Kind,
    TransactionStatus,
)
from transactions.models import Dispute, GatewayEvent, PaymentRequest, Refund, Transaction, TransactionEvent
from transactions.services.refunds import refund_create, refund_retry

from ..stripe_support import (
    CARD_DECLINED_AT_CHARGE,
    dispute_funds_reinstated,
    dispute_funds_withdrawn,
    dispute_object,
    event_body,
    event_post,
    event_receive,
    session_completed_event,
    stripe_checkout_open,
    stripe_checkout_paid,
    stripe_event,
    stripe_signature,
)

pytestmark = pytest.mark.reliability


def _run_in_threads(count: int, work) -> list:
    """Run ``work(i)`` in ``count`` threads released together; each closes its own connections."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work(index)
        except BaseException as error:  # reported by the test below, with its thread's index
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    return results


# -- 50 concurrent refunds against one $100.00 payment ------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_refunds_never_refund_more_than_the_payment(stripe_world, stripe_organization, manager):
    paid = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=10000)
    rng = random.Random(20261127)
    amounts = [rng.choice([300, 500, 700, 1100, 1300, 2500]) for _ in range(50)]
    assert sum(amounts) > 3 * 10000

    def refund(index: int):
        try:
            made = refund_create(
                organization=stripe_organization,
                actor=manager,
                transaction=paid,
                amount_cents=amounts[index],
                reason=f"Concurrent refund {index}",
            )
        except ApplicationError as error:
            return ("refused", error.message)
        return ("made", made.status)

    results = _run_in_threads(50, refund)

    assert [r for r in results if isinstance(r, BaseException)] == []
    made = [r for r in results if r[0] == "made"]
    refused = [r for r in results if r[0] == "refused"]
    assert made and refused
    assert {status for _, status in made} == {RefundStatus.SUCCEEDED}
    assert all(
        message.startswith(("You can refund at most", "Nothing is left to refund", "This payment has already been refunded in full"))
        for _, message in refused
    ), refused
    paid.refresh_from_db()
    ours = list(Refund.objects.filter(transaction=paid).values_list("status", "amount_cents", "gateway_refund_id"))
    ledger_total = sum(
        TransactionEvent.objects.filter(transaction=paid, kind=Kind.REFUND_SUCCEEDED).values_list("amount_cents", flat=True)
    )
    at_stripe = stripe_world.server.refunds_of(paid.gateway_charge_id)
    at_stripe_total = sum(refund["amount"] for refund in at_stripe)
    assert ledger_total == paid.refunded_cents == at_stripe_total
    assert 10000 - 300 < at_stripe_total <= 10000  # as full as the amounts allow, never over
    assert len(ours) == len(made) == len(at_stripe)
    assert {row[2] for row in ours} == {refund["id"] for refund in at_stripe}
    assert {row[0] for row in ours} == {RefundStatus.SUCCEEDED}
    assert len(stripe_world.http.sent("POST", "/v1/refunds")) == len(made)


# The same event delivered 20 times at once: test_gateway_event_faults.py (real HTTP, real workers).


# -- 100 payments' events, shuffled and duplicated -----------------------------------------------------


def _payments_and_their_events(stripe_world, organization) -> list[dict]:
    """100 payments made at Stripe, with refunds and disputes, and every event Stripe sent about
    them, in the order Stripe created them. Nothing has reached LumaPay yet."""
    server, account = stripe_world.server, organization.stripe_account_id
    events: list[dict] = []
    clock = 1_900_000_000

    def emit(event_type: str, obj: dict) -> None:
        nonlocal clock
        clock += 1
        events.append(stripe_event(event_type, obj, account=account, created=clock))

    def intent_now(payment_intent: str) -> dict:
        intent = server.call("GET", f"/v1/payment_intents/{payment_intent}")
        intent["latest_charge"] = intent["latest_charge"]["id"]
        intent.pop("charges", None)
        return intent

    for index in range(100):
        declined = index % 12 == 11
        amount = 2000 + 137 * index
        transaction = stripe_checkout_open(organization, amount_cents=amount)
        intent = stripe_world.checkout.pay(
            transaction.gateway_checkout_id, card_number=CARD_DECLINED_AT_CHARGE if declined else "4242424242424242"
        )
        if declined:
            emit("payment_intent.payment_failed", intent_now(intent["id"]))
            continue
        emit("payment_intent.succeeded", intent_now(intent["id"]))
        emit("checkout.session.completed", stripe_world.checkout.sessions[transaction.gateway_checkout_id])
        charge_id = intent["latest_charge"]["id"]

        if index % 4 == 1:  # a partial refund; some go through pending, one fails after succeeding
            refund = Refund.objects.create(
                organization=organization, transaction=transaction, amount_cents=1000, reason="Partial refund"
            )
            made = server.call(
                "POST",
                "/v1/refunds",
                payment_intent=intent["id"],
                amount=1000,
                metadata={"lumapay_refund_id": str(refund.pk), "lumapay_idempotency_key": str(refund.idempotency_key)},
            )
            if index % 8 == 5:
                emit("refund.created", {**made, "status": "pending"})
                emit("refund.updated", made)
            else:
                emit("refund.created", made)
            emit("charge.refunded", server.call("GET", f"/v1/charges/{charge_id}"))
            if index == 21:
                emit("refund.failed", {**made, "status": "failed", "failure_reason": "expired_or_canceled_card"})
        if index in (10, 30, 50):  # disputes: lost, won, an inquiry that became one still open
            outcome = {
                10: ["needs_response", "under_review", "lost"],
                30: ["needs_response", "won"],
                50: ["warning_needs_response", "needs_response"],
            }
            dispute_id = f"dp_rel_{index}"
            withdrawal = dispute_funds_withdrawn(dispute_id=dispute_id, charge=charge_id, amount_cents=amount)
            funds = []
            for step, status in enumerate(outcome[index]):
                if not status.startswith("warning_") and not funds:
                    funds.append(withdrawal)
                if status == "won":
                    funds.append(dispute_funds_reinstated(dispute_id=dispute_id, charge=charge_id, amount_cents=amount))
                dispute = dispute_object(
                    charge=charge_id, payment_intent=intent["id"], amount_cents=amount, status=status, dispute_id=dispute_id,
                    balance_transactions=funds,
                )
                event_type = "charge.dispute.created" if step == 0 else (
                    "charge.dispute.closed" if status in ("won", "lost") else "charge.dispute.updated"
                )
                emit(event_type, dispute)
    return events


def _ledger_snapshot() -> dict:
    """Everything the events decide, keyed by what does not change between runs."""
    snapshot = {}
    for transaction in Transaction.objects.select_related("payment_request").order_by("pk"):
        snapshot[transaction.gateway_checkout_id] = {
            "totals": (
                transaction.status,
                transaction.charged_cents,
                transaction.refunded_cents,
                transaction.disputed_cents,
                transaction.gateway_charge_id,
                transaction.card_brand,
                transaction.card_last4,
                transaction.fee_cents,
                transaction.last_error,
                transaction.payment_request.status,
            ),
            "events": sorted(
                TransactionEvent.objects.filter(transaction=transaction).values_list(
                    "kind", "amount_cents", "idempotency_key", "gateway_reference", "message", "refund_id"
                )
            ),
            "refunds": sorted(
                Refund.objects.filter(transaction=transaction).values_list("pk", "status", "gateway_refund_id", "failure_message")
            ),
            "disputes": sorted(
                Dispute.objects.filter(transaction=transaction).values_list("gateway_dispute_id", "status", "amount_cents")
            ),
        }
    return snapshot


def _books_reopen() -> None:
    """Back to the state before any event arrived (the ledger is append-only in the product; the
    test starts the same books over to apply the same events again)."""
    TransactionEvent.objects.exclude(kind=Kind.CHARGE_REQUESTED).delete()
    Dispute.objects.all().delete()
    GatewayEvent.objects.all().delete()
    Transaction.objects.update(
        status=TransactionStatus.PENDING, charged_cents=0, refunded_cents=0, disputed_cents=0, gateway_charge_id="",
        card_brand="", card_last4="", authorization_code="", fee_cents=0, last_error="", paid_at=None,
    )
    Refund.objects.update(status=RefundStatus.REQUESTED, gateway_refund_id=None, failure_message="")
    PaymentRequest.objects.update(status=PaymentRequestStatus.OPEN, paid_at=None)


def _deliver(events, capture) -> None:
    for event in events:
        with capture(execute=True):
            event_receive(event)


@pytest.mark.django_db
def test_a_hundred_payments_events_shuffled_and_duplicated_give_the_same_ledger_as_in_order(
    stripe_world, stripe_organization, django_capture_on_commit_callbacks, monkeypatch
):
    # Receipts (a PDF each, twice over) are not what this test is about.
    monkeypatch.setattr("transactions.tasks.patient_message_send.delay", lambda delivery_id: None)
    events = _payments_and_their_events(stripe_world, stripe_organization)

    _deliver(sorted(events, key=lambda event: event["created"]), django_capture_on_commit_callbacks)
    in_order = _ledger_snapshot()
    assert GatewayEvent.objects.filter(status=GatewayEventStatus.FAILED).count() == 0

    _books_reopen()
    rng = random.Random(42)
    shuffled = events + rng.sample(events, k=round(len(events) * 0.3))
    rng.shuffle(shuffled)
    _deliver(shuffled, django_capture_on_commit_callbacks)
    any_order = _ledger_snapshot()

    assert GatewayEvent.objects.count() == len(events)
    assert GatewayEvent.objects.filter(status=GatewayEventStatus.FAILED).count() == 0
    assert any_order == in_order
    # And the ledger is the right one, not merely the same one.
    statuses = [entry["totals"][0] for entry in in_order.values()]
    assert len(in_order) == 100
    assert statuses.count(TransactionStatus.FAILED) == 8
    assert statuses.count(TransactionStatus.DISPUTE_LOST) == 1
    assert statuses.count(TransactionStatus.DISPUTED) == 1
    assert statuses.count(TransactionStatus.PARTIALLY_REFUNDED) == 25 - 1  # index 21's refund failed after succeeding
    assert sum(entry["totals"][2] for entry in in_order.values()) == 24 * 1000
    lost = next(entry for entry in in_order.values() if entry["totals"][0] == TransactionStatus.DISPUTE_LOST)
    assert lost["totals"][3] == lost["totals"][1]  # the whole charge went back to the cardholder
    assert sum(1 for entry in in_order.values() if entry["totals"][9] == PaymentRequestStatus.PAID) == 92


# -- a timeout after Stripe refunded, then the retry -----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_timeout_after_stripe_refunded_then_the_retry_is_one_refund(stripe_world, stripe_organization, manager):
    paid = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=10000)
    stripe_world.http.fail_after("POST", "/v1/refunds")

    refund = refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=6000, reason="Overcharged")

    paid.refresh_from_db()
    assert refund.status == RefundStatus.REQUESTED
    assert [r["amount"] for r in stripe_world.server.refunds_of(paid.gateway_charge_id)] == [6000]  # Stripe did refund
    assert (paid.refunded_cents, paid.status) == (0, TransactionStatus.SUCCEEDED)
    with pytest.raises(ApplicationError, match=r"You can refund at most \$40\.00"):  # the $60.00 stays reserved
        refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=4001, reason="More")

    retried = refund_retry(organization=stripe_organization, actor=manager, refund=refund)

    paid.refresh_from_db()
    at_stripe = stripe_world.server.refunds_of(paid.gateway_charge_id)
    assert [r["amount"] for r in at_stripe] == [6000]
    assert len(stripe_world.http.sent("POST", "/v1/refunds")) == 1  # the retry found it and did not ask again
    assert (retried.status, retried.gateway_refund_id) == (RefundStatus.SUCCEEDED, at_stripe[0]["id"])
    assert (paid.refunded_cents, paid.status) == (6000, TransactionStatus.PARTIALLY_REFUNDED)
    assert TransactionEvent.objects.filter(transaction=paid, kind=Kind.REFUND_SUCCEEDED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_and_the_refund_event_after_a_timeout_still_make_one_refund(
    stripe_world, stripe_organization, manager
):
    paid = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=10000)
    stripe_world.http.fail_after("POST", "/v1/refunds")
    refund = refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=2500, reason="Overcharged")
    (made,) = stripe_world.server.refunds_of(paid.gateway_charge_id)

    def settle(index: int):
        if index == 0:
            return event_receive(stripe_event("refund.created", made, account=stripe_organization.stripe_account_id)).status
        try:
            return refund_retry(organization=stripe_organization, actor=manager, refund=Refund.objects.get(pk=refund.pk)).status
        except ApplicationError as error:  # already settled by the event or another retry
            return error.message

    results = _run_in_threads(5, settle)

    assert [r for r in results if isinstance(r, BaseException)] == []
    paid.refresh_from_db()
    assert [r["amount"] for r in stripe_world.server.refunds_of(paid.gateway_charge_id)] == [2500]
    assert paid.refunded_cents == 2500
    assert TransactionEvent.objects.filter(transaction=paid, kind=Kind.REFUND_SUCCEEDED).count() == 1
    assert Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED


# -- events that do not verify --------------------------------------------------------------------------


def _state(transaction) -> tuple:
    transaction.refresh_from_db()
    return (
        GatewayEvent.objects.count(),
        list(TransactionEvent.objects.values_list("pk", "kind")),
        transaction.status,
        transaction.charged_cents,
        transaction.payment_request.status,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "problem",
    ["bad signature", "timestamp older than 300 s", "timestamp 3,600 s ahead", "timestamp 310 s ahead", "altered body", "no signature"],
)
def test_an_event_that_does_not_verify_gets_400_and_changes_nothing(
    client, stripe_world, stripe_organization, problem, django_capture_on_commit_callbacks
):
    transaction = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=4500, record=False)
    event = session_completed_event(stripe_world, transaction)
    before = _state(transaction)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        if problem == "bad signature":
            response = event_post(client, event, secret="whsec_not_the_endpoints")
        elif problem == "timestamp older than 300 s":
            response = event_post(client, event, timestamp=int(time.time()) - 301)
        elif problem == "timestamp 3,600 s ahead":
            response = event_post(client, event, timestamp=int(time.time()) + 3600)
        elif problem == "timestamp 301 s ahead":
            response = event_post(client, event, timestamp=int(time.time()) + 301)
        elif problem == "altered body":
            altered = event_body(event).replace(b'"amount_total":4500', b'"amount_total":1')
            assert altered != event_body(event)
            response = event_post(client, event, body=altered)
        else:
            response = client.post("/webhooks/stripe/", data=event_body(event), content_type="application/json")

    assert response.status_code == 400
    assert "does not verify" in response.json()["error"]
    assert callbacks == []
    assert _state(transaction) == before


@pytest.mark.django_db
def test_an_event_not_sent_as_json_is_a_415_and_changes_nothing(
    client, stripe_world, stripe_organization, django_capture_on_commit_callbacks
):
    transaction = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=4500, record=False)
    event = session_completed_event(stripe_world, transaction)
    before = _state(transaction)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(
            "/webhooks/stripe/", data=event_body(event), content_type="text/plain",
            headers={"Stripe-Signature": stripe_signature(event_body(event))},
        )  # fmt: skip

    assert response.status_code == 415
    assert callbacks == []
    assert _state(transaction) == before


@pytest.mark.django_db
def test_a_signature_within_the_tolerance_is_accepted(client, stripe_world, stripe_organization, django_capture_on_commit_callbacks):
    transaction = stripe_checkout_paid(stripe_world, stripe_organization, record=False)
    event = session_completed_event(stripe_world, transaction)

    with django_capture_on_commit_callbacks(execute=True):
        response = event_post(client, event, timestamp=int(time.time()) - 280)
        ahead = event_post(client, event, timestamp=int(time.time()) + 280)  # a clock a little fast

    assert response.status_code == ahead.status_code == 200
    assert stripe_signature(event_body(event), timestamp=1).startswith("t=1,v1=")
    assert TransactionEvent.objects.filter(kind=Kind.CHARGE_SUCCEEDED).count() == 1
