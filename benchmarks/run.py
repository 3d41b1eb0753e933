"""`make bench`: load (once) a million transactions into ``lumapay_bench`` and measure, in the same
run, each figure beside its baseline:

1. the dashboard page (25 rows, totals and chart) of the largest organization (500,000
   transactions) under every filter alone and combined, hard cases included (benchmarks/dashboard.py),
   each on its first page and a page deep in the set, through Django's test client, against the
   raw SQL the page ran, replayed on the same connection: median < 100 ms (what the page adds to
   its SQL is reported beside it, against max(3x raw, raw + 30 ms));
2. the Excel export of ~100,000 filtered rows (the Celery task's path) against a bare loop
   reading the same SELECT through a server-side cursor into openpyxl write-only: CPU and wall
   time each <= 1.3x, and a peak RSS under 150 MB, each side in its own process
   (``export_speed.py``);
3. the receipt PDF (``receipt_pdf``) against bare WeasyPrint on the same HTML: <= 1.5x;
4. the signed-in dashboard served by gunicorn against a bare one-row view in the same server:
   requests per second and the dashboard's share of the bare view's rate (``dashboard_throughput.py``);
5. an Upload Center import of 100,000 patients from a CSV (read, checked and written in the
   clinic's scope, under row-level security) against PostgreSQL's COPY of the same file into a table
   of the patient table's shape and indexes (<= 5x), and against django-import-export (ours >= 10x
   faster) (``upload_import.py``). It needs no data set: ``--only upload`` skips loading it.
6. the FHIR sync of 10,000 patients and 20,000 appointments from a local sekmet-fhir server against
   fetching the same pages alone (<= 2x), and an incremental sync with 1% changed (<= 5% of the full
   sync's time) (``fhir_sync.py``). It needs no transaction data set either: ``--only fhir`` loads none.
7. the collection scheduler's pass over 100,000 upcoming appointments of which 1% are due, in
   uneven organizations with patients, cards on file, requests, transactions and balances: its
   selection of the due ones against the bare SQL that selects them (<= 3x), and the queries per
   due item at two sizes (equal) (``collection_schedule.py``). Self-contained: ``--only schedule``.
8. the payouts pages (``payouts.py``): a payout's page with 10,000 lines against the same reads done
   minimally (< 200 ms), the payouts list of a clinic with 5 years of daily payouts (and of one with
   100,000) under every filter against its replayed SQL (< 100 ms), and the CSV export of 100,000
   payouts against a bare csv.writer loop over a server-side cursor (<= 1.3x). Self-contained:
   ``--only payouts``.

Writes ``benchmarks/results/latest.json`` (each median with its spread: min, quartiles, max) and
prints a table. Options: ``--runs N`` (dashboard runs per page, default 20), ``--export-runs N`` (each side, default 3), ``--receipt-runs N`` (default 15),
``--throughput-rounds N`` (default 5), ``--upload-runs N`` (default 5), ``--import-export-runs N`` (default 3),
``--fhir-runs N`` (full syncs, default 3), ``--fhir-incremental-runs N`` (default 5),
``--schedule-runs N`` (default 15), ``--payouts-runs N`` (default 15), ``--payouts-export-runs N`` (default 5),
``--only dashboard,export,receipt,throughput,upload,fhir,schedule,payouts``. Pass them as
``make bench ARGS="--runs 50"``. ``BENCH_DATABASE`` names another bench database.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from datetime import datetime, timezone as dt_timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
BASE_DIR = Path(__file__).resolve().parent.parent
ALL_MEASURES = {"dashboard", "export", "receipt", "throughput", "upload", "fhir", "schedule", "payouts"}
# Measures that bring their own data: alone, they need no transaction data set.
SELF_CONTAINED = {"upload", "fhir", "schedule", "payouts"}


def prepare_schema():
    """Create (if missing) and migrate ``lumapay_bench``, without loading the data set."""
    from .database import database_create, database_exists, server_from_environment

    server = server_from_environment()
    if not database_exists(server):
        database_create(server)
    os.environ["DATABASE_URL"] = server.url_for(server.bench_database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumapay.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    return server


def prepare(*, log=print):
    """Create and migrate ``lumapay_bench``; load the data set unless it is already there."""
    from .database import database_create, database_drop

    server = prepare_schema()
    from django.core.management import call_command
    from django.db import connections

    from .generate import DATASET_VERSION, dataset_loaded, generate, has_rows

    dataset = dataset_loaded()
    if dataset is not None and dataset.version == DATASET_VERSION:
        _vacuum_daily_totals()
        log(
            f"Data set already loaded ({dataset.transactions:,} transactions, {dataset.events:,} events, "
            f"generated {dataset.generated_at:%Y-%m-%d %H:%M} UTC in {dataset.seconds:.0f} s): skipping generation."
        )
        return server, dataset
    if dataset is not None or has_rows():
        log("The benchmark database holds another or a partial data set: recreating it.")
        connections.close_all()
        database_drop(server)
        database_create(server)
        call_command("migrate", interactive=False, verbosity=0)
    log(f"Loading the data set into {server.bench_database} with COPY …")
    started = time.monotonic()
    dataset = generate(log=log)
    log(f"Loaded {dataset.transactions:,} transactions and {dataset.events:,} events in {time.monotonic() - started:.0f} s.")
    return server, dataset


def _vacuum_daily_totals():
    """VACUUM ANALYZE the daily-total tables of an already loaded data set: a migration may have
    rebuilt them (0012 did), and their sums are index-only scans only once the visibility map
    is set again. Quick when nothing changed."""
    from django.db import connection

    from .generate import DAILY_TOTAL_TABLES

    with connection.cursor() as cursor:
        for table in DAILY_TOTAL_TABLES:
            cursor.execute(f"VACUUM (ANALYZE) {table}")


# -- measures --------------------------------------------------------------------------------------


def _paired_times_ms(measured, baseline, runs: int, warmup: int = 3) -> tuple[list[float], list[float]]:
    """Milliseconds of each run of each, the two run alternately so that whatever else the machine
    is doing weighs on both alike."""
    for _ in range(warmup):
        measured()
        baseline()
    measured_times, baseline_times = [], []
    for _ in range(runs):
        for action, times in ((measured, measured_times), (baseline, baseline_times)):
            started = time.perf_counter()
            action()
            times.append((time.perf_counter() - started) * 1000)
    return measured_times, baseline_times


def _paired_medians_ms(measured, baseline, runs: int, warmup: int = 3) -> tuple[float, float]:
    measured_times, baseline_times = _paired_times_ms(measured, baseline, runs, warmup)
    return statistics.median(measured_times), statistics.median(baseline_times)


def spread(values: list[float]) -> dict:
    """min, first quartile, median, third quartile and max, rounded to 0.01."""
    if len(values) < 2:
        value = round(values[0], 2) if values else None
        return {"min": value, "q1": value, "median": value, "q3": value, "max": value}
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {key: round(value, 2) for key, value in
            (("min", min(values)), ("q1", q1), ("median", median), ("q3", q3), ("max", max(values)))}


def _bench_organization():
    from org_profile.models import Location, Membership

    membership = Membership.objects.select_related("organization", "user").get(
        user__email="manager1@bench.lumapay.test", organization__slug="bench-clinic-1"
    )
    main_street = Location.objects.get(organization=membership.organization, name="Main Street")
    return membership, main_street


def _local_today(dataset, organization):
    from zoneinfo import ZoneInfo

    return dataset.generated_at.astimezone(ZoneInfo(organization.timezone)).date()


def bench_dashboard(dataset, *, runs: int, log=print) -> list[dict]:
    from .dashboard import bench_dashboard as measure

    return measure(dataset, runs=runs, timed=_paired_times_ms, result=_result, local_today=_local_today, log=log)


def bench_receipt(*, runs: int, log=print) -> list[dict]:
    try:
        from transactions.services.receipt_documents import receipt_html, receipt_pdf
    except ImportError:
        log("  receipt: transactions.services.receipt_documents is not there yet: skipped")
        return []
    from weasyprint import HTML

    from transactions.models import Transaction

    membership, _ = _bench_organization()
    transaction = (
        Transaction.objects.filter(organization=membership.organization, status="partially_refunded")
        .select_related("organization", "patient", "location", "payment_request")
        .order_by("-created_at")
        .first()
    )
    html = receipt_html(transaction=transaction)
    ours_ms, bare_ms = _paired_medians_ms(
        lambda: receipt_pdf(transaction=transaction), lambda: HTML(string=html).write_pdf(), runs
    )
    log(f"  receipt: {ours_ms:.1f} ms (bare WeasyPrint {bare_ms:.1f} ms)")
    return [
        _result("receipt PDF", ours_ms, bare_ms, "<= 1.5x bare WeasyPrint", "ms", 1, limit=1.5 * bare_ms,
                notes=f"median of {runs}, {len(receipt_pdf(transaction=transaction)):,} bytes"),
    ]


def _result(name, value, baseline, target, unit, rows, *, limit=None, notes="", times=None, baseline_times=None) -> dict:
    """A row of latest.json: the median (``value``) and the baseline's, with the spread of each
    when the runs are given."""
    row = {
        "name": name,
        "value": round(value, 2),
        "baseline": round(baseline, 2),
        "ratio": round(value / baseline, 2) if baseline else None,
        "target": target,
        "unit": unit,
        "rows": rows,
        "limit": round(limit, 2) if limit is not None else None,
        "met": (value <= limit) if limit is not None else None,
        "notes": notes,
    }
    if times:
        row["spread"] = spread(times)
    if baseline_times:
        row["baseline_spread"] = spread(baseline_times)
    return row


# -- report ----------------------------------------------------------------------------------------


def machine() -> dict:
    from django.db import connection

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    return {
        # Other work on the machine weighs on every figure: the 1, 5 and 15-minute load averages at the end.
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu,
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "postgresql": postgres,
        "platform": platform.platform(),
    }


def table(results: list[dict]) -> str:
    lines = [
        "| measure | median (IQR; min–max) | baseline median (IQR) | ratio | met | rows |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for r in results:
        met = "—" if r["met"] is None else ("yes" if r["met"] else f"**no** (limit {r['limit']} {r['unit']})")
        value, baseline = f"{r['value']:.2f} {r['unit']}", f"{r['baseline']:.2f} {r['unit']}"
        if r.get("spread"):
            sp = r["spread"]
            value += f" ({sp['q1']:.1f}–{sp['q3']:.1f}; {sp['min']:.1f}–{sp['max']:.1f})"
        if r.get("baseline_spread"):
            sp = r["baseline_spread"]
            baseline += f" ({sp['q1']:.1f}–{sp['q3']:.1f})"
        lines.append(f"| {r['name']} | {value} | {baseline} | {r['ratio']:.2f}x | {met} | {r['rows']:,} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--export-runs", type=int, default=3)
    parser.add_argument("--receipt-runs", type=int, default=15)
    parser.add_argument("--throughput-rounds", type=int, default=5)
    parser.add_argument("--upload-runs", type=int, default=5)
    parser.add_argument("--import-export-runs", type=int, default=3)
    parser.add_argument("--fhir-runs", type=int, default=3)
    parser.add_argument("--fhir-incremental-runs", type=int, default=5)
    parser.add_argument("--schedule-runs", type=int, default=15)
    parser.add_argument("--payouts-runs", type=int, default=15)
    parser.add_argument("--payouts-export-runs", type=int, default=5)
    parser.add_argument("--only", default=",".join(sorted(ALL_MEASURES)))
    args = parser.parse_args(argv)
    only = set(args.only.split(","))

    # The upload and FHIR benchmarks bring their own clinic and data: alone, they need no data set.
    server, dataset = (prepare_schema(), None) if only <= SELF_CONTAINED else prepare()
    import logging

    from django.conf import settings

    # WeasyPrint logs each step of each PDF at INFO; WhiteNoise warns that static files were not
    # collected, which pages served by the test client do not need.
    logging.getLogger("weasyprint").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="No directory at")

    # Production-like: no query log kept in memory, templates compiled once.
    settings.DEBUG = False
    results: list[dict] = []
    print("Measuring …", flush=True)
    if "dashboard" in only:
        results += bench_dashboard(dataset, runs=args.runs)
    if "export" in only:
        from .export_speed import bench_export

        results += bench_export(server, dataset, runs=args.export_runs, organization_of=lambda: _bench_organization()[0])
    if "receipt" in only:
        results += bench_receipt(runs=args.receipt_runs)
    if "throughput" in only:
        from .dashboard_throughput import bench_dashboard_throughput

        results += bench_dashboard_throughput(server, rounds=args.throughput_rounds)
    if "upload" in only:
        from .upload_import import bench_upload_import

        results += bench_upload_import(runs=args.upload_runs, import_export_runs=args.import_export_runs)
    if "fhir" in only:
        from .fhir_sync import bench_fhir_sync

        results += bench_fhir_sync(runs=args.fhir_runs, incremental_runs=args.fhir_incremental_runs)
    if "schedule" in only:
        from .collection_schedule import bench_collection_schedule

        results += bench_collection_schedule(runs=args.schedule_runs)
    if "payouts" in only:
        from .payouts import bench_payouts

        results += bench_payouts(runs=args.payouts_runs, export_runs=args.payouts_export_runs, timed=_paired_times_ms,
                                 result=_result)

    report = {
        "measured_at": datetime.now(dt_timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "dataset": None if dataset is None else {
            "transactions": dataset.transactions,
            "events": dataset.events,
            "patients": dataset.patients,
            "organizations": dataset.organizations,
            "payment_requests": dataset.payment_requests,
            "audit_events": dataset.audit_events,
            "load_seconds": round(dataset.seconds, 1),
        },
        "results": results,
    }
    # A run of some of the measures keeps the whole run's latest.json: it writes latest-<measures>.json.
    results_path = RESULTS if only >= ALL_MEASURES else RESULTS.with_name(f"latest-{'-'.join(sorted(only))}.json")
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(report, indent=2) + "\n")
    info = report["machine"]
    print()
    print(f"Machine: {info['nproc']} CPU ({info['cpu']}), {info['memory_gb']} GB RAM, "
          f"PostgreSQL {info['postgresql']}, Python {info['python']}, load average {info['load_average']}")
    if dataset is not None:
        print(f"Data set: {dataset.transactions:,} transactions, {dataset.events:,} ledger events, "
              f"{dataset.patients:,} patients, {dataset.payment_requests:,} payment requests, "
              f"{dataset.audit_events:,} audit events, organizations of "
              f"{', '.join(f'{n:,}' for n in dataset.organizations)} transactions (loaded in {dataset.seconds:.0f} s)")
    print()
    print(table(results))
    print()
    print(f"Written to {results_path.relative_to(BASE_DIR)}")
    missed = [r["name"] for r in results if r["met"] is False]
    if missed:
        print(f"Targets missed: {', '.join(missed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
