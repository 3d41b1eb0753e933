"""The Upload Center's writes: receive a file (read it, check every row, keep it for the choice),
import it (all or nothing, or its valid rows) through the one importer every EHR source uses
(``ehr_sync.importer``), or discard it.

Nothing is written to the patients' records before the member chooses. The import runs in the
background (``uploads.tasks.upload_import``), in batches of ``UPLOAD_BATCH_RECORDS`` records, each
its own database transaction, with the progress stored after each one; all or nothing is one
importer call, so one transaction for the whole file.
"""

from __future__ import annotations

import datetime
import hashlib
import zoneinfo
from dataclasses import asdict

from django.db import transaction
from django.utils import timezone

from ehr_sync.enums import ImportSource
from ehr_sync.importer import import_run_finish, import_run_start, records_check, records_import
from ehr_sync.records import RecordBatch
from lumapay.audit import actor_from, audit_event_record
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.task_queue import task_enqueue_on_commit
from org_profile.access import MANAGERS, staff_access

from .enums import ImportMode, UploadStatus
from .file_reading import (
    FileProblem,
    ReadFile,
    UploadFileRejected,
    file_problems_from_records,
    record_problems_located,
    upload_file_read,
)
from .models import Upload

# Records per importer call (one database transaction each) when importing the valid rows.
UPLOAD_BATCH_RECORDS = 5_000
IMPORT_TASK = "uploads.tasks.upload_import"
_KINDS = ("patients", "appointments", "copays", "balances")
_DENIED = {"role": "Only managers and administrators upload files."}


def _time_zone(organization):
    try:
        return zoneinfo.ZoneInfo(organization.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _records_moment(*, organization, sha256: str, kind: str, received_at: datetime.datetime) -> datetime.datetime:
    """The moment this file's records carry: the first upload's of the same file, else now."""
    first = (
        Upload.objects.filter(organization=organization, sha256=sha256, kind=kind)
        .order_by("records_as_of")
        .values_list("records_as_of", flat=True)
        .first()
    )
    return first or received_at


def _read(upload: Upload, data: bytes) -> ReadFile:
    return upload_file_read(
        kind=upload.kind,
        file_name=upload.file_name,
        data=data,
        received_at=upload.records_as_of,
        time_zone=_time_zone(upload.organization),
    )


def _patient_of(read: ReadFile) -> dict[str, str]:
    """Each record's reference ("row 7") → the patient's id in the EHR."""
    found = {}
    for record in read.batch.patients:
        found[record.reference] = record.external_id
    for record in (*read.batch.appointments, *read.batch.balances):
        found[record.reference] = record.patient_external_id
    return found


def _problems_stored(read: ReadFile, problems: list[FileProblem]) -> list[dict]:
    patients = _patient_of(read)
    stored = []
    for problem in sorted(problems, key=lambda p: (p.row is not None, p.row or 0)):
        entry = asdict(problem)
        entry["patient"] = patients.get(f"row {problem.row}", "") if problem.row is not None else ""
        stored.append(entry)
    return stored


def _rows_with_problems(problems: list[FileProblem]) -> int:
    return len({problem.row for problem in problems if problem.row is not None})


def upload_receive(
    *, organization, actor, kind: str, file_name: str, data: bytes, ip_address: str | None = None
) -> Upload:
    """Read and check a file without importing anything: the upload to preview. Raises
    ``UploadFileRejected`` for a file that cannot be read at all (nothing is kept then)."""
    staff_access(organization=organization, actor=actor, roles=MANAGERS, denied=_DENIED)
    received_at = timezone.now()
    upload = Upload(
        organization=organization,
        kind=kind,
        file_name=file_name[:255],
        size_bytes=len(data),
        uploaded_by=actor,
        uploaded_at=received_at,
    )
    upload.sha256 = hashlib.sha256(data).hexdigest()
    upload.records_as_of = _records_moment(
        organization=organization, sha256=upload.sha256, kind=kind, received_at=received_at
    )
    read = _read(upload, data)
    _valid, record_problems = records_check(organization=organization, batch=read.batch)
    problems = file_problems_from_records(read, record_problems)
    upload.rows = read.rows
    upload.rows_with_problems = _rows_with_problems(problems)
    upload.problems = _problems_stored(read, problems)
    upload.content = data
    with transaction.atomic():
        upload.save()
        actor_type, actor_user = actor_from(actor)
        audit_event_record(
            organization=organization,
            action=AuditAction.UPLOAD_RECEIVED,
            actor_type=actor_type,
            actor_user=actor_user,
            ip_address=ip_address,
            changes={
                "upload": upload.pk,
                "kind": kind,
                "sha256": upload.sha256,
                "size_bytes": upload.size_bytes,
                "rows": upload.rows,
                "rows_with_problems": upload.rows_with_problems,
            },
        )
    return upload


def _locked(organization, upload_id: int) -> Upload:
    return Upload.objects.select_for_update(of=("self",)).get(organization=organization, pk=upload_id)


def upload_import(*, organization, actor, upload: Upload, mode: str, ip_address: str | None = None) -> Upload:
    """Start importing a previewed (or failed) upload in the background. All or nothing is refused while the
    preview lists problems: it would import nothing."""
    staff_access(organization=organization, actor=actor, roles=MANAGERS, denied=_DENIED)
    mode = ImportMode(mode)
    with transaction.atomic():
        locked = _locked(organization, upload.pk)
        # A failed import may be tried again (its file is kept); the importer is idempotent.
        if locked.status not in (UploadStatus.PREVIEWED, UploadStatus.FAILED):
            raise ApplicationError(f"This file is already {locked.get_status_display().lower()}: choose another file.")
        if mode == ImportMode.ALL_OR_NOTHING and locked.problems:
            raise ApplicationError(
                "“All or nothing” imports a file only when every row is right, and "
                f"{locked.rows_with_problems or 'some'} row{'' if locked.rows_with_problems == 1 else 's'} "
                "of this one have problems. Correct them and upload the file again, or import the valid rows."
            )
        if mode == ImportMode.VALID_ROWS and not locked.valid_rows:
            raise ApplicationError("No row of this file can be imported: every row has a problem.")
        locked.import_run = import_run_start(
            organization=organization, source=ImportSource.UPLOAD, label=locked.file_name, started_by=actor
        )
        locked.status = UploadStatus.IMPORTING
        locked.mode = mode
        locked.imported_by = actor
        locked.progress_rows = 0
        locked.error = ""
        locked.finished_at = None
        locked.save(update_fields=["import_run", "status", "mode", "imported_by", "progress_rows", "error", "finished_at"])
        task_enqueue_on_commit(IMPORT_TASK, locked.pk)
    return locked


def _chunks(batch: RecordBatch, size: int):
    """One kind at a time (patients first), ``size`` records at most each."""
    for kind in _KINDS:
        records = getattr(batch, kind)
        for start in range(0, len(records), size):
            yield RecordBatch(**{kind: records[start : start + size]})


def _split(batch: RecordBatch, rejected_references: set[str]) -> tuple[RecordBatch, RecordBatch]:
    valid, rejected = RecordBatch(), RecordBatch()
    for kind in _KINDS:
        for record in getattr(batch, kind):
            getattr(rejected if record.reference in rejected_references else valid, kind).append(record)
    return valid, rejected


def upload_import_run(*, upload_id: int) -> Upload | None:
    """The background import (the task's service). Does nothing unless the upload is importing,
    so a second delivery of the task is harmless; one interrupted half-way goes on from the
    batches it had committed (each batch stores the progress in its own transaction)."""
    upload = Upload.objects.filter(pk=upload_id).select_related("organization").first()
    if upload is None or upload.status != UploadStatus.IMPORTING:
        return upload
    organization, run = upload.organization, upload.import_run
    try:
        read = _read(upload, bytes(upload.content))
    except UploadFileRejected as error:
        return _finish(upload, problems=None, read=None, error=error.message)

    all_problems = list(read.problems)
    if upload.mode == ImportMode.ALL_OR_NOTHING:
        if read.problems:
            return _finish(upload, problems=all_problems, read=read, error="The file has problems: nothing was imported.")
        outcome = records_import(run=run, batch=read.batch, all_or_nothing=True)
        all_problems += record_problems_located(read, outcome.problems)
        Upload.objects.filter(pk=upload.pk).update(progress_rows=upload.rows)
        error = "" if outcome.written else "Rows had problems at the time of the import: nothing was imported."
        return _finish(upload, problems=all_problems, read=read, error=error)

    # The valid rows: the whole file is checked once (a duplicate id in two batches is caught),
    # then the valid records go in batches and the rejected ones last, so their rejections are
    # recorded with the run (and refer to patients the batches before wrote).
    _valid, problems = records_check(organization=organization, batch=read.batch)
    valid, rejected = _split(read.batch, {problem.reference for problem in problems})
    done = upload.progress_rows
    position = 0
    for chunk in _chunks(valid, UPLOAD_BATCH_RECORDS):
        position += len(chunk)
        if position <= done:
            continue  # committed by an earlier delivery of this task
        with transaction.atomic():
            outcome = records_import(run=run, batch=chunk)
            all_problems += record_problems_located(read, outcome.problems)
            Upload.objects.filter(pk=upload.pk).update(progress_rows=position)
    if len(rejected):
        outcome = records_import(run=run, batch=rejected)
        all_problems += record_problems_located(read, outcome.problems)
    return _finish(upload, problems=all_problems, read=read, error="")


def _finish(upload: Upload, *, problems, read, error: str) -> Upload:
    with transaction.atomic():
        locked = _locked(upload.organization, upload.pk)
        run = import_run_finish(run=locked.import_run, error=error) if locked.import_run_id else None
        if problems is not None:
            locked.problems = _problems_stored(read, problems)
            locked.rows_with_problems = _rows_with_problems(problems)
        locked.status = UploadStatus.FAILED if error else UploadStatus.IMPORTED
        locked.error = error
        locked.finished_at = timezone.now()
        if not error:
            locked.progress_rows = locked.rows
            locked.content = b""
            locked.content_erased_at = locked.finished_at
        locked.save()
        audit_event_record(
            organization=locked.organization,
            action=AuditAction.UPLOAD_IMPORTED,
            actor_type=actor_from(locked.imported_by)[0],
            actor_user=locked.imported_by,
            changes={
                "upload": locked.pk,
                "mode": locked.mode,
                "import_run": locked.import_run_id,
                "error": error,
                "counts": {
                    name: getattr(run, name, 0)
                    for name in ("received", "created", "updated", "unchanged", "older", "rejected")
                },
            },
        )
    return locked


def upload_discard(*, organization, actor, upload: Upload, ip_address: str | None = None) -> Upload:
    """Drop a previewed (or failed) upload without importing it; its content is erased."""
    staff_access(organization=organization, actor=actor, roles=MANAGERS, denied=_DENIED)
    with transaction.atomic():
        locked = _locked(organization, upload.pk)
        if locked.status not in (UploadStatus.PREVIEWED, UploadStatus.FAILED):
            raise ApplicationError(f"This file is {locked.get_status_display().lower()}: it can no longer be discarded.")
        previous = locked.status
        locked.status = UploadStatus.DISCARDED
        locked.content = b""
        locked.content_erased_at = timezone.now()
        locked.finished_at = locked.content_erased_at
        locked.save(update_fields=["status", "content", "content_erased_at", "finished_at"])
        actor_type, actor_user = actor_from(actor)
        audit_event_record(
            organization=organization,
            action=AuditAction.UPLOAD_DISCARDED,
            actor_type=actor_type,
            actor_user=actor_user,
            ip_address=ip_address,
            changes={"upload": locked.pk, "status": [previous, UploadStatus.DISCARDED]},
        )
    return locked
