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
from urllib.parse import quote

import pytest
from celery import Celery
from django.db import connection
from django.utils import timezone

from tests.factories import LocationFactory, OrganizationFactory, PatientFactory
from tests.waiting import wait_until
from transactions.enums import PaymentRequestKind, PaymentRequestStatus
from transactions.models import PaymentRequest
from transactions.tasks import payment_requests_expire_overdue

BASE_DIR = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/15"
WAIT_SECONDS = 30
STOP_SECONDS = 15

pytestmark = pytest.mark.worker


def _redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()
    except redis.RedisError as exc:
        reason = f"Redis does not answer at {REDIS_URL}: {str(exc).rstrip('.')}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}. CI must start Redis before the tests (see .ci/run).", pytrace=False)
        pytest.skip(reason)


def _test_database_url() -> str:
    """The database pytest-django created, as a URL another process can use."""
    db = connection.settings_dict
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    # A Unix-socket directory goes in the host, percent-encoded, as lumapay/embedded_database.py does.
    host = quote(db.get("HOST") or "", safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{quote(db['NAME'], safe='')}"


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


def _forget_queue(queue: str) -> None:
    """Remove the queue's message list and kombu's bindings for it, so runs leave nothing behind."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"*{queue}*"))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass  # Redis went away during the test; the test's own failure says so, not this cleanup.


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
    _redis_or_skip()
    queue = f"lumapay-test-{uuid.uuid4().hex[:12]}"
    log_path = tmp_path / "celery-worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lumapay.settings",
        "DEBUG": "true",
        "DATABASE_URL": _test_database_url(),
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
        _forget_queue(queue)


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
