"""The Excel export of ~100,000 filtered rows (the Celery task's path, ``transaction_export_build``)
against a bare loop reading the same SELECT through a psycopg server-side cursor into openpyxl
write-only (``benchmarks/export_worker.py``), each side in its own process, the runs alternated.

Both the wall time and the process's CPU time are measured: on a shared machine the wall time
also counts what the other processes take, the CPU time is the export's own Python work. Each
figure is the median of the runs, with the spread (lowest-highest) in the notes. Targets: CPU and
wall time each <= 1.3x the bare loop's, peak RSS < 150 MB.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
EXPORT_ROWS = 100_000
RATIO = 1.3


def bench_export(server, dataset, *, runs: int, organization_of, log=print) -> list[dict]:
    from zoneinfo import ZoneInfo

    from transactions.filters import TransactionFilter, query_from_params

    from .run import _result

    membership = organization_of()
    organization = membership.organization
    params = {"status": ["succeeded", "partially_refunded", "refunded"], "vendor": [organization.payment_gateway]}
    # The third filter, created from: the local day from which the set holds about 100,000 rows.
    base = TransactionFilter(query_from_params(params), membership=membership).qs
    boundary = base.order_by("-created_at", "-id").values_list("created_at", flat=True)[EXPORT_ROWS - 1]
    start_day = boundary.astimezone(ZoneInfo(organization.timezone)).date() + timedelta(days=1)
    params["created_from"] = [start_day.isoformat()]
    rows_expected = TransactionFilter(query_from_params(params), membership=membership).qs.count()

    spec = {"email": membership.user.email, "organization": organization.slug, "params": params}
    # A first run, not counted: it warms the caches and tells the bare loop which SELECT to run.
    warm = _worker("ours", spec)
    bare_spec = {"sql": warm["sql"], "conninfo": server.conninfo(server.bench_database)}
    ours_runs, bare_runs = [], []
    for _ in range(runs):
        ours_runs.append(_worker("ours", spec))
        bare_runs.append(_worker("bare", bare_spec))
    for result in ours_runs + bare_runs:
        assert result["rows"] == rows_expected, (result["rows"], rows_expected)

    def figures(key):
        ours = [r[key] for r in ours_runs]
        bare = [r[key] for r in bare_runs]
        return statistics.median(ours), statistics.median(bare), _spread(ours), _spread(bare)

    ours_s, bare_s, ours_s_spread, bare_s_spread = figures("seconds")
    ours_cpu, bare_cpu, ours_cpu_spread, bare_cpu_spread = figures("cpu_seconds")
    ours_mb = max(r["peak_rss_mb"] for r in ours_runs)
    bare_mb = max(r["peak_rss_mb"] for r in bare_runs)
    log(
        f"  export: CPU {ours_cpu:.2f} s (bare loop {bare_cpu:.2f} s), wall {ours_s:.2f} s (bare loop {bare_s:.2f} s), "
        f"{ours_mb:.0f} MB (bare loop {bare_mb:.0f} MB), {rows_expected:,} rows"
    )
    filters_text = "status in 3, created from " + start_day.isoformat() + ", vendor " + organization.payment_gateway
    common = f"{filters_text}; median of {runs} runs each, alternated"
    return [
        _result("export: 100k rows to Excel, CPU time", ours_cpu, bare_cpu, f"<= {RATIO}x the bare loop", "s",
                rows_expected, limit=RATIO * bare_cpu,
                notes=f"{common}; spread {ours_cpu_spread} vs {bare_cpu_spread}; the process's user+system CPU, "
                      f"the work only"),
        _result("export: 100k rows to Excel, wall time", ours_s, bare_s, f"<= {RATIO}x the bare loop", "s",
                rows_expected, limit=RATIO * bare_s,
                notes=f"{common}; spread {ours_s_spread} vs {bare_s_spread}; file {ours_runs[0]['bytes'] / 1e6:.1f} MB "
                      f"(bare {bare_runs[0]['bytes'] / 1e6:.1f} MB)"),
        _result("export: 100k rows to Excel, peak memory", ours_mb, bare_mb, "peak RSS < 150 MB", "MB", rows_expected,
                limit=150.0, notes="whole-process peak RSS (VmHWM), Django loaded on our side only"),
    ]


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f} s"


def _worker(mode: str, spec: dict) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.export_worker", mode, json.dumps(spec)],
        cwd=BASE_DIR, env=os.environ.copy(), capture_output=True, text=True,
    )
    if completed.returncode != 0:
        raise SystemExit(f"benchmarks: the {mode} export failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])
