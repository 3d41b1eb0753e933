"""A real Celery worker, started as a process against the local Redis and the test database,
runs a real task whose effect the test reads back from PostgreSQL.

The task goes to a queue of its own, so a worker another test run started on the same Redis
cannot take it. Without Redis the test is skipped, except under CI, where it fails.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from celery import Celery
from django.utils import timezone

from tests.factories import LocationFactory, OrganizationFactory, PatientFactory
from tests.processes import (
    BASE_DIR,
    REDIS_URL,
    STOP_SECONDS,
    database_url_for_subprocesses,
    queue_forget,
    redis_or_skip,
)
from tests.waiting import wait_until
from transactions.enums import PaymentRequestKind, PaymentRequestStatus
from transactions.models import PaymentRequest
from transactions.tasks import payment_requests_expire_overdue

WAIT_SECONDS = 30

pytestmark = pytest.mark.worker


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    # Warm shutdown first (finish the current task), then kill the whole process group.
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_SECONDS)


class Worker:
    def __init__(self, process: subprocess.Popen, queue: str, log_path: Path) -> None:
        self.process = process
        self.queue = queue
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path):
    """A `celery worker --pool solo` process on a queue of its own; always stopped afterwards.

    Depends on transactional_db so that it is stopped before pytest-django empties the tables.
    """
    redis_or_skip()
    queue = f"lumapay-test-{uuid.uuid4().hex[:12]}"
    log_path = tmp_path / "celery-worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lumapay.settings",
        "DEBUG": "true",
        "DATABASE_URL": database_url_for_subprocesses(),
        "REDIS_URL": REDIS_URL,
        "CELERY_BROKER_URL": REDIS_URL,
        "SMS_BACKEND": "memory",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }
    command = [
        sys.executable, "-m", "celery", "-A", "lumapay", "worker",
        "--pool", "solo", "--queues", queue, "--hostname", f"{queue}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO",
    ]  # fmt: skip
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    worker = Worker(process, queue, log_path)
    try:
        yield worker
    finally:
        _stop(process)
        queue_forget(queue)


@pytest.fixture
def producer():
    """Sends to Redis whatever the test process's own settings say (they run tasks eagerly)."""
    app = Celery("lumapay-test-producer", broker=REDIS_URL, set_as_current=False)
    app.conf.task_serializer = "json"
    yield app
    app.close()


def _payment_request(*, organization, location, expires_at) -> PaymentRequest:
    return PaymentRequest.objects.create(
        organization=organization,
        patient=PatientFactory(organization=organization),
        location=location,
        kind=PaymentRequestKind.BALANCE,
        billing_item="Office visit balance",
        amount_cents=12_500,
        expires_at=expires_at,
    )


def test_a_real_worker_expires_overdue_payment_requests(celery_worker_process, producer):
    # Given an overdue open request and one that is still valid, committed where the worker sees them.
    organization = OrganizationFactory(name="Riverside Family Medicine")
    location = LocationFactory(organization=organization, name="Downtown Clinic")
    now = timezone.now()
    overdue = _payment_request(
        organization=organization, location=location, expires_at=now - datetime.timedelta(hours=1)
    )
    current = _payment_request(
        organization=organization, location=location, expires_at=now + datetime.timedelta(days=5)
    )

    # When the real task goes through Redis to the worker process.
    producer.send_task(payment_requests_expire_overdue.name, queue=celery_worker_process.queue)

    # Then the worker, not this process, marks the overdue request expired.
    def overdue_is_no_longer_open() -> bool:
        overdue.refresh_from_db()
        if overdue.status != PaymentRequestStatus.OPEN:
            return True
        if " raised unexpected: " in celery_worker_process.log():
            pytest.fail(f"the task failed in the worker:\n{celery_worker_process.log()}")
        if celery_worker_process.process.poll() is not None:
            pytest.fail(
                f"the worker exited with code {celery_worker_process.process.returncode}:\n"
                f"{celery_worker_process.log()}"
            )
        return False

    wait_until(
        overdue_is_no_longer_open,
        timeout_seconds=WAIT_SECONDS,
        interval_seconds=0.2,
        describe=lambda: (
            f"the worker expires the overdue request (it is still {overdue.status!r}); worker log:\n"
            f"{celery_worker_process.log()}"
        ),
    )

    assert overdue.status == PaymentRequestStatus.EXPIRED
    current.refresh_from_db()
    assert current.status == PaymentRequestStatus.OPEN
    assert f"Task {payment_requests_expire_overdue.name}[" in celery_worker_process.log()
