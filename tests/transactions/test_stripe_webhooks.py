"""Stripe's events at /webhooks/stripe/: verified with Stripe's real signature scheme (the library's
``construct_event``), stored raw once, processed after commit; every order of delivery converges
on the same ledger. Also: localstripe's own signed deliveries to a live server, the periodic
listing that recovers events that never arrived, and replays."""

import logging
import time

import pytest
from django.core.management import call_command

from transactions.enums import GatewayEventStatus, PaymentRequestStatus, RefundStatus, TransactionEventKind as Kind, TransactionStatus
from transactions.gateways.base import GatewayUnavailable
from transactions.gateways.stripe import StripeGateway
from transactions.models import GatewayEvent, GatewayEventCursor, Refund, Transaction, TransactionEvent
from transactions.services.refunds import refund_create
from transactions.services.stripe_events import stripe_events_recover
from transactions.tasks import stripe_events_recover as stripe_events_recover_task

from ..stripe_support import (
    WEBHOOK_SECRET,
    event_body,
    event_post,
    event_receive,
    payment_intent_event,
    session_completed_event,
    stripe_checkout_paid,
    stripe_clinic,
    stripe_event,
    stripe_signature,
)
from ..waiting import wait_until

pytestmark = pytest.mark.django_db


def _ledger(transaction):
    return list(
        TransactionEvent.objects.filter(transaction=transaction)
        .order_by("id")
        .values_list("kind", "amount_cents", "idempotency_key")
    )


def _refund_object(stripe_world, refund, **changes) -> dict:
    """The refund as Stripe has it (made through our gateway, so it carries our metadata)."""
    (found,) = [
        r
        for r in stripe_world.server.refunds_of(refund.transaction.gateway_charge_id)
        if r["metadata"].get("lumapay_refund_id") == str(refund.pk)
    ]
    return {**found, **changes}


def test_checkout_session_completed_records_the_payment(client, stripe_world, stripe_organization, django_capture_on_commit_callbacks):
    transaction = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=4500, record=False)
    event = session_completed_event(stripe_world, transaction)

    with django_capture_on_commit_callbacks(execute=True):
        response = event_post(client, event)

    assert response.status_code == 200
    assert response.json() == {"received": True, "id": event["id"]}
    stored = GatewayEvent.objects.get()
    assert (stored.gateway, stored.event_id, stored.event_type, stored.payload) == (
        "stripe", event["id"], "checkout.session.completed", event
    )
    assert (stored.status, stored.attempts, stored.organization_id) == (
        GatewayEventStatus.PROCESSED, 1, stripe_organization.pk
    )
    transaction.refresh_from_db()
    payment_intent = stripe_world.checkout.sessions[transaction.gateway_checkout_id]["payment_intent"]
    assert (transaction.status, transaction.charged_cents, transaction.gateway_charge_id) == (
        TransactionStatus.SUCCEEDED, 4500, payment_intent
    )
    assert (transaction.card_brand, transaction.card_last4) == ("visa", "4242")
    assert transaction.payment_request.status == PaymentRequestStatus.PAID
    succeeded = TransactionEvent.objects.get(kind=Kind.CHARGE_SUCCEEDED)
    assert (succeeded.gateway_event_id, succeeded.actor_type, succeeded.idempotency_key) == (
        event["id"], "gateway", f"charge:{payment_intent}:succeeded"
    )


@pytest.mark.parametrize("first", ["webhook", "confirmation page"])
def test_the_webhook_and_the_confirmation_page_converge_on_one_ledger_event(
    stripe_world, stripe_organization, first, django_capture_on_commit_callbacks
):
    from transactions.services.payments import checkout_outcome_record

    transaction = stripe_checkout_paid(stripe_world, stripe_organization, record=False)
    event = session_completed_event(stripe_world, transaction)

    with django_capture_on_commit_callbacks(execute=True):
        if first == "webhook":
            event_receive(event)
            checkout_outcome_record(transaction=transaction)
        else:
            checkout_outcome_record(transaction=transaction)
            event_receive(event)

    assert [row[0] for row in _ledger(transaction)] == [Kind.CHARGE_REQUESTED, Kind.CHARGE_SUCCEEDED]
    assert GatewayEvent.objects.get().status == GatewayEventStatus.PROCESSED


def test_a_payment_intent_event_before_the_session_event_is_matched_by_its_metadata(
    stripe_world, stripe_organization, django_capture_on_commit_callbacks
):
    transaction = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=3000, record=False)

    with django_capture_on_commit_callbacks(execute=True):
        event_receive(payment_intent_event(stripe_world, transaction))
        event_receive(session_completed_event(stripe_world, transaction))

    transaction.refresh_from_db()
    assert [row[:2] for row in _ledger(transaction)] == [(Kind.CHARGE_REQUESTED, 3000), (Kind.CHARGE_SUCCEEDED, 3000)]
    assert transaction.status == TransactionStatus.SUCCEEDED
    assert list(GatewayEvent.objects.values_list("status", flat=True)) == [GatewayEventStatus.PROCESSED] * 2


def test_a_failed_attempt_is_read_from_the_event_itself(stripe_world, stripe_organization, django_capture_on_commit_callbacks):
    from ..stripe_support import CARD_DECLINED_AT_CHARGE

    transaction = stripe_checkout_paid(stripe_world, stripe_organization, card_number=CARD_DECLINED_AT_CHARGE, record=False)
    event = payment_intent_event(stripe_world, transaction, "payment_intent.payment_failed")

    with django_capture_on_commit_callbacks(execute=True):
        event_receive(event)

    transaction.refresh_from_db()
    assert (transaction.status, transaction.last_error) == (TransactionStatus.FAILED, "Your card was declined.")
    assert [row[0] for row in _ledger(transaction)] == [Kind.CHARGE_REQUESTED, Kind.CHARGE_FAILED]


@pytest.fixture
def paid(stripe_world, stripe_organization):
    return stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=10000)


@pytest.fixture
def refund_at_stripe_unheard(stripe_world, stripe_organization, manager, paid):
    """A refund Stripe made, whose answer never reached us (the call timed out)."""
    stripe_world.http.fail_after("POST", "/v1/refunds")
    refund = refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=4000, reason="Overcharged")
    assert refund.status == RefundStatus.REQUESTED
    return refund


def test_a_refund_event_settles_a_refund_whose_answer_was_lost(stripe_world, refund_at_stripe_unheard, django_capture_on_commit_callbacks):
    refund = refund_at_stripe_unheard
    stripe_refund = _refund_object(stripe_world, refund)

    with django_capture_on_commit_callbacks(execute=True):
        event_receive(stripe_event("refund.created", stripe_refund, account=refund.transaction.organization.stripe_account_id))

    refund.refresh_from_db()
    transaction = Transaction.objects.get(pk=refund.transaction_id)
    assert (refund.status, refund.gateway_refund_id) == (RefundStatus.SUCCEEDED, stripe_refund["id"])
    assert (transaction.status, transaction.refunded_cents) == (TransactionStatus.PARTIALLY_REFUNDED, 4000)


def test_a_pending_refund_stays_reserved_until_it_succeeds(stripe_world, refund_at_stripe_unheard, django_capture_on_commit_callbacks):
    refund = refund_at_stripe_unheard
    account = refund.transaction.organization.stripe_account_id

    with django_capture_on_commit_callbacks(execute=True):
        event_receive(stripe_event("refund.created", _refund_object(stripe_world, refund, status="pending"), account=account))
    refund.refresh_from_db()
    assert refund.status == RefundStatus.REQUESTED
    assert GatewayEvent.objects.get().status == GatewayEventStatus.PROCESSED

    with django_capture_on_commit_callbacks(execute=True):
        event_receive(stripe_event("refund.updated", _refund_object(stripe_world, refund), account=account))
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert Transaction.objects.get(pk=refund.transaction_id).refunded_cents == 4000


def test_a_refund_that_fails_after_it_succeeded_gives_the_money_back_to_the_clinic(
    stripe_world, stripe_organization, manager, paid, django_capture_on_commit_callbacks
):
    refund = refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=6000, reason="Overcharged")
    assert refund.status == RefundStatus.SUCCEEDED
    failed = _refund_object(stripe_world, refund, status="failed", failure_reason="expired_or_canceled_card")

    with django_capture_on_commit_callbacks(execute=True):
        event_receive(stripe_event("refund.failed", failed, account=stripe_organization.stripe_account_id))
        # A late copy of its success changes nothing: failed is final.
        event_receive(stripe_event("refund.updated", _refund_object(stripe_world, refund), account=stripe_organization.stripe_account_id))

    refund.refresh_from_db()
    paid.refresh_from_db()
    assert (refund.status, refund.failure_message) == (RefundStatus.FAILED, "The card has expired or was cancelled.")
    assert (paid.status, paid.refunded_cents, paid.last_error) == (
        TransactionStatus.SUCCEEDED, 0, "The card has expired or was cancelled."
    )
    assert [row[:2] for row in _ledger(paid)][-3:] == [
        (Kind.REFUND_REQUESTED, 6000), (Kind.REFUND_SUCCEEDED, 6000), (Kind.REFUND_FAILED, 6000)
    ]


@pytest.mark.parametrize("embedded", [True, False])
def test_charge_refunded_with_or_without_its_refunds_listed(
    stripe_world, stripe_organization, refund_at_stripe_unheard, embedded, django_capture_on_commit_callbacks
):
    refund = refund_at_stripe_unheard
    charge = stripe_world.server.call("GET", f"/v1/payment_intents/{refund.transaction.gateway_charge_id}")["latest_charge"]
    if not embedded:
        charge.pop("refunds")  # since API 2022-11-15 Stripe no longer includes them

    with django_capture_on_commit_callbacks(execute=True):
        event_receive(stripe_event("charge.refunded", charge, account=stripe_organization.stripe_account_id))

    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    listed = stripe_world.http.sent("GET", "/v1/refunds")
    # The reading of refunds made outside LumaPay and our own lookup before the (timed-out) refund
    # list twice; the event lists only if it must.
    assert len(listed) == (2 if embedded else 3)


def test_a_refund_event_that_arrives_before_its_payment_brings_the_payment_with_it(
    stripe_world, stripe_organization, django_capture_on_commit_callbacks
):
    transaction = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=8000, record=False)
    payment_intent = stripe_world.checkout.sessions[transaction.gateway_checkout_id]["payment_intent"]
    refund = Refund.objects.create(
        organization=stripe_organization, transaction=transaction, amount_cents=3000, reason="Made in the Stripe dashboard"
    )
    stripe_refund = stripe_world.server.call(
        "POST",
        "/v1/refunds",
        payment_intent=payment_intent,
        amount=3000,
        metadata={"lumapay_idempotency_key": str(refund.idempotency_key)},
    )

    with django_capture_on_commit_callbacks(execute=True):
        event_receive(stripe_event("refund.created", stripe_refund, account=stripe_organization.stripe_account_id))

    transaction.refresh_from_db()
    assert (transaction.status, transaction.charged_cents, transaction.refunded_cents) == (
        TransactionStatus.PARTIALLY_REFUNDED, 8000, 3000
    )
    assert [row[0] for row in _ledger(transaction)] == [Kind.CHARGE_REQUESTED, Kind.CHARGE_SUCCEEDED, Kind.REFUND_SUCCEEDED]


def test_event_types_we_do_not_handle_are_stored_as_ignored(client, stripe_world, stripe_organization, django_capture_on_commit_callbacks):
    event = stripe_event("invoice.paid", {"id": "in_1", "object": "invoice"}, account=stripe_organization.stripe_account_id)

    with django_capture_on_commit_callbacks(execute=True):
        response = event_post(client, event)

    assert response.status_code == 200
    assert GatewayEvent.objects.values_list("status", "organization_id").get() == (GatewayEventStatus.IGNORED, stripe_organization.pk)


def test_events_from_an_account_that_is_no_clinic_of_ours_are_a_200_and_change_nothing(
    client, stripe_world, paid, django_capture_on_commit_callbacks
):
    event = session_completed_event(stripe_world, paid)
    event["account"] = "acct_someone_else"

    with django_capture_on_commit_callbacks(execute=True):
        response = event_post(client, event)

    assert response.status_code == 200
    assert GatewayEvent.objects.values_list("status", "organization_id").get() == (GatewayEventStatus.IGNORED, None)
    assert TransactionEvent.objects.filter(kind=Kind.CHARGE_SUCCEEDED, gateway_event_id=event["id"]).count() == 0


def test_events_about_objects_we_never_made_are_processed_and_change_nothing(
    client, stripe_world, stripe_organization, django_capture_on_commit_callbacks
):
    intent = stripe_world.server.payment_intent_pay(amount_cents=999, metadata={})  # made outside LumaPay
    intent["latest_charge"] = intent["latest_charge"]["id"]
    events = [
        stripe_event("payment_intent.succeeded", intent, account=stripe_organization.stripe_account_id),
        stripe_event(
            "refund.created",
            {"id": "re_elsewhere", "object": "refund", "amount": 100, "status": "succeeded", "payment_intent": intent["id"], "metadata": {}},
            account=stripe_organization.stripe_account_id,
        ),
    ]

    with django_capture_on_commit_callbacks(execute=True):
        responses = [event_post(client, event) for event in events]

    assert [r.status_code for r in responses] == [200, 200]
    assert list(GatewayEvent.objects.values_list("status", flat=True)) == [GatewayEventStatus.PROCESSED] * 2
    assert TransactionEvent.objects.count() == 0


def test_a_stripe_event_is_refused_when_no_webhook_secret_is_configured(client, stripe_world, stripe_organization, settings):
    settings.STRIPE_WEBHOOK_SECRET = []

    response = event_post(client, stripe_event("invoice.paid", {"id": "in_1"}, account=stripe_organization.stripe_account_id))

    assert response.status_code == 400
    assert "STRIPE_WEBHOOK_SECRET is not set" in response.json()["error"]
    assert GatewayEvent.objects.count() == 0


def test_a_second_signing_secret_is_accepted_during_a_secret_roll(client, stripe_world, stripe_organization, settings, django_capture_on_commit_callbacks):
    settings.STRIPE_WEBHOOK_SECRET = ["whsec_new_one", WEBHOOK_SECRET]

    with django_capture_on_commit_callbacks(execute=True):
        response = event_post(client, stripe_event("invoice.paid", {"id": "in_1"}, account=stripe_organization.stripe_account_id))

    assert response.status_code == 200


def test_a_failed_processing_is_recorded_and_the_replay_command_applies_it(
    stripe_world, paid, settings, django_capture_on_commit_callbacks, capsys
):
    Transaction.objects.filter(pk=paid.pk).update(gateway_charge_id="")
    TransactionEvent.objects.filter(transaction=paid, kind=Kind.CHARGE_SUCCEEDED).delete()
    event = session_completed_event(stripe_world, paid)
    real_base = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # Stripe unreachable while the event is processed

    stored = event_receive(event)
    with pytest.raises(GatewayUnavailable):
        from transactions.services.gateway_events import gateway_event_process

        gateway_event_process(gateway_event_id=stored.pk)

    stored.refresh_from_db()
    assert stored.status == GatewayEventStatus.FAILED
    assert stored.error_message.startswith("GatewayUnavailable: Stripe did not answer while reading the payment")

    settings.STRIPE_API_BASE = real_base
    with django_capture_on_commit_callbacks(execute=True):
        call_command("replay_gateway_events", "--status", "failed", "--gateway", "stripe")

    stored.refresh_from_db()
    assert stored.status == GatewayEventStatus.PROCESSED
    assert f"event {stored.pk} (checkout.session.completed): processed" in capsys.readouterr().out
    assert TransactionEvent.objects.filter(transaction=paid, kind=Kind.CHARGE_SUCCEEDED).count() == 1


# -- localstripe delivering its own signed events to a running server -------------------------------


def _delivery_logged(caplog, text: str) -> bool:
    """localstripe logs each delivery's outcome on aiohttp.access (from its own thread)."""
    return any(record.name == "aiohttp.access" and record.getMessage() == text for record in list(caplog.records))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("secret", [WEBHOOK_SECRET, "whsec_not_ours"])
def test_localstripe_signs_and_delivers_its_events_to_the_endpoint(live_server, stripe_world, organization, secret, caplog):
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    stripe_clinic(stripe_world, organization)
    stripe_world.server.webhook_register(url=f"{live_server.url}/webhooks/stripe/", secret=secret)

    intent = stripe_world.server.payment_intent_pay(amount_cents=2500)

    if secret == WEBHOOK_SECRET:
        stored = wait_until(
            lambda: GatewayEvent.objects.filter(event_type="payment_intent.succeeded").first(),
            describe="localstripe's payment_intent.succeeded is stored",
        )
        assert stored.payload["data"]["object"]["id"] == intent["id"]
        assert stored.payload["data"]["object"]["status"] == "succeeded"
        # localstripe has no Connect: its events name no account, so no clinic of ours.
        wait_until(
            lambda: GatewayEvent.objects.get(pk=stored.pk).status == GatewayEventStatus.IGNORED,
            describe="the stored event is ignored",
        )
    else:
        # The endpoint answered localstripe's delivery, refusing the signature; nothing was stored.
        wait_until(
            lambda: _delivery_logged(caplog, 'webhook "payment_intent.succeeded" failed with response code 400'),
            describe="localstripe's delivery of payment_intent.succeeded is refused",
        )
        assert GatewayEvent.objects.count() == 0


# -- recovering events that never reached us ----------------------------------------------------------


def test_the_periodic_listing_recovers_events_that_never_arrived(stripe_world, stripe_organization, django_capture_on_commit_callbacks):
    transaction = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=6100, record=False)

    with django_capture_on_commit_callbacks(execute=True):
        recovered = stripe_events_recover_task.delay().get()

    transaction.refresh_from_db()
    assert recovered >= 1
    assert (transaction.status, transaction.charged_cents) == (TransactionStatus.SUCCEEDED, 6100)
    event = GatewayEvent.objects.get(event_type="payment_intent.succeeded")
    assert (event.status, event.organization_id, event.payload["account"]) == (
        GatewayEventStatus.PROCESSED, stripe_organization.pk, stripe_organization.stripe_account_id
    )
    listings = stripe_world.http.sent("GET", "/v1/events")
    assert sorted(r.account or "" for r in listings) == ["", stripe_organization.stripe_account_id]
    assert all(int(r.params["created"]["gt"]) > time.time() - 3 * 24 * 3600 - 60 for r in listings)
    cursor = GatewayEventCursor.objects.get(account=stripe_organization.stripe_account_id)
    assert cursor.last_event_created == max(e.payload["created"] for e in GatewayEvent.objects.all())

    # The next run stores nothing again, and lists from just before the newest event seen.
    assert stripe_events_recover() == 0
    latest = stripe_world.http.sent("GET", "/v1/events")[-1]
    assert int(latest.params["created"]["gt"]) == cursor.last_event_created - 300


def test_an_event_already_delivered_is_not_stored_twice_by_the_listing(stripe_world, stripe_organization, django_capture_on_commit_callbacks):
    stripe_checkout_paid(stripe_world, stripe_organization, record=False)
    listed = list(StripeGateway().events_list(account=stripe_organization.stripe_account_id, created_after=0))
    with django_capture_on_commit_callbacks(execute=True):
        for payload in listed:
            event_receive(payload)
    before = GatewayEvent.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        assert stripe_events_recover() == 0

    assert GatewayEvent.objects.count() == before == len(listed)


def test_the_listing_does_nothing_without_stripe_keys(settings, db):
    settings.STRIPE_SECRET_KEY = ""

    assert stripe_events_recover() == 0
    assert GatewayEventCursor.objects.count() == 0


def test_the_listing_is_on_the_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["stripe-events-recover"]
    assert (entry["task"], entry["schedule"]) == ("transactions.tasks.stripe_events_recover", 600)


def test_a_clinic_stripe_refuses_to_list_does_not_stop_the_others(stripe_world, stripe_organization, other_organization, django_capture_on_commit_callbacks):
    stripe_clinic(stripe_world, other_organization)
    transaction = stripe_checkout_paid(stripe_world, stripe_organization, record=False)
    stripe_world.http.answer_once(
        "GET", "/v1/events", status=403, body={"error": {"type": "invalid_request_error", "message": "The account has revoked access."}}
    )

    with django_capture_on_commit_callbacks(execute=True):
        stripe_events_recover()

    assert GatewayEventCursor.objects.filter(account="").count() == 0  # the platform's listing was refused
    transaction.refresh_from_db()
    assert transaction.status == TransactionStatus.SUCCEEDED


def test_signature_helper_matches_the_librarys_own(stripe_world):
    import stripe

    body = event_body({"id": "evt_1"})
    header = stripe_signature(body, timestamp=1700000000)
    assert header == stripe.WebhookSignature.generate_signature_header(body.decode(), WEBHOOK_SECRET, timestamp=1700000000)
