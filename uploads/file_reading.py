"""Reading the Upload Center's files: a clinic whose EHR does not integrate sends its patients,
appointments, and balances and copays as CSV or Excel (XLSX) files; this turns one file into the
importer's records (``ehr_sync.records``), each one's ``reference`` its spreadsheet row ("row 7",
the header being row 1), and lists what cannot be read, by row, column, value and reason.

What is read here and what is checked by the importer
-----------------------------------------------------
Here: the file as a whole (type, size, encoding, columns, row count, a workbook's zip and XML) and
each cell's *form* (a date, an amount, yes/no, a status, a formula). A row with a problem of form
is left out of the batch whole, as the importer leaves out a record with a problem. The importer's
``records_check`` then finds the problems of *meaning* (a missing name, an e-mail that is not one, a
birth date in the future, an id twice in the file, an unknown patient) on the rows that remain;
``file_problems_from_records`` maps those back to their row and column, so the preview lists both.

A whole-file problem raises ``UploadFileRejected`` with what to do about it; nothing is read then.

Nothing here touches the database: the caller gives the organization's time zone (appointment
times without an offset are in it) and the moment the file was received, which becomes every
record's ``source_updated_at``: the same file uploaded again is "unchanged", and a file received
later wins over one received earlier.

Safety
------
- Size is checked before anything is read (``UPLOAD_MAX_BYTES``); rows are counted as they are read
  and reading stops past ``UPLOAD_MAX_ROWS``.
- A workbook is a zip: its members' declared sizes are checked (``UPLOAD_XLSX_MAX_UNCOMPRESSED_BYTES``
  in all, ``UPLOAD_XLSX_MAX_RATIO`` each) before openpyxl opens it, and Python's zipfile never
  inflates a member past its declared size. An XML member that declares a DTD (entities: "billion
  laughs", external entities) is refused before openpyxl sees it; openpyxl itself parses with
  defusedxml (installed) and lxml without entity resolution, a second lock.
- Formulas are never evaluated: a workbook's formula cell, or a CSV text that starts with = + - @
  (which a spreadsheet would run when someone opens an export), is a problem for its row and column.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import hashlib
import io
import re
import zipfile
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import BinaryIO

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from ehr_sync.enums import AppointmentStatus
from ehr_sync.records import (
    AppointmentRecord,
    BalanceRecord,
    CopayRecord,
    PatientRecord,
    RecordBatch,
    RecordProblem,
)
from lumapay.errors import ApplicationError

# Defaults of the limits (each a setting of the same name, overridable by environment variable).
UPLOAD_MAX_BYTES = 50 * 1024 * 1024
UPLOAD_MAX_ROWS = 200_000
UPLOAD_XLSX_MAX_UNCOMPRESSED_BYTES = 500 * 1024 * 1024
UPLOAD_XLSX_MAX_RATIO = 200
# A workbook has a dozen members; thousands of them is not a spreadsheet someone saved.
XLSX_MAX_MEMBERS = 1_000
CSV_EXTENSIONS = (".csv", ".txt", ".tsv")
XLSX_EXTENSIONS = (".xlsx", ".xlsm")


class UploadKind(models.TextChoices):
    PATIENTS = "patients", _("Patients")
    APPOINTMENTS = "appointments", _("Appointments")
    BALANCES = "balances", _("Balances and copays")


class UploadFileRejected(ApplicationError):
    """The file as a whole cannot be read; ``message`` says why and what to do."""


@dataclass(frozen=True)
class Column:
    name: str  # the header of the template, e.g. "date_of_birth"
    required: bool
    description: str
    example: str
    # Other headers that mean the same (compared without case, spaces or punctuation).
    aliases: tuple[str, ...] = ()
    # How a cell is read: "text", "id", "phone", "date_of_birth", "datetime", "amount", "yes_no",
    # "language", "status".
    form: str = "text"


_PATIENT_ID_ALIASES = (
    "Patient ID", "MRN", "Medical record number", "Patient number", "Chart number", "Account number",
    "Patient account number", "Person number", "Pt ID", "EHR ID", "External ID",
)
_APPOINTMENT_ID_ALIASES = (
    "Appointment ID", "Appt ID", "Appointment number", "Appt number", "Visit ID", "Visit number", "Encounter ID",
)

COLUMNS: dict[str, list[Column]] = {
    UploadKind.PATIENTS: [
        Column("patient_id", True, "The patient's id in your EHR or practice system (MRN, chart or account number). "
               "Uploading the same id again updates that patient.", "100234", _PATIENT_ID_ALIASES, "id"),
        Column("first_name", True, "The patient's first name.", "Ana",
               ("First name", "First", "Given name", "Patient first name", "FName"), "text"),
        Column("last_name", True, "The patient's last name.", "García",
               ("Last name", "Last", "Surname", "Family name", "Patient last name", "LName"), "text"),
        Column("date_of_birth", True, "Date of birth, as MM/DD/YYYY (or YYYY-MM-DD). Patients confirm it "
               "before they see what they owe.", "03/09/1984",
               ("DOB", "Date of birth", "Birth date", "Birthdate", "Birthday", "Patient DOB"), "date_of_birth"),
        Column("email", False, "E-mail address for payment links and receipts.", "ana.garcia@example.com",
               ("Email", "E-mail", "Email address", "E-mail address", "Patient email"), "text"),
        Column("mobile_phone", False, "Mobile number for text messages, e.g. (217) 555-0134; other countries "
               "starting with +.", "(217) 555-0134",
               ("Mobile phone", "Mobile", "Cell", "Cell phone", "Mobile number", "Cell number", "Phone",
                "Phone number", "Patient phone"), "phone"),
        Column("preferred_language", False, "English or Spanish (en, es); English when empty.", "Spanish",
               ("Preferred language", "Language", "Lang", "Patient language"), "language"),
        Column("sms_consent", False, "Whether the patient agreed to receive text messages: Yes or No. Empty keeps "
               "what LumaPay already has.", "Yes",
               ("SMS consent", "SMS", "SMS OK", "Text OK", "Text consent", "SMS opt in", "Text opt in",
                "Consent to text", "OK to text", "Text messages"), "yes_no"),
    ],
    UploadKind.APPOINTMENTS: [
        Column("appointment_id", True, "The appointment's id in your EHR or scheduling system. Uploading the "
               "same id again updates (or cancels) that appointment.", "A-5001", _APPOINTMENT_ID_ALIASES, "id"),
        Column("patient_id", True, "The patient's id, as in the patients file (MRN, chart or account number).",
               "100234", _PATIENT_ID_ALIASES, "id"),
        Column("starts_at", True, "Date and time of the appointment, as MM/DD/YYYY h:mm AM/PM (or YYYY-MM-DD "
               "HH:MM), in the organization's time zone.", "03/14/2027 9:30 AM",
               ("Starts at", "Appointment date", "Appointment date time", "Appointment time", "Appt date",
                "Appt date time", "Date time", "Start", "Start time", "Scheduled time", "Scheduled"), "datetime"),
        Column("status", False, "Booked, Checked in, Completed, Cancelled or No-show; Booked when empty.",
               "Booked", ("Status", "Appointment status", "Appt status"), "status"),
        Column("location", False, "The clinic, as named in Settings → Locations (or its EHR id). May be empty "
               "when the organization has one location.", "Main Street Clinic",
               ("Location", "Clinic", "Office", "Department", "Facility", "Location name", "Location ID"), "text"),
        Column("provider", False, "The provider the patient sees.", "Dr. Kim",
               ("Provider", "Provider name", "Doctor", "Physician", "Rendering provider"), "text"),
        Column("copay", False, "The copay due for the visit, in dollars, e.g. $25.00. Empty keeps what LumaPay "
               "already has.", "$25.00", ("Copay", "Co-pay", "Copay amount", "Copayment", "Copay due"), "amount"),
    ],
    UploadKind.BALANCES: [
        Column("patient_id", True, "The patient's id, as in the patients file (MRN, chart or account number).",
               "100234", _PATIENT_ID_ALIASES, "id"),
        Column("balance", True, "What the patient owes, in dollars, e.g. $1,234.50 (0 when nothing). May be "
               "empty on a row that only gives a copay.", "$125.40",
               ("Balance", "Balance due", "Amount due", "Patient balance", "Outstanding balance",
                "Patient responsibility", "Amount"), "amount"),
        Column("appointment_id", False, "An appointment's id, to set its copay (with the copay column).",
               "A-5001", _APPOINTMENT_ID_ALIASES, "id"),
        Column("copay", False, "The copay due for that appointment, in dollars.", "$25.00",
               ("Copay", "Co-pay", "Copay amount", "Copayment", "Copay due"), "amount"),
    ],
}

# The importer's record fields → the file's columns, to put its problems in the right cell.
_FIELD_COLUMNS = {
    "patient": {"external_id": "patient_id", "first_name": "first_name", "last_name": "last_name",
                "date_of_birth": "date_of_birth", "email": "email", "mobile_phone": "mobile_phone",
                "preferred_language": "preferred_language", "sms_consent": "sms_consent"},
    "appointment": {"external_id": "appointment_id", "patient_external_id": "patient_id", "starts_at": "starts_at",
                    "status": "status", "location": "location", "provider_name": "provider", "copay_cents": "copay"},
    # The importer names a repeated id "external_id" whatever the kind.
    "copay": {"external_id": "appointment_id", "appointment_external_id": "appointment_id", "copay_cents": "copay"},
    "balance": {"external_id": "patient_id", "patient_external_id": "patient_id", "amount_due_cents": "balance"},
}


@dataclass
class FileProblem:
    """One cell that cannot be imported: the row as the spreadsheet numbers it (header = row 1;
    None for the file as a whole), the column's header as the file has it, the value as written."""

    row: int | None
    column: str
    value: str
    reason: str


@dataclass
class ReadFile:
    kind: str
    file_name: str
    rows: int  # data rows read (blank rows aside)
    batch: RecordBatch
    problems: list[FileProblem]
    sha256: str
    file_format: str = "csv"  # "csv" or "xlsx"
    encoding: str = ""  # a CSV's: "utf-8", "utf-8-sig" (with BOM), "utf-16", "cp1252"
    delimiter: str = ","
    # Each column found: its template name → its header as the file has it.
    headers: dict[str, str] = field(default_factory=dict)
    # Headers that are not ours: left out, said in the preview.
    ignored_columns: list[str] = field(default_factory=list)


def _setting(name: str) -> int:
    return int(getattr(settings, name, globals()[name]))


# -- the entry points -----------------------------------------------------------------------------


def upload_size_check(*, file_name: str, size: int) -> None:
    """Refuse a file over ``UPLOAD_MAX_BYTES`` from its size alone (a view calls this with the
    upload's size before reading it)."""
    limit = _setting("UPLOAD_MAX_BYTES")
    if size > limit:
        raise UploadFileRejected(
            f"“{file_name}” is {_megabytes(size)}; files up to {_megabytes(limit)} can be uploaded. "
            "Split it into smaller files (each keeps the header row).",
            extra={"reason": "too_large"},
        )


def upload_file_read(
    *,
    kind: str,
    file_name: str,
    data: bytes | BinaryIO,
    received_at: datetime.datetime,
    time_zone: zoneinfo.ZoneInfo,
) -> ReadFile:
    """The records of one uploaded file and the problems of its cells; ``UploadFileRejected`` when
    the file as a whole cannot be read. ``data`` is the file's bytes, or a binary file object (its
    size is checked before it is read)."""
    kind = UploadKind(kind)
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        data.seek(0, io.SEEK_END)
        upload_size_check(file_name=file_name, size=data.tell())
        data.seek(0)
        data = data.read()
    upload_size_check(file_name=file_name, size=len(data))
    data = bytes(data)
    if not data.strip():
        raise UploadFileRejected(f"“{file_name}” is empty: it has no header row and no rows.",
                                 extra={"reason": "empty"})
    file_format = _file_format(file_name, data)
    reader = _RowReader(kind=kind, received_at=received_at, time_zone=time_zone)
    if file_format == "xlsx":
        rows = _xlsx_rows(file_name, data)
        encoding, delimiter = "", ""
    else:
        text, encoding = _decoded(file_name, data)
        delimiter = _delimiter(kind, text)
        rows = _csv_rows(file_name, text, delimiter)
    read = reader.read(file_name, rows)
    read.sha256 = hashlib.sha256(data).hexdigest()
    read.file_format, read.encoding, read.delimiter = file_format, encoding, delimiter
    return read


def file_problems_from_records(read: ReadFile, problems: list[RecordProblem]) -> list[FileProblem]:
    """Every problem of the file, in row order: those the reading found, and the importer's
    (``records_check``, ``records_import``) on ``read``'s records at their row and column."""
    return sorted([*read.problems, *record_problems_located(read, problems)], key=lambda p: (p.row or 0,))


def record_problems_located(read: ReadFile, problems: list[RecordProblem]) -> list[FileProblem]:
    """The importer's problems alone, each at its row and column in ``read``'s file."""
    found = []
    for problem in problems:
        row = _row_of(problem.reference)
        column_name = _FIELD_COLUMNS.get(problem.kind, {}).get(problem.field, problem.field)
        if problem.field == "currency":
            column_name = _amount_column(read.kind, problem.kind)
        column = read.headers.get(column_name, column_name)
        found.append(FileProblem(row=row, column=column, value=problem.value, reason=problem.reason))
    return found


def _a(label) -> str:
    text = str(label).lower()
    return f"{'an' if text[:1] in 'aeiou' else 'a'} {text}"


def _row_of(reference: str) -> int | None:
    match = re.fullmatch(r"row (\d+)", reference)
    return int(match.group(1)) if match else None


def _amount_column(kind: str, record_kind: str) -> str:
    return "balance" if record_kind == "balance" else "copay"


# -- the file as a whole ----------------------------------------------------------------------------


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):,.1f} MB"


def _file_format(file_name: str, data: bytes) -> str:
    lowered = file_name.lower()
    extension = lowered[lowered.rfind("."):] if "." in lowered else ""
    is_zip = data[:4] == b"PK\x03\x04"
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise UploadFileRejected(
            f"“{file_name}” is an Excel 97–2003 workbook (.xls), which cannot be read. In Excel, choose "
            "File → Save As → Excel Workbook (.xlsx) or CSV UTF-8, and upload that file.",
            extra={"reason": "unsupported_type"},
        )
    if extension in XLSX_EXTENSIONS:
        if not is_zip:
            raise UploadFileRejected(
                f"“{file_name}” is named like an Excel workbook but is not one (it may be damaged, or another "
                "kind of file renamed). Save it again from Excel as .xlsx, or as CSV.",
                extra={"reason": "not_xlsx"},
            )
        return "xlsx"
    if extension in CSV_EXTENSIONS:
        if is_zip:
            raise UploadFileRejected(
                f"“{file_name}” is named .csv but is an Excel workbook or another zip file. Upload it with its "
                ".xlsx name, or save it from Excel as CSV.",
                extra={"reason": "binary"},
            )
        return "csv"
    raise UploadFileRejected(
        f"“{file_name}” is not a file type the Upload Center reads. Upload a CSV file (.csv) or an Excel "
        "workbook (.xlsx).",
        extra={"reason": "unsupported_type"},
    )


def _decoded(file_name: str, data: bytes) -> tuple[str, str]:
    """The text and its encoding: UTF-16 when it starts with its byte-order mark (Excel's "Unicode
    text"), else UTF-8 (with or without the mark), else Windows-1252 (Excel's "CSV" on Windows in the
    US, a superset of Latin-1 for letters such as é, ñ). A NUL byte means it is not text at all."""
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass
    elif b"\x00" not in data[:65536]:
        try:
            encoding = "utf-8-sig" if data[:3] == codecs.BOM_UTF8 else "utf-8"
            return data.decode("utf-8-sig"), encoding
        except UnicodeDecodeError:
            pass
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            pass
    raise UploadFileRejected(
        f"“{file_name}” is not a text (CSV) file: it holds binary data (perhaps another kind of file "
        "renamed .csv). In your spreadsheet, choose Save As → CSV UTF-8, or upload the .xlsx workbook.",
        extra={"reason": "binary"},
    )


def _header_key(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


_KEYS: dict[str, dict[str, str]] = {
    kind: {_header_key(alias): column.name for column in columns for alias in (column.name, *column.aliases)}
    for kind, columns in COLUMNS.items()
}


# Headers that give way to a more precise one in the same file ("Phone" beside "Cell phone").
_GENERIC_HEADERS = {"phone", "phonenumber", "patientphone", "amount", "start", "scheduled", "datetime"}


def _delimiter(kind: str, text: str) -> str:
    """Comma, unless the header row reads as more of our columns split on a semicolon (Excel in
    much of Europe and Latin America) or a tab (Excel's "Unicode text")."""
    end = text.find("\n")
    first_line = (text if end < 0 else text[:end]).lstrip("\ufeff")
    best, best_count = ",", -1
    for candidate in (",", ";", "\t"):
        cells = next(csv.reader([first_line], delimiter=candidate), [])
        count = sum(1 for cell in cells if _header_key(cell) in _KEYS[kind])
        if count > best_count:
            best, best_count = candidate, count
    return best


def _csv_rows(file_name: str, text: str, delimiter: str) -> Iterator[list]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        yield from reader
    except csv.Error as error:
        raise UploadFileRejected(
            f"“{file_name}” cannot be read as CSV near row {reader.line_num}: {error}. A quote that is "
            "opened must be closed; save the file again from your spreadsheet as CSV.",
            extra={"reason": "malformed_csv"},
        ) from error


def _xlsx_rows(file_name: str, data: bytes) -> Iterator[tuple]:
    """The first sheet's rows, once the workbook's zip and XML have been checked."""
    _xlsx_check(file_name, data)
    import openpyxl
    from defusedxml import DefusedXmlException

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False, keep_links=False)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError) as error:
        # openpyxl wraps defusedxml's refusal (EntitiesForbidden, a ValueError) in its own ValueError.
        if _entities_refused(error, DefusedXmlException):
            raise _xml_entities_rejected(file_name) from error
        raise UploadFileRejected(
            f"“{file_name}” cannot be opened as an Excel workbook (it may be damaged). Save it again from "
            "Excel as .xlsx, or as CSV.",
            extra={"reason": "not_xlsx"},
        ) from error
    try:
        sheet = workbook.worksheets[0]
        # The sheet's own dimension is not trusted: too small, it would cut rows off silently; too
        # large, it would pad every row. Rows come as the sheet holds them.
        sheet.reset_dimensions()
        yield from sheet.iter_rows(values_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError) as error:
        if _entities_refused(error, DefusedXmlException):
            raise _xml_entities_rejected(file_name) from error
        raise UploadFileRejected(
            f"The first sheet of “{file_name}” cannot be read (the workbook may be damaged). Save it again "
            "from Excel as .xlsx, or as CSV.",
            extra={"reason": "not_xlsx"},
        ) from error
    finally:
        workbook.close()


def _entities_refused(error: BaseException, refusal: type) -> bool:
    while error is not None:
        if isinstance(error, refusal):
            return True
        error = error.__cause__ or error.__context__
    return False


def _xml_entities_rejected(file_name: str) -> UploadFileRejected:
    return UploadFileRejected(
        f"“{file_name}” contains XML entity declarations (a DTD), which spreadsheets saved by Excel, "
        "Numbers or Google Sheets never have; it is refused for safety. Save it again from your spreadsheet.",
        extra={"reason": "xml_entities"},
    )


def _xlsx_check(file_name: str, data: bytes) -> None:
    """A zip bomb or an XML entity attack is refused here, from the zip's directory and each XML
    member's first bytes, before openpyxl inflates anything."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise UploadFileRejected(
            f"“{file_name}” cannot be opened as an Excel workbook (its zip structure is damaged). Save it "
            "again from Excel as .xlsx, or as CSV.",
            extra={"reason": "not_xlsx"},
        ) from error
    with archive:
        members = archive.infolist()
        if len(members) > XLSX_MAX_MEMBERS:
            raise UploadFileRejected(
                f"“{file_name}” holds {len(members):,} files inside; an Excel workbook holds a few dozen. It is "
                "refused for safety.",
                extra={"reason": "zip_bomb"},
            )
        total_limit, ratio_limit = _setting("UPLOAD_XLSX_MAX_UNCOMPRESSED_BYTES"), _setting("UPLOAD_XLSX_MAX_RATIO")
        total = sum(member.file_size for member in members)
        if total > total_limit:
            raise UploadFileRejected(
                f"“{file_name}” would unpack to {_megabytes(total)}; workbooks up to {_megabytes(total_limit)} "
                "unpacked can be read. Split it into smaller files, or upload it as CSV.",
                extra={"reason": "zip_bomb"},
            )
        for member in members:
            # Sheets compress 5-20 times; far more is a file built to explode when opened.
            if member.file_size > 1024 * 1024 and member.file_size > ratio_limit * max(member.compress_size, 1):
                raise UploadFileRejected(
                    f"“{file_name}” contains a part ({member.filename}) that unpacks to "
                    f"{member.file_size // max(member.compress_size, 1):,} times its packed size; a workbook's "
                    f"parts stay under {ratio_limit} times. It is refused for safety.",
                    extra={"reason": "zip_bomb"},
                )
        for member in members:
            if member.filename.endswith((".xml", ".rels", ".vml")):
                with archive.open(member) as opened:
                    head = opened.read(65536)
                if re.search(rb"<!\s*(DOCTYPE|ENTITY)", head, re.IGNORECASE) or head[:2] in (b"\xff\xfe", b"\xfe\xff"):
                    raise _xml_entities_rejected(file_name)


# -- rows ------------------------------------------------------------------------------------------


class _CellProblem(Exception):
    def __init__(self, reason: str):
        self.reason = reason


class _RowReader:
    def __init__(self, *, kind: str, received_at: datetime.datetime, time_zone: zoneinfo.ZoneInfo):
        self.kind = kind
        self.received_at = received_at
        self.time_zone = time_zone
        self.today = received_at.astimezone(time_zone).date()
        self.max_rows = _setting("UPLOAD_MAX_ROWS")

    def read(self, file_name: str, rows: Iterator) -> ReadFile:
        rows = iter(rows)
        header, header_number = None, 0
        for header_number, header in enumerate(rows, start=1):
            if any(_text(cell).strip() for cell in header):
                break
        else:
            raise UploadFileRejected(f"“{file_name}” is empty: it has no header row and no rows.",
                                     extra={"reason": "empty"})
        positions, headers, ignored = self._columns(file_name, header)
        # (column name, position, how its cell is read), in the template's order.
        readers = [
            (column.name, positions[column.name], _CELL_READERS[column.form])
            for column in COLUMNS[self.kind]
            if column.name in positions
        ]
        batch = RecordBatch()
        problems: list[FileProblem] = []
        build = {
            UploadKind.PATIENTS: self._patient,
            UploadKind.APPOINTMENTS: self._appointment,
            UploadKind.BALANCES: self._balance,
        }[self.kind]
        seen_balances: dict[tuple[str, int | None], str] = {}
        count = 0
        width = len(header)
        for number, row in enumerate(rows, start=header_number + 1):
            if not any(row):
                continue
            count += 1
            if count > self.max_rows:
                raise UploadFileRejected(
                    f"“{file_name}” has more than {self.max_rows:,} rows; files of up to {self.max_rows:,} rows "
                    "can be uploaded. Split it into smaller files (each keeps the header row).",
                    extra={"reason": "too_many_rows"},
                )
            values = {}
            row_problems = []
            length = len(row)
            for name, position, read_cell in readers:
                cell = row[position] if position < length else None
                try:
                    values[name] = read_cell(self, cell)
                except _CellProblem as problem:
                    row_problems.append(FileProblem(number, headers[name], _shown(cell), problem.reason))
            if length > width and any(_text(cell) for cell in row[width:]):
                row_problems.append(FileProblem(
                    number, "", " | ".join(_text(cell) for cell in row[width:] if _text(cell)),
                    f"This row has {length} cells but the header row has {width} columns: check for a "
                    "stray comma or an unquoted value that contains one.",
                ))
            if self.kind == UploadKind.BALANCES and not row_problems and values.get("balance") is None and not (
                values.get("appointment_id") or values.get("copay") is not None
            ):
                row_problems.append(FileProblem(
                    number, headers["balance"], "",
                    "The row gives no balance (and no appointment copay): enter what the patient owes, 0 when nothing.",
                ))
            if row_problems:
                problems.extend(row_problems)
                continue
            build(batch, values, f"row {number}", seen_balances)
        if count == 0:
            raise UploadFileRejected(
                f"“{file_name}” has its header row but no rows below it.", extra={"reason": "no_rows"}
            )
        return ReadFile(
            kind=self.kind, file_name=file_name, rows=count, batch=batch, problems=problems, sha256="",
            headers=headers, ignored_columns=ignored,
        )

    def _columns(self, file_name: str, header) -> tuple[dict[str, int], dict[str, str], list[str]]:
        keys = _KEYS[self.kind]
        positions: dict[str, int] = {}
        headers: dict[str, str] = {}
        ignored = []
        for position, cell in enumerate(header):
            text = _text(cell).strip().lstrip("\ufeff")
            if not text:
                continue
            name = keys.get(_header_key(text))
            if name is None:
                ignored.append(text)
            elif name in positions and _header_key(text) in _GENERIC_HEADERS:
                ignored.append(text)
            elif name in positions and _header_key(headers[name]) in _GENERIC_HEADERS:
                ignored.append(headers[name])
                positions[name], headers[name] = position, text
            elif name in positions:
                raise UploadFileRejected(
                    f"“{file_name}” has two columns for {name}: “{headers[name]}” and “{text}”. Keep one of them.",
                    extra={"reason": "duplicate_column"},
                )
            else:
                positions[name], headers[name] = position, text
        missing = [column.name for column in COLUMNS[self.kind] if column.required and column.name not in positions]
        if missing:
            found = ", ".join(_text(cell).strip() for cell in header if _text(cell).strip()) or "none"
            message = (
                f"“{file_name}” is missing the required column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} for {_a(UploadKind(self.kind).label)} file. The first row must hold the "
                f"column names; it has: {found}."
            )
            fits = [other for other in UploadKind if other != self.kind and all(
                column.name in {_KEYS[other].get(_header_key(_text(cell))) for cell in header}
                for column in COLUMNS[other] if column.required)]
            if fits:
                message += f" It looks like {_a(fits[0].label)} file: upload it as one."
            else:
                message += " Download the template to see the columns."
            raise UploadFileRejected(message, extra={"reason": "missing_columns", "missing": missing})
        return positions, headers, ignored

    # records from a row's values

    def _patient(self, batch: RecordBatch, values: dict, reference: str, seen) -> None:
        batch.patients.append(PatientRecord(
            external_id=values["patient_id"],
            first_name=values["first_name"],
            last_name=values["last_name"],
            date_of_birth=values["date_of_birth"],
            source_updated_at=self.received_at,
            reference=reference,
            email=values.get("email", ""),
            mobile_phone=values.get("mobile_phone", ""),
            preferred_language=values.get("preferred_language") or "en",
            sms_consent=values.get("sms_consent"),
        ))

    def _appointment(self, batch: RecordBatch, values: dict, reference: str, seen) -> None:
        batch.appointments.append(AppointmentRecord(
            external_id=values["appointment_id"],
            patient_external_id=values["patient_id"],
            starts_at=values["starts_at"],
            status=values.get("status") or AppointmentStatus.BOOKED,
            source_updated_at=self.received_at,
            reference=reference,
            location=values.get("location", ""),
            provider_name=values.get("provider", ""),
            copay_cents=values.get("copay"),
        ))

    def _balance(self, batch: RecordBatch, values: dict, reference: str, seen) -> None:
        patient_id, balance = values["patient_id"], values.get("balance")
        appointment_id, copay = values.get("appointment_id", ""), values.get("copay")
        # One row per appointment often repeats the patient's balance: the same figure is one record.
        if balance is not None and (patient_id, balance) not in seen:
            seen[(patient_id, balance)] = reference
            batch.balances.append(BalanceRecord(patient_id, balance, self.received_at, reference))
        if appointment_id or copay is not None:
            batch.copays.append(CopayRecord(appointment_id, copay, self.received_at, reference))


# -- cells -----------------------------------------------------------------------------------------


def _text(cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, str):
        return cell
    return str(cell)


def _shown(cell) -> str:
    if isinstance(cell, datetime.datetime):
        return cell.isoformat(sep=" ")
    if isinstance(cell, datetime.date):
        return cell.isoformat()
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return _text(cell)


FORMULA = "This cell holds a formula; formulas are never run here. Type the value itself (in a spreadsheet, copy the cells and paste them as values)."


def _is_formula(cell) -> bool:
    # openpyxl gives a formula cell as its text "=…", or an ArrayFormula / DataTableFormula object.
    return (isinstance(cell, str) and cell[:1] in ("=", "@")) or type(cell).__name__ in (
        "ArrayFormula", "DataTableFormula")


def _plain_text(cell) -> str:
    """A text cell: names, e-mails, ids, places. One that starts like a formula (= + - @, or a tab
    or carriage return a spreadsheet strips before it) is refused, never stored to run later."""
    if cell is None:
        return ""
    if isinstance(cell, str):
        text = cell.strip()
        if text[:1] in ("=", "+", "-", "@") or cell[:1] in ("\t", "\r"):
            raise _CellProblem(FORMULA if text[:1] in ("=", "@") else
                               "Text cannot start with + or - (a spreadsheet would read it as a formula).")
        return text
    if _is_formula(cell):
        raise _CellProblem(FORMULA)
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return _shown(cell)


def _identifier(cell) -> str:
    return _plain_text(cell)


_PHONE = re.compile(r"\+[0-9 ().\-/]*")


def _phone(cell) -> str:
    """As written (the importer normalizes it); "+" opens an international number."""
    if isinstance(cell, str) and cell.strip()[:1] == "+" and _PHONE.fullmatch(cell.strip()):
        return cell.strip()
    return _plain_text(cell)


_US_DATE = re.compile(r"(\d{1,2})[/-](\d{1,2})[/-](\d{4}|\d{2})")
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]00:00(?::00(?:\.0+)?)?)?")
DATE_FORMATS = "MM/DD/YYYY (03/09/1984), M/D/YYYY, MM/DD/YY or YYYY-MM-DD"


def _date_from_text(text: str, *, birth_today: datetime.date | None) -> datetime.date:
    """A US date (month first) or an ISO one. A two-digit year of a birth date is the century that
    keeps it from being in the future (03/09/84 → 1984; 03/09/19 → 2019); otherwise 20YY."""
    match = _US_DATE.fullmatch(text)
    if match:
        month, day, year = int(match.group(1)), int(match.group(2)), match.group(3)
        if len(year) == 2:
            short = int(year)
            full = 2000 + short
            if birth_today is not None and (full, month, day) > (birth_today.year, birth_today.month, birth_today.day):
                full -= 100
        else:
            full = int(year)
        if month > 12 and day <= 12:
            raise _CellProblem(f"“{text}” is not a date as MM/DD/YYYY (month first): it looks like day/month order. "
                               f"Write {day:02d}/{month:02d}/{full}.")
        try:
            return datetime.date(full, month, day)
        except ValueError:
            raise _CellProblem(f"“{text}” is not a date that exists (month {month}, day {day}).") from None
    match = _ISO_DATE.fullmatch(text)
    if match:
        try:
            return datetime.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            raise _CellProblem(f"“{text}” is not a date that exists.") from None
    raise _CellProblem(f"“{text}” is not a date: write it as {DATE_FORMATS}.")


def _date_of_birth(reader: _RowReader, cell) -> datetime.date | None:
    if cell is None:
        return None
    if isinstance(cell, datetime.datetime):
        return cell.date()
    if isinstance(cell, datetime.date):
        return cell
    if _is_formula(cell):
        raise _CellProblem(FORMULA)
    text = _text(cell).strip()
    if not text:
        return None
    return _date_from_text(text, birth_today=reader.today)


_DATETIME = re.compile(
    r"(?P<date>\d{1,2}[/-]\d{1,2}[/-](?:\d{4}|\d{2})|\d{4}-\d{1,2}-\d{1,2})"
    r"(?:[T ]+(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))(?::(?P<second>\d{2})(?:\.\d+)?)?"
    r"\s*(?P<ampm>[AaPp]\.?[Mm]\.?)?\s*(?P<offset>Z|[+-]\d{2}:?\d{2})?)?"
)
DATETIME_FORMATS = "MM/DD/YYYY h:mm AM/PM (03/14/2027 9:30 AM), MM/DD/YYYY HH:MM (24-hour) or YYYY-MM-DD HH:MM"


def _starts_at(reader: _RowReader, cell) -> datetime.datetime | None:
    if cell is None:
        return None
    if isinstance(cell, datetime.datetime):
        return _local(reader, cell.replace(tzinfo=None), cell.isoformat(sep=" "))
    if isinstance(cell, datetime.date):
        raise _CellProblem(f"“{cell.isoformat()}” has no time: give the appointment's date and time, "
                           f"as {DATETIME_FORMATS}.")
    if _is_formula(cell):
        raise _CellProblem(FORMULA)
    text = _text(cell).strip()
    if not text:
        return None
    match = _DATETIME.fullmatch(text)
    if not match:
        raise _CellProblem(f"“{text}” is not a date and time: write it as {DATETIME_FORMATS}.")
    day = _date_from_text(match.group("date"), birth_today=None)
    if match.group("hour") is None:
        raise _CellProblem(f"“{text}” has no time: give the appointment's date and time, as {DATETIME_FORMATS}.")
    hour, minute = int(match.group("hour")), int(match.group("minute"))
    second = int(match.group("second") or 0)
    ampm = (match.group("ampm") or "").replace(".", "").lower()
    if ampm:
        if not 1 <= hour <= 12:
            raise _CellProblem(f"“{text}” is not a time: with AM or PM the hour is 1 to 12.")
        hour = hour % 12 + (12 if ampm == "pm" else 0)
    if hour > 23 or minute > 59 or second > 59:
        raise _CellProblem(f"“{text}” is not a time of day.")
    moment = datetime.datetime.combine(day, datetime.time(hour, minute, second))
    offset = match.group("offset")
    if offset:
        if offset == "Z":
            return moment.replace(tzinfo=datetime.UTC)
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        delta = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        return moment.replace(tzinfo=datetime.timezone(sign * delta))
    return _local(reader, moment, text)


def _local(reader: _RowReader, moment: datetime.datetime, text: str) -> datetime.datetime:
    """A wall-clock time in the organization's time zone. One the spring change skips (2:30 AM) does
    not exist: said, not guessed. One the autumn change repeats is its first occurrence."""
    aware = moment.replace(tzinfo=reader.time_zone)
    if aware.astimezone(datetime.UTC).astimezone(reader.time_zone).replace(tzinfo=None) != moment:
        raise _CellProblem(f"“{text}” does not exist in {reader.time_zone.key}: the clocks skip that hour "
                           "when daylight saving time starts.")
    return aware


_AMOUNT = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+)?(?:\.(\d*))?")
AMOUNT_FORMATS = "dollars and cents, such as 25, 25.00, $25.00 or $1,234.50"


def _amount(reader: _RowReader, cell) -> int | None:
    """Integer cents, exactly (no floating point): "$1,234.50" → 123450."""
    if cell is None:
        return None
    if isinstance(cell, bool):
        raise _CellProblem(f"“{cell}” is not an amount: write {AMOUNT_FORMATS}.")
    if isinstance(cell, int):
        text = str(cell)
    elif isinstance(cell, float):
        # A workbook's number: its shortest decimal form (25.1, not 25.100000000000001).
        text = format(Decimal(repr(cell)), "f")
    elif isinstance(cell, Decimal):
        text = format(cell, "f")
    else:
        if _is_formula(cell):
            raise _CellProblem(FORMULA)
        text = _text(cell).strip()
    if not text:
        return None
    body = text.replace(" ", "")
    negative = False
    if body.startswith("(") and body.endswith(")"):
        negative, body = True, body[1:-1]
    if body.startswith("-"):
        negative, body = True, body[1:]
    if body.startswith("$"):
        body = body[1:]
    if body.startswith("-"):
        negative, body = True, body[1:]
    if body.lower().endswith("usd"):
        body = body[:-3]
    match = _AMOUNT.fullmatch(body)
    if not match or not (match.group(1) or match.group(2)):
        raise _CellProblem(f"“{text}” is not an amount: write {AMOUNT_FORMATS}.")
    whole, fraction = match.group(1) or "0", match.group(2) or ""
    if len(fraction.rstrip("0")) > 2:
        raise _CellProblem(f"“{text}” has more than two decimals: amounts are in dollars and cents.")
    if negative:
        raise _CellProblem(f"“{text}” is negative: enter what is owed, 0 when nothing is (credits cannot be imported).")
    return int(whole.replace(",", "")) * 100 + int((fraction + "00")[:2])


_YES = {"yes", "y", "true", "t", "1", "x", "si", "sí"}
_NO = {"no", "n", "false", "f", "0"}


def _yes_no(reader: _RowReader, cell) -> bool | None:
    if cell is None:
        return None
    if isinstance(cell, bool):
        return cell
    if _is_formula(cell):
        raise _CellProblem(FORMULA)
    text = _shown(cell).strip()
    if not text:
        return None
    lowered = text.lower()
    if lowered in _YES:
        return True
    if lowered in _NO:
        return False
    raise _CellProblem(f"“{text}” is not Yes or No (Y/N, true/false and 1/0 also work).")


_LANGUAGES = {
    "en": "en", "eng": "en", "english": "en", "ingles": "en", "inglés": "en",
    "es": "es", "spa": "es", "spanish": "es", "espanol": "es", "español": "es",
}


def _language(reader: _RowReader, cell) -> str:
    text = _plain_text(cell)
    if not text:
        return ""
    language = _LANGUAGES.get(text.lower())
    if language is None:
        raise _CellProblem(f"“{text}” is not a language LumaPay writes to patients in: use English or Spanish (en, es).")
    return language


_STATUSES = {
    **{key: AppointmentStatus.BOOKED for key in ("booked", "scheduled", "confirmed", "pending", "rescheduled")},
    **{key: AppointmentStatus.ARRIVED for key in ("arrived", "checkedin", "checkin", "inroom", "inprogress")},
    **{key: AppointmentStatus.FULFILLED for key in ("fulfilled", "completed", "complete", "seen", "checkedout",
                                                     "checkout")},
    **{key: AppointmentStatus.CANCELLED for key in ("cancelled", "canceled", "cancel")},
    **{key: AppointmentStatus.NO_SHOW for key in ("noshow", "didnotshow", "dna", "missed")},
}


def _status(reader: _RowReader, cell) -> str:
    text = _plain_text(cell)
    if not text:
        return ""
    status = _STATUSES.get(_header_key(text))
    if status is None:
        raise _CellProblem(f"“{text}” is not an appointment status: use Booked, Checked in, Completed, Cancelled or "
                           "No-show.")
    return status.value


_CELL_READERS: dict[str, Callable] = {
    "text": lambda reader, cell: _plain_text(cell),
    "id": lambda reader, cell: _identifier(cell),
    "phone": lambda reader, cell: _phone(cell),
    "date_of_birth": _date_of_birth,
    "datetime": _starts_at,
    "amount": _amount,
    "yes_no": _yes_no,
    "language": _language,
    "status": _status,
}


# -- templates -------------------------------------------------------------------------------------


def upload_template(kind: str, file_format: str) -> bytes:
    """An empty file of ``kind`` to fill in: the headers and one example row; a workbook also has a
    "Columns" sheet that says what each column holds. CSV in UTF-8 with its byte-order mark, so
    Excel shows accents (García) as they are."""
    columns = COLUMNS[UploadKind(kind)]
    if file_format == "csv":
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow([column.name for column in columns])
        writer.writerow([column.example for column in columns])
        return codecs.BOM_UTF8 + buffer.getvalue().encode("utf-8")
    if file_format != "xlsx":
        raise ValueError(f"unknown template format {file_format!r}")
    import openpyxl
    from openpyxl.styles import Font

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = str(UploadKind(kind).label)[:31]
    sheet.append([column.name for column in columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for position, column in enumerate(columns, start=1):
        cell = sheet.cell(row=2, column=position)
        if column.form == "date_of_birth":
            cell.value = datetime.datetime.strptime(column.example, "%m/%d/%Y")
            cell.number_format = "mm/dd/yyyy"
        elif column.form == "datetime":
            cell.value = datetime.datetime.strptime(column.example, "%m/%d/%Y %I:%M %p")
            cell.number_format = "mm/dd/yyyy h:mm AM/PM"
        elif column.form == "amount":
            cell.value = Decimal(column.example.lstrip("$").replace(",", ""))
            cell.number_format = '"$"#,##0.00'
        else:
            # Ids stay text, so leading zeros (MRN 000123) are kept.
            cell.value = column.example
            cell.number_format = "@"
        sheet.column_dimensions[cell.column_letter].width = max(14, len(column.name) + 4)
    help_sheet = workbook.create_sheet("Columns")
    help_sheet.append(["column", "required", "what it holds", "example", "other headers accepted"])
    for cell in help_sheet[1]:
        cell.font = Font(bold=True)
    for column in columns:
        help_sheet.append([column.name, "required" if column.required else "optional", column.description,
                           column.example, ", ".join(column.aliases)])
    for letter, width in zip("ABCDE", (20, 10, 80, 22, 60)):
        help_sheet.column_dimensions[letter].width = width
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
