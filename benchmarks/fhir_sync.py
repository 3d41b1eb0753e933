"""The FHIR sync (``ehr_sync.fhir_sync``) of 10,000 patients and 20,000 appointments (with their
10,000 coverages and 10,000 accounts) from a real sekmet-fhir server on 127.0.0.1, against a baseline
measured in the same run: fetching the very same pages (the URLs the sync asked for, replayed in
order through one ``requests`` session, each answer parsed as JSON) without checking, mapping or
storing anything. Target: the full sync within 2x its baseline.

Then an incremental sync after 1% of the patients and 1% of the appointments changed on the server
(100 and 200, PUT in one transaction bundle before each run, not timed). Target: within 5% of the
full sync's time.

The server is started and filled for the run (transaction bundles of 500 PUTs: the fastest way in
through the FHIR API) and stopped after; nothing is cached between runs or kept in the repository.
Each full sync goes into an organization of its own, so each one creates every record.

The connection's ``watermark_overlap_seconds`` is 0 here, not the production 300: the whole data
set is seconds old, so a 5-minute overlap would make every "incremental" sync read everything again.
In production the overlap re-reads what changed in the 5 minutes before the last sync, a small share
of what changed since. The appointment window (1 day back, 7 ahead) is kept as in production: each
incremental sync reads the appointments of those 8 days again.
"""

from __future__ import annotations

import statistics
import time
import uuid

import requests

PATIENTS = 10_000
APPOINTMENTS_PER_PATIENT = 2
PAGE_SIZE = 500
CHANGED_SHARE = 0.01
FULL_RATIO = 2.0
INCREMENTAL_SHARE = 0.05


def bench_fhir_sync(*, runs: int, incremental_runs: int, log=print) -> list[dict]:
    import ehr_sync.fhir_sync as fhir_sync_module
    from ehr_sync.connectors import connection_sync
    from ehr_sync.demo_fhir_server import (
        DEMO_BALANCE_EXTENSION_URL,
        DEMO_SMS_CONSENT_EXTENSION_URL,
        DemoFhirData,
        demo_fhir_seed,
        demo_fhir_server_start,
    )
    from ehr_sync.enums import EhrConnectionKind, ImportRunStatus
    from ehr_sync.models import EhrConnection
    from lumapay.tenant_rls import organization_scope
    from org_profile.models import Location, Organization

    from .run import _result, spread

    server = demo_fhir_server_start()
    try:
        data = DemoFhirData.build(
            patients=PATIENTS, appointments_per_patient=APPOINTMENTS_PER_PATIENT, days_back=300, days_ahead=65,
            id_prefix="bench",
        )
        started = time.monotonic()
        written = demo_fhir_seed(server.base_url, data)
        log(f"  fhir: {written:,} resources put on sekmet-fhir in {time.monotonic() - started:.0f} s")

        # The URLs the sync asks for, in order, so the baseline fetches the same pages.
        asked: list[tuple[str, str, dict | None]] = []
        original = fhir_sync_module._FhirClient._do_request

        def recording(self, method, path, data=None, params=None, extra_headers=None, *, returning_status=False):
            asked.append((method, self._build_request_url(path, params), data))
            return original(self, method, path, data, params, extra_headers, returning_status=returning_status)

        fhir_sync_module._FhirClient._do_request = recording

        def new_connection():
            organization = Organization.objects.create(
                name=f"FHIR bench clinic {uuid.uuid4().hex[:8]}", slug=f"fhir-bench-{uuid.uuid4().hex[:12]}",
                legal_name="FHIR bench clinic PLLC", address_line1="1 Bench Street", city="Springfield",
            )
            Location.objects.create(organization=organization, name="Downtown Clinic", ehr_location_id="loc-downtown")
            Location.objects.create(organization=organization, name="Northside Clinic", ehr_location_id="loc-northside")
            return EhrConnection.objects.create(
                organization=organization, name="Bench EHR", kind=EhrConnectionKind.FHIR, base_url=server.base_url,
                options={
                    "page_size": PAGE_SIZE, "watermark_overlap_seconds": 0, "timeout_seconds": 300,
                    "appointment_window_days_back": 1, "appointment_window_days": 7,
                    "balance_extension_url": DEMO_BALANCE_EXTENSION_URL,
                    "sms_consent_extension_url": DEMO_SMS_CONSENT_EXTENSION_URL,
                },
            )

        def timed_sync(connection):
            asked.clear()
            started = time.perf_counter()
            with organization_scope(connection.organization_id):
                run = connection_sync(connection_id=connection.pk)
            seconds = time.perf_counter() - started
            if run is None or run.status != ImportRunStatus.SUCCEEDED:
                raise RuntimeError(f"The benchmark's sync did not succeed: {run and run.error}")
            return seconds, run, list(asked)

        def timed_fetch(urls):
            session = requests.Session()
            started = time.perf_counter()
            resources = 0
            for method, url, body in urls:
                answer = session.request(method, url, data=body, headers={"Accept": "application/fhir+json"}, timeout=300)
                answer.raise_for_status()
                resources += len(answer.json().get("entry") or [])
            session.close()
            return time.perf_counter() - started, resources

        full_times, full_baseline, last = [], [], None
        for number in range(runs):
            connection = new_connection()
            seconds, run, urls = timed_sync(connection)
            base_seconds, resources = timed_fetch(urls)
            full_times.append(seconds)
            full_baseline.append(base_seconds)
            last = (connection, run, urls, resources)
            log(f"  fhir: full sync {number + 1}/{runs}: {seconds:.1f} s (fetching its {len(urls)} pages alone: "
                f"{base_seconds:.1f} s), {run.received:,} records")

        connection, full_run, full_urls, full_resources = last
        incremental_times, incremental_baseline, incremental_runs_done = [], [], []
        for number in range(incremental_runs):
            changed = _changes(data, number, CHANGED_SHARE)
            demo_fhir_seed(server.base_url, changed)
            connection.refresh_from_db()
            seconds, run, urls = timed_sync(connection)
            base_seconds, _ = timed_fetch(urls)
            incremental_times.append(seconds)
            incremental_baseline.append(base_seconds)
            incremental_runs_done.append(run)
            log(f"  fhir: incremental sync {number + 1}/{incremental_runs}: {seconds:.2f} s "
                f"({len(urls)} pages, {run.received:,} records; fetching alone {base_seconds:.2f} s)")
    finally:
        fhir_sync_module._FhirClient._do_request = original
        server.stop()

    full_median, base_median = statistics.median(full_times), statistics.median(full_baseline)
    incremental_median = statistics.median(incremental_times)
    records = full_run.received
    return [
        _result(
            "FHIR full sync: 10k patients, 20k appointments (+10k coverages, 10k accounts)",
            full_median, base_median, f"<= {FULL_RATIO}x fetching the same pages", "s", records,
            limit=FULL_RATIO * base_median, times=full_times, baseline_times=full_baseline,
            notes=f"median of {runs}; {len(full_urls)} pages of {PAGE_SIZE}, {full_resources:,} resources fetched; "
                  f"sync spread {spread(full_times)}, baseline spread {spread(full_baseline)}",
        ),
        _result(
            "FHIR incremental sync, 1% changed (vs the full sync)",
            incremental_median, full_median, f"<= {INCREMENTAL_SHARE:.0%} of the full sync", "s",
            int(statistics.median(run.received for run in incremental_runs_done)),
            limit=INCREMENTAL_SHARE * full_median, times=incremental_times, baseline_times=full_times,
            notes=f"median of {incremental_runs}; each after 100 patients and 200 appointments changed; "
                  f"fetching its pages alone: median {statistics.median(incremental_baseline):.2f} s "
                  f"(spread {spread(incremental_baseline)}); overlap 0 (see benchmarks/fhir_sync.py)",
        ),
    ]


def _changes(data, number: int, share: float) -> list[dict]:
    """A different 1% of the patients (a new e-mail) and of the appointments (an hour later) each run."""
    import copy
    import datetime

    patients = max(1, int(len(data.patients) * share))
    appointments = max(1, int(len(data.appointments) * share))
    changed = []
    for resource in data.patients[number * patients : (number + 1) * patients]:
        resource = copy.deepcopy(resource)
        resource["telecom"] = [t for t in resource.get("telecom", []) if t["system"] != "email"] + [
            {"system": "email", "value": f"changed{number}.{resource['id']}@example.org"}
        ]
        changed.append(resource)
    for resource in data.appointments[number * appointments : (number + 1) * appointments]:
        resource = copy.deepcopy(resource)
        start = datetime.datetime.fromisoformat(resource["start"].replace("Z", "+00:00")) + datetime.timedelta(hours=1)
        resource["start"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        resource["end"] = (start + datetime.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        changed.append(resource)
    return changed
