"""One side of the Excel export benchmark, in a process of its own so its peak memory is its own.

    python -m benchmarks.export_worker ours '{"email": ..., "organization": ..., "params": {...}}'
    python -m benchmarks.export_worker bare '{"sql": "SELECT ...", "conninfo": "..."}'

``ours`` runs the background export exactly as the Celery task does (``transaction_export_build``:
filters, server-side cursor, openpyxl write-only, progress updates, the file saved to storage, the
audit event). ``bare`` is the floor to compare it with: the same SELECT through a psycopg
server-side cursor, each row appended as it comes to an openpyxl write-only sheet, saved to a
file; no Django. Each prints one JSON line: seconds and CPU seconds (the work only, not the
imports), the
process's peak RSS, the rows written and, for ``ours``, the SELECT it ran.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time


def _peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not getrusage's ru_maxrss: Linux carries
    ru_maxrss over from the parent through fork and exec, so a child started by a large parent
    would report the parent's peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ours(spec: dict) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumapay.settings")
    import django

    django.setup()
    from datetime import timedelta

    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    settings.DEBUG = False
    media = tempfile.mkdtemp(prefix="lumapay-bench-")
    settings.MEDIA_ROOT = media

    from org_profile.models import Membership
    from transactions.filters import TransactionFilter, query_from_params
    from transactions.models import TransactionExport
    from transactions.services.exports import transaction_export_build

    membership = Membership.objects.select_related("organization", "user").get(
        user__email=spec["email"], organization__slug=spec["organization"]
    )
    summary = TransactionFilter(query_from_params(spec["params"]), membership=membership).summary()
    export = TransactionExport.objects.create(
        organization=membership.organization,
        requested_by=membership.user,
        filters=spec["params"],
        filter_summary=[list(pair) for pair in summary],
        expires_at=timezone.now() + timedelta(hours=1),
    )
    with CaptureQueriesContext(connection) as queries:
        started, cpu = time.perf_counter(), _cpu_seconds()
        export = transaction_export_build(export_id=export.pk)
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    if export.status != "ready":
        raise SystemExit(f"export failed: {export.status} {export.error_message}")
    size = export.file.size
    export.file.delete(save=False)
    TransactionExport.objects.filter(pk=export.pk).delete()
    select = next(q["sql"] for q in queries.captured_queries if " FOR SELECT " in q["sql"] and "timezone(" in q["sql"])
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mb": _peak_rss_mb(),
        "rows": export.rows_written,
        "bytes": size,
        "sql": select.split(" FOR ", 1)[1],
    }


def bare(spec: dict) -> dict:
    import psycopg
    from openpyxl import Workbook

    with psycopg.connect(spec["conninfo"]) as connection, tempfile.TemporaryFile(suffix=".xlsx") as target:
        started, cpu = time.perf_counter(), _cpu_seconds()
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("Transactions")
        rows = 0
        with connection.cursor(name="bench_export") as cursor:
            cursor.itersize = spec.get("chunk", 2000)
            cursor.execute(spec["sql"])
            for row in cursor:
                sheet.append(row)
                rows += 1
        workbook.save(target)
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
        size = target.tell()
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": _peak_rss_mb(), "rows": rows, "bytes": size}


if __name__ == "__main__":
    mode, spec = sys.argv[1], json.loads(sys.argv[2])
    result = {"ours": ours, "bare": bare}[mode](spec)
    print(json.dumps(result))
