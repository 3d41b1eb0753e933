"""LumaPay's own processes, started by a test against the test database and the local Redis: a
Celery worker, Celery beat and gunicorn, each a real `python -m …` process with its log in a file.

Tasks go through Redis on a queue of the test's own (``CELERY_TASK_DEFAULT_QUEUE``), so processes
another test run started on the same Redis never take them. The Redis is
``LUMAPAY_TEST_REDIS_URL``, database 15 of the local server unless set. Without it answering, a test
is skipped, except under CI, where it fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

BASE_DIR = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("LUMAPAY_TEST_REDIS_URL") or "redis://127.0.0.1:6379/15"
STOP_SECONDS = 15


def redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()
    except redis.RedisError as exc:
        reason = f"Redis does not answer at {REDIS_URL}: {str(exc).rstrip('.')}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}. CI must start Redis before the tests (see .ci/run).", pytrace=False)
        pytest.skip(reason)


def database_url_for_subprocesses() -> str:
    """The database pytest-django created, as a URL another process can use."""
    db = connection.settings_dict
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    # A Unix-socket directory goes in the host, percent-encoded, as lumapay/embedded_database.py does.
    host = quote(db.get("HOST") or "", safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{quote(db['NAME'], safe='')}"


def queue_forget(queue: str) -> None:
    """Remove the queue's message list and kombu's bindings for it, so runs leave nothing behind."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"*{queue}*"))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass  # Redis went away during the test; the test's own failure says so, not this cleanup.


def queue_length(queue: str) -> int:
    import redis

    return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2).llen(queue)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Process:
    """One started process (and its children: its own process group), with its log."""

    def __init__(self, name: str, command: list[str], *, env: dict, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("wb") as log_file:
            self.popen = subprocess.Popen(
                command, cwd=BASE_DIR, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log(self, tail: int | None = 6000) -> str:
        text = self.log_path.read_text(errors="replace")
        return text[-tail:] if tail else text

    def running(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole group at once, as when its container is killed: nothing is told."""
        if self.running():
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=STOP_SECONDS)

    def stop(self) -> None:
        if not self.running():
            return
        # Warm shutdown first (finish the current task), then kill the whole process group.
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()


class Stack:
    """The processes one test started, sharing one environment; all stopped by ``stop``."""

    def __init__(self, tmp_path: Path, **environment: str) -> None:
        redis_or_skip()
        self.tmp_path = tmp_path
        self.queue = f"lumapay-test-{uuid.uuid4().hex[:12]}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "lumapay.settings",
            "DEBUG": "true",
            "DATABASE_URL": database_url_for_subprocesses(),
            # Tasks through Redis, on the test's queue; the cache stays in each process, so
            # nothing is shared with another run through Redis.
            "REDIS_URL": "",
            "CELERY_BROKER_URL": REDIS_URL,
            "CELERY_TASK_DEFAULT_QUEUE": self.queue,
            "SMS_BACKEND": "memory",
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "LOG_LEVEL": "INFO",
            **environment,
        }
        self.processes: list[Process] = []

    def _start(self, name: str, arguments: list[str]) -> Process:
        count = sum(1 for process in self.processes if process.name.startswith(name))
        log_path = self.tmp_path / f"{name}-{count + 1}.log"
        process = Process(name, [sys.executable, "-m", *arguments], env=self.env, log_path=log_path)
        self.processes.append(process)
        return process

    def worker(self, *, concurrency: int = 2) -> Process:
        """`celery worker`, prefork as in production (docker-compose.yml), on the test's queue."""
        name = f"{self.queue}-{len(self.processes)}"
        return self._start("worker", [
            "celery", "-A", "lumapay", "worker", "--pool", "prefork", "--concurrency", str(concurrency),
            "--queues", self.queue, "--hostname", f"{name}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO",
        ])  # fmt: skip

    def beat(self) -> Process:
        return self._start("beat", [
            "celery", "-A", "lumapay", "beat", "--loglevel", "INFO",
            "--schedule", str(self.tmp_path / "celerybeat-schedule"),
        ])  # fmt: skip

    def web(self, *, workers: int = 4) -> tuple[Process, str]:
        """gunicorn with sync workers, as the Dockerfile runs it; returns it and its address."""
        port = free_port()
        process = self._start("web", [
            "gunicorn", "lumapay.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
            "--worker-class", "sync", "--config", "gunicorn.conf.py", "--access-logfile", "-",
        ])  # fmt: skip
        return process, f"http://127.0.0.1:{port}"

    def logs(self) -> str:
        return "\n".join(f"--- {process.log_path.name}:\n{process.log(3000)}" for process in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        queue_forget(self.queue)
