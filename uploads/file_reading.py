"""TEMPORARY stand-in for the Upload Center's file reader (another branch writes the real one, which
replaces this file whole). It has the real one's names and reads only what the SFTP drop folder's
tests need: a patients file, CSV or XLSX, with the columns external_id, first_name, last_name,
date_of_birth (YYYY-MM-DD), email, mobile_phone."""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
from dataclasses import dataclass

from django.db.models import TextChoices

from ehr_sync.records import PatientRecord, RecordBatch, RecordProblem
from lumapay.errors import ApplicationError


class UploadKind(TextChoices):
    PATIENTS = "patients", "Patients"
    APPOINTMENTS = "appointments", "Appointments"
    BALANCES = "balances", "Balances and copays"


class UploadFileRejected(ApplicationError):
    """The file as a whole cannot be read."""


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


_COLUMNS = ("external_id", "first_name", "last_name", "date_of_birth", "email", "mobile_phone")


def _table(file_name: str, data: bytes) -> list[list[str]]:
    if file_name.lower().endswith(".xlsx"):
        import openpyxl

        try:
            sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True).worksheets[0]
        except Exception as error:  # noqa: BLE001 - any unreadable workbook is one whole-file problem
            raise UploadFileRejected(f"This is not an Excel workbook ({type(error).__name__}).") from None
        return [["" if cell is None else str(cell) for cell in row] for row in sheet.iter_rows(values_only=True)]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UploadFileRejected("The file is not UTF-8 text.") from None
    return list(csv.reader(io.StringIO(text)))


def upload_file_read(*, kind, file_name: str, data: bytes, received_at, time_zone) -> ReadFile:
    if kind != UploadKind.PATIENTS:
        raise UploadFileRejected("This stand-in reads patients files only.")
    table = _table(file_name, data)
    if not table:
        raise UploadFileRejected("The file is empty.")
    header = [name.strip().lower() for name in table[0]]
    missing = [name for name in _COLUMNS[:4] if name not in header]
    if missing:
        raise UploadFileRejected(f"The file has no column {', '.join(missing)}.")
    batch, problems = RecordBatch(), []
    for number, cells in enumerate(table[1:], start=2):
        row = dict(zip(header, (cell.strip() for cell in cells)))
        try:
            born = datetime.date.fromisoformat(row["date_of_birth"]) if row.get("date_of_birth") else None
        except ValueError:
            problems.append(FileProblem(number, "date_of_birth", row["date_of_birth"], "This is not a date (YYYY-MM-DD)."))
            continue
        batch.patients.append(
            PatientRecord(
                external_id=row.get("external_id", ""),
                first_name=row.get("first_name", ""),
                last_name=row.get("last_name", ""),
                date_of_birth=born,
                email=row.get("email", ""),
                mobile_phone=row.get("mobile_phone", ""),
                source_updated_at=received_at,
                reference=f"row {number}",
            )
        )
    return ReadFile(
        kind=kind,
        file_name=file_name,
        rows=len(table) - 1,
        batch=batch,
        problems=problems,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def file_problems_from_records(read: ReadFile, problems: list[RecordProblem]) -> list[FileProblem]:
    """The reading's problems and the importer's, in row order."""
    found = [
        FileProblem(
            row=int(problem.reference.removeprefix("row ")) if problem.reference.startswith("row ") else None,
            column=problem.field,
            value=problem.value,
            reason=problem.reason,
        )
        for problem in problems
    ]
    return sorted([*read.problems, *found], key=lambda problem: (problem.row or 0,))
