"""Gateway events under faults, end to end: signed deliveries over real HTTP to gunicorn, processed
by real Celery workers through Redis, against the test database and a real localstripe (the
workers read payments from it, as they read them from Stripe).

A delivered event is answered 200 once it is stored, so the gateway never sends it again: whatever
happens to the worker afterwards, LumaPay alone must get it processed, once.
"""

from __future__ import annotations

import random
import re
import threading
import time

import pytest
import requests
from django.db import connection, connections, transaction as db_transaction

from lumapay.models import AuditEvent
from tests.processes import Stack, queue_length
from tests.waiting import wait_until
from transactions.enums import GatewayEventStatus, TransactionEventKind as Kind, TransactionStatus
from transactions.models import GatewayEvent, Transaction, TransactionEvent

from ..stripe_support import (
    SECRET_KEY,
    WEBHOOK_SECRET,
    event_body,
    event_receive,
    session_completed_event,
    stripe_checkout_paid,
    stripe_signature,
)
from .test_stripe_reliability import _books_reopen, _ledger_snapshot, _payments_and_their_events

pytestmark = [pytest.mark.worker, pytest.mark.reliability]

SWEEP_EVERY_SECONDS = 1
SWEEP_AFTER_SECONDS = 5
SETTLE_SECONDS = 120


@pytest.fixture
def stack(transactional_db, tmp_path, stripe_world):
    """Processes started by the test, pointed at localstripe; stopped (before pytest-django empties
    the tables) whatever the test did to them."""
    started = Stack(
        tmp_path,
        ALLOWED_HOSTS="127.0.0.1",
        STRIPE_SECRET_KEY=SECRET_KEY,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=stripe_world.server.url,
        GATEWAY_EVENTS_SWEEP_EVERY_SECONDS=str(SWEEP_EVERY_SECONDS),
        GATEWAY_EVENTS_SWEEP_AFTER_SECONDS=str(SWEEP_AFTER_SECONDS),
        # Beat's other tasks stay out of the way (listing localstripe's events would add others').
        PAYMENT_REQUESTS_EXPIRE_EVERY_MINUTES="1440",
        STRIPE_EVENTS_RECOVER_EVERY_MINUTES="1440",
        TRANSACTION_EXPORTS_EXPIRE_EVERY_MINUTES="1440",
        AUTHORIZATIONS_RELEASE_EVERY_MINUTES="1440",
    )
    try:
        yield started
    finally:
        started.stop()


def _web(stack: Stack, *, workers: int = 4) -> str:
    web, url = stack.web(workers=workers)

    def answers() -> bool:
        if not web.running():
            pytest.fail(f"gunicorn exited:\n{web.log()}")
        try:
            requests.get(f"{url}/webhooks/stripe/", timeout=5)
        except requests.RequestException:  # not listening yet, or its workers still starting
            return False
        return True

    wait_until(answers, timeout_seconds=60, interval_seconds=0.2, describe=lambda: f"gunicorn answers:\n{web.log()}")
    return url


def _deliver(url: str, event: dict) -> int:
    """One delivery as Stripe makes it: the event's JSON, signed now."""
    body = event_body(event)
    response = requests.post(
        f"{url}/webhooks/stripe/",
        data=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": stripe_signature(body)},
        timeout=30,
    )
    return response.status_code


def _deliver_all(url: str, deliveries: list[dict], *, senders: int) -> list[int]:
    """Each sender posts the deliveries at its positions, all senders at once."""
    statuses: list = [None] * len(deliveries)

    def send(first: int) -> None:
        for position in range(first, len(deliveries), senders):
            try:
                statuses[position] = _deliver(url, deliveries[position])
            except requests.RequestException as error:
                statuses[position] = repr(error)

    threads = [threading.Thread(target=send, args=(first,)) for first in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return statuses


def _payment_intent_of(event: dict) -> str:
    obj = event["data"]["object"]
    return obj["id"] if obj["object"] == "payment_intent" else obj["payment_intent"]


def _unsettled() -> int:
    return GatewayEvent.objects.exclude(status__in=[GatewayEventStatus.PROCESSED, GatewayEventStatus.IGNORED]).count()


def _waiting_on_a_lock() -> int:
    """Database sessions of this test database waiting for a lock (the worker's, on the test's)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


class RowHeld:
    """A transaction's row locked by another session until released, as a slow request holds it:
    a worker applying an event of that payment waits there, mid-processing."""

    def __init__(self, transaction_id: int) -> None:
        self._locked, self._release = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._hold, args=(transaction_id,))
        self._thread.start()
        assert self._locked.wait(timeout=30), "the row was not locked"

    def _hold(self, transaction_id: int) -> None:
        try:
            with db_transaction.atomic():
                Transaction.objects.select_for_update().get(pk=transaction_id)
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    self.backend_pid = cursor.fetchone()[0]
                self._locked.set()
                self._release.wait(timeout=300)
        finally:
            connections.close_all()

    def release(self) -> None:
        self._release.set()
        self._thread.join(timeout=30)


def _connections_terminate(*, keep: int) -> int:
    """What a database failover or an administrator does: every other session of the test
    database ends at once (the workers' and gunicorn's), except this one and ``keep``."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> %s",
            [keep],
        )
        return cursor.fetchone()[0]


# -- a worker killed, or its database connections terminated, mid-batch -------------------------------


@pytest.mark.parametrize("fault", ["worker killed", "connections terminated"])
def test_a_fault_mid_batch_strands_no_event(stack, stripe_world, stripe_organization, monkeypatch, fault):
    # Stripe's events about 100 payments; the first 90 (a third of them, with refunds, a failed
    # refund and two disputes) are this batch.
    events = _payments_and_their_events(stripe_world, stripe_organization)[:90]
    # What the ledger must be: the same events, each processed once, in order (receipts aside).
    with monkeypatch.context() as quiet:
        quiet.setattr("transactions.tasks.receipt_email_send.delay", lambda transaction_id: None)
        for event in sorted(events, key=lambda event: event["created"]):
            event_receive(event)
    in_order = _ledger_snapshot()
    assert _unsettled() == 0
    _books_reopen()

    # The storm: shuffled, 20% delivered twice, four senders, gunicorn and one worker.
    rng = random.Random(8)
    deliveries = events + rng.sample(events, k=len(events) // 5)
    rng.shuffle(deliveries)
    url = _web(stack)
    first_worker = stack.worker(concurrency=2)
    # A payment whose first event comes a third of the way into the batch is busy, so the worker
    # is mid-way through one of its events when it is killed, for certain.
    first_position: dict[str, int] = {}
    for position, event in enumerate(deliveries):
        first_position.setdefault(_payment_intent_of(event), position)
    busy_intent = min((p, pi) for pi, p in first_position.items() if p >= len(deliveries) // 3)[1]
    busy_session = next(s for s in stripe_world.checkout.sessions.values() if s["payment_intent"] == busy_intent)
    held = RowHeld(Transaction.objects.get(gateway_checkout_id=busy_session["id"]).pk)
    try:
        statuses = _deliver_all(url, deliveries, senders=4)
        assert statuses == [200] * len(deliveries)
        wait_until(
            lambda: _waiting_on_a_lock() > 0,
            timeout_seconds=SETTLE_SECONDS,
            interval_seconds=0.2,
            describe=lambda: f"the worker reaches the busy payment:\n{stack.logs()}",
        )

        if fault == "worker killed":
            # SIGKILL to the worker and its pool: nothing is told, nothing cleaned up.
            first_worker.kill()
        else:
            assert _connections_terminate(keep=held.backend_pid) > 0
    finally:
        held.release()
    # At least the busy payment's event was in flight. On a loaded machine the worker may reach it
    # before finishing any other event (all 90 unprocessed: failed once in CI with "90 < 90"), which
    # is still a fault mid-batch; what this test is about is that none is stranded afterwards.
    unprocessed_at_the_kill = _unsettled()
    assert 0 < unprocessed_at_the_kill <= len(events), unprocessed_at_the_kill
    # Then (a new worker and) beat's sweep process every event: the stranded ones within the
    # sweep's delay, though Redis holds a killed worker's tasks for its visibility timeout.
    restarted = time.monotonic()
    if fault == "worker killed":
        stack.worker(concurrency=2)
    stack.beat()
    wait_until(
        lambda: _unsettled() == 0,
        timeout_seconds=SETTLE_SECONDS,
        interval_seconds=0.5,
        describe=lambda: (
            f"every event is processed ({_unsettled()} are not: "
            f"{list(GatewayEvent.objects.exclude(status='processed').values_list('event_id', 'status', 'attempts'))});\n"
            f"{stack.logs()}"
        ),
    )
    settled_after = time.monotonic() - restarted

    assert GatewayEvent.objects.count() == len(events)
    assert GatewayEvent.objects.filter(status=GatewayEventStatus.FAILED).count() == 0
    assert _ledger_snapshot() == in_order
    # An attempt the fault cut short counts when beat's sweep finds its event stalled (one more
    # attempt on the row). When Redis hands the killed worker's task to the new worker first, the
    # event is simply processed, on its first counted attempt. The reason recorded is cleared once
    # processed.
    worker_logs = "".join(process.log(None) for process in stack.processes if process.name == "worker")
    if "queued again (attempt" in worker_logs:
        assert GatewayEvent.objects.filter(attempts__gte=2).exists()
    assert set(GatewayEvent.objects.values_list("error_message", flat=True)) == {""}
    print(
        f"{fault}: {unprocessed_at_the_kill} of {len(events)} events unprocessed at the fault; "
        f"all processed {settled_after:.1f} s later"
    )


# -- the same event, 20 times at once ---------------------------------------------------------------


def _processing_counted(stack: Stack, event_id: str) -> int:
    """How many times a worker applied the event's facts: processing logs one line each time."""
    logs = "".join(process.log(None) for process in stack.processes if process.name == "worker")
    return len(re.findall(rf"gateway stripe event {re.escape(event_id)} \(\S+\) processed on attempt", logs))


def _tasks_ran(stack: Stack) -> tuple[int, int]:
    logs = "".join(process.log(None) for process in stack.processes if process.name == "worker")
    received = len(re.findall(r"Task transactions\.tasks\.gateway_event_process\[\S+\] received", logs))
    finished = len(re.findall(r"Task transactions\.tasks\.gateway_event_process\[\S+\] (?:succeeded|raised|retry)", logs))
    return received, finished


def test_the_same_event_delivered_twenty_times_at_once_is_processed_once(stack, stripe_world, stripe_organization):
    transaction = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=4500, record=False)
    event = session_completed_event(stripe_world, transaction)
    url = _web(stack, workers=4)
    stack.worker(concurrency=4)
    barrier = threading.Barrier(20)
    statuses: list = [None] * 20

    def deliver(index: int) -> None:
        barrier.wait(timeout=30)
        statuses[index] = _deliver(url, event)

    threads = [threading.Thread(target=deliver, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [200] * 20

    # Every task queued for it has run: the queue is empty and each task the worker took finished.
    def all_ran() -> bool:
        received, finished = _tasks_ran(stack)
        return queue_length(stack.queue) == 0 and received > 0 and received == finished

    wait_until(all_ran, timeout_seconds=SETTLE_SECONDS, interval_seconds=0.2, describe=stack.logs)

    received, _ = _tasks_ran(stack)
    assert received > 1, "the copies never reached the worker together: nothing was tested"
    assert _processing_counted(stack, event["id"]) == 1, stack.logs()
    stored = GatewayEvent.objects.get()
    assert (stored.event_id, stored.status, stored.attempts) == (event["id"], GatewayEventStatus.PROCESSED, 1)
    assert TransactionEvent.objects.filter(transaction=transaction, kind=Kind.CHARGE_SUCCEEDED).count() == 1
    transaction.refresh_from_db()
    assert (transaction.status, transaction.charged_cents) == (TransactionStatus.SUCCEEDED, 4500)
    assert AuditEvent.objects.filter(action="payment_request.paid").count() == 1
    print(f"{received} processing tasks ran for 20 deliveries")
