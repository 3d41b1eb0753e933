"""TEMPORARY stand-in for the Upload Center's file-reading layer (written on another branch with
this same interface; that file replaces this one on merge). It reads a simple CSV of patients, so
the Upload Center's pages, import and tests can run; appointments and balances files are refused.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import re
from dataclasses import dataclass

import openpyxl
from django.db.models import TextChoices

from ehr_sync.records import PatientRecord, RecordBatch, RecordProblem
from lumapay.errors import ApplicationError

UPLOAD_MAX_BYTES = 20 * 1024 * 1024


class UploadKind(TextChoices):
    PATIENTS = "patients", "Patients"
    APPOINTMENTS = "appointments", "Appointments"
    BALANCES = "balances", "Balances and copays"


@dataclass(frozen=True)
class Column:
    name: str
    required: bool
    description: str
    example: str


COLUMNS: dict[str, list[Column]] = {
    UploadKind.PATIENTS: [
        Column("patient_id", True, "The patient's id in your EHR", "MRN-1001"),
        Column("first_name", True, "First name", "Maria"),
        Column("last_name", True, "Last name", "Lopez"),
        Column("date_of_birth", True, "Date of birth, YYYY-MM-DD", "1984-03-09"),
        Column("email", False, "E-mail address", "maria@example.com"),
        Column("mobile_phone", False, "Mobile phone", "+1 415 555 0134"),
    ],
    UploadKind.APPOINTMENTS: [
        Column("appointment_id", True, "The appointment's id in your EHR", "APT-77"),
        Column("patient_id", True, "The patient's id in your EHR", "MRN-1001"),
        Column("starts_at", True, "Date and time", "2026-12-01 09:30"),
    ],
    UploadKind.BALANCES: [
        Column("patient_id", True, "The patient's id in your EHR", "MRN-1001"),
        Column("amount_due", True, "Amount due in dollars", "120.50"),
    ],
}

_FIELD_COLUMNS = {"external_id": "patient_id"}


@dataclass
class FileProblem:
    row: int | None
    column: str
    value: str
    reason: str


@dataclass
class ReadFile:
    kind: str
    file_name: str
    rows: int
    batch: RecordBatch
    problems: list[FileProblem]
    sha256: str


class UploadFileRejected(ApplicationError):
    pass


def upload_file_read(*, kind, file_name: str, data: bytes, received_at: datetime.datetime, time_zone) -> ReadFile:
    if len(data) > UPLOAD_MAX_BYTES:
        raise UploadFileRejected("The file is larger than 20 MB.")
    if kind != UploadKind.PATIENTS:
        raise UploadFileRejected("Only patients files can be read for now.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UploadFileRejected("The file is not a CSV file in UTF-8.") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c.name for c in COLUMNS[kind] if c.required and c.name not in (reader.fieldnames or [])]
    if missing:
        raise UploadFileRejected(f"The file has no column {', '.join(missing)}.")
    batch, problems, rows = RecordBatch(), [], 0
    for number, row in enumerate(reader, start=2):
        rows += 1
        dob_text = (row.get("date_of_birth") or "").strip()
        dob = None
        if dob_text:
            try:
                dob = datetime.date.fromisoformat(dob_text)
            except ValueError:
                problems.append(FileProblem(number, "date_of_birth", dob_text, "This is not a date (YYYY-MM-DD)."))
                continue
        batch.patients.append(
            PatientRecord(
                external_id=(row.get("patient_id") or "").strip(),
                first_name=(row.get("first_name") or "").strip(),
                last_name=(row.get("last_name") or "").strip(),
                date_of_birth=dob,
                source_updated_at=received_at,
                reference=f"row {number}",
                email=(row.get("email") or "").strip(),
                mobile_phone=(row.get("mobile_phone") or "").strip(),
            )
        )
    return ReadFile(kind, file_name, rows, batch, problems, hashlib.sha256(data).hexdigest())


def file_problems_from_records(read: ReadFile, problems: list[RecordProblem]) -> list[FileProblem]:
    found = []
    for problem in problems:
        match = re.fullmatch(r"row (\d+)", problem.reference)
        row = int(match.group(1)) if match else None
        found.append(FileProblem(row, _FIELD_COLUMNS.get(problem.field, problem.field), problem.value, problem.reason))
    return found


def upload_template(kind, file_format: str) -> bytes:
    columns = COLUMNS[kind]
    if file_format == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([c.name for c in columns])
        writer.writerow([c.example for c in columns])
        return out.getvalue().encode()
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append([c.name for c in columns])
    sheet.append([c.example for c in columns])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
