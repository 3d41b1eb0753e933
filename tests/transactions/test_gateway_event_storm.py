"""Issue 8's "Done means", end to end: a storm of signed Stripe deliveries over HTTP to gunicorn,
processed by a prefork Celery worker through Redis with beat's sweeps running, and in the middle of
it the worker SIGKILLed and PostgreSQL restarted. Within five minutes every event is processed,
every patient who paid has exactly one receipt, the ledger equals the same events processed once in
order, and the refunds the clinic made in its Stripe Dashboard are in it, as made outside LumaPay.

PostgreSQL here is a cluster of the test's own (tests/postgres_cluster.py), never the shared
server; Stripe is a real localstripe (the workers read charges and refunds from it); e-mail is
counted as the worker processes hand it over (tests/mail_files.py), one file per message sent.
"""

from __future__ import annotations

import random
import threading
import time
from contextlib import contextmanager

import pytest
import requests
from django.db import DatabaseError, connection, connections

from ehr_sync.models import Patient
from lumapay.enums import AuditAction
from lumapay.models import ActorType, AuditEvent
from tests.mail_files import DIRECTORY_VARIABLE, messages_sent
from tests.postgres_cluster import PostgresCluster
from tests.processes import Stack, redis_or_skip
from tests.waiting import wait_until
from transactions.enums import DeliveryStatus, GatewayEventStatus, MessagePurpose, RefundStatus, TransactionEventKind as Kind
from transactions.models import GatewayEvent, PaymentRequestDelivery, Refund, TransactionEvent
from transactions.selectors.ledger import OUTSIDE_ACTOR, transaction_timeline

from ..factories import LocationFactory, OrganizationFactory, PatientFactory
from ..stripe_support import (
    CARD_DECLINED_AT_CHARGE,
    SECRET_KEY,
    WEBHOOK_SECRET,
    dispute_funds_withdrawn,
    dispute_object,
    event_receive,
    stripe_checkout_open,
    stripe_clinic,
    stripe_event,
)
from .test_gateway_event_faults import _deliver, _web
from .test_stripe_reliability import _ledger_snapshot

pytestmark = [pytest.mark.worker, pytest.mark.reliability]

STORM_DATABASE = "lumapay_storm"
ORDERED_DATABASE = "lumapay_storm_in_order"
PAYMENTS = 40
DUPLICATES = 0.3
SENDERS = 6
# What issue 8 promises, from the moment the database is back.
DONE_WITHIN_SECONDS = 5 * 60
SWEEP_EVERY_SECONDS = 1
SWEEP_AFTER_SECONDS = 5
CLAIM_LEASE_SECONDS = 15
RESEND_EVERY_SECONDS = 3

# Realistic, varied names, paired differently for each patient.
FIRST_NAMES = ["Maria", "James", "Aiko", "Jorge", "Fatima", "Liam", "Lan", "Sofia", "Kwame", "Olga", "Ravi", "Chloé", "Noah"]
LAST_NAMES = ["Okafor", "Tanaka", "García", "Haddad", "O'Brien", "Nguyen", "Rossi", "Mensah", "Ivanova", "Patel", "Dubois"]


# -- the cluster, and the test process's own connection to it ------------------------------------------


@pytest.fixture(scope="module")
def storm_cluster():
    redis_or_skip()  # before the cluster: nothing to start when the test cannot run
    cluster = PostgresCluster()
    try:
        cluster.database_create(STORM_DATABASE)
        cluster.migrate(STORM_DATABASE)
        yield cluster
    finally:
        connections.close_all()
        cluster.destroy()


@contextmanager
def _django_uses(database: dict):
    """Point the test process's default connection (every thread's) at another database, and back."""
    connections.close_all()
    saved = dict(connection.settings_dict)
    connection.settings_dict.update(database)
    try:
        yield
    finally:
        connections.close_all()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


@pytest.fixture
def storm_database(storm_cluster, django_db_blocker):
    with django_db_blocker.unblock(), _django_uses(storm_cluster.django_settings(STORM_DATABASE)):
        yield storm_cluster


# -- the storm's payments, at Stripe ----------------------------------------------------------------------


def _storm_payments_and_events(stripe_world, organization) -> tuple[list[dict], list[dict]]:
    """PAYMENTS payments made at Stripe and every event Stripe sent about them, in the order Stripe
    created them; nothing has reached LumaPay yet. Among them: declines, refunds LumaPay asked for,
    refunds the clinic made in its Stripe Dashboard (one charge refunded there twice, one in full),
    a dispute lost and an inquiry. Returns the events and the Dashboard's refunds."""
    server, account = stripe_world.server, organization.stripe_account_id
    location = LocationFactory(organization=organization, name="Downtown Clinic", address="12 Elm St")
    events: list[dict] = []
    dashboard_refunds: list[dict] = []
    clock = 1_900_000_000

    def emit(event_type: str, obj: dict) -> None:
        nonlocal clock
        clock += 1
        events.append(stripe_event(event_type, obj, account=account, created=clock))

    def charge_now(charge_id: str) -> dict:
        charge = server.call("GET", f"/v1/charges/{charge_id}")
        charge.pop("refunds", None)  # as Stripe sends it since 2022-11-15: LumaPay lists them
        return charge

    for index in range(PAYMENTS):
        patient = PatientFactory(
            organization=organization,
            first_name=FIRST_NAMES[index % len(FIRST_NAMES)],
            last_name=LAST_NAMES[index % len(LAST_NAMES)],
        )
        amount = 1800 + 173 * index
        transaction = stripe_checkout_open(organization, amount_cents=amount, patient=patient, location=location)
        declined = index % 10 == 9
        intent = stripe_world.checkout.pay(
            transaction.gateway_checkout_id, card_number=CARD_DECLINED_AT_CHARGE if declined else "4242424242424242"
        )
        intent_event = {**intent, "latest_charge": intent["latest_charge"]["id"]}
        intent_event.pop("charges", None)
        if declined:
            emit("payment_intent.payment_failed", intent_event)
            continue
        emit("payment_intent.succeeded", intent_event)
        emit("checkout.session.completed", stripe_world.checkout.sessions[transaction.gateway_checkout_id])
        charge_id = intent["latest_charge"]["id"]

        if index % 5 == 1:  # a partial refund LumaPay asked for (its events come back through the webhook)
            refund = Refund.objects.create(
                organization=organization, transaction=transaction, amount_cents=1000, reason="Overcharged"
            )
            made = server.call(
                "POST", "/v1/refunds", payment_intent=intent["id"], amount=1000,
                metadata={"lumapay_refund_id": str(refund.pk), "lumapay_idempotency_key": str(refund.idempotency_key)},
            )  # fmt: skip
            emit("refund.created", made)
            emit("charge.refunded", charge_now(charge_id))
        if index % 5 == 3:  # refunds the clinic made in its Stripe Dashboard: no metadata of ours
            amounts = {3: [700, 500], 13: [amount]}.get(index, [900])
            for refund_amount in amounts:
                made = server.call("POST", "/v1/refunds", payment_intent=intent["id"], amount=refund_amount)
                dashboard_refunds.append(made)
                emit("refund.created", made)
                emit("charge.refunded", charge_now(charge_id))
                emit("refund.updated", made)
        if index == 20:  # a dispute, lost: the whole charge back to the cardholder, with Stripe's fee
            withdrawal = dispute_funds_withdrawn(dispute_id="dp_storm_lost", charge=charge_id, amount_cents=amount)
            for step, status in enumerate(["needs_response", "under_review", "lost"]):
                dispute = dispute_object(
                    charge=charge_id, payment_intent=intent["id"], amount_cents=amount, status=status,
                    dispute_id="dp_storm_lost", balance_transactions=[withdrawal],
                )  # fmt: skip
                emit({0: "charge.dispute.created", 2: "charge.dispute.closed"}.get(step, "charge.dispute.updated"), dispute)
        if index == 24:  # an inquiry: it holds no funds
            dispute = dispute_object(
                charge=charge_id, payment_intent=intent["id"], amount_cents=amount, status="warning_needs_response",
                dispute_id="dp_storm_inquiry",
            )  # fmt: skip
            emit("charge.dispute.created", dispute)
    return events, dashboard_refunds


# -- what the storm is compared with ------------------------------------------------------------------


def _ledger() -> dict:
    """``_ledger_snapshot`` with refunds named by their id at Stripe: a refund made in the Dashboard
    gets its row when its first event is processed, so its primary key (and the key of its
    request's ledger event, ``refund_requested:<pk>``) depends on the order."""
    names = {pk: gateway_id or f"pk {pk}" for pk, gateway_id in Refund.objects.values_list("pk", "gateway_refund_id")}

    def named(event: tuple) -> tuple:
        kind, amount, key, reference, message, refund_id = event
        if refund_id is not None:
            key = key.replace(f"refund_requested:{refund_id}", f"refund_requested:{names[refund_id]}")
        return (kind, amount, key, reference, message, names.get(refund_id))

    snapshot = _ledger_snapshot()
    for entry in snapshot.values():
        entry["events"] = sorted(named(event) for event in entry["events"])
        entry["refunds"] = sorted((names[refund[0]],) + refund[1:] for refund in entry["refunds"])
    return snapshot


def _ordered_run(storm_cluster, events: list[dict], monkeypatch) -> dict:
    """The same events, each once, in order, in a copy of the database as it stood before any
    arrived; processed in this process, receipts left owed (they are counted in the storm)."""
    connections.close_all()
    storm_cluster.database_create(ORDERED_DATABASE, template=STORM_DATABASE)
    with _django_uses(storm_cluster.django_settings(ORDERED_DATABASE)), monkeypatch.context() as quiet:
        quiet.setattr("transactions.tasks.patient_message_send.delay", lambda *args, **kwargs: None)
        for event in sorted(events, key=lambda event: event["created"]):
            event_receive(event)
        assert not GatewayEvent.objects.exclude(status=GatewayEventStatus.PROCESSED).exists()
        return _ledger()


# -- the senders: Stripe's deliveries, retried as Stripe retries a delivery that failed -------------


class Senders:
    """SENDERS threads posting the deliveries at once, in three stretches: the first quarter, up to
    half way, the rest. Between two stretches each sender stops at a gate until the test has done
    its harm (so the harm lands mid-storm, whatever the machine's speed) and lets them go on. A
    delivery not answered 200 (the database is down, the web could not store it) is sent again
    once the database is back, as Stripe retries a delivery that failed."""

    def __init__(self, url: str, deliveries: list[dict]) -> None:
        self.url, self.deliveries = url, deliveries
        self.stretch_ends = [len(deliveries) // 4, len(deliveries) // 2]
        self.answered = 0  # deliveries answered 200
        self.refused = 0  # attempts answered otherwise, or not at all
        self.database_back = threading.Event()
        self.problems: list[str] = []
        self._arrived = [threading.Barrier(SENDERS + 1) for _ in self.stretch_ends]
        self._go_on = [threading.Event() for _ in self.stretch_ends]
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._send, args=(first,)) for first in range(SENDERS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def at_gate(self, gate: int) -> None:
        """Return once every sender has sent its share of the stretch before ``gate``."""
        self._arrived[gate].wait(timeout=DONE_WITHIN_SECONDS)

    def go_on(self, gate: int) -> None:
        self._go_on[gate].set()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=DONE_WITHIN_SECONDS)
        assert not any(thread.is_alive() for thread in self._threads), "a sender did not finish"

    def _attempt(self, event: dict) -> bool:
        try:
            status = _deliver(self.url, event)
        except requests.RequestException as error:
            status = repr(error)
        with self._lock:
            if status == 200:
                self.answered += 1
            else:
                self.refused += 1
        return status == 200

    def _send(self, first: int) -> None:
        failed = []
        gate = 0
        for position in range(first, len(self.deliveries), SENDERS):
            while gate < len(self.stretch_ends) and position >= self.stretch_ends[gate]:
                self._arrived[gate].wait(timeout=DONE_WITHIN_SECONDS)
                self._go_on[gate].wait(timeout=DONE_WITHIN_SECONDS)
                gate += 1
            if not self._attempt(self.deliveries[position]):
                failed.append(self.deliveries[position])
        for remaining in range(gate, len(self.stretch_ends)):  # a sender whose share ended early
            self._arrived[remaining].wait(timeout=DONE_WITHIN_SECONDS)
        if failed and not self.database_back.wait(timeout=DONE_WITHIN_SECONDS):
            self.problems.append(f"sender {first}: the database never came back")
            return
        for event in failed:
            # Stripe retries for days; a few times is plenty once the database is up.
            if not any(self._attempt(event) for _ in range(5)):
                self.problems.append(f"sender {first}: {event['id']} refused five times after the restart")


# -- what the worker did ----------------------------------------------------------------------------


def _unsettled() -> int:
    return GatewayEvent.objects.exclude(status=GatewayEventStatus.PROCESSED).count()


def _receipts_sent(mail_directory) -> list[tuple[str, str, float]]:
    """(recipient, Message-ID, when) of every receipt e-mail the workers handed over."""
    return [
        (message["To"], message["Message-ID"], handed_over_at)
        for handed_over_at, message in messages_sent(mail_directory)
        if message.get_content_type() == "multipart/mixed"  # the receipt carries its PDF
    ]


def _receipt_being_prepared(mail_directory) -> bool:
    """A worker has claimed a receipt and not handed it over yet: it is rendering its PDF."""
    handed_over = {int(message_id.split("@")[0].rsplit(".", 1)[1]) for _, message_id, _ in _receipts_sent(mail_directory)}
    claimed = PaymentRequestDelivery.objects.filter(
        purpose=MessagePurpose.RECEIPT, status=DeliveryStatus.QUEUED, claimed_until__isnull=False
    ).values_list("pk", flat=True)
    return bool(set(claimed) - handed_over)


def _receipts_owed() -> int:
    return PaymentRequestDelivery.objects.filter(purpose=MessagePurpose.RECEIPT).exclude(status=DeliveryStatus.SENT).count()


def _progress(stack, mail_directory) -> str:
    try:
        unsettled = list(
            GatewayEvent.objects.exclude(status=GatewayEventStatus.PROCESSED)
            .values_list("event_type", "status", "attempts", "error_message")[:20]
        )
        owed = list(
            PaymentRequestDelivery.objects.filter(purpose=MessagePurpose.RECEIPT)
            .exclude(status=DeliveryStatus.SENT)
            .values_list("pk", "status", "attempts", "claimed_until", "next_attempt_at", "error_message")[:20]
        )
    except DatabaseError as error:
        connections.close_all()
        return f"the database does not answer: {error}"
    return (
        f"events not processed: {unsettled}\nreceipts still owed: {owed}\n"
        f"receipt e-mails sent: {len(_receipts_sent(mail_directory))}\n{stack.logs()}"
    )


def _database_query(predicate):
    """The predicate, or False while the test's own connection is one the restart ended."""

    def asked():
        try:
            return predicate()
        except DatabaseError:
            connections.close_all()
            return False

    return asked


# -- the test -------------------------------------------------------------------------------------------


def test_a_storm_with_the_worker_killed_and_the_database_restarted_loses_nothing(
    storm_database, stripe_world, localstripe_server, tmp_path, monkeypatch
):
    cluster = storm_database
    organization = stripe_clinic(stripe_world, OrganizationFactory(name="Riverside Family Medicine"))
    events, dashboard_refunds = _storm_payments_and_events(stripe_world, organization)
    in_order = _ordered_run(cluster, events, monkeypatch)
    paid = {checkout_id for checkout_id, entry in in_order.items() if entry["totals"][1] > 0}

    # The storm: shuffled, 30% delivered twice, SENDERS senders; gunicorn, a prefork worker and beat.
    rng = random.Random(20261129)
    deliveries = events + rng.sample(events, k=round(len(events) * DUPLICATES))
    rng.shuffle(deliveries)
    mail_directory = tmp_path / "mail"
    stack = Stack(
        tmp_path,
        DATABASE_URL=cluster.url(STORM_DATABASE),
        ALLOWED_HOSTS="127.0.0.1",
        STRIPE_SECRET_KEY=SECRET_KEY,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=localstripe_server.url,
        EMAIL_BACKEND="tests.mail_files.EmailBackend",
        **{DIRECTORY_VARIABLE: str(mail_directory)},
        GATEWAY_EVENTS_SWEEP_EVERY_SECONDS=str(SWEEP_EVERY_SECONDS),
        GATEWAY_EVENTS_SWEEP_AFTER_SECONDS=str(SWEEP_AFTER_SECONDS),
        # A receipt a killed worker had claimed waits out the claim, then the next resend sweep
        # sends it (2 and 2 minutes in production; seconds here, the claim still several sends long).
        PATIENT_MESSAGE_CLAIM_LEASE_SECONDS=str(CLAIM_LEASE_SECONDS),
        EMAIL_TIMEOUT_SECONDS="4",
        PATIENT_MESSAGES_RESEND_EVERY_MINUTES=str(RESEND_EVERY_SECONDS / 60),
        # Beat's other tasks stay out of the way (listing localstripe's events would add others').
        PAYMENT_REQUESTS_EXPIRE_EVERY_MINUTES="1440",
        STRIPE_EVENTS_RECOVER_EVERY_MINUTES="1440",
        TRANSACTION_EXPORTS_EXPIRE_EVERY_MINUTES="1440",
        AUTHORIZATIONS_RELEASE_EVERY_MINUTES="1440",
    )
    try:
        url = _web(stack, workers=3)
        first_worker = stack.worker(concurrency=3)
        stack.beat()
        senders = Senders(url, deliveries)
        started = time.monotonic()
        senders.start()

        # A quarter in, while the worker prepares a receipt: SIGKILL to the worker and its pool;
        # its replacement starts at once, as a supervisor starts it.
        senders.at_gate(0)
        wait_until(
            lambda: _receipt_being_prepared(mail_directory), timeout_seconds=120, interval_seconds=0.05,
            describe=lambda: f"a receipt is being prepared\n{_progress(stack, mail_directory)}",
        )  # fmt: skip
        first_worker.kill()
        killed_at, killed_at_epoch = time.monotonic() - started, time.time()
        senders.go_on(0)
        stack.worker(concurrency=3)

        # Half way: PostgreSQL stops (every session ended) and stays down while the next
        # deliveries are refused, then starts again; the refused ones are sent again.
        senders.at_gate(1)
        cluster.stop()
        stopped = time.monotonic()
        senders.go_on(1)
        wait_until(lambda: senders.refused >= SENDERS, timeout_seconds=60, interval_seconds=0.05)
        cluster.start()
        restarted = time.monotonic()
        down_seconds = restarted - stopped
        connections.close_all()
        senders.database_back.set()

        senders.join()
        assert senders.problems == []
        wait_until(
            _database_query(lambda: _unsettled() == 0 and _receipts_owed() == 0),
            timeout_seconds=DONE_WITHIN_SECONDS, interval_seconds=0.5,
            describe=lambda: _progress(stack, mail_directory),
        )  # fmt: skip
        drained_seconds = time.monotonic() - restarted
        receipts = _receipts_sent(mail_directory)
    finally:
        stack.stop()

    # Every event stored once, processed, none given up, and the ledger the ordered run's.
    assert GatewayEvent.objects.count() == len(events)
    assert set(GatewayEvent.objects.values_list("status", "error_message")) == {(GatewayEventStatus.PROCESSED, "")}
    storm_ledger = _ledger()
    differing = {key: (storm_ledger.get(key), in_order[key]) for key in in_order if storm_ledger.get(key) != in_order[key]}
    assert differing == {}, "\n".join(f"{key}:\n  storm:    {got}\n  in order: {wanted}" for key, (got, wanted) in differing.items())
    assert storm_ledger == in_order

    # Every patient who paid has exactly one receipt: one e-mail each, one owed row each, sent.
    paid_patients = Patient.objects.filter(transactions__gateway_checkout_id__in=paid)
    # The one exception, which no sender can avoid: a receipt the killed worker handed to the
    # provider in the instant before SIGKILL, not yet marked sent, is sent again after its claim
    # (at least once, never lost), with the same Message-ID, by which mailbox providers drop it.
    first_copies: dict[str, tuple[str, float]] = {}
    for recipient, message_id, when in sorted(receipts, key=lambda receipt: receipt[2]):
        first_copies.setdefault(message_id, (recipient, when))
    again = [(recipient, message_id, when) for recipient, message_id, when in receipts if first_copies[message_id][1] != when]
    assert all(first_copies[message_id][1] <= killed_at_epoch for _, message_id, _ in again), (again, killed_at_epoch)
    assert sorted(recipient for recipient, _ in first_copies.values()) == sorted(paid_patients.values_list("email", flat=True))
    assert len(first_copies) == len(paid)
    assert PaymentRequestDelivery.objects.filter(purpose=MessagePurpose.RECEIPT, status=DeliveryStatus.SENT).count() == len(paid)
    assert AuditEvent.objects.filter(action=AuditAction.RECEIPT_SENT).count() == len(paid)

    # The refunds made in the Dashboard are in the ledger, as made outside LumaPay, by the processor.
    for made in dashboard_refunds:
        refund = Refund.objects.select_related("transaction").get(gateway_refund_id=made["id"])
        assert (refund.is_made_outside, refund.status, refund.amount_cents, refund.requested_by) == (
            True, RefundStatus.SUCCEEDED, made["amount"], None
        )
        succeeded = TransactionEvent.objects.get(refund=refund, kind=Kind.REFUND_SUCCEEDED)
        assert succeeded.actor_type == ActorType.GATEWAY
        timeline = {
            (entry.title, entry.actor, entry.amount_cents) for entry in transaction_timeline(transaction=refund.transaction)
        }
        assert ("Refund succeeded", OUTSIDE_ACTOR, made["amount"]) in timeline

    retried_events = GatewayEvent.objects.filter(attempts__gte=2).count()
    retried_receipts = PaymentRequestDelivery.objects.filter(purpose=MessagePurpose.RECEIPT, attempts__gte=2).count()
    print(
        f"storm: {len(deliveries)} deliveries of {len(events)} events for {PAYMENTS} payments, {SENDERS} senders; "
        f"worker killed {killed_at:.1f} s in; PostgreSQL down {down_seconds:.1f} s ({senders.refused} deliveries "
        f"refused, sent again); {retried_events} events and {retried_receipts} receipts took more than one attempt; "
        f"every event processed and {len(first_copies)} receipts sent, one per paying patient "
        f"({len(again)} sent again after the kill), "
        f"{drained_seconds:.1f} s after the restart"
    )

