"""An Upload Center import of 100,000 patients: a realistic generated CSV read by
``uploads.file_reading.upload_file_read`` and written by the importer (``records_import``) in the
organization's scope, under row-level security, as the app's background import runs it; against

(a) PostgreSQL's COPY of the same file into a table of ``ehr_sync_patient``'s shape, with the same
    indexes (``CREATE TABLE … (LIKE ehr_sync_patient INCLUDING ALL)``: the unique EHR id, the name
    index and the three trigram GIN indexes): the least work that gets those rows into an indexed
    patient table. Target: ours within 5x.
(b) django-import-export (a ModelResource on Patient, ``external_ehr_id`` as its import id, the
    dates read with its DateWidget) importing the same rows, as a Django project would without a
    bulk path. Target: ours at least 10x faster. It writes row by row, so it is measured on the
    file's first 10,000 rows and scaled to 100,000 linearly (said in the output; its per-row cost
    does not fall with size: each row is a SELECT and an INSERT).

Every run starts from no patients in the benchmark clinic (deleted and vacuumed between runs, not
timed), the two sides alternated. Each figure is the median of the runs, with the spread.
"""

from __future__ import annotations

import datetime
import io
import random
import statistics
import time
import unicodedata
import zoneinfo

ROWS = 100_000
IMPORT_EXPORT_ROWS = 10_000
SEED = 20261129
SLUG = "upload-bench-clinic"
COPY_TABLE = "bench_upload_patient_copy"
FIRST_NAMES = [
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "José", "María", "Juan", "Guadalupe",
    "Luis", "Carmen", "Aisha", "Wei", "Priya", "Kwame", "Zoë", "Nguyễn", "Ana", "Sofía",
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor",
    "García", "Rodríguez", "Martínez", "Hernández", "López", "González", "Nguyen", "Patel", "Kim", "Okafor",
    "O'Brien", "Van der Berg", "Smith-Jones", "St. John", "Müller", "Ibáñez", "Chen", "Singh", "Cohen", "Ali",
]
AREA_CODES = ["217", "312", "415", "512", "617", "704", "773", "808", "919", "206"]


def patients_csv(rows: int = ROWS) -> bytes:
    """A practice system's patient export: MRN, names (accents, apostrophes, hyphens), US dates,
    e-mails (some missing), mobile numbers as staff type them (some missing), language, SMS
    consent. UTF-8, CRLF, as Excel's "CSV UTF-8" writes."""
    generator = random.Random(SEED)
    lines = ["MRN,First Name,Last Name,DOB,Email,Mobile Phone,Language,SMS Consent"]
    start = datetime.date(1930, 1, 1)
    for n in range(rows):
        first, last = generator.choice(FIRST_NAMES), generator.choice(LAST_NAMES)
        born = start + datetime.timedelta(days=generator.randrange(0, 34_000))
        plain = unicodedata.normalize("NFKD", first).encode("ascii", "ignore").decode().lower()
        email = f"{plain}.{n}@example.com" if generator.random() < 0.8 else ""
        if generator.random() < 0.85:
            area, exchange, line = generator.choice(AREA_CODES), generator.randrange(200, 1000), n % 10_000
            phone = generator.choice([f"({area}) {exchange}-{line:04d}", f"{area}-{exchange}-{line:04d}",
                                      f"{area}.{exchange}.{line:04d}"])
        else:
            phone = ""
        language = "es" if generator.random() < 0.2 else "en"
        consent = "Yes" if phone and generator.random() < 0.7 else "No"
        name = f'"{last}"' if "," in last else last
        lines.append(f"{100000 + n},{first},{name},{born:%m/%d/%Y},{email},{phone},{language},{consent}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _organization():
    from org_profile.models import Organization

    organization, _ = Organization.objects.get_or_create(
        slug=SLUG,
        defaults={
            "name": "Upload Bench Clinic", "legal_name": "Upload Bench Clinic PLLC", "address_line1": "1 Main Street",
            "city": "Springfield", "state": "IL", "postal_code": "62701", "support_phone": "+12175550100",
            "support_email": "billing@upload-bench.example", "timezone": "America/Chicago",
        },
    )
    return organization


def _empty(organization_id: int) -> None:
    """No patients in the benchmark clinic, nor in the COPY table; dead rows vacuumed away (as the
    owner, not timed)."""
    from django.db import connection

    from ehr_sync.models import ImportRejection, ImportRun
    from lumapay.models import AuditEvent

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM ehr_sync_patient WHERE organization_id = %s", [organization_id])
        cursor.execute(f"DELETE FROM {COPY_TABLE}")
    ImportRejection.objects.filter(organization_id=organization_id).delete()
    AuditEvent.objects.filter(organization_id=organization_id).delete()
    ImportRun.objects.filter(organization_id=organization_id).delete()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) ehr_sync_patient")
        cursor.execute(f"VACUUM (ANALYZE) {COPY_TABLE}")


def _copy_table_create(organization_id: int) -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}")
        cursor.execute(f"CREATE TABLE {COPY_TABLE} (LIKE ehr_sync_patient INCLUDING ALL)")
        cursor.execute(f"ALTER TABLE {COPY_TABLE} ALTER organization_id SET DEFAULT {int(organization_id)}, "
                       "ALTER created_at SET DEFAULT now(), ALTER updated_at SET DEFAULT now(), "
                       "ALTER ehr_version SET DEFAULT ''")
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname", [COPY_TABLE])
        return [row[0].split(" USING ", 1)[1] for row in cursor.fetchall()]


def _ours(data: bytes, organization) -> dict:
    from django.db import connection

    from ehr_sync.enums import ImportSource
    from ehr_sync.importer import import_run_finish, import_run_start, records_import
    from lumapay.tenant_rls import organization_scope
    from uploads.file_reading import upload_file_read

    started = time.perf_counter()
    read = upload_file_read(kind="patients", file_name="patients.csv", data=data, received_at=datetime.datetime.now(
        datetime.UTC), time_zone=zoneinfo.ZoneInfo(organization.timezone))
    read_s = time.perf_counter() - started
    with organization_scope(organization.pk):
        run = import_run_start(organization=organization, source=ImportSource.UPLOAD, label=read.file_name)
        outcome = records_import(run=run, batch=read.batch, all_or_nothing=True)
        run = import_run_finish(run=run)
    seconds = time.perf_counter() - started
    assert not read.problems and outcome.written and run.created == ROWS, (read.problems[:3], outcome.problems[:3])
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ehr_sync_patient WHERE organization_id = %s", [organization.pk])
        assert cursor.fetchone()[0] == ROWS
    return {"seconds": seconds, "read_seconds": read_s}


def _copy(data: bytes) -> float:
    from django.db import connection, transaction

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.copy(
            f"COPY {COPY_TABLE} (external_ehr_id, first_name, last_name, date_of_birth, email, mobile_phone, "
            "preferred_language, sms_consent) FROM STDIN WITH (FORMAT csv, HEADER true, FORCE_NOT_NULL (email, mobile_phone))"
        ) as copy:
            view = memoryview(data)
            for offset in range(0, len(data), 1 << 20):
                copy.write(view[offset:offset + (1 << 20)])
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {COPY_TABLE}")
        assert cursor.fetchone()[0] == ROWS
    return seconds


def _import_export_resource(organization):
    from import_export import fields, resources, widgets

    from ehr_sync.models import Patient

    class PatientResource(resources.ModelResource):
        external_ehr_id = fields.Field(attribute="external_ehr_id", column_name="MRN")
        first_name = fields.Field(attribute="first_name", column_name="First Name")
        last_name = fields.Field(attribute="last_name", column_name="Last Name")
        date_of_birth = fields.Field(attribute="date_of_birth", column_name="DOB",
                                     widget=widgets.DateWidget(format="%m/%d/%Y"))
        email = fields.Field(attribute="email", column_name="Email")
        mobile_phone = fields.Field(attribute="mobile_phone", column_name="Mobile Phone")
        preferred_language = fields.Field(attribute="preferred_language", column_name="Language")
        sms_consent = fields.Field(attribute="sms_consent", column_name="SMS Consent",
                                   widget=widgets.BooleanWidget())

        class Meta:
            model = Patient
            import_id_fields = ("external_ehr_id",)
            fields = ("external_ehr_id", "first_name", "last_name", "date_of_birth", "email", "mobile_phone",
                      "preferred_language", "sms_consent")
            skip_unchanged = True

        def before_save_instance(self, instance, row, **kwargs):
            instance.organization_id = organization.pk

    return PatientResource()


def _import_export(data: bytes, organization) -> float:
    import tablib

    from lumapay.tenant_rls import organization_scope

    text = data.decode("utf-8")
    lines = text.split("\r\n")
    # "Yes"/"No"/"" as the BooleanWidget reads them ("1"/"0", empty: no).
    sliced = "\r\n".join(lines[: IMPORT_EXPORT_ROWS + 1]).replace(",Yes\r\n", ",1\r\n").replace(",No\r\n", ",0\r\n")
    started = time.perf_counter()
    dataset = tablib.Dataset().load(sliced + "\r\n", format="csv")
    with organization_scope(organization.pk):
        result = _import_export_resource(organization).import_data(dataset, dry_run=False, use_transactions=True)
    seconds = time.perf_counter() - started
    assert not result.has_errors() and not result.has_validation_errors(), result.row_errors()[:1]
    assert result.totals["new"] == IMPORT_EXPORT_ROWS, result.totals
    return seconds


def bench_upload_import(*, runs: int, import_export_runs: int, log=print) -> list[dict]:
    from .run import _result, spread

    organization = _organization()
    data = patients_csv()
    indexes = _copy_table_create(organization.pk)
    log(f"  upload: {ROWS:,} patients, {len(data) / 1e6:.1f} MB CSV; the COPY table's indexes: {'; '.join(indexes)}")
    ours_runs, copy_runs, import_export_runs_s = [], [], []
    # A first pair, not counted: it warms PostgreSQL's caches and Python's imports.
    for _ in range(runs + 1):
        _empty(organization.pk)
        ours_runs.append(_ours(data, organization))
        _empty(organization.pk)
        copy_runs.append(_copy(data))
    ours_runs, copy_runs = ours_runs[1:], copy_runs[1:]
    for _ in range(import_export_runs):
        _empty(organization.pk)
        import_export_runs_s.append(_import_export(data, organization))
    _empty(organization.pk)

    ours = [r["seconds"] for r in ours_runs]
    reads = [r["read_seconds"] for r in ours_runs]
    ours_s, copy_s = statistics.median(ours), statistics.median(copy_runs)
    scale = ROWS / IMPORT_EXPORT_ROWS
    import_export_scaled = [seconds * scale for seconds in import_export_runs_s]
    import_export_s = statistics.median(import_export_scaled)
    log(
        f"  upload: ours {ours_s:.2f} s (reading the file {statistics.median(reads):.2f} s), COPY {copy_s:.2f} s "
        f"({ours_s / copy_s:.1f}x); django-import-export {statistics.median(import_export_runs_s):.1f} s for "
        f"{IMPORT_EXPORT_ROWS:,} rows, {import_export_s:.0f} s scaled to {ROWS:,} ({import_export_s / ours_s:.0f}x ours)"
    )
    common = f"median of {runs} runs each, alternated, after one warm-up pair; {len(data) / 1e6:.1f} MB CSV"
    return [
        _result(
            "upload: 100k patients, CSV read + records_import (RLS) vs COPY", ours_s, copy_s,
            "<= 5x COPY into the same indexed table", "s", ROWS, limit=5 * copy_s,
            notes=f"{common}; reading the file {statistics.median(reads):.2f} s of it (spread {spread(reads)}); "
                  f"the COPY table: LIKE ehr_sync_patient INCLUDING ALL ({len(indexes)} indexes)",
            times=ours, baseline_times=copy_runs,
        ),
        _result(
            "upload: 100k patients, ours vs django-import-export", ours_s, import_export_s,
            ">= 10x faster than django-import-export", "s", ROWS, limit=import_export_s / 10,
            notes=f"django-import-export measured on the first {IMPORT_EXPORT_ROWS:,} rows ({import_export_runs} "
                  f"runs: {', '.join(f'{s:.1f}' for s in import_export_runs_s)} s) and scaled x{scale:.0f} "
                  "linearly; ModelResource, external_ehr_id as import id, skip_unchanged, in the clinic's scope",
            times=ours, baseline_times=import_export_scaled,
        ),
    ]
