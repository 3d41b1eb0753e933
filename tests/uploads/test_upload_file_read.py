"""The Upload Center reads what US clinics' spreadsheets hold: each encoding, delimiter, date,
date-time and amount format, CSV and XLSX of each kind; the templates read back clean; the
records land through the importer under row-level security, and the same file again changes nothing."""

import codecs
import datetime
from decimal import Decimal

import pytest

from ehr_sync.enums import AppointmentStatus
from ehr_sync.models import Appointment, Balance, Patient
from tests.factories import AppointmentFactory, LocationFactory, PatientFactory
from uploads.file_reading import COLUMNS, UploadKind, upload_template

from .files import (
    CHICAGO,
    PATIENT_HEADER,
    PATIENT_ROW,
    RECEIVED,
    csv_bytes,
    every_problem,
    import_read,
    read,
    workbook_bytes,
)


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("utf-8", csv_bytes(PATIENT_HEADER, PATIENT_ROW)),
        ("utf-8-sig", codecs.BOM_UTF8 + csv_bytes(PATIENT_HEADER, PATIENT_ROW)),
        ("cp1252", csv_bytes(PATIENT_HEADER, PATIENT_ROW, encoding="cp1252")),
        ("utf-16", csv_bytes(PATIENT_HEADER.replace(",", "\t"), PATIENT_ROW.replace(",", "\t"), encoding="utf-16")),
    ],
)
def test_each_encoding_reads_the_accented_name_as_written(encoding, data):
    read_file = read(UploadKind.PATIENTS, data)
    assert read_file.encoding == encoding
    assert read_file.problems == []
    [patient] = read_file.batch.patients
    assert (patient.external_id, patient.first_name, patient.last_name) == ("100234", "Ana", "García")
    assert (patient.date_of_birth, patient.email, patient.mobile_phone) == (
        datetime.date(1984, 3, 9), "ana@example.com", "(217) 555-0134")
    assert (patient.preferred_language, patient.sms_consent) == ("es", True)
    assert patient.reference == "row 2" and patient.source_updated_at == RECEIVED


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_comma_semicolon_and_tab_separated_files_are_told_apart_by_their_header(delimiter):
    data = csv_bytes(PATIENT_HEADER.replace(",", delimiter), PATIENT_ROW.replace(",", delimiter))
    read_file = read(UploadKind.PATIENTS, data)
    assert read_file.delimiter == delimiter
    assert read_file.batch.patients[0].mobile_phone == "(217) 555-0134"


def test_headers_a_clinic_uses_are_recognized_whatever_their_case():
    data = csv_bytes("MRN,First Name,LAST NAME,DOB,E-mail,Cell Phone,Language,OK to text,Notes",
                     "000123,José,Núñez,7/4/1990,,,,,VIP")
    read_file = read(UploadKind.PATIENTS, data)
    assert read_file.headers["patient_id"] == "MRN" and read_file.headers["date_of_birth"] == "DOB"
    assert read_file.ignored_columns == ["Notes"]
    [patient] = read_file.batch.patients
    # Leading zeros of an MRN are kept; an empty language is English; empty consent says nothing.
    assert (patient.external_id, patient.date_of_birth) == ("000123", datetime.date(1990, 7, 4))
    assert (patient.preferred_language, patient.sms_consent, patient.email) == ("en", None, "")


def test_a_generic_phone_column_gives_way_to_the_mobile_one():
    data = csv_bytes("Patient ID,First,Last,Date of birth,Phone,Mobile", "7,Ana,Ruiz,1984-03-09,(217) 555-0100,217.555.0199")
    read_file = read(UploadKind.PATIENTS, data)
    assert read_file.batch.patients[0].mobile_phone == "217.555.0199"
    assert read_file.ignored_columns == ["Phone"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("03/09/1984", datetime.date(1984, 3, 9)),
        ("3/9/1984", datetime.date(1984, 3, 9)),
        ("03-09-1984", datetime.date(1984, 3, 9)),
        ("1984-03-09", datetime.date(1984, 3, 9)),
        ("1984-03-09 00:00:00", datetime.date(1984, 3, 9)),
        # Two-digit years: a birth date is never in the future (received 2026-11-29).
        ("03/09/84", datetime.date(1984, 3, 9)),
        ("11/28/26", datetime.date(2026, 11, 28)),
        ("11/30/26", datetime.date(1926, 11, 30)),
        ("02/29/2000", datetime.date(2000, 2, 29)),
    ],
)
def test_each_birth_date_format(text, expected):
    data = csv_bytes("patient_id,first_name,last_name,date_of_birth", f"1,Ana,Ruiz,{text}")
    assert read(UploadKind.PATIENTS, data).batch.patients[0].date_of_birth == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("03/16/2027 9:30 AM", datetime.datetime(2027, 3, 16, 9, 30, tzinfo=CHICAGO)),
        ("3/16/27 9:30am", datetime.datetime(2027, 3, 16, 9, 30, tzinfo=CHICAGO)),
        ("03/16/2027 12:15 PM", datetime.datetime(2027, 3, 16, 12, 15, tzinfo=CHICAGO)),
        ("03/16/2027 12:15 a.m.", datetime.datetime(2027, 3, 16, 0, 15, tzinfo=CHICAGO)),
        ("03/16/2027 14:05", datetime.datetime(2027, 3, 16, 14, 5, tzinfo=CHICAGO)),
        ("2027-03-16 14:05:30", datetime.datetime(2027, 3, 16, 14, 5, 30, tzinfo=CHICAGO)),
        ("2027-03-16T14:05", datetime.datetime(2027, 3, 16, 14, 5, tzinfo=CHICAGO)),
        ("2027-03-16T19:05:00Z", datetime.datetime(2027, 3, 16, 19, 5, tzinfo=datetime.UTC)),
        ("2027-03-16T14:05:00-05:00", datetime.datetime(2027, 3, 16, 19, 5, tzinfo=datetime.UTC)),
        # The autumn change repeats 1:30 AM: the first one (daylight time, UTC-5).
        ("11/07/2027 1:30 AM", datetime.datetime(2027, 11, 7, 6, 30, tzinfo=datetime.UTC)),
    ],
)
def test_each_appointment_date_time_format_in_the_organizations_time_zone(text, expected):
    data = csv_bytes("appointment_id,patient_id,starts_at", f"A-1,1,{text}")
    starts_at = read(UploadKind.APPOINTMENTS, data).batch.appointments[0].starts_at
    # Compared in UTC: Python never calls a repeated (ambiguous) local time equal to another zone's.
    assert starts_at.astimezone(datetime.UTC) == expected.astimezone(datetime.UTC)


@pytest.mark.parametrize(
    ("text", "cents"),
    [("$1,234.50", 123450), ("1234.5", 123450), ("1,234", 123400), ("25", 2500), ("$ 25.00", 2500),
     (".5", 50), ("0", 0), ("12.500", 1250), ("$999,999.99", 99999999)],
)
def test_amounts_become_integer_cents_exactly(text, cents):
    data = csv_bytes("patient_id,balance", f'1,"{text}"')
    [balance] = read(UploadKind.BALANCES, data).batch.balances
    assert balance.amount_due_cents == cents


@pytest.mark.parametrize(
    ("text", "consent"), [("Yes", True), ("y", True), ("TRUE", True), ("1", True), ("No", False), ("n", False),
                          ("false", False), ("0", False)],
)
def test_sms_consent_yes_and_no_in_their_usual_spellings(text, consent):
    data = csv_bytes("patient_id,first_name,last_name,date_of_birth,sms_consent", f"1,Ana,Ruiz,03/09/1984,{text}")
    assert read(UploadKind.PATIENTS, data).batch.patients[0].sms_consent is consent


@pytest.mark.parametrize(("text", "language"), [("en", "en"), ("English", "en"), ("es", "es"), ("Spanish", "es"),
                                                 ("Español", "es"), ("espanol", "es")])
def test_preferred_language_in_words_or_codes(text, language):
    data = csv_bytes("patient_id,first_name,last_name,date_of_birth,preferred_language", f"1,Ana,Ruiz,03/09/1984,{text}")
    assert read(UploadKind.PATIENTS, data).batch.patients[0].preferred_language == language


@pytest.mark.parametrize(("text", "status"), [("Scheduled", "booked"), ("Checked In", "arrived"), ("Completed", "fulfilled"),
                                               ("Canceled", "cancelled"), ("No-show", "noshow"), ("", "booked")])
def test_appointment_statuses_as_schedules_write_them(text, status):
    data = csv_bytes("appointment_id,patient_id,starts_at,status", f"A-1,1,03/16/2027 9:30 AM,{text}")
    assert read(UploadKind.APPOINTMENTS, data).batch.appointments[0].status == status


def test_blank_rows_are_skipped_and_rows_keep_the_numbers_the_spreadsheet_shows():
    data = csv_bytes("patient_id,first_name,last_name,date_of_birth", "1,Ana,Ruiz,03/09/1984", ",,,", "",
                     "2,Luis,Ruiz,13/09/1984")
    read_file = read(UploadKind.PATIENTS, data)
    assert read_file.rows == 2
    assert [(p.row, p.column) for p in read_file.problems] == [(5, "date_of_birth")]


def test_an_xlsx_of_patients_with_date_cells_number_ids_and_a_formula_free_sheet(organization):
    data = workbook_bytes([
        ["Patient ID", "First name", "Last name", "DOB", "Mobile", "SMS consent"],
        [100234, "Ana", "García", datetime.datetime(1984, 3, 9), 2175550134, True],
        [None, None, None, None, None, None],
        ["100235", "Luis", "Núñez", "07/04/1990", "(217) 555-0135", "no"],
    ])
    read_file = read(UploadKind.PATIENTS, data, file_name="Patients Nov.xlsx")
    assert (read_file.file_format, read_file.rows, read_file.problems) == ("xlsx", 2, [])
    first, second = read_file.batch.patients
    assert (first.external_id, first.date_of_birth, first.mobile_phone, first.sms_consent) == (
        "100234", datetime.date(1984, 3, 9), "2175550134", True)
    assert (second.reference, second.date_of_birth, second.sms_consent) == ("row 4", datetime.date(1990, 7, 4), False)
    run, _ = import_read(organization, read_file)
    assert (run.created, run.rejected) == (2, 0)
    assert Patient.objects.get(organization=organization, external_ehr_id="100234").mobile_phone == "+12175550134"


def test_an_xlsx_of_appointments_with_date_time_cells_and_number_copays(organization):
    location = LocationFactory(organization=organization, name="Main Street Clinic")
    patient = PatientFactory(organization=organization, external_ehr_id="100234")
    data = workbook_bytes([
        ["Appointment ID", "MRN", "Appointment date/time", "Status", "Location", "Provider", "Copay"],
        ["A-1", "100234", datetime.datetime(2027, 3, 16, 9, 30), "Booked", "main street clinic", "Dr. Kim", 25.5],
        ["A-2", "100234", "03/17/2027 2:00 PM", "cancelled", "Main Street Clinic", "Dr. Kim", 40],
    ])
    read_file = read(UploadKind.APPOINTMENTS, data, file_name="appointments.xlsx")
    assert read_file.problems == []
    run, _ = import_read(organization, read_file)
    assert (run.created, run.rejected) == (2, 0)
    first = Appointment.objects.get(organization=organization, external_ehr_id="A-1")
    assert (first.patient_id, first.location_id, first.copay_cents) == (patient.pk, location.pk, 2550)
    assert first.starts_at == datetime.datetime(2027, 3, 16, 14, 30, tzinfo=datetime.UTC)
    assert Appointment.objects.get(external_ehr_id="A-2").status == AppointmentStatus.CANCELLED


def test_a_balances_csv_sets_balances_and_copays_and_a_repeated_balance_is_one_record(organization):
    patient = PatientFactory(organization=organization, external_ehr_id="100234")
    AppointmentFactory(organization=organization, patient=patient, external_ehr_id="A-1", copay_cents=0)
    AppointmentFactory(organization=organization, patient=patient, external_ehr_id="A-2", copay_cents=0)
    data = csv_bytes("Patient ID,Balance due,Appt ID,Copay",
                     '100234,"$1,234.50",A-1,$25.00', '100234,"$1,234.50",A-2,$40')
    read_file = read(UploadKind.BALANCES, data)
    assert [b.reference for b in read_file.batch.balances] == ["row 2"]
    assert every_problem(organization, read_file) == []
    run, _ = import_read(organization, read_file)
    assert run.rejected == 0
    assert Balance.objects.get(patient=patient).amount_due_cents == 123450
    assert dict(Appointment.objects.values_list("external_ehr_id", "copay_cents")) == {"A-1": 2500, "A-2": 4000}


def test_the_same_file_uploaded_again_changes_nothing(organization):
    data = csv_bytes(PATIENT_HEADER, PATIENT_ROW, "100235,Luis,Núñez,07/04/1990,,,en,")
    first, _ = import_read(organization, read(UploadKind.PATIENTS, data))
    before = list(Patient.objects.filter(organization=organization).order_by("id").values())
    later = RECEIVED + datetime.timedelta(days=1)
    again, _ = import_read(organization, read(UploadKind.PATIENTS, data, received_at=later))
    assert (first.created, again.created, again.updated, again.unchanged) == (2, 0, 0, 2)
    after = list(Patient.objects.filter(organization=organization).order_by("id").values())
    assert [{**row, "ehr_updated_at": None} for row in after] == [{**row, "ehr_updated_at": None} for row in before]


@pytest.mark.parametrize("kind", list(UploadKind))
@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_each_template_reads_back_its_example_row_without_problems(organization, kind, file_format):
    """Given the patient and appointment the examples name (as the templates would import them)."""
    LocationFactory(organization=organization, name="Main Street Clinic")
    if kind != UploadKind.PATIENTS:
        import_read(organization, read(UploadKind.PATIENTS, upload_template(UploadKind.PATIENTS, "csv")))
    if kind == UploadKind.BALANCES:
        import_read(organization, read(UploadKind.APPOINTMENTS, upload_template(UploadKind.APPOINTMENTS, "csv")))
    data = upload_template(kind, file_format)
    read_file = read(kind, data, file_name=f"{kind}-template.{file_format}")
    assert read_file.rows == 1
    assert list(read_file.headers) == [column.name for column in COLUMNS[kind]]
    assert every_problem(organization, read_file) == []
    record = (read_file.batch.patients or read_file.batch.appointments or read_file.batch.balances)[0]
    assert record.reference == "row 2"
    run, _ = import_read(organization, read_file)
    assert run.rejected == 0


def test_the_xlsx_template_describes_every_column_on_a_second_sheet():
    import io

    import openpyxl

    workbook = openpyxl.load_workbook(io.BytesIO(upload_template(UploadKind.APPOINTMENTS, "xlsx")))
    assert workbook.sheetnames == ["Appointments", "Columns"]
    described = {row[0]: row for row in workbook["Columns"].iter_rows(min_row=2, values_only=True)}
    assert set(described) == {column.name for column in COLUMNS[UploadKind.APPOINTMENTS]}
    assert described["starts_at"][1] == "required" and described["copay"][1] == "optional"
    assert workbook["Appointments"]["G2"].value == Decimal("25.00") or workbook["Appointments"]["G2"].value == 25


def test_a_workbook_whose_dimension_is_wrong_is_read_whole():
    """Some programs write a sheet's dimension as A1 whatever it holds; the rows are read all the same."""
    from .files import workbook_with_member

    data = workbook_bytes([["patient_id", "first_name", "last_name", "date_of_birth"],
                           ["1", "Ana", "Ruiz", "03/09/1984"], ["2", "Luis", "Ruiz", "07/04/1990"]])
    import io
    import zipfile

    sheet = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml").replace(b'<dimension ref="A1:D3"/>',
                                                                                        b'<dimension ref="A1"/>')
    assert b'<dimension ref="A1"/>' in sheet
    read_file = read(UploadKind.PATIENTS, workbook_with_member(data, "xl/worksheets/sheet1.xml", sheet), file_name="p.xlsx")
    assert [p.last_name for p in read_file.batch.patients] == ["Ruiz", "Ruiz"] and read_file.problems == []
