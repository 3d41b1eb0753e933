"""The event path: a gateway's webhook is verified, stored raw once, processed in its own
transaction, and can be replayed."""

import dataclasses
import hashlib
import hmac
import json
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError

from lumapay.models import AuditEvent, Installation, installation_sandbox_webhook_secret_new
from transactions.enums import GatewayEventStatus, PaymentRequestStatus, TransactionEventKind as Kind
from transactions.gateways.base import GatewayUnavailable, LedgerFact
from transactions.gateways.sandbox import SandboxGateway
from transactions.models import GatewayEvent, SandboxCharge, Transaction, TransactionEvent
from transactions.sandbox import processor as sandbox_processor
from transactions.services import gateway_events
from transactions.services.gateway_events import (
    GatewayEventReplayFailed,
    gateway_event_process,
    gateway_event_receive,
    gateway_event_replay,
)
from transactions.services.payments import checkout_begin

from .pay_support import payment_request_make

pytestmark = pytest.mark.django_db


def _ledger_facts_applied_by(monkeypatch, apply) -> None:
    """Apply ledger facts with ``apply`` instead (a failure to record), for this test only."""
    kind = dataclasses.replace(gateway_events.FACT_KINDS[LedgerFact], apply=apply)
    monkeypatch.setitem(gateway_events.FACT_KINDS, LedgerFact, kind)

URL = "/webhooks/sandbox/"


def _signed(body: bytes, *, secret: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def _post(client, event: dict, *, secret: str, timestamp: int | None = None, body: bytes | None = None):
    raw = json.dumps(event).encode()
    return client.post(
        URL,
        data=body if body is not None else raw,
        content_type="application/json",
        headers={"Sandbox-Signature": _signed(raw, secret=secret, timestamp=timestamp)},
    )


@pytest.fixture
def paid_charge(organization, django_capture_on_commit_callbacks):
    """A request whose checkout the patient paid at the Sandbox, before any event reached us."""
    payment_request = payment_request_make(organization=organization, amount_cents=4500)
    start = checkout_begin(payment_request=payment_request, ip_address="127.0.0.1")
    with django_capture_on_commit_callbacks(execute=False):
        sandbox_processor.card_submit(
            session_id=start.checkout_id, card_number="4242424242424242", expiry_month="12", expiry_year="2040", cvc="123"
        )
    return SandboxCharge.objects.get(session_id=start.checkout_id)


def _charge_event(charge, event_id="evt_sbx_test_1", event_type="charge.succeeded") -> dict:
    return {
        "id": event_id,
        "type": event_type,
        "created": int(time.time()),
        "account": charge.session.organization_id,
        "data": {
            "object": {
                "object": "charge",
                "id": charge.id,
                "checkout_session": charge.session_id,
                "client_reference": charge.session.client_reference,
                "amount": charge.amount_cents,
                "currency": "usd",
                "paid": True,
                "failure_code": "",
                "failure_message": "",
                "authorization_code": charge.authorization_code,
                "card": {"brand": "visa", "last4": "4242"},
            }
        },
    }


def test_the_sandbox_secret_is_random_per_installation_and_made_from_nothing_public(settings):
    # given no SANDBOX_WEBHOOK_SECRET in the environment (the default)
    assert settings.SANDBOX_WEBHOOK_SECRET == ""

    secret = sandbox_processor.webhook_secret()

    # then it is the random one the database holds, long, and the same on every call
    assert secret == Installation.objects.get(pk=1).sandbox_webhook_secret
    assert len(secret) >= 40 and secret == sandbox_processor.webhook_secret()
    assert settings.SECRET_KEY not in secret and secret != PUBLIC_DERIVED_SECRET
    assert installation_sandbox_webhook_secret_new() != installation_sandbox_webhook_secret_new()


def test_the_sandboxs_own_events_verify_with_the_installations_secret_or_the_configured_one(
    settings, paid_charge, django_capture_on_commit_callbacks
):
    # the Sandbox's sender and the webhook use the same secret: the database's ...
    with django_capture_on_commit_callbacks(execute=True):
        assert sandbox_processor.event_post(_charge_event(paid_charge, event_id="evt_sbx_own_1")) == 200
    # ... or SANDBOX_WEBHOOK_SECRET when it is set
    settings.SANDBOX_WEBHOOK_SECRET = "configured-sandbox-secret-0123456789abcdef"
    assert sandbox_processor.webhook_secret() == "configured-sandbox-secret-0123456789abcdef"
    with django_capture_on_commit_callbacks(execute=True):
        assert sandbox_processor.event_post(_charge_event(paid_charge, event_id="evt_sbx_own_2")) == 200
    assert GatewayEvent.objects.count() == 2


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"])
def test_an_event_not_sent_as_json_is_a_415_and_nothing_is_stored(client, paid_charge, content_type, django_capture_on_commit_callbacks):
    event = _charge_event(paid_charge)
    raw = json.dumps(event).encode()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(
            URL, data=raw, content_type=content_type,
            headers={"Sandbox-Signature": _signed(raw, secret=sandbox_processor.webhook_secret())},
        )  # fmt: skip

    assert response.status_code == 415
    assert response.json() == {"error": "Send the event as application/json."}
    assert _stored() == (0, 0)
    assert callbacks == []


def _stored():
    return (GatewayEvent.objects.count(), TransactionEvent.objects.exclude(kind=Kind.CHARGE_REQUESTED).count())


# What the Sandbox's secret used to be by default in development: "sandbox:" and the development
# SECRET_KEY, which is in this repository for anyone to read.
PUBLIC_DERIVED_SECRET = "sandbox:dev-only-insecure-key-never-use-in-production"


@pytest.mark.parametrize(
    "problem",
    ["bad signature", "old timestamp", "future timestamp", "signed with the public-derived key", "altered body", "no header", "not json"],
)
def test_an_event_that_does_not_verify_is_a_400_and_nothing_is_stored(
    client, settings, paid_charge, problem, django_capture_on_commit_callbacks
):
    event = _charge_event(paid_charge)
    raw = json.dumps(event).encode()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        if problem == "bad signature":
            response = _post(client, event, secret="not-the-secret")
        elif problem == "old timestamp":
            response = _post(client, event, secret=sandbox_processor.webhook_secret(), timestamp=int(time.time()) - 301)
        elif problem == "future timestamp":
            response = _post(client, event, secret=sandbox_processor.webhook_secret(), timestamp=int(time.time()) + 3600)
        elif problem == "signed with the public-derived key":
            response = _post(client, event, secret=PUBLIC_DERIVED_SECRET)
        elif problem == "altered body":
            altered = raw.replace(b'"amount": 4500', b'"amount": 1')
            assert altered != raw
            response = _post(client, event, secret=sandbox_processor.webhook_secret(), body=altered)
        elif problem == "no header":
            response = client.post(URL, data=raw, content_type="application/json")
        else:
            body = b"not json"
            response = client.post(
                URL,
                data=body,
                content_type="application/json",
                headers={"Sandbox-Signature": _signed(body, secret=sandbox_processor.webhook_secret())},
            )

    assert response.status_code == 400
    assert _stored() == (0, 0)
    assert callbacks == []
    assert Transaction.objects.get().status == "pending"


def test_a_verified_event_is_stored_raw_and_applied(client, settings, paid_charge, django_capture_on_commit_callbacks):
    event = _charge_event(paid_charge)

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(client, event, secret=sandbox_processor.webhook_secret())

    assert response.status_code == 200
    assert response.json() == {"received": True, "id": "evt_sbx_test_1"}
    stored = GatewayEvent.objects.get()
    transaction = Transaction.objects.get()
    assert (stored.gateway, stored.event_id, stored.event_type, stored.payload) == (
        "sandbox",
        "evt_sbx_test_1",
        "charge.succeeded",
        event,
    )
    assert (stored.status, stored.attempts, stored.error_message, stored.organization_id) == (
        GatewayEventStatus.PROCESSED,
        1,
        "",
        transaction.organization_id,
    )
    assert stored.processed_at is not None
    succeeded = TransactionEvent.objects.get(kind=Kind.CHARGE_SUCCEEDED)
    assert (succeeded.amount_cents, succeeded.gateway_event_id, succeeded.gateway_reference, succeeded.actor_type) == (
        4500,
        "evt_sbx_test_1",
        paid_charge.id,
        "gateway",
    )
    assert transaction.payment_request.status == PaymentRequestStatus.PAID


def test_the_same_event_delivered_twice_is_one_row_and_one_ledger_event(
    client, settings, paid_charge, django_capture_on_commit_callbacks
):
    event = _charge_event(paid_charge)

    with django_capture_on_commit_callbacks(execute=True) as first_callbacks:
        first = _post(client, event, secret=sandbox_processor.webhook_secret())
    with django_capture_on_commit_callbacks(execute=True) as second_callbacks:
        second = _post(client, event, secret=sandbox_processor.webhook_secret())

    assert (first.status_code, second.status_code) == (200, 200)
    assert _stored() == (1, 1)
    assert GatewayEvent.objects.get().attempts == 1
    # The processed event is not queued again.
    assert len(second_callbacks) == 0 and len(first_callbacks) >= 1


def test_the_sandbox_delivery_itself_goes_through_this_path_once(paid_charge, django_capture_on_commit_callbacks):
    payment_request = payment_request_make(organization=paid_charge.session.organization)
    start = checkout_begin(payment_request=payment_request, ip_address=None)
    with django_capture_on_commit_callbacks(execute=False) as deliveries:
        sandbox_processor.card_submit(
            session_id=start.checkout_id, card_number="4242424242424242", expiry_month="12", expiry_year="2040", cvc="123"
        )
    with django_capture_on_commit_callbacks(execute=True):
        deliveries[0]()
        deliveries[0]()  # the processor retries the same event

    event = GatewayEvent.objects.get()
    transaction = Transaction.objects.get(gateway_checkout_id=start.checkout_id)
    assert (event.status, event.attempts) == (GatewayEventStatus.PROCESSED, 1)
    assert list(TransactionEvent.objects.filter(transaction=transaction).values_list("kind", flat=True)) == [
        Kind.CHARGE_REQUESTED,
        Kind.CHARGE_SUCCEEDED,
    ]


def test_the_sandbox_posts_its_events_to_the_webhook_which_refuses_a_bad_signature(
    paid_charge, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    payment_request = payment_request_make(organization=paid_charge.session.organization)
    start = checkout_begin(payment_request=payment_request, ip_address=None)
    with django_capture_on_commit_callbacks(execute=False) as deliveries:
        sandbox_processor.card_submit(
            session_id=start.checkout_id, card_number="4242424242424242", expiry_month="12", expiry_year="2040", cvc="123"
        )
    monkeypatch.setattr(sandbox_processor, "event_signature", lambda body, timestamp: f"t={timestamp},v1={'0' * 64}")

    with django_capture_on_commit_callbacks(execute=True):
        deliveries[0]()

    assert GatewayEvent.objects.count() == 0
    assert "the webhook answered 400" in caplog.text
    transaction = Transaction.objects.get(gateway_checkout_id=start.checkout_id)
    assert list(TransactionEvent.objects.filter(transaction=transaction).values_list("kind", flat=True)) == [
        Kind.CHARGE_REQUESTED
    ]


def test_an_unknown_event_type_is_a_200_stored_as_ignored(client, settings, paid_charge, django_capture_on_commit_callbacks):
    event = {"id": "evt_sbx_payout", "type": "payout.paid", "created": int(time.time()), "account": 1, "data": {"object": {"id": "po_1"}}}

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(client, event, secret=sandbox_processor.webhook_secret())

    assert response.status_code == 200
    stored = GatewayEvent.objects.get()
    assert (stored.event_type, stored.status, stored.attempts, stored.organization_id, stored.payload) == (
        "payout.paid",
        GatewayEventStatus.IGNORED,
        1,
        None,
        event,
    )
    assert _stored() == (1, 0)


def test_an_event_about_a_charge_we_do_not_know_is_processed_and_changes_nothing(
    client, settings, paid_charge, django_capture_on_commit_callbacks
):
    event = _charge_event(paid_charge, event_id="evt_sbx_elsewhere")
    event["data"]["object"].update(id="ch_sbx_unknown", checkout_session="cs_sbx_unknown")

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(client, event, secret=sandbox_processor.webhook_secret())

    assert response.status_code == 200
    assert GatewayEvent.objects.values_list("status", "organization_id").get() == (GatewayEventStatus.PROCESSED, None)
    assert _stored() == (1, 0)


def test_only_post_is_accepted(client, db):
    assert client.get(URL).status_code == 405
    assert GatewayEvent.objects.count() == 0


def test_a_failure_is_recorded_and_a_replay_applies_the_event(settings, paid_charge, monkeypatch, django_capture_on_commit_callbacks):
    event = _charge_event(paid_charge)
    body = json.dumps(event).encode()
    headers = {"Sandbox-Signature": _signed(body, secret=sandbox_processor.webhook_secret())}
    real_apply = gateway_events.ledger_fact_apply

    def broken_apply(**kwargs):
        raise ValueError("the ledger is not reachable in this test")

    _ledger_facts_applied_by(monkeypatch, broken_apply)
    with django_capture_on_commit_callbacks(execute=True):
        stored = gateway_event_receive(gateway="sandbox", body=body, headers=headers)
    stored.refresh_from_db()
    assert (stored.status, stored.attempts, stored.error_message) == (
        GatewayEventStatus.FAILED,
        1,
        "ValueError: the ledger is not reachable in this test",
    )
    assert _stored() == (1, 0)

    with pytest.raises(GatewayEventReplayFailed) as failed_again:
        gateway_event_replay(gateway_event_id=stored.pk)
    assert failed_again.value.message == "Event evt_sbx_test_1 failed again: ValueError: the ledger is not reachable in this test"
    stored.refresh_from_db()
    assert (stored.status, stored.attempts) == (GatewayEventStatus.FAILED, 2)

    _ledger_facts_applied_by(monkeypatch, real_apply)
    with django_capture_on_commit_callbacks(execute=True):
        replayed = gateway_event_replay(gateway_event_id=stored.pk)

    assert (replayed.status, replayed.attempts, replayed.error_message) == (GatewayEventStatus.PROCESSED, 3, "")
    assert _stored() == (1, 1)
    assert list(
        AuditEvent.objects.filter(action="gateway_event.replayed").values_list("actor_type", "changes")
    ) == [
        ("system", {"gateway_event": "evt_sbx_test_1", "status": ["failed", "received"]}),
        ("system", {"gateway_event": "evt_sbx_test_1", "status": ["failed", "received"]}),
    ]
    # Replaying a processed event again is harmless.
    gateway_event_replay(gateway_event_id=stored.pk)
    assert _stored() == (1, 1)


def test_a_transient_failure_is_recorded_and_raised_for_the_task_to_retry(settings, paid_charge, monkeypatch):
    body = json.dumps(_charge_event(paid_charge)).encode()
    headers = {"Sandbox-Signature": _signed(body, secret=sandbox_processor.webhook_secret())}

    def unavailable(**kwargs):
        raise GatewayUnavailable("The gateway timed out.")

    stored = gateway_event_receive(gateway="sandbox", body=body, headers=headers)
    _ledger_facts_applied_by(monkeypatch, unavailable)

    with pytest.raises(GatewayUnavailable):
        gateway_event_process(gateway_event_id=stored.pk)
    stored.refresh_from_db()
    assert (stored.status, stored.attempts, stored.error_message) == (
        GatewayEventStatus.FAILED,
        1,
        "GatewayUnavailable: The gateway timed out.",
    )

    def database_gone(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    _ledger_facts_applied_by(monkeypatch, database_gone)
    with pytest.raises(OperationalError):
        gateway_event_process(gateway_event_id=stored.pk)
    stored.refresh_from_db()
    assert (stored.status, stored.attempts) == (GatewayEventStatus.FAILED, 2)


def test_a_failed_event_delivered_again_is_queued_again(settings, paid_charge, monkeypatch, django_capture_on_commit_callbacks):
    body = json.dumps(_charge_event(paid_charge)).encode()
    headers = {"Sandbox-Signature": _signed(body, secret=sandbox_processor.webhook_secret())}
    real_apply = gateway_events.ledger_fact_apply
    _ledger_facts_applied_by(monkeypatch, lambda **kwargs: (_ for _ in ()).throw(ValueError("boom")))
    with django_capture_on_commit_callbacks(execute=True):
        gateway_event_receive(gateway="sandbox", body=body, headers=headers)
    assert GatewayEvent.objects.get().status == GatewayEventStatus.FAILED

    _ledger_facts_applied_by(monkeypatch, real_apply)
    with django_capture_on_commit_callbacks(execute=True):
        again = gateway_event_receive(gateway="sandbox", body=body, headers=headers)

    again.refresh_from_db()
    assert (GatewayEvent.objects.count(), again.status, again.attempts) == (1, GatewayEventStatus.PROCESSED, 2)
    assert _stored() == (1, 1)


def test_the_replay_command_replays_failed_events(settings, paid_charge, monkeypatch, capsys, django_capture_on_commit_callbacks):
    body = json.dumps(_charge_event(paid_charge)).encode()
    headers = {"Sandbox-Signature": _signed(body, secret=sandbox_processor.webhook_secret())}
    real_apply = gateway_events.ledger_fact_apply
    _ledger_facts_applied_by(monkeypatch, lambda **kwargs: (_ for _ in ()).throw(ValueError("boom")))
    with django_capture_on_commit_callbacks(execute=True):
        stored = gateway_event_receive(gateway="sandbox", body=body, headers=headers)

    with pytest.raises(CommandError, match=r"1 event\(s\) failed again"):
        call_command("replay_gateway_events", "--status", "failed")
    assert f"event {stored.pk} (charge.succeeded): failed: Event evt_sbx_test_1 failed again: ValueError: boom" in capsys.readouterr().err

    _ledger_facts_applied_by(monkeypatch, real_apply)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("replay_gateway_events", "--status", "failed")

    assert capsys.readouterr().out.splitlines() == [f"event {stored.pk} (charge.succeeded): processed", "1 replayed, 0 failed."]
    assert _stored() == (1, 1)
    with pytest.raises(CommandError, match="Name event ids, or choose events with --status"):
        call_command("replay_gateway_events")
    with pytest.raises(CommandError, match="No gateway event with id 999999"):
        call_command("replay_gateway_events", "999999")


@dataclasses.dataclass(frozen=True)
class _PayoutFact:
    """A kind of fact LumaPay does not apply yet (payouts come next)."""

    payout_id: str


def test_each_kind_of_fact_is_applied_through_its_entry_in_the_table(
    settings, paid_charge, monkeypatch, django_capture_on_commit_callbacks
):
    organization_id = paid_charge.session.organization_id
    event = {
        "id": "evt_sbx_payout_1",
        "type": "payout.paid",
        "created": int(time.time()),
        "account": organization_id,
        "data": {"object": {"id": "po_sbx_1"}},
    }
    body = json.dumps(event).encode()
    headers = {"Sandbox-Signature": _signed(body, secret=sandbox_processor.webhook_secret())}
    monkeypatch.setattr(
        SandboxGateway, "facts_from_payload", lambda self, *, payload: [_PayoutFact(payout_id=payload["data"]["object"]["id"])]
    )
    with django_capture_on_commit_callbacks(execute=True):
        stored = gateway_event_receive(gateway="sandbox", body=body, headers=headers)
    stored.refresh_from_db()
    without_an_entry = (stored.status, stored.error_message, stored.organization_id)

    applied = []
    monkeypatch.setitem(
        gateway_events.FACT_KINDS,
        _PayoutFact,
        gateway_events.FactKind(
            apply=lambda *, gateway, fact, gateway_event_id: applied.append((gateway, fact, gateway_event_id)) or True,
            organization_id=lambda *, gateway, fact: organization_id,
        ),
    )
    replayed = gateway_event_replay(gateway_event_id=stored.pk)

    assert without_an_entry == (
        GatewayEventStatus.FAILED,
        "LookupError: Nothing applies a _PayoutFact: it has no entry in FACT_KINDS.",
        None,
    )
    assert (replayed.status, replayed.attempts, replayed.organization_id) == (
        GatewayEventStatus.PROCESSED,
        2,
        organization_id,
    )
    assert applied == [("sandbox", _PayoutFact(payout_id="po_sbx_1"), "evt_sbx_payout_1")]
    assert _stored() == (1, 0)
