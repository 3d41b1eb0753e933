"""The one importer: every patient, appointment, copay and balance that arrives from outside (a FHIR
sync, an HL7 v2 message, an SFTP drop file, an upload) goes through here, so a record lands the same
way whatever brought it.

The rules
---------
- **Keyed by the EHR's own id**, unique per organization (``external_ehr_id``).
- **Idempotent**: the same record twice changes nothing (no write, counted "unchanged").
- **The newest wins**: a record whose ``source_updated_at`` is older than what is stored is
  counted "older" and changes nothing; the same moment or newer replaces what is stored. A
  cancellation or a reschedule is a newer appointment record and applies like any other.
- **Nothing half-written**: each record is checked whole before anything is written; a rejected
  record leaves no trace but its ``ImportRejection`` (which record, which field, the value as the
  source wrote it, why). With ``all_or_nothing`` one rejection writes nothing at all.
- **Accounted for**: each call adds to its ``ImportRun`` what came in and what became of it, per
  kind of record.

How it writes
-------------
Records are checked in Python, then the existing rows for their ids are read once, locked
(``FOR UPDATE``, in id order, so two imports of overlapping records wait for each other instead of
deadlocking) and compared; only what is new or changed is written, in one ``INSERT`` and one
``UPDATE`` per kind, not one statement per row: new rows are copied (``COPY``) into a temporary
table and inserted from it, changed ones updated from arrays (``unnest``); an upload of 100,000
patients is a handful of statements. The ``INSERT``'s ``ON CONFLICT`` guard keeps the
newest when two imports create the same patient at once.

Audit: a changed patient or appointment gets an audit event with the old and new values and the
run that changed it; a new one records its run (``last_import_run``); each call records one
"Records imported" event with its counts. Values are PHI: they go to the audit log, never to logs.
"""

from __future__ import annotations

import datetime
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import ActorType, AuditEvent
from org_profile.models import Location, Organization

from .enums import AppointmentStatus, ImportRunStatus, ImportSource, PreferredLanguage
from .lookups import AnyOf
from .models import Appointment, Balance, EhrConnection, ImportRejection, ImportRun, Patient
from .phone_numbers import mobile_phone_normalize
from .records import AppointmentRecord, BalanceRecord, CopayRecord, PatientRecord, RecordBatch, RecordProblem

# The largest amount a copay or a balance may have: $1,000,000 (a typo guard, not a business rule).
MAX_AMOUNT_CENTS = 100_000_000
EXTERNAL_ID_MAX_LENGTH = 100
KINDS = ("patient", "appointment", "copay", "balance")
OUTCOMES = ("received", "created", "updated", "unchanged", "older", "rejected")

# Looked up once per record: the enums' ``values`` build a new list on every access.
_LANGUAGES = frozenset(PreferredLanguage.values)
_APPOINTMENT_STATUSES = frozenset(AppointmentStatus.values)
_PATIENT_FIELDS = ("first_name", "last_name", "date_of_birth", "email", "mobile_phone", "preferred_language")
_APPOINTMENT_FIELDS = ("patient_id", "location_id", "provider_name", "starts_at", "status", "currency")


@dataclass
class ImportOutcome:
    """What one call did, per kind: {"patient": Counter(created=3, ...), ...}, and its problems."""

    counts: dict[str, Counter] = field(default_factory=lambda: {kind: Counter() for kind in KINDS})
    problems: list[RecordProblem] = field(default_factory=list)
    written: bool = True

    def total(self, outcome: str) -> int:
        return sum(counter[outcome] for counter in self.counts.values())


# -- runs --------------------------------------------------------------------------------------------


def import_run_start(
    *,
    organization: Organization,
    source: str,
    connection: EhrConnection | None = None,
    label: str = "",
    started_by=None,
) -> ImportRun:
    return ImportRun.objects.create(
        organization=organization,
        source=ImportSource(source),
        connection=connection,
        label=label[:300],
        started_by=started_by if getattr(started_by, "is_authenticated", False) else None,
    )


def import_run_finish(*, run: ImportRun, error: str = "") -> ImportRun:
    """Close the run: failed (with why) when ``error`` is given, else succeeded, with or without
    rejected records. Returns the run as stored."""
    run.refresh_from_db()
    if error:
        run.status = ImportRunStatus.FAILED
        run.error = error
    elif run.rejected:
        run.status = ImportRunStatus.SUCCEEDED_WITH_REJECTIONS
    else:
        run.status = ImportRunStatus.SUCCEEDED
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])
    return run


# -- checking ----------------------------------------------------------------------------------------


def records_check(*, organization: Organization, batch: RecordBatch) -> tuple[RecordBatch, list[RecordProblem]]:
    """Every problem of every record, without writing anything: the records that pass, and the
    problems of those that do not (an upload's preview shows these). A record with one problem is
    out whole; one that refers to a rejected record (an appointment of a rejected patient) is out too."""
    problems: list[RecordProblem] = []
    patients = _unique(batch.patients, "patient", lambda r: r.external_id, problems)
    patients = [record for record in patients if not _patient_problems(record, problems)]

    known_patient_ids = {record.external_id for record in patients}
    rejected_references = {problem.reference for problem in problems if problem.kind == "patient"}
    rejected_patient_ids = {record.external_id for record in batch.patients if record.reference in rejected_references}
    referenced = {record.patient_external_id for record in (*batch.appointments, *batch.balances)}
    stored_patient_ids = _stored_external_ids(Patient, organization, referenced - known_patient_ids)

    locations = _LocationMatcher(organization)
    appointments = _unique(batch.appointments, "appointment", lambda r: r.external_id, problems)
    appointments = [
        record
        for record in appointments
        if not _appointment_problems(
            record, problems, known_patient_ids | stored_patient_ids, rejected_patient_ids, locations
        )
    ]

    known_appointment_ids = {record.external_id for record in appointments}
    stored_appointment_ids = _stored_external_ids(
        Appointment, organization, {record.appointment_external_id for record in batch.copays} - known_appointment_ids
    )
    copays = _unique(batch.copays, "copay", lambda r: r.appointment_external_id, problems)
    copays = [
        record
        for record in copays
        if not _copay_problems(record, problems, known_appointment_ids | stored_appointment_ids)
    ]
    balances = _unique(batch.balances, "balance", lambda r: r.patient_external_id, problems)
    balances = [
        record
        for record in balances
        if not _balance_problems(record, problems, known_patient_ids | stored_patient_ids, rejected_patient_ids)
    ]
    return RecordBatch(patients=patients, appointments=appointments, copays=copays, balances=balances), problems


class _Problems:
    """Collects one record's problems into the shared list; true when it found any."""

    def __init__(self, kind: str, reference: str, problems: list[RecordProblem]):
        self.kind, self.reference, self.problems, self.found = kind, reference, problems, False

    def add(self, field_name: str, value, reason: str) -> None:
        self.found = True
        self.problems.append(
            RecordProblem(
                kind=self.kind,
                reference=self.reference,
                field=field_name,
                value="" if value is None else str(value),
                reason=reason,
            )
        )


def _external_id_problems(check: _Problems, field_name: str, value: str, what: str) -> None:
    if not value or not value.strip():
        check.add(field_name, value, f"The {what} id is missing: every record needs the EHR's own id.")
    elif len(value) > EXTERNAL_ID_MAX_LENGTH:
        check.add(field_name, value, f"The {what} id is longer than {EXTERNAL_ID_MAX_LENGTH} characters.")


def _patient_problems(record: PatientRecord, problems: list[RecordProblem]) -> bool:
    check = _Problems("patient", record.reference, problems)
    _external_id_problems(check, "external_id", record.external_id, "patient")
    for field_name, label in (("first_name", "first name"), ("last_name", "last name")):
        value = getattr(record, field_name) or ""
        if not value.strip():
            check.add(field_name, value, f"The patient's {label} is missing.")
        elif len(value.strip()) > 100:
            check.add(field_name, value, f"The {label} is longer than 100 characters.")
    dob = record.date_of_birth
    if dob is None:
        check.add("date_of_birth", "", "The date of birth is missing: patients confirm it before they pay.")
    elif dob > timezone.localdate():
        check.add("date_of_birth", dob.isoformat(), "The date of birth is in the future.")
    elif dob.year < 1900:
        check.add("date_of_birth", dob.isoformat(), "The date of birth is before 1900.")
    if record.email:
        try:
            validate_email(record.email.strip())
        except ValidationError:
            check.add("email", record.email, "This is not an e-mail address.")
    phone = ""
    if record.mobile_phone:
        try:
            phone = mobile_phone_normalize(record.mobile_phone)
        except ApplicationError as error:
            check.add("mobile_phone", record.mobile_phone, error.message)
    if record.preferred_language not in _LANGUAGES:
        check.add(
            "preferred_language", record.preferred_language, "The preferred language must be English (en) or Spanish (es)."
        )
    if record.sms_consent and not phone and not check.found:
        check.add("sms_consent", "yes", "SMS consent is given but there is no mobile phone number to text.")
    return check.found


def _appointment_problems(record, problems, patient_ids, rejected_patient_ids, locations) -> bool:
    check = _Problems("appointment", record.reference, problems)
    _external_id_problems(check, "external_id", record.external_id, "appointment")
    if record.patient_external_id in rejected_patient_ids:
        check.add(
            "patient_external_id", record.patient_external_id, "Its patient was rejected (see the patient's problem)."
        )
    elif not record.patient_external_id:
        check.add("patient_external_id", "", "The appointment names no patient.")
    elif record.patient_external_id not in patient_ids:
        check.add(
            "patient_external_id",
            record.patient_external_id,
            "No patient with this id: import the patient first (or in the same file).",
        )
    if record.starts_at is None:
        check.add("starts_at", "", "The appointment's date and time are missing.")
    if record.status not in _APPOINTMENT_STATUSES:
        check.add(
            "status",
            record.status,
            "Unknown appointment status: use booked, arrived, fulfilled, cancelled or noshow.",
        )
    if locations.match(record.location) is None:
        check.add("location", record.location, locations.problem(record.location))
    if len(record.provider_name or "") > 200:
        check.add("provider_name", record.provider_name, "The provider's name is longer than 200 characters.")
    _amount_problems(check, "copay_cents", record.copay_cents, "copay", allow_none=True)
    _currency_problems(check, record.currency)
    return check.found


def _copay_problems(record: CopayRecord, problems, appointment_ids) -> bool:
    check = _Problems("copay", record.reference, problems)
    _external_id_problems(check, "appointment_external_id", record.appointment_external_id, "appointment")
    if record.appointment_external_id and record.appointment_external_id not in appointment_ids:
        check.add(
            "appointment_external_id",
            record.appointment_external_id,
            "No appointment with this id: import the appointment first.",
        )
    _amount_problems(check, "copay_cents", record.copay_cents, "copay", allow_none=False)
    _currency_problems(check, record.currency)
    return check.found


def _balance_problems(record: BalanceRecord, problems, patient_ids, rejected_patient_ids) -> bool:
    check = _Problems("balance", record.reference, problems)
    _external_id_problems(check, "patient_external_id", record.patient_external_id, "patient")
    if record.patient_external_id in rejected_patient_ids:
        check.add("patient_external_id", record.patient_external_id, "Its patient was rejected (see the patient's problem).")
    elif record.patient_external_id and record.patient_external_id not in patient_ids:
        check.add(
            "patient_external_id",
            record.patient_external_id,
            "No patient with this id: import the patient first (or in the same file).",
        )
    _amount_problems(check, "amount_due_cents", record.amount_due_cents, "balance", allow_none=False)
    _currency_problems(check, record.currency)
    return check.found


def _amount_problems(check: _Problems, field_name: str, cents, what: str, *, allow_none: bool) -> None:
    if cents is None:
        if not allow_none:
            check.add(field_name, "", f"The {what} amount is missing.")
        return
    if cents < 0:
        check.add(field_name, f"{cents / 100:.2f}", f"The {what} cannot be negative.")
    elif cents > MAX_AMOUNT_CENTS:
        check.add(field_name, f"{cents / 100:.2f}", f"The {what} is over $1,000,000: check the amount.")


def _currency_problems(check: _Problems, currency: str) -> None:
    if currency != "usd":
        check.add("currency", currency, "Only amounts in US dollars (usd) can be imported.")


def _unique(records: Sequence, kind: str, key, problems: list[RecordProblem]) -> list:
    """Records whose id appears once in the batch. An id that appears more than once with the same
    moment is ambiguous (which row is right?): every copy is rejected, naming the others. With
    different moments the newest is kept (a FHIR history page, an HL7 feed that sent twice)."""
    by_id: dict[str, list] = defaultdict(list)
    for record in records:
        by_id[key(record)].append(record)
    kept = []
    for identifier, group in by_id.items():
        if len(group) == 1 or not identifier:
            kept.extend(group)
            continue
        newest = max(record.source_updated_at for record in group)
        latest = [record for record in group if record.source_updated_at == newest]
        if len(latest) == 1:
            kept.append(latest[0])
            continue
        references = [record.reference for record in latest]
        for record in latest:
            others = ", ".join(reference for reference in references if reference != record.reference)
            problems.append(
                RecordProblem(
                    kind=kind,
                    reference=record.reference,
                    field="external_id",
                    value=identifier,
                    reason=f"The id {identifier} appears more than once (also {others}): keep one of them.",
                )
            )
    return kept


def _stored_external_ids(model, organization: Organization, ids: set[str]) -> set[str]:
    ids = {identifier for identifier in ids if identifier}
    if not ids:
        return set()
    return set(
        model.objects.filter(AnyOf(F("external_ehr_id"), ids), organization=organization).values_list(
            "external_ehr_id", flat=True
        )
    )


class _LocationMatcher:
    """An EHR's place → a Location: by its EHR id, then by its name (case and spacing aside). No
    place given: the organization's only location, if it has just one."""

    def __init__(self, organization: Organization):
        self.locations = list(Location.objects.filter(organization=organization).values("id", "name", "ehr_location_id"))
        self.by_ehr_id = {row["ehr_location_id"]: row["id"] for row in self.locations if row["ehr_location_id"]}
        self.by_name = {" ".join(row["name"].lower().split()): row["id"] for row in self.locations}

    def match(self, text: str) -> int | None:
        text = (text or "").strip()
        if not text:
            return self.locations[0]["id"] if len(self.locations) == 1 else None
        if text in self.by_ehr_id:
            return self.by_ehr_id[text]
        return self.by_name.get(" ".join(text.lower().split()))

    def problem(self, text: str) -> str:
        if not (text or "").strip():
            return "The appointment names no location, and the organization has more than one."
        return (
            "No location has this name or EHR id. Add the EHR's location id to the location in "
            "Settings → Locations, or use a location's name as it appears there."
        )


# -- writing -----------------------------------------------------------------------------------------


def records_import(
    *,
    run: ImportRun,
    batch: RecordBatch,
    all_or_nothing: bool = False,
    unreadable: Sequence[RecordProblem] = (),
) -> ImportOutcome:
    """Check and write ``batch`` for ``run``'s organization, in one database transaction, and add
    what happened to the run's counts. With ``all_or_nothing``, one rejected record writes no
    record at all (the rejections are still recorded, and ``outcome.written`` is False).

    ``unreadable``: what was refused before it became a record (a file's row that could not be
    read; a whole file, kind "file"). Each one is recorded as a rejection and counted as received
    and rejected, so the run says something did not come in; with ``all_or_nothing`` it stops the
    write too. ``outcome.problems`` holds the records' problems only."""
    organization = run.organization
    outcome = ImportOutcome()
    for kind, records in (
        ("patient", batch.patients),
        ("appointment", batch.appointments),
        ("copay", batch.copays),
        ("balance", batch.balances),
    ):
        outcome.counts[kind]["received"] = len(records)
    for kind, _reference in {(problem.kind, problem.reference) for problem in unreadable}:
        outcome.counts.setdefault(kind, Counter())["received"] += 1

    with transaction.atomic():
        valid, problems = records_check(organization=organization, batch=batch)
        outcome.problems = problems
        problems = [*unreadable, *problems]
        for kind in outcome.counts:
            outcome.counts[kind]["rejected"] = len({p.reference for p in problems if p.kind == kind})
        if problems and all_or_nothing:
            outcome.written = False
        else:
            writer = _Writer(run, outcome)
            writer.patients(valid.patients)
            writer.appointments(valid.appointments)
            writer.copays(valid.copays)
            writer.balances(valid.balances)
        ImportRejection.objects.bulk_create(
            [
                ImportRejection(
                    organization=organization,
                    run=run,
                    kind=problem.kind,
                    reference=problem.reference[:300],
                    field=problem.field[:100],
                    value=problem.value[:2000],
                    reason=problem.reason,
                )
                for problem in problems
            ],
            batch_size=2000,
        )
        _run_counts_add(run, outcome)
    return outcome


def _run_counts_add(run: ImportRun, outcome: ImportOutcome) -> None:
    locked = ImportRun.objects.select_for_update(of=("self",)).get(pk=run.pk)
    by_kind = locked.counts_by_kind or {}
    for kind, counter in outcome.counts.items():
        if not any(counter.values()):
            continue
        stored = by_kind.setdefault(kind, {})
        for name in OUTCOMES:
            stored[name] = stored.get(name, 0) + counter[name]
    ImportRun.objects.filter(pk=run.pk).update(
        counts_by_kind=by_kind,
        **{name: F(name) + outcome.total(name) for name in OUTCOMES},
    )
    if outcome.total("received"):
        AuditEvent.objects.create(
            organization_id=run.organization_id,
            action=AuditAction.RECORDS_IMPORTED,
            actor_type=ActorType.STAFF if run.started_by_id else ActorType.SYSTEM,
            actor_user_id=run.started_by_id,
            changes={
                "import_run": run.pk,
                "source": run.source,
                "label": run.label,
                "written": outcome.written,
                "counts": {kind: dict(counter) for kind, counter in outcome.counts.items() if any(counter.values())},
            },
        )


class _Writer:
    def __init__(self, run: ImportRun, outcome: ImportOutcome):
        self.run = run
        self.organization_id = run.organization_id
        self.outcome = outcome
        self.audit: list[AuditEvent] = []
        self.actor_type = ActorType.STAFF if run.started_by_id else ActorType.SYSTEM
        self.now = timezone.now()

    def _audit(self, action, *, patient_id, changes):
        self.audit.append(
            AuditEvent(
                organization_id=self.organization_id,
                action=action,
                actor_type=self.actor_type,
                actor_user_id=self.run.started_by_id,
                patient_id=patient_id,
                changes={**changes, "import_run": self.run.pk, "source": self.run.source},
            )
        )

    def _flush_audit(self):
        AuditEvent.objects.bulk_create(self.audit, batch_size=2000)
        self.audit = []

    # patients

    def patients(self, records: list[PatientRecord]) -> None:
        if not records:
            return
        counts = self.outcome.counts["patient"]
        stored = {
            row.external_ehr_id: row
            for row in Patient.objects.select_for_update(of=("self",))
            .filter(AnyOf(F("external_ehr_id"), [r.external_id for r in records]), organization_id=self.organization_id)
            .order_by("id")
            .only(*_PATIENT_FIELDS, "external_ehr_id", "sms_consent", "sms_consent_at", "ehr_updated_at", "ehr_version")
        }
        inserts, updates, touches = [], [], []
        for record in records:
            values = _patient_values(record)
            row = stored.get(record.external_id)
            if row is None:
                consent = bool(record.sms_consent)
                inserts.append(
                    (*(values[name] for name in _PATIENT_FIELDS), consent, record.source_updated_at if consent else None,
                     record.external_id, record.source_updated_at, record.version[:64])
                )
                counts["created"] += 1
                continue
            if row.ehr_updated_at is not None and record.source_updated_at < row.ehr_updated_at:
                counts["older"] += 1
                continue
            changed = {name: value for name, value in values.items() if getattr(row, name) != value}
            consent, consent_at = row.sms_consent, row.sms_consent_at
            if record.sms_consent is not None and record.sms_consent != row.sms_consent:
                consent = record.sms_consent
                changed["sms_consent"] = consent
            if consent and ("sms_consent" in changed or "mobile_phone" in changed):
                consent_at = record.source_updated_at
            elif not consent:
                consent_at = None
            if consent and not values["mobile_phone"]:
                # The EHR removed the number the patient agreed to be texted on: no more texts.
                consent, consent_at = False, None
                changed["sms_consent"] = False
            if not _changed_or_touched(counts, row, record, changed, touches):
                continue
            merged = {**{name: getattr(row, name) for name in _PATIENT_FIELDS}, **values}
            updates.append(
                (row.pk, *(merged[name] for name in _PATIENT_FIELDS), consent, consent_at,
                 record.source_updated_at, record.version[:64])
            )
            self._audit(
                AuditAction.PATIENT_UPDATED,
                patient_id=row.pk,
                changes={name: [_audit_value(getattr(row, name)), _audit_value(value)] for name, value in changed.items()},
            )
        with connection.cursor() as cursor:
            if inserts:
                _rows_staged(cursor, "import_new_patients", _NEW_PATIENT_COLUMNS, inserts)
                cursor.execute(
                    """
                    INSERT INTO ehr_sync_patient (
                        organization_id, first_name, last_name, date_of_birth, email, mobile_phone,
                        preferred_language, sms_consent, sms_consent_at, external_ehr_id, ehr_updated_at,
                        ehr_version, last_import_run_id, created_at, updated_at)
                    SELECT %s, first_name, last_name, date_of_birth, email, mobile_phone, preferred_language,
                           sms_consent, sms_consent_at, external_ehr_id, ehr_updated_at, ehr_version, %s, %s, %s
                    FROM import_new_patients
                    ON CONFLICT (organization_id, external_ehr_id) WHERE external_ehr_id <> ''
                    DO UPDATE SET
                        first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
                        date_of_birth = EXCLUDED.date_of_birth, email = EXCLUDED.email,
                        mobile_phone = EXCLUDED.mobile_phone, preferred_language = EXCLUDED.preferred_language,
                        sms_consent = EXCLUDED.sms_consent, sms_consent_at = EXCLUDED.sms_consent_at,
                        ehr_updated_at = EXCLUDED.ehr_updated_at, ehr_version = EXCLUDED.ehr_version,
                        last_import_run_id = EXCLUDED.last_import_run_id, updated_at = EXCLUDED.updated_at
                    WHERE ehr_sync_patient.ehr_updated_at IS NULL
                       OR ehr_sync_patient.ehr_updated_at <= EXCLUDED.ehr_updated_at
                    """,
                    [self.organization_id, self.run.pk, self.now, self.now],
                )
            if updates:
                columns = list(zip(*updates))
                cursor.execute(
                    """
                    UPDATE ehr_sync_patient AS p SET
                        first_name = u.first_name, last_name = u.last_name, date_of_birth = u.date_of_birth,
                        email = u.email, mobile_phone = u.mobile_phone, preferred_language = u.preferred_language,
                        sms_consent = u.sms_consent, sms_consent_at = u.sms_consent_at,
                        ehr_updated_at = u.ehr_updated_at, ehr_version = u.ehr_version,
                        last_import_run_id = %s, updated_at = %s
                    FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::date[], %s::text[], %s::text[], %s::text[],
                                %s::boolean[], %s::timestamptz[], %s::timestamptz[], %s::text[])
                         AS u(id, first_name, last_name, date_of_birth, email, mobile_phone, preferred_language,
                              sms_consent, sms_consent_at, ehr_updated_at, ehr_version)
                    WHERE p.id = u.id
                    """,
                    [self.run.pk, self.now, *map(list, columns)],
                )
            self._touch(cursor, "ehr_sync_patient", touches)
        self._flush_audit()

    def _touch(self, cursor, table: str, touches: list) -> None:
        """Unchanged records that are newer than what is stored: remember their moment (so an older
        record arriving later is still recognized as older), without changing anything else."""
        if not touches:
            return
        ids, moments, versions = (list(column) for column in zip(*touches))
        cursor.execute(
            f"""
            UPDATE {table} AS t SET ehr_updated_at = u.moment, ehr_version = u.version
            FROM unnest(%s::bigint[], %s::timestamptz[], %s::text[]) AS u(id, moment, version)
            WHERE t.id = u.id
            """,
            [ids, moments, versions],
        )

    # appointments

    def appointments(self, records: list[AppointmentRecord]) -> None:
        if not records:
            return
        counts = self.outcome.counts["appointment"]
        patient_ids = dict(
            Patient.objects.filter(
                AnyOf(F("external_ehr_id"), {r.patient_external_id for r in records}),
                organization_id=self.organization_id,
            ).values_list("external_ehr_id", "id")
        )
        locations = _LocationMatcher(self.run.organization)
        stored = {
            row.external_ehr_id: row
            for row in Appointment.objects.select_for_update(of=("self",))
            .filter(AnyOf(F("external_ehr_id"), [r.external_id for r in records]), organization_id=self.organization_id)
            .order_by("id")
        }
        inserts, updates, touches = [], [], []
        for record in records:
            values = {
                "patient_id": patient_ids[record.patient_external_id],
                "location_id": locations.match(record.location),
                "provider_name": (record.provider_name or "").strip(),
                "starts_at": record.starts_at,
                "status": record.status,
                "currency": record.currency,
            }
            row = stored.get(record.external_id)
            if row is None:
                inserts.append(
                    (*(values[name] for name in _APPOINTMENT_FIELDS), record.copay_cents or 0,
                     record.source_updated_at if record.copay_cents is not None else None,
                     record.external_id, record.source_updated_at, record.version[:64])
                )
                counts["created"] += 1
                continue
            if row.ehr_updated_at is not None and record.source_updated_at < row.ehr_updated_at:
                counts["older"] += 1
                continue
            changed = {name: value for name, value in values.items() if getattr(row, name) != value}
            copay, copay_at = row.copay_cents, row.copay_updated_at
            if record.copay_cents is not None and record.copay_cents != row.copay_cents:
                copay, copay_at = record.copay_cents, record.source_updated_at
                changed["copay_cents"] = copay
            if not _changed_or_touched(counts, row, record, changed, touches):
                continue
            merged = {**{name: getattr(row, name) for name in _APPOINTMENT_FIELDS}, **values}
            updates.append(
                (row.pk, *(merged[name] for name in _APPOINTMENT_FIELDS), copay, copay_at,
                 record.source_updated_at, record.version[:64])
            )
            self._audit(
                AuditAction.APPOINTMENT_CHANGED,
                patient_id=values["patient_id"],
                changes={
                    "appointment": row.pk,
                    "external_ehr_id": row.external_ehr_id,
                    **{name: [_audit_value(getattr(row, name)), _audit_value(value)] for name, value in changed.items()},
                },
            )
        with connection.cursor() as cursor:
            if inserts:
                _rows_staged(cursor, "import_new_appointments", _NEW_APPOINTMENT_COLUMNS, inserts)
                cursor.execute(
                    """
                    INSERT INTO ehr_sync_appointment (
                        organization_id, patient_id, location_id, provider_name, starts_at, status, currency,
                        copay_cents, copay_updated_at, external_ehr_id, ehr_updated_at, ehr_version,
                        last_import_run_id)
                    SELECT %s, patient_id, location_id, provider_name, starts_at, status, currency, copay_cents,
                           copay_updated_at, external_ehr_id, ehr_updated_at, ehr_version, %s
                    FROM import_new_appointments
                    ON CONFLICT (organization_id, external_ehr_id) WHERE external_ehr_id <> ''
                    DO UPDATE SET
                        patient_id = EXCLUDED.patient_id, location_id = EXCLUDED.location_id,
                        provider_name = EXCLUDED.provider_name, starts_at = EXCLUDED.starts_at,
                        status = EXCLUDED.status, currency = EXCLUDED.currency,
                        ehr_updated_at = EXCLUDED.ehr_updated_at, ehr_version = EXCLUDED.ehr_version,
                        last_import_run_id = EXCLUDED.last_import_run_id
                    WHERE ehr_sync_appointment.ehr_updated_at IS NULL
                       OR ehr_sync_appointment.ehr_updated_at <= EXCLUDED.ehr_updated_at
                    """,
                    [self.organization_id, self.run.pk],
                )
            if updates:
                columns = list(zip(*updates))
                cursor.execute(
                    """
                    UPDATE ehr_sync_appointment AS a SET
                        patient_id = u.patient_id, location_id = u.location_id, provider_name = u.provider_name,
                        starts_at = u.starts_at, status = u.status, currency = u.currency,
                        copay_cents = u.copay_cents, copay_updated_at = u.copay_updated_at,
                        ehr_updated_at = u.ehr_updated_at, ehr_version = u.ehr_version, last_import_run_id = %s
                    FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[], %s::timestamptz[], %s::text[],
                                %s::text[], %s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::text[])
                         AS u(id, patient_id, location_id, provider_name, starts_at, status, currency,
                              copay_cents, copay_updated_at, ehr_updated_at, ehr_version)
                    WHERE a.id = u.id
                    """,
                    [self.run.pk, *map(list, columns)],
                )
            self._touch(cursor, "ehr_sync_appointment", touches)
        self._flush_audit()

    # copays and balances

    def copays(self, records: list[CopayRecord]) -> None:
        if not records:
            return
        counts = self.outcome.counts["copay"]
        stored = {
            row.external_ehr_id: row
            for row in Appointment.objects.select_for_update(of=("self",))
            .filter(
                AnyOf(F("external_ehr_id"), [r.appointment_external_id for r in records]),
                organization_id=self.organization_id,
            )
            .order_by("id")
            .only("external_ehr_id", "patient_id", "copay_cents", "copay_updated_at")
        }
        changed_rows = []
        for record in records:
            row = stored[record.appointment_external_id]
            if row.copay_updated_at is not None and record.source_updated_at < row.copay_updated_at:
                counts["older"] += 1
            elif row.copay_cents == record.copay_cents:
                counts["unchanged"] += 1
            else:
                counts["updated"] += 1
                changed_rows.append((row.pk, record.copay_cents, record.source_updated_at))
                self._audit(
                    AuditAction.APPOINTMENT_CHANGED,
                    patient_id=row.patient_id,
                    changes={
                        "appointment": row.pk,
                        "external_ehr_id": row.external_ehr_id,
                        "copay_cents": [row.copay_cents, record.copay_cents],
                    },
                )
        if changed_rows:
            ids, amounts, moments = (list(column) for column in zip(*changed_rows))
            with connection.cursor() as cursor:
                cursor.execute(
                    """
                    UPDATE ehr_sync_appointment AS a SET copay_cents = u.cents, copay_updated_at = u.moment,
                        last_import_run_id = %s
                    FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[]) AS u(id, cents, moment)
                    WHERE a.id = u.id
                    """,
                    [self.run.pk, ids, amounts, moments],
                )
        self._flush_audit()

    def balances(self, records: list[BalanceRecord]) -> None:
        if not records:
            return
        counts = self.outcome.counts["balance"]
        patient_ids = dict(
            Patient.objects.filter(
                AnyOf(F("external_ehr_id"), {r.patient_external_id for r in records}),
                organization_id=self.organization_id,
            ).values_list("external_ehr_id", "id")
        )
        stored = {
            row.patient_id: row
            for row in Balance.objects.select_for_update(of=("self",))
            .filter(AnyOf(F("patient_id"), patient_ids.values()), organization_id=self.organization_id)
            .order_by("id")
        }
        rows = []
        for record in records:
            patient_id = patient_ids[record.patient_external_id]
            row = stored.get(patient_id)
            if row is None:
                counts["created"] += 1
            elif record.source_updated_at < row.as_of:
                counts["older"] += 1
                continue
            elif row.amount_due_cents == record.amount_due_cents and row.currency == record.currency:
                counts["unchanged"] += 1
                continue
            else:
                counts["updated"] += 1
            rows.append((patient_id, record.amount_due_cents, record.currency, record.source_updated_at))
        if rows:
            patients, amounts, currencies, moments = (list(column) for column in zip(*rows))
            with connection.cursor() as cursor:
                cursor.execute(
                    """
                    INSERT INTO ehr_sync_balance (organization_id, patient_id, amount_due_cents, currency, as_of,
                                                  last_import_run_id)
                    SELECT %s, u.patient_id, u.cents, u.currency, u.moment, %s
                    FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::timestamptz[])
                         AS u(patient_id, cents, currency, moment)
                    ON CONFLICT (patient_id) DO UPDATE SET
                        amount_due_cents = EXCLUDED.amount_due_cents, currency = EXCLUDED.currency,
                        as_of = EXCLUDED.as_of, last_import_run_id = EXCLUDED.last_import_run_id
                    WHERE ehr_sync_balance.as_of <= EXCLUDED.as_of
                    """,
                    [self.organization_id, self.run.pk, patients, amounts, currencies, moments],
                )


# New rows go to a temporary table by COPY first (psycopg writes them in C, instead of adapting one
# Python list per column into an array), then into the table in one INSERT … SELECT … ON CONFLICT.
_NEW_PATIENT_COLUMNS = (
    ("first_name", "text"), ("last_name", "text"), ("date_of_birth", "date"), ("email", "text"),
    ("mobile_phone", "text"), ("preferred_language", "text"), ("sms_consent", "boolean"),
    ("sms_consent_at", "timestamptz"), ("external_ehr_id", "text"), ("ehr_updated_at", "timestamptz"),
    ("ehr_version", "text"),
)
_NEW_APPOINTMENT_COLUMNS = (
    ("patient_id", "bigint"), ("location_id", "bigint"), ("provider_name", "text"), ("starts_at", "timestamptz"),
    ("status", "text"), ("currency", "text"), ("copay_cents", "bigint"), ("copay_updated_at", "timestamptz"),
    ("external_ehr_id", "text"), ("ehr_updated_at", "timestamptz"), ("ehr_version", "text"),
)


def _rows_staged(cursor, table: str, columns, rows: list[tuple]) -> None:
    """``rows`` in a temporary table ``table`` (dropped at commit: the importer always runs in a
    transaction), written with COPY."""
    definition = ", ".join(f"{name} {sql_type}" for name, sql_type in columns)
    cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{table}")
    cursor.execute(f"CREATE TEMPORARY TABLE {table} ({definition}) ON COMMIT DROP")
    with cursor.cursor.copy(f"COPY {table} ({', '.join(name for name, _ in columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _changed_or_touched(counts: Counter, row, record, changed: dict, touches: list) -> bool:
    """Count a stored row's record: updated (True) when it changes something; else unchanged, and
    when the record is newer than the row its moment is remembered (``touches``) so a record older
    than it that arrives later is still recognized as older."""
    if changed:
        counts["updated"] += 1
        return True
    counts["unchanged"] += 1
    if row.ehr_updated_at != record.source_updated_at or row.ehr_version != record.version[:64]:
        touches.append((row.pk, record.source_updated_at, record.version[:64]))
    return False


def _patient_values(record: PatientRecord) -> dict:
    return {
        "first_name": record.first_name.strip(),
        "last_name": record.last_name.strip(),
        "date_of_birth": record.date_of_birth,
        "email": (record.email or "").strip(),
        "mobile_phone": mobile_phone_normalize(record.mobile_phone) if record.mobile_phone else "",
        "preferred_language": record.preferred_language,
    }


def _audit_value(value):
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value
