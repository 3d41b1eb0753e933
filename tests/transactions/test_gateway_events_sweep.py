"""The sweep that queues again the gateway events stored but left unprocessed (their worker was
killed, their task lost): the gateway was answered 200, so it never sends them again.

The real worker killed mid-batch is in test_gateway_event_faults.py; these check the sweep's rules
on the Sandbox's events, in this process.
"""

import datetime
import json
import threading

import pytest
from django.conf import settings as django_settings
from django.db import connections
from django.utils import timezone

from transactions.sandbox.processor import webhook_secret as sandbox_webhook_secret
from transactions.enums import GatewayEventStatus, TransactionEventKind as Kind
from transactions.models import GatewayEvent, TransactionEvent
from transactions.services.gateway_events import (
    RETRY_BACKOFF_MAX_SECONDS,
    gateway_event_process,
    gateway_event_receive,
    gateway_events_requeue_stalled,
)
from transactions.tasks import gateway_events_requeue_stalled as sweep_task

from .test_gateway_events_webhook import _charge_event, _signed, paid_charge  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db


def _stored_unprocessed(charge, *, event_id="evt_sbx_sweep_1") -> GatewayEvent:
    """An event stored as the webhook stores it, whose processing task never ran (lost with its
    worker): queued, answered 200, then nothing."""
    body = json.dumps(_charge_event(charge, event_id=event_id)).encode()
    headers = {"Sandbox-Signature": _signed(body, secret=sandbox_webhook_secret())}
    return gateway_event_receive(gateway="sandbox", body=body, headers=headers)


def _minutes_later(minutes: float) -> datetime.datetime:
    return timezone.now() + datetime.timedelta(minutes=minutes)


def _charges_recorded() -> int:
    return TransactionEvent.objects.filter(kind=Kind.CHARGE_SUCCEEDED).count()


def test_an_event_left_unprocessed_is_queued_again_after_the_delay_and_processed(
    settings, paid_charge, django_capture_on_commit_callbacks  # noqa: F811
):
    settings.GATEWAY_EVENTS_SWEEP_AFTER_SECONDS = 180
    with django_capture_on_commit_callbacks(execute=False):  # the task is lost with its worker
        stored = _stored_unprocessed(paid_charge)

    with django_capture_on_commit_callbacks(execute=True) as too_soon:
        assert gateway_events_requeue_stalled(now=_minutes_later(2.9)) == 0
    assert too_soon == []

    with django_capture_on_commit_callbacks(execute=True):
        assert gateway_events_requeue_stalled(now=_minutes_later(3.1)) == 1

    stored.refresh_from_db()
    # The attempt that never finished counts, and processing clears its reason.
    assert (stored.status, stored.attempts, stored.error_message) == (GatewayEventStatus.PROCESSED, 2, "")
    assert _charges_recorded() == 1


def test_the_sweep_records_why_it_queued_an_event_again(settings, paid_charge, django_capture_on_commit_callbacks):  # noqa: F811
    settings.GATEWAY_EVENTS_SWEEP_AFTER_SECONDS = 180
    with django_capture_on_commit_callbacks(execute=False):
        stored = _stored_unprocessed(paid_charge)

    later = _minutes_later(4)
    with django_capture_on_commit_callbacks(execute=False):  # queued again, not yet run
        gateway_events_requeue_stalled(now=later)

    stored.refresh_from_db()
    assert (stored.status, stored.attempts, stored.dispatched_at) == (GatewayEventStatus.RECEIVED, 1, later)
    assert stored.error_message == (
        "Not processed within 180 s of being queued (its worker stopped mid-way, or its task was lost)."
    )
    # Not again until the delay has passed since it was queued again.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert gateway_events_requeue_stalled(now=later + datetime.timedelta(minutes=2)) == 0
    assert callbacks == []


def test_processed_and_failed_events_are_left_alone(settings, paid_charge, django_capture_on_commit_callbacks):  # noqa: F811
    with django_capture_on_commit_callbacks(execute=True):
        processed = _stored_unprocessed(paid_charge, event_id="evt_sbx_done")
    GatewayEvent.objects.filter(pk=processed.pk).update(status=GatewayEventStatus.IGNORED)
    with django_capture_on_commit_callbacks(execute=False):
        failed = _stored_unprocessed(paid_charge, event_id="evt_sbx_bug")
    # A failure that is not transient waits for an operator's replay, as before.
    GatewayEvent.objects.filter(pk=failed.pk).update(
        status=GatewayEventStatus.FAILED, attempts=1, error_message="LookupError: Nothing applies a PayoutFact"
    )

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert gateway_events_requeue_stalled(now=_minutes_later(60 * 24)) == 0

    assert callbacks == []
    assert GatewayEvent.objects.get(pk=failed.pk).attempts == 1


def test_a_transient_failure_is_left_to_the_tasks_retries_then_queued_again(
    settings, paid_charge, django_capture_on_commit_callbacks  # noqa: F811
):
    settings.GATEWAY_EVENTS_SWEEP_AFTER_SECONDS = 180
    with django_capture_on_commit_callbacks(execute=False):
        stored = _stored_unprocessed(paid_charge)
    failed_at = timezone.now()
    GatewayEvent.objects.filter(pk=stored.pk).update(
        status=GatewayEventStatus.FAILED,
        attempts=9,
        error_message="OperationalError: server closed the connection unexpectedly",
        dispatched_at=failed_at,
    )
    retries_over = failed_at + datetime.timedelta(seconds=RETRY_BACKOFF_MAX_SECONDS + 180)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert gateway_events_requeue_stalled(now=retries_over - datetime.timedelta(seconds=1)) == 0
    assert callbacks == []

    with django_capture_on_commit_callbacks(execute=True):
        assert gateway_events_requeue_stalled(now=retries_over + datetime.timedelta(seconds=1)) == 1

    stored.refresh_from_db()
    assert (stored.status, stored.attempts, stored.error_message) == (GatewayEventStatus.PROCESSED, 10, "")


def test_the_sweep_gives_up_after_the_last_attempt_with_the_reason(
    settings, paid_charge, django_capture_on_commit_callbacks  # noqa: F811
):
    settings.GATEWAY_EVENTS_SWEEP_AFTER_SECONDS = 180
    settings.GATEWAY_EVENT_MAX_ATTEMPTS = 3
    with django_capture_on_commit_callbacks(execute=False):
        stored = _stored_unprocessed(paid_charge)

    now = timezone.now()
    for sweep in range(1, 4):  # each copy it queues is lost too
        now += datetime.timedelta(minutes=4)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            gateway_events_requeue_stalled(now=now)
        stored.refresh_from_db()
        assert (sweep, stored.attempts, len(callbacks)) == (sweep, sweep, 0 if sweep == 3 else 1)

    assert stored.status == GatewayEventStatus.FAILED
    assert stored.error_message == (
        "Given up after 3 attempts; replay it once the cause is fixed. Last: Not processed within 180 s of being "
        "queued (its worker stopped mid-way, or its task was lost)."
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert gateway_events_requeue_stalled(now=now + datetime.timedelta(days=1)) == 0
    assert callbacks == []
    assert _charges_recorded() == 0


@pytest.mark.reliability
@pytest.mark.django_db(transaction=True)
def test_an_event_being_processed_is_skipped_and_a_copy_queued_meanwhile_does_nothing(
    settings, paid_charge, django_capture_on_commit_callbacks  # noqa: F811
):
    settings.GATEWAY_EVENTS_SWEEP_AFTER_SECONDS = 180
    # Stored as the webhook stores it (outside a transaction, receiving would process it at once).
    stored = GatewayEvent.objects.create(
        gateway="sandbox", event_id="evt_sbx_busy", event_type="charge.succeeded", payload=_charge_event(paid_charge)
    )
    locked, release = threading.Event(), threading.Event()

    def a_worker_processing_it() -> None:
        # What the processing task holds while it applies the event's facts.
        try:
            from django.db import transaction

            with transaction.atomic():
                GatewayEvent.objects.select_for_update().get(pk=stored.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    worker = threading.Thread(target=a_worker_processing_it)
    worker.start()
    try:
        assert locked.wait(timeout=30)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            assert gateway_events_requeue_stalled(now=_minutes_later(4)) == 0
        assert callbacks == []
    finally:
        release.set()
        worker.join(timeout=30)

    # Then it is processed once: a copy queued meanwhile finds it processed and does nothing.
    gateway_event_process(gateway_event_id=stored.pk)
    gateway_event_process(gateway_event_id=stored.pk)
    stored.refresh_from_db()
    assert (stored.status, stored.attempts) == (GatewayEventStatus.PROCESSED, 1)
    assert _charges_recorded() == 1


def test_beat_runs_the_sweep_every_minute_by_default():
    assert django_settings.CELERY_BEAT_SCHEDULE["gateway-events-requeue-stalled"] == {
        "task": sweep_task.name,
        "schedule": 60,
    }
    assert django_settings.GATEWAY_EVENTS_SWEEP_AFTER_SECONDS == 180
    assert django_settings.GATEWAY_EVENT_MAX_ATTEMPTS == 20


def test_tasks_are_acknowledged_late_and_handed_back_when_their_worker_dies():
    from lumapay.celery import app

    assert (app.conf.task_acks_late, app.conf.task_reject_on_worker_lost) == (True, True)
    # Longer than a gateway event's longest wait between retries, so a waiting retry is not
    # handed to a second worker.
    assert app.conf.broker_transport_options == {"visibility_timeout": 900}
    assert app.conf.broker_transport_options["visibility_timeout"] > RETRY_BACKOFF_MAX_SECONDS
