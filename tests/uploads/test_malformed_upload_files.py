"""A catalogue of malformed upload files. Each one is refused whole with a message that says what is
wrong and what to do, or lists its problems by row, column, value and reason (the reading's and the
importer's); and importing what was read never writes a row half: with all_or_nothing nothing is
written when the importer finds a problem, and without it the rows with problems are not written
at all while the others are, whole."""

import codecs
import datetime
import io
import os
import tempfile
import time
import zipfile

import openpyxl
import pytest
from defusedxml.common import EntitiesForbidden

from ehr_sync.models import Patient
from tests.factories import LocationFactory, PatientFactory
from uploads import file_reading
from uploads.file_reading import FORMULA, UploadFileRejected, UploadKind, upload_size_check

from .files import (
    PATIENT_HEADER,
    PATIENT_ROW,
    csv_bytes,
    every_problem,
    import_read,
    read,
    rejections,
    stored,
    workbook_bytes,
    workbook_with_member,
)

PATIENTS = UploadKind.PATIENTS
APPOINTMENTS = UploadKind.APPOINTMENTS
BALANCES = UploadKind.BALANCES
GOOD_ROW = "100235,Luis,Núñez,07/04/1990,luis@example.com,(217) 555-0135,en,No"


def refused(kind, data, file_name="upload.csv") -> UploadFileRejected:
    with pytest.raises(UploadFileRejected) as caught:
        read(kind, data, file_name=file_name)
    return caught.value


def assert_rows_kept_out(organization, read_file, bad_external_ids, good_external_ids):
    """All-or-nothing writes nothing; a partial import writes the good rows whole and no bad one."""
    before = stored(organization)
    run, outcome = import_read(organization, read_file, all_or_nothing=True)
    if outcome.problems:
        assert not outcome.written and stored(organization) == before
    run, outcome = import_read(organization, read_file)
    ids = set(Patient.objects.filter(organization=organization).values_list("external_ehr_id", flat=True))
    assert ids.isdisjoint(bad_external_ids) and set(good_external_ids) <= ids


# -- the file as a whole ------------------------------------------------------------------------


def test_an_empty_file():
    error = refused(PATIENTS, b"", "patients.csv")
    assert error.message == "“patients.csv” is empty: it has no header row and no rows."
    assert error.extra["reason"] == "empty"


def test_a_file_of_blank_lines_is_empty():
    assert refused(PATIENTS, b"\r\n\r\n  \r\n").extra["reason"] == "empty"


def test_a_header_without_rows():
    error = refused(PATIENTS, csv_bytes(PATIENT_HEADER, ",,,,,,,"), "patients.csv")
    assert error.message == "“patients.csv” has its header row but no rows below it."


def test_a_binary_file_renamed_csv():
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    error = refused(PATIENTS, png, "patients.csv")
    assert error.extra["reason"] == "binary"
    assert error.message.startswith("“patients.csv” is not a text (CSV) file: it holds binary data")


def test_a_workbook_renamed_csv_is_named_as_such():
    data = workbook_bytes([["patient_id"], ["1"]])
    error = refused(PATIENTS, data, "patients.csv")
    assert error.message == (
        "“patients.csv” is named .csv but is an Excel workbook or another zip file. Upload it with its .xlsx name, "
        "or save it from Excel as CSV."
    )


def test_an_excel_97_workbook():
    error = refused(PATIENTS, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512, "patients.xls")
    assert error.extra["reason"] == "unsupported_type"
    assert "Excel 97–2003 workbook (.xls)" in error.message and "Save As" in error.message


def test_an_unsupported_type():
    error = refused(PATIENTS, b"%PDF-1.7\n...", "patients.pdf")
    assert error.message == (
        "“patients.pdf” is not a file type the Upload Center reads. Upload a CSV file (.csv) or an Excel "
        "workbook (.xlsx)."
    )


def test_a_text_file_named_xlsx():
    error = refused(PATIENTS, csv_bytes(PATIENT_HEADER, PATIENT_ROW), "patients.xlsx")
    assert error.extra["reason"] == "not_xlsx"


def test_a_damaged_workbook():
    data = workbook_bytes([["patient_id"], ["1"]])
    error = refused(PATIENTS, data[: len(data) // 2], "patients.xlsx")
    assert error.extra["reason"] == "not_xlsx" and "damaged" in error.message


def test_a_file_over_the_size_limit(settings):
    settings.UPLOAD_MAX_BYTES = 1024 * 1024
    data = csv_bytes(PATIENT_HEADER, *[PATIENT_ROW] * 20_000)
    error = refused(PATIENTS, data, "patients.csv")
    assert error.message == (
        f"“patients.csv” is {len(data) / 1024 / 1024:,.1f} MB; files up to 1.0 MB can be uploaded. Split it into "
        "smaller files (each keeps the header row)."
    )


class _CountingFile(io.FileIO):
    bytes_read = 0

    def read(self, size=-1):
        data = super().read(size)
        self.bytes_read += len(data)
        return data


def test_a_200_mb_file_is_refused_on_its_size_without_being_read():
    """A sparse 200 MB file on disk (nothing written but its length): refused in well under a
    second, none of it read. The view can also check the upload's size first (upload_size_check)."""
    with tempfile.NamedTemporaryFile(suffix=".csv") as handle:
        os.truncate(handle.name, 200 * 1024 * 1024)
        with _CountingFile(handle.name, "rb") as opened:
            started = time.monotonic()
            error = refused(PATIENTS, opened, "everyone.csv")
            assert time.monotonic() - started < 0.5
            assert opened.bytes_read == 0
    assert error.message == (
        "“everyone.csv” is 200.0 MB; files up to 50.0 MB can be uploaded. Split it into smaller files (each keeps "
        "the header row)."
    )
    with pytest.raises(UploadFileRejected):
        upload_size_check(file_name="everyone.csv", size=200 * 1024 * 1024)


def test_missing_required_columns_are_named_with_the_columns_found():
    error = refused(PATIENTS, csv_bytes("MRN,Name,DOB", "1,Ana Ruiz,03/09/1984"), "patients.csv")
    assert error.message == (
        "“patients.csv” is missing the required columns first_name, last_name for a patients file. The first row "
        "must hold the column names; it has: MRN, Name, DOB. Download the template to see the columns."
    )
    assert error.extra["missing"] == ["first_name", "last_name"]


def test_a_file_without_a_header_row():
    error = refused(PATIENTS, csv_bytes(PATIENT_ROW, GOOD_ROW), "patients.csv")
    assert error.extra["missing"] == ["patient_id", "first_name", "last_name", "date_of_birth"]
    assert "it has: 100234, Ana, García, 03/09/1984" in error.message


def test_an_appointments_file_uploaded_as_patients_says_so():
    data = csv_bytes("appointment_id,patient_id,starts_at", "A-1,100234,03/16/2027 9:30 AM")
    error = refused(PATIENTS, data, "schedule.csv")
    assert error.message == (
        "“schedule.csv” is missing the required columns first_name, last_name, date_of_birth for a patients file. "
        "The first row must hold the column names; it has: appointment_id, patient_id, starts_at. It looks like an "
        "appointments file: upload it as one."
    )


def test_two_columns_for_the_same_field():
    error = refused(PATIENTS, csv_bytes("MRN,first_name,last_name,DOB,Date of birth", "1,Ana,Ruiz,03/09/1984,03/09/1984"))
    assert error.message == "“upload.csv” has two columns for date_of_birth: “DOB” and “Date of birth”. Keep one of them."


def test_more_rows_than_the_limit(settings):
    settings.UPLOAD_MAX_ROWS = 3
    data = csv_bytes(PATIENT_HEADER, *[f"{n},Ana,Ruiz,03/09/1984,,,," for n in range(4)])
    error = refused(PATIENTS, data, "patients.csv")
    assert error.message == (
        "“patients.csv” has more than 3 rows; files of up to 3 rows can be uploaded. Split it into smaller files "
        "(each keeps the header row)."
    )


def test_an_unclosed_quote():
    error = refused(PATIENTS, csv_bytes(PATIENT_HEADER, '100234,"Ana,García,03/09/1984'), "patients.csv")
    assert error.extra["reason"] == "malformed_csv" and "A quote that is opened must be closed" in error.message


def test_utf_16_without_its_byte_order_mark_is_not_taken_for_text():
    data = csv_bytes(PATIENT_HEADER, PATIENT_ROW, encoding="utf-16-le")
    assert refused(PATIENTS, data).extra["reason"] == "binary"


def test_bytes_that_are_neither_utf8_nor_windows_1252():
    # 0x81 and 0x9d are undefined in Windows-1252, and not UTF-8 here.
    data = csv_bytes(PATIENT_HEADER) + b"100234,An\x81a,Garc\x9da,03/09/1984,,,,\r\n"
    assert refused(PATIENTS, data).extra["reason"] == "binary"


def test_a_zip_bomb_is_refused_from_the_zip_directory_before_it_is_inflated():
    """50 MB of one repeated cell that packs into ~50 KB: 1,000 times, a workbook never is."""
    base = workbook_bytes([["patient_id"], ["1"]])
    bomb = workbook_with_member(base, "xl/worksheets/sheet2.xml", b"<c>0</c>" * (50 * 1024 * 1024 // 8))
    started = time.monotonic()
    error = refused(PATIENTS, bomb, "patients.xlsx")
    assert time.monotonic() - started < 0.5
    assert error.extra["reason"] == "zip_bomb"
    assert error.message.startswith("“patients.xlsx” contains a part (xl/worksheets/sheet2.xml) that unpacks to ")


def test_a_workbook_that_unpacks_past_the_total_limit(settings):
    settings.UPLOAD_XLSX_MAX_UNCOMPRESSED_BYTES = 1024 * 1024
    base = workbook_bytes([["patient_id"], ["1"]])
    data = workbook_with_member(base, "xl/media/image1.bin", os.urandom(2 * 1024 * 1024), compression=zipfile.ZIP_STORED)
    error = refused(PATIENTS, data, "patients.xlsx")
    assert error.message.startswith("“patients.xlsx” would unpack to 2.0 MB; workbooks up to 1.0 MB unpacked")


def test_a_zip_of_thousands_of_parts():
    base = workbook_bytes([["patient_id"], ["1"]])
    source = zipfile.ZipFile(io.BytesIO(base))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info.filename))
        for n in range(1_001):
            target.writestr(f"xl/junk/{n}.bin", b"")
    assert refused(PATIENTS, buffer.getvalue(), "patients.xlsx").extra["reason"] == "zip_bomb"


def _sheet_xml() -> tuple[bytes, str]:
    base = workbook_bytes([["patient_id", "first_name", "last_name", "date_of_birth"], ["1", "Ana", "Ruiz", "03/09/1984"]])
    return base, zipfile.ZipFile(io.BytesIO(base)).read("xl/worksheets/sheet1.xml").decode()


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">' for n in range(1, 10))
    + "]>\n"
)


def test_a_billion_laughs_workbook_is_refused():
    base, sheet = _sheet_xml()
    data = workbook_with_member(base, "xl/worksheets/sheet1.xml", (BILLION_LAUGHS + sheet.replace("<t>Ana</t>", "<t>&lol9;</t>")).encode())
    started = time.monotonic()
    error = refused(PATIENTS, data, "patients.xlsx")
    assert time.monotonic() - started < 0.5
    assert error.extra["reason"] == "xml_entities"
    assert error.message.startswith("“patients.xlsx” contains XML entity declarations (a DTD)")


def test_an_external_entity_workbook_is_refused_and_the_file_it_names_is_never_read():
    base, sheet = _sheet_xml()
    xxe = '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    data = workbook_with_member(base, "xl/worksheets/sheet1.xml", (xxe + sheet.replace("<t>Ana</t>", "<t>&xxe;</t>")).encode())
    assert refused(PATIENTS, data, "patients.xlsx").extra["reason"] == "xml_entities"


def test_openpyxl_itself_refuses_entities_with_defusedxml_the_second_lock(monkeypatch):
    """Our check of each XML part's prolog is the first lock; openpyxl parsing with defusedxml is the
    second. With the first switched off, the upload is still refused, for the same reason."""
    assert openpyxl.DEFUSEDXML is True
    base, sheet = _sheet_xml()
    data = workbook_with_member(base, "xl/worksheets/sheet1.xml", (BILLION_LAUGHS + sheet.replace("<t>Ana</t>", "<t>&lol9;</t>")).encode())
    with pytest.raises(ValueError) as caught:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
        list(workbook.worksheets[0].iter_rows(values_only=True))
    assert file_reading._entities_refused(caught.value, EntitiesForbidden)
    monkeypatch.setattr(file_reading, "_xlsx_check", lambda file_name, data: None)
    assert refused(PATIENTS, data, "patients.xlsx").extra["reason"] == "xml_entities"


# -- rows: problems of form (the reading) ---------------------------------------------------------

PATIENT_CASES = [
    # (row as written, column, value, reason)
    ("1,Ana,Ruiz,13/45/1990,,,,", "date_of_birth", "13/45/1990",
     "“13/45/1990” is not a date that exists (month 13, day 45)."),
    ("1,Ana,Ruiz,25/12/1980,,,,", "date_of_birth", "25/12/1980",
     "“25/12/1980” is not a date as MM/DD/YYYY (month first): it looks like day/month order. Write 12/25/1980."),
    ("1,Ana,Ruiz,02/30/1990,,,,", "date_of_birth", "02/30/1990",
     "“02/30/1990” is not a date that exists (month 2, day 30)."),
    ("1,Ana,Ruiz,March 9 1984,,,,", "date_of_birth", "March 9 1984",
     "“March 9 1984” is not a date: write it as MM/DD/YYYY (03/09/1984), M/D/YYYY, MM/DD/YY or YYYY-MM-DD."),
    ("1,Ana,Ruiz,03/09/1984,,,,maybe", "sms_consent", "maybe",
     "“maybe” is not Yes or No (Y/N, true/false and 1/0 also work)."),
    ("1,Ana,Ruiz,03/09/1984,,,French,", "preferred_language", "French",
     "“French” is not a language LumaPay writes to patients in: use English or Spanish (en, es)."),
    ('1,"=HYPERLINK(""http://evil.example"",""Ana"")",Ruiz,03/09/1984,,,,', "first_name",
     '=HYPERLINK("http://evil.example","Ana")', FORMULA),
    ("1,Ana,@SUM(A1:A9),03/09/1984,,,,", "last_name", "@SUM(A1:A9)", FORMULA),
    ("1,Ana,+1+2,03/09/1984,,,,", "last_name", "+1+2",
     "Text cannot start with + or - (a spreadsheet would read it as a formula)."),
    ("1,Ana,Ruiz,03/09/1984,-2+3@example.com,,,", "email", "-2+3@example.com",
     "Text cannot start with + or - (a spreadsheet would read it as a formula)."),
    ("=1+1,Ana,Ruiz,03/09/1984,,,,", "patient_id", "=1+1", FORMULA),
    ("1,Ana,Ruiz,03/09/1984,,=2175550134,,", "mobile_phone", "=2175550134", FORMULA),
    ("1,Ana,Ruiz,=DATE(1984;3;9),,,,", "date_of_birth", "=DATE(1984;3;9)", FORMULA),
]


@pytest.mark.parametrize(("row", "column", "value", "reason"), PATIENT_CASES)
def test_a_patient_cell_that_cannot_be_read(organization, row, column, value, reason):
    read_file = read(PATIENTS, csv_bytes(PATIENT_HEADER, GOOD_ROW, row))
    assert every_problem(organization, read_file) == [(3, column, value, reason)]
    assert [p.reference for p in read_file.batch.patients] == ["row 2"]
    assert_rows_kept_out(organization, read_file, {"1", "=1+1"}, {"100235"})


APPOINTMENT_HEADER = "appointment_id,patient_id,starts_at,status,location,provider,copay"
APPOINTMENT_CASES = [
    ("A-2,100234,03/16/2027,booked,,Dr. Kim,$25", "starts_at", "03/16/2027",
     "“03/16/2027” has no time: give the appointment's date and time, as MM/DD/YYYY h:mm AM/PM (03/14/2027 9:30 "
     "AM), MM/DD/YYYY HH:MM (24-hour) or YYYY-MM-DD HH:MM."),
    ("A-2,100234,03/14/2027 2:30 AM,booked,,Dr. Kim,$25", "starts_at", "03/14/2027 2:30 AM",
     "“03/14/2027 2:30 AM” does not exist in America/Chicago: the clocks skip that hour when daylight saving time "
     "starts."),
    ("A-2,100234,03/16/2027 13:30 PM,booked,,Dr. Kim,$25", "starts_at", "03/16/2027 13:30 PM",
     "“03/16/2027 13:30 PM” is not a time: with AM or PM the hour is 1 to 12."),
    ("A-2,100234,tomorrow 9am,booked,,Dr. Kim,$25", "starts_at", "tomorrow 9am",
     "“tomorrow 9am” is not a date and time: write it as MM/DD/YYYY h:mm AM/PM (03/14/2027 9:30 AM), MM/DD/YYYY "
     "HH:MM (24-hour) or YYYY-MM-DD HH:MM."),
    ("A-2,100234,03/16/2027 9:30 AM,postponed,,Dr. Kim,$25", "status", "postponed",
     "“postponed” is not an appointment status: use Booked, Checked in, Completed, Cancelled or No-show."),
    ("A-2,100234,03/16/2027 9:30 AM,booked,,Dr. Kim,twelve", "copay", "twelve",
     "“twelve” is not an amount: write dollars and cents, such as 25, 25.00, $25.00 or $1,234.50."),
    ("A-2,100234,03/16/2027 9:30 AM,booked,,Dr. Kim,-12.00", "copay", "-12.00",
     "“-12.00” is negative: enter what is owed, 0 when nothing is (credits cannot be imported)."),
    ("A-2,100234,03/16/2027 9:30 AM,booked,,Dr. Kim,(12.00)", "copay", "(12.00)",
     "“(12.00)” is negative: enter what is owed, 0 when nothing is (credits cannot be imported)."),
    ("A-2,100234,03/16/2027 9:30 AM,booked,,Dr. Kim,$12.345", "copay", "$12.345",
     "“$12.345” has more than two decimals: amounts are in dollars and cents."),
    ("A-2,100234,03/16/2027 9:30 AM,booked,,Dr. Kim,\"1,23.00\"", "copay", "1,23.00",
     "“1,23.00” is not an amount: write dollars and cents, such as 25, 25.00, $25.00 or $1,234.50."),
    ("A-2,100234,03/16/2027 9:30 AM,booked,,Dr. Kim,$25,extra", "", "extra",
     "This row has 8 cells but the header row has 7 columns: check for a stray comma or an unquoted value that "
     "contains one."),
]


@pytest.mark.parametrize(("row", "column", "value", "reason"), APPOINTMENT_CASES)
def test_an_appointment_cell_that_cannot_be_read(organization, row, column, value, reason):
    LocationFactory(organization=organization, name="Main Street Clinic")
    PatientFactory(organization=organization, external_ehr_id="100234")
    good = "A-1,100234,03/16/2027 9:30 AM,booked,,Dr. Kim,$25"
    read_file = read(APPOINTMENTS, csv_bytes(APPOINTMENT_HEADER, good, row))
    assert every_problem(organization, read_file) == [(3, column, value, reason)]
    before = stored(organization)
    import_read(organization, read_file, all_or_nothing=True)
    import_read(organization, read_file)
    assert stored(organization)[1][0]["external_ehr_id"] == "A-1" and len(stored(organization)[1]) == 1
    assert stored(organization)[0] == before[0]


def test_a_formula_cell_in_a_workbook_is_a_problem_and_never_run(organization):
    data = workbook_bytes([
        ["patient_id", "first_name", "last_name", "date_of_birth"],
        ["1", "Ana", "Ruiz", datetime.datetime(1984, 3, 9)],
        ["2", '=HYPERLINK("http://evil.example","Luis")', "Ruiz", "=DATE(1990,7,4)"],
    ])
    read_file = read(PATIENTS, data, file_name="patients.xlsx")
    assert every_problem(organization, read_file) == [
        (3, "first_name", '=HYPERLINK("http://evil.example","Luis")', FORMULA),
        (3, "date_of_birth", "=DATE(1990,7,4)", FORMULA),
    ]
    assert_rows_kept_out(organization, read_file, {"2"}, {"1"})


def test_a_text_date_that_cannot_be_read_in_a_workbook(organization):
    data = workbook_bytes([["MRN", "First", "Last", "DOB"], [1, "Ana", "Ruiz", "9th of March"]])
    assert every_problem(organization, read(PATIENTS, data, file_name="p.xlsx")) == [
        (2, "DOB", "9th of March",
         "“9th of March” is not a date: write it as MM/DD/YYYY (03/09/1984), M/D/YYYY, MM/DD/YY or YYYY-MM-DD."),
    ]


# -- rows: problems of meaning (the importer), at their row and column --------------------------


def test_the_same_patient_id_twice_in_one_file(organization):
    data = csv_bytes(PATIENT_HEADER, PATIENT_ROW, GOOD_ROW, "100234,Ana,Garcia,03/09/1984,,,,")
    read_file = read(PATIENTS, data)
    assert every_problem(organization, read_file) == [
        (2, "patient_id", "100234", "The id 100234 appears more than once (also row 4): keep one of them."),
        (4, "patient_id", "100234", "The id 100234 appears more than once (also row 2): keep one of them."),
    ]
    assert_rows_kept_out(organization, read_file, {"100234"}, {"100235"})
    # The partial import recorded each rejected row, with its reference and field.
    assert set(rejections(organization)) == {("row 2", "external_id"), ("row 4", "external_id")}


def test_patient_problems_the_importer_finds_are_listed_by_row_and_column(organization):
    data = csv_bytes(
        "MRN,First Name,Last Name,DOB,Email,Mobile,Language,SMS",
        GOOD_ROW,
        "2,Ana,,03/09/1984,,,,",
        "3,Ana,Ruiz,01/01/2030,,,,",
        "4,Ana,Ruiz,03/09/1984,not-an-email,,,",
        "5,Ana,Ruiz,03/09/1984,,555-0134,,",
        "6,Ana,Ruiz,,,,,",
        "7,Ana,Ruiz,03/09/1984,,,,yes",
    )
    read_file = read(PATIENTS, data)
    assert every_problem(organization, read_file) == [
        (3, "Last Name", "", "The patient's last name is missing."),
        (4, "DOB", "2030-01-01", "The date of birth is in the future."),
        (5, "Email", "not-an-email", "This is not an e-mail address."),
        (6, "Mobile", "555-0134",
         "“555-0134” has 7 digits; a US number has 10, such as (217) 555-0100. Write other countries' numbers "
         "starting with +."),
        (7, "DOB", "", "The date of birth is missing: patients confirm it before they pay."),
        (8, "SMS", "yes", "SMS consent is given but there is no mobile phone number to text."),
    ]
    assert_rows_kept_out(organization, read_file, {"2", "3", "4", "5", "6", "7"}, {"100235"})


def test_appointments_of_an_unknown_patient_or_place(organization):
    LocationFactory(organization=organization, name="Main Street Clinic")
    LocationFactory(organization=organization, name="Northside")
    PatientFactory(organization=organization, external_ehr_id="100234")
    data = csv_bytes(
        APPOINTMENT_HEADER,
        "A-1,100234,03/16/2027 9:30 AM,booked,Main Street Clinic,Dr. Kim,$25",
        "A-2,999999,03/16/2027 9:30 AM,booked,Main Street Clinic,Dr. Kim,$25",
        "A-3,100234,03/16/2027 9:30 AM,booked,Lakeside,Dr. Kim,$25",
        "A-4,100234,03/16/2027 9:30 AM,booked,,Dr. Kim,$25",
        '"A-5",100234,03/16/2027 9:30 AM,booked,Northside,Dr. Kim,"$1,000,000.01"',
    )
    read_file = read(APPOINTMENTS, data)
    assert every_problem(organization, read_file) == [
        (3, "patient_id", "999999", "No patient with this id: import the patient first (or in the same file)."),
        (4, "location", "Lakeside",
         "No location has this name or EHR id. Add the EHR's location id to the location in Settings → Locations, "
         "or use a location's name as it appears there."),
        (5, "location", "", "The appointment names no location, and the organization has more than one."),
        (6, "copay", "1000000.01", "The copay is over $1,000,000: check the amount."),
    ]
    before = stored(organization)
    run, outcome = import_read(organization, read_file, all_or_nothing=True)
    assert not outcome.written and stored(organization) == before and run.rejected == 4


def test_balances_problems_by_row_and_column(organization):
    patient = PatientFactory(organization=organization, external_ehr_id="100234")
    PatientFactory(organization=organization, external_ehr_id="100235")
    data = csv_bytes(
        "patient_id,balance,appointment_id,copay",
        "100234,$10.00,,",
        "100235,$10.00,,",
        "100235,$12.00,,",
        "100236,$5,,",
        "100234,,A-404,$25",
        "100234,,,",
        "100234,-$3.00,,",
    )
    read_file = read(BALANCES, data)
    assert every_problem(organization, read_file) == [
        (3, "patient_id", "100235", "The id 100235 appears more than once (also row 4): keep one of them."),
        (4, "patient_id", "100235", "The id 100235 appears more than once (also row 3): keep one of them."),
        (5, "patient_id", "100236", "No patient with this id: import the patient first (or in the same file)."),
        (6, "appointment_id", "A-404", "No appointment with this id: import the appointment first."),
        (7, "balance", "", "The row gives no balance (and no appointment copay): enter what the patient owes, 0 when "
                           "nothing."),
        (8, "balance", "-$3.00", "“-$3.00” is negative: enter what is owed, 0 when nothing is (credits cannot be "
                                 "imported)."),
    ]
    before = stored(organization)
    _, outcome = import_read(organization, read_file, all_or_nothing=True)
    assert not outcome.written and stored(organization) == before
    assert patient.pk  # the one good row (row 2) waits for a file without problems
