"""Building upload files for the tests: CSV text in a chosen encoding, workbooks (with openpyxl, or
rewritten member by member for the hostile ones), and reading them as the Upload Center does."""

from __future__ import annotations

import datetime
import io
import zipfile
import zoneinfo

import openpyxl

from ehr_sync.enums import ImportSource
from ehr_sync.importer import import_run_finish, import_run_start, records_check, records_import
from ehr_sync.models import Appointment, Balance, ImportRejection, Patient
from lumapay.tenant_rls import organization_scope
from uploads.file_reading import file_problems_from_records, upload_file_read

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
RECEIVED = datetime.datetime(2026, 11, 29, 15, 0, tzinfo=datetime.UTC)

PATIENT_HEADER = "patient_id,first_name,last_name,date_of_birth,email,mobile_phone,preferred_language,sms_consent"
PATIENT_ROW = "100234,Ana,García,03/09/1984,ana@example.com,(217) 555-0134,Spanish,Yes"


def csv_bytes(*lines: str, encoding: str = "utf-8") -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def read(kind, data, file_name="upload.csv", received_at=RECEIVED):
    return upload_file_read(kind=kind, file_name=file_name, data=data, received_at=received_at, time_zone=CHICAGO)


def workbook_bytes(rows: list[list], *, number_formats: dict[str, str] | None = None) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    for coordinate, number_format in (number_formats or {}).items():
        sheet[coordinate].number_format = number_format
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def workbook_with_member(data: bytes, member: str, content: bytes, *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """The workbook ``data`` with one member replaced (or added)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as target:
        for info in source.infolist():
            if info.filename != member:
                target.writestr(info.filename, source.read(info.filename))
        target.writestr(member, content)
    return buffer.getvalue()


def every_problem(organization, read_file):
    """What the preview lists: the problems of form, then the importer's, by row and column."""
    _, problems = records_check(organization=organization, batch=read_file.batch)
    return [
        (p.row, p.column, p.value, p.reason) for p in file_problems_from_records(read_file, problems)
    ]


def import_read(organization, read_file, *, all_or_nothing=False):
    """The upload's import as the app runs it: in the organization's scope, under row-level security."""
    with organization_scope(organization.pk):
        run = import_run_start(organization=organization, source=ImportSource.UPLOAD, label=read_file.file_name)
        outcome = records_import(run=run, batch=read_file.batch, all_or_nothing=all_or_nothing)
        return import_run_finish(run=run), outcome


def stored(organization):
    """Everything an import could have written for the organization (rejections aside)."""
    return (
        list(Patient.objects.filter(organization=organization).order_by("id").values()),
        list(Appointment.objects.filter(organization=organization).order_by("id").values()),
        list(Balance.objects.filter(organization=organization).order_by("id").values()),
    )


def rejections(organization):
    return list(ImportRejection.objects.filter(organization=organization).values_list("reference", "field"))
