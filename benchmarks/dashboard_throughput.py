"""Throughput of the signed-in dashboard served as in production, against a bare one-row view in
the same run.

gunicorn (``--workers 2``, sync workers, bound to 127.0.0.1 on a free port) serves
``benchmarks.bare_wsgi``: LumaPay's WSGI application with DEBUG off, a production SECRET_KEY and
ALLOWED_HOSTS, the static files collected, on the benchmark database (settings
``benchmarks.settings``: the product's, with ``benchmarks/urls.py`` adding one URL). Beside the
dashboard it serves two baselines:

- the bare one-row view (``benchmarks/urls.py``), the baseline of the target: a Django view that
  reads one transaction by primary key through the ORM and returns it as JSON, behind the same
  middleware as every page, for a visitor not signed in. Issue 7's figures (42 req/s for the
  dashboard against 775 for a bare one-row view) compare with this one;
- the WSGI floor (``benchmarks/bare_wsgi.py``, for information): the same row read through Django's
  connection with no middleware, URL routing or view at all, what the server and the database
  answer with no Django request in between.

A manager of the mid-sized organization (the median by transactions) is signed in through a session
in the database, as the login page would leave it. Requests carry ``X-Forwarded-Proto: https``, as
from the TLS-terminating proxy the README asks for. With ``REDIS_URL`` in the environment the server
uses that Redis, as production does (sessions are then read through it).

A client of a few threads in this process (plain sockets over loopback, a new connection per
request as gunicorn's sync workers close each one) drives them alternately, in rounds bounded by a
count and a time: requests per second of each, CPU milliseconds per request in the workers, and the
dashboard's share of the bare view's rate.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
WORKERS = 2
CLIENT_THREADS = 4
# Today's share (42 req/s against 775, issue 7) and the target: at least double it.
SHARE_BEFORE = 42 / 775
SHARE_TARGET = 2 * SHARE_BEFORE


def bench_dashboard_throughput(server, *, rounds: int, log=print) -> list[dict]:
    from .bare_wsgi import BARE_PATH
    from .run import _result
    from .urls import BARE_VIEW_PATH

    membership, size = _mid_sized_membership()
    secret_key = secrets.token_urlsafe(50)
    cookie = _signed_in_cookie(membership.user, secret_key=secret_key)
    row_id = _a_transaction_id(membership.organization)
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": secret_key,
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": server.url_for(server.bench_database),
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
    }
    # Redis, as production requires with DEBUG off (the rate limits every process shares): the
    # environment's, or the local one the tests use.
    env.pop("CELERY_BROKER_URL", None)
    redis_url = env["REDIS_URL"] = (
        env.get("REDIS_URL") or os.environ.get("LUMAPAY_TEST_REDIS_URL") or "redis://127.0.0.1:6379/15"
    )
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=BASE_DIR, env=env,
                   check=True)
    port = _free_port()
    log_dir = tempfile.mkdtemp(prefix="lumapay-bench-gunicorn-")
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "benchmarks.bare_wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(WORKERS), "--worker-class", "sync", "--error-logfile", f"{log_dir}/error.log"],
        cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        headers = {"X-Forwarded-Proto": "https", "Cookie": f"sessionid={cookie}"}
        pages = [(name, _Request(port, path, headers)) for name, path in _dashboard_pages(membership.organization)]
        https = {"X-Forwarded-Proto": "https"}
        baselines = {
            # The row is read in its organization, as the app's role (row-level security), as a page reads.
            "view": _Request(port, f"{BARE_VIEW_PATH}?id={row_id}&org={membership.organization_id}", https),
            "floor": _Request(port, f"{BARE_PATH}?id={row_id}&org={membership.organization_id}", https),
        }
        _wait_until_up(baselines["floor"], gunicorn, log_dir)
        for name, page in pages:
            status, body = page.once()
            assert status == 200, (name, status, body[:300])
            assert body.count(b'<span class="status status-') == 25, f"{name}: not 25 rows: not signed in?"
        for name, baseline in baselines.items():
            status, body = baseline.once()
            assert status == 200 and str(row_id).encode() in body, (name, status, body[:300])
        workers = _worker_pids(gunicorn.pid)
        # Warm them all: templates compiled and cached, connections open, in every worker.
        for _, page in pages:
            _drive(page, count=20, seconds=10)
        for baseline in baselines.values():
            _drive(baseline, count=200, seconds=5)
        rates = {name: [] for name, _ in pages}
        cpu_ms = {name: [] for name, _ in pages}
        baseline_rates = {name: [] for name in baselines}
        baseline_cpu_ms = {name: [] for name in baselines}
        for _ in range(rounds):
            for name, page in pages:
                cpu_before = _cpu_seconds(workers)
                done, seconds = _drive(page, count=150, seconds=6)
                rates[name].append(done / seconds)
                cpu_ms[name].append((_cpu_seconds(workers) - cpu_before) * 1000 / done)
            for name, baseline in baselines.items():
                cpu_before = _cpu_seconds(workers)
                done, seconds = _drive(baseline, count=1500, seconds=4)
                baseline_rates[name].append(done / seconds)
                baseline_cpu_ms[name].append((_cpu_seconds(workers) - cpu_before) * 1000 / done)
    finally:
        gunicorn.terminate()
        try:
            gunicorn.wait(timeout=20)
        except subprocess.TimeoutExpired:
            gunicorn.kill()
        shutil.rmtree(log_dir, ignore_errors=True)

    bare_rates, floor_rates = baseline_rates["view"], baseline_rates["floor"]
    bare_rps, floor_rps = statistics.median(bare_rates), statistics.median(floor_rates)
    bare_cpu, floor_cpu = statistics.median(baseline_cpu_ms["view"]), statistics.median(baseline_cpu_ms["floor"])
    setup = (f"gunicorn {WORKERS} sync workers, DEBUG off, {'Redis' if redis_url else 'no Redis'}, "
             f"{CLIENT_THREADS} client threads on loopback, "
             f"{rounds} alternated rounds; a manager of {membership.organization.slug} ({size:,} transactions)")
    log(f"  bare one-row view: {bare_rps:.1f} req/s, {bare_cpu:.2f} ms worker CPU per request; "
        f"WSGI floor (no Django request): {floor_rps:.1f} req/s, {floor_cpu:.2f} ms")
    results = [_result(
        "bare one-row view under gunicorn: requests per second", bare_rps, floor_rps, "shown for information",
        "req/s", size,
        notes=f"{setup}; the baseline column is the WSGI floor (no middleware, URL routing or view); spread "
              f"{_spread(bare_rates)} vs {_spread(floor_rates)} req/s; worker CPU per request {bare_cpu:.2f} ms "
              f"vs {floor_cpu:.2f} ms",
    )]
    for name, _ in pages:
        rps = statistics.median(rates[name])
        share = rps / bare_rps
        shares = [d / b for d, b in zip(rates[name], bare_rates)]
        cpu = statistics.median(cpu_ms[name])
        log(f"  {name} under gunicorn: {rps:.1f} req/s (bare view {bare_rps:.1f} req/s), share {share:.1%} "
            f"({rps / floor_rps:.1%} of the WSGI floor), {cpu:.1f} ms worker CPU per request")
        results.append(_result(
            f"{name} under gunicorn: requests per second", rps, bare_rps, "shown for information", "req/s", size,
            notes=f"{setup}; spread {_spread(rates[name])} vs {_spread(bare_rates)} req/s (bare one-row view); "
                  f"worker CPU per request {cpu:.2f} ms (spread {_spread(cpu_ms[name])} ms) vs {bare_cpu:.2f} ms "
                  f"for the bare view; {rps / floor_rps:.1%} of the WSGI floor's {floor_rps:.0f} req/s",
        ))
        results.append(_at_least(_result(
            f"{name} under gunicorn: share of the bare view's rate", share * 100, SHARE_BEFORE * 100,
            f">= {SHARE_TARGET:.1%} (twice the {SHARE_BEFORE:.1%} of issue 7, the baseline column)", "%", size,
            notes=f"dashboard req/s / bare one-row view req/s, medians; per-round shares spread "
                  f"{_spread(shares, pct=True)}",
        ), minimum=SHARE_TARGET * 100))
    return results


def _dashboard_pages(organization) -> list[tuple[str, str]]:
    """The dashboard as a member lands on it, and filtered to the last seven days."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    from transactions.models import Transaction

    newest = Transaction.objects.filter(organization=organization).order_by("-created_at").values_list(
        "created_at", flat=True)[0]
    # The data set's "today" is its newest transaction's day, whenever it was loaded.
    today = timezone.localtime(newest, ZoneInfo(organization.timezone)).date()
    return [
        ("dashboard, no filter", "/"),
        ("dashboard, last 7 days", f"/?created_from={(today - timedelta(days=6)).isoformat()}"),
    ]


def _at_least(result: dict, *, minimum: float) -> dict:
    """A figure whose target is a floor, not a ceiling."""
    return {**result, "limit": round(minimum, 2), "met": result["value"] >= minimum}


def _mid_sized_membership():
    """A manager of the organization in the middle by transaction count."""
    from django.db.models import Count

    from org_profile.access import MANAGERS
    from org_profile.models import Membership, Organization

    sizes = list(
        Organization.objects.annotate(size=Count("transactions")).filter(size__gt=0).order_by("size", "pk")
        .values_list("pk", "size")
    )
    organization_id, size = sizes[(len(sizes) - 1) // 2]
    membership = (
        Membership.objects.filter(organization_id=organization_id, role__in=MANAGERS, is_active=True)
        .select_related("organization", "user").order_by("pk").first()
    )
    return membership, size


def _signed_in_cookie(user, *, secret_key: str) -> str:
    """A session in the database for ``user``, signed with the server's SECRET_KEY: what signing in
    through the sign-in pages (the password, then the authenticator's code) leaves behind."""
    from django.conf import settings
    from django.test import Client

    from .signed_in import sign_in

    previous = settings.SECRET_KEY
    settings.SECRET_KEY = secret_key
    try:
        client = Client()
        sign_in(client, user)
        return client.cookies[settings.SESSION_COOKIE_NAME].value
    finally:
        settings.SECRET_KEY = previous


def _a_transaction_id(organization) -> int:
    from transactions.models import Transaction

    return Transaction.objects.filter(organization=organization).order_by("-created_at").values_list("pk", flat=True)[0]


class _Request:
    def __init__(self, port: int, path: str, headers: dict[str, str]):
        self.port = port
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.raw = ("\r\n".join(lines) + "\r\n\r\n").encode()

    def once(self) -> tuple[int, bytes]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as connection:
            connection.sendall(self.raw)
            chunks = []
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        response = b"".join(chunks)
        head, _, body = response.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), body


def _drive(request: _Request, *, count: int, seconds: float) -> tuple[int, float]:
    """``count`` requests from CLIENT_THREADS threads, or as many as ``seconds`` allow. Returns the
    requests answered 200 and the seconds taken; anything else fails the benchmark."""
    lock = threading.Lock()
    issued = [0]
    done = [0]
    failures: list[str] = []
    deadline = time.perf_counter() + seconds

    def client():
        while True:
            with lock:
                if issued[0] >= count or time.perf_counter() >= deadline or failures:
                    return
                issued[0] += 1
            status, body = request.once()
            with lock:
                if status == 200:
                    done[0] += 1
                else:
                    failures.append(f"{status} {body[:200]!r}")

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"benchmarks: a request failed under gunicorn: {failures[0]}")
    return done[0], elapsed


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(request: _Request, process: subprocess.Popen, log_dir: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"benchmarks: gunicorn exited:\n{Path(log_dir, 'error.log').read_text()[-3000:]}")
        try:
            if request.once()[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("benchmarks: gunicorn did not answer within a minute")


def _worker_pids(master: int) -> list[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if len(children) >= WORKERS:
            return [int(pid) for pid in children]
        time.sleep(0.1)
    raise SystemExit("benchmarks: gunicorn's workers did not start")


def _cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _spread(values: list[float], *, pct: bool = False) -> str:
    if pct:
        return f"{min(values):.1%}-{max(values):.1%}"
    return f"{min(values):.1f}-{max(values):.1f}"
