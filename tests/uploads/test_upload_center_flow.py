"""The Upload Center through its pages: a CSV with three bad rows is previewed with exactly those
problems, its valid rows are imported, and the same file uploaded again changes nothing; all or
nothing; discarding; templates; who may use it; another clinic's uploads; the size limit."""

from __future__ import annotations

import io

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from ehr_sync.models import ImportRun, Patient
from lumapay.enums import AuditAction
from lumapay.models import AuditEvent, PhiAccess, PhiAccessPatient
from org_profile.enums import Role
from uploads.enums import UploadStatus
from uploads.models import Upload

from ..factories import MembershipFactory, PatientFactory

pytestmark = pytest.mark.django_db

HEADER = "patient_id,first_name,last_name,date_of_birth,email,mobile_phone\n"
# Six patients; rows 3, 4 and 5 (spreadsheet rows: the header is row 1) are wrong.
THREE_BAD_ROWS = (
    HEADER
    + "MRN-1,Maria,Lopez,1984-03-09,maria@example.com,\n"
    + "MRN-2,,Nguyen,1990-01-01,,\n"
    + "MRN-3,Ana,Diaz,1975-13-40,,\n"
    + "MRN-4,Sam,Okafor,1966-05-05,not-an-email,\n"
    + "MRN-5,Lee,Park,2001-07-07,,\n"
    + "MRN-6,Kim,Ruiz,1955-02-02,kim@example.com,\n"
).encode()
ALL_GOOD = (
    HEADER + "MRN-7,Rosa,Quimby,1980-01-01,,\n" + "MRN-8,Tom,Reyes,1970-02-02,,\n" + "MRN-9,Ida,Lund,1960-03-03,,\n"
).encode()


def _send(client, data: bytes, *, name="patients.csv", kind="patients"):
    return client.post(
        reverse("uploads:send"), {"kind": kind, "file": SimpleUploadedFile(name, data, content_type="text/csv")}
    )


def _import(client, upload, mode, capture):
    with capture(execute=True):
        return client.post(reverse("uploads:import", args=[upload.pk]), {"mode": mode})


def _patients_as_stored(organization) -> list[tuple]:
    """Every column of every patient, to prove a second import modified no row."""
    return list(Patient.objects.filter(organization=organization).order_by("pk").values_list())


def test_three_bad_rows_are_listed_the_valid_rows_imported_and_the_same_file_again_changes_nothing(
    client, organization, manager, django_capture_on_commit_callbacks
):
    client.force_login(manager)

    # When the manager uploads a CSV of six patients, three of them wrong
    response = _send(client, THREE_BAD_ROWS)

    # Then the preview lists exactly those three problems, by row, column and value, with why
    upload = Upload.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("uploads:detail", args=[upload.pk])
    preview = client.get(response["Location"])
    assert preview.status_code == 200
    assert "no-store" in preview["Cache-Control"]
    problems = [(p["row"], p["column"], p["value"]) for p in upload.problems]
    assert problems == [(3, "first_name", ""), (4, "date_of_birth", "1975-13-40"), (5, "email", "not-an-email")]
    reasons = {p["row"]: p["reason"] for p in upload.problems}
    assert reasons[3] == "The patient's first name is missing."
    assert reasons[5] == "This is not an e-mail address."
    assert reasons[4]  # the reading layer's words for a date it cannot read
    page = preview.content.decode()
    assert "6 rows, 3 with problems" in page
    for reason in reasons.values():
        assert reason.replace("'", "&#x27;") in page
    assert "Import the 3 valid rows" in page
    assert (upload.status, upload.rows, upload.rows_with_problems, upload.valid_rows) == ("previewed", 6, 3, 3)
    assert Patient.objects.count() == 0 and ImportRun.objects.count() == 0  # nothing written before the choice

    # When the manager imports the valid rows
    response = _import(client, upload, "valid_rows", django_capture_on_commit_callbacks)

    # Then the three good patients are in, and the result page says what happened
    upload.refresh_from_db()
    assert upload.status == UploadStatus.IMPORTED and upload.progress_rows == 6
    assert sorted(Patient.objects.values_list("external_ehr_id", flat=True)) == ["MRN-1", "MRN-5", "MRN-6"]
    run = upload.import_run
    assert (run.created, run.updated, run.unchanged, run.rejected) == (3, 0, 0, 2)
    assert upload.rows_with_problems == 3
    assert [p["row"] for p in upload.problems] == [3, 4, 5]
    assert upload.content == b"" and upload.content_erased_at is not None  # the file is not kept
    result = client.get(reverse("uploads:detail", args=[upload.pk])).content.decode()
    assert "Imported: 3 created, 0 updated, 0 unchanged, 3 rejected." in result
    assert "Rows not imported (3)" in result
    stored = _patients_as_stored(organization)

    # When the manager uploads the same file again
    _send(client, THREE_BAD_ROWS, name="patients (1).csv")

    # Then the preview says it was imported before, and importing it again changes nothing
    again = Upload.objects.exclude(pk=upload.pk).get()
    preview = client.get(reverse("uploads:detail", args=[again.pk])).content.decode()
    assert "This same file was imported on" in preview and f"by {manager.email}: importing it again changes nothing" in preview
    assert again.sha256 == upload.sha256 and again.records_as_of == upload.records_as_of
    _import(client, again, "valid_rows", django_capture_on_commit_callbacks)
    again.refresh_from_db()
    run = again.import_run
    assert again.status == UploadStatus.IMPORTED
    assert (run.created, run.updated, run.unchanged, run.older, run.rejected) == (0, 0, 3, 0, 2)
    assert _patients_as_stored(organization) == stored

    # And the history lists both uploads, who sent them and their counts
    center = client.get(reverse("uploads:center"))
    listed = [(u.file_name, u.uploaded_by_id, u.status) for u in center.context["page"].object_list]
    assert listed == [("patients (1).csv", manager.pk, "imported"), ("patients.csv", manager.pk, "imported")]
    assert "patients (1).csv" in center.content.decode()
    actions = list(AuditEvent.objects.filter(action__startswith="upload.").order_by("pk").values_list("action", flat=True))
    assert actions == [AuditAction.UPLOAD_RECEIVED, AuditAction.UPLOAD_IMPORTED] * 2


def test_all_or_nothing_is_refused_while_rows_have_problems(client, manager, django_capture_on_commit_callbacks):
    client.force_login(manager)
    _send(client, THREE_BAD_ROWS)
    upload = Upload.objects.get()
    assert "Not possible while rows have problems" in client.get(reverse("uploads:detail", args=[upload.pk])).content.decode()

    response = _import(client, upload, "all_or_nothing", django_capture_on_commit_callbacks)

    followed = client.get(response["Location"]).content.decode()
    assert "3 rows of this one have problems" in followed
    upload.refresh_from_db()
    assert (upload.status, upload.import_run_id, upload.mode) == ("previewed", None, "")
    assert Patient.objects.count() == 0 and ImportRun.objects.count() == 0


def test_all_or_nothing_imports_a_file_without_problems(client, manager, django_capture_on_commit_callbacks):
    client.force_login(manager)
    _send(client, ALL_GOOD)
    upload = Upload.objects.get()

    _import(client, upload, "all_or_nothing", django_capture_on_commit_callbacks)

    upload.refresh_from_db()
    assert (upload.status, upload.mode, upload.import_run.created, upload.problems) == ("imported", "all_or_nothing", 3, [])
    assert sorted(Patient.objects.values_list("last_name", flat=True)) == ["Lund", "Quimby", "Reyes"]


def test_discarding_a_file_imports_nothing_and_erases_it(client, manager, django_capture_on_commit_callbacks):
    client.force_login(manager)
    _send(client, ALL_GOOD)
    upload = Upload.objects.get()

    response = client.post(reverse("uploads:discard", args=[upload.pk]))

    assert response["Location"] == reverse("uploads:center")
    upload.refresh_from_db()
    assert (upload.status, upload.content, upload.import_run_id) == ("discarded", b"", None)
    assert AuditEvent.objects.filter(action=AuditAction.UPLOAD_DISCARDED, changes__upload=upload.pk).exists()
    _import(client, upload, "valid_rows", django_capture_on_commit_callbacks)
    upload.refresh_from_db()
    assert upload.status == "discarded" and Patient.objects.count() == 0


@pytest.mark.parametrize("kind", ["patients", "appointments", "balances"])
def test_templates_download_as_csv_and_excel(client, manager, kind):
    from uploads.file_reading import COLUMNS

    client.force_login(manager)
    names = [column.name for column in COLUMNS[kind]]

    csv_file = client.get(reverse("uploads:template", args=[kind, "csv"]))
    excel = client.get(reverse("uploads:template", args=[kind, "xlsx"]))

    assert csv_file.status_code == 200 and csv_file["Content-Type"].startswith("text/csv")
    assert csv_file.content.decode("utf-8-sig").splitlines()[0].split(",") == names
    sheet = openpyxl.load_workbook(io.BytesIO(excel.content)).active
    assert [cell.value for cell in next(sheet.iter_rows(max_row=1))] == names
    assert client.get(reverse("uploads:template", args=["invoices", "csv"])).status_code == 404


def test_sub_account_users_may_not_use_the_upload_center(client, staff_user, manager, organization):
    client.force_login(manager)
    _send(client, ALL_GOOD)
    upload = Upload.objects.get()
    assert "Upload Center" in client.get(reverse("uploads:center")).content.decode()
    client.force_login(staff_user)

    pages = [
        client.get(reverse("uploads:center")),
        _send(client, ALL_GOOD),
        client.get(reverse("uploads:detail", args=[upload.pk])),
        client.post(reverse("uploads:import", args=[upload.pk]), {"mode": "valid_rows"}),
        client.post(reverse("uploads:discard", args=[upload.pk])),
        client.get(reverse("uploads:template", args=["patients", "csv"])),
    ]

    assert [page.status_code for page in pages] == [403] * 6
    assert "Upload Center" not in client.get(reverse("transactions:dashboard")).content.decode()
    upload.refresh_from_db()
    assert upload.status == "previewed" and Upload.objects.count() == 1 and Patient.objects.count() == 0


def test_administrators_use_it_too(client, administrator):
    client.force_login(administrator)
    assert _send(client, ALL_GOOD).status_code == 302


def test_another_clinics_upload_is_not_found(client, manager, other_organization, django_capture_on_commit_callbacks):
    client.force_login(manager)
    _send(client, ALL_GOOD)
    upload = Upload.objects.get()
    outsider = MembershipFactory(organization=other_organization, role=Role.ADMINISTRATOR).user
    client.force_login(outsider)

    answers = [
        client.get(reverse("uploads:detail", args=[upload.pk])).status_code,
        _import(client, upload, "valid_rows", django_capture_on_commit_callbacks).status_code,
        client.post(reverse("uploads:discard", args=[upload.pk])).status_code,
    ]

    assert answers == [404, 404, 404]
    assert list(client.get(reverse("uploads:center")).context["page"].object_list) == []
    upload.refresh_from_db()
    assert upload.status == "previewed" and Patient.objects.count() == 0


def test_the_preview_records_who_saw_a_stored_patients_row(client, manager, organization):
    okafor = PatientFactory(organization=organization, external_ehr_id="MRN-4", last_name="Okafor")
    client.force_login(manager)
    _send(client, THREE_BAD_ROWS)
    upload = Upload.objects.get()

    client.get(reverse("uploads:detail", args=[upload.pk]))

    access = PhiAccess.objects.get(page="uploads:detail")
    assert access.actor_user_id == manager.pk and access.path == reverse("uploads:detail", args=[upload.pk])
    assert list(PhiAccessPatient.objects.filter(access=access).values_list("patient_id", flat=True)) == [okafor.pk]


def test_a_file_over_the_size_limit_is_refused_before_it_is_kept(client, manager, monkeypatch):
    from uploads import upload_limits

    monkeypatch.setattr(upload_limits, "UPLOAD_MAX_BYTES", 1_000)
    client.force_login(manager)

    # Larger than the limit, within what the request may say: stopped as it streams in
    streamed = _send(client, ALL_GOOD * 40)
    # Larger than the request may be at all: refused before its body is read
    stated = _send(client, ALL_GOOD * 1_000)

    assert (streamed.status_code, stated.status_code) == (413, 413)
    assert "The file is larger than" in streamed.content.decode()
    assert Upload.objects.count() == 0


def test_sending_a_file_needs_the_csrf_token(manager):
    from ..two_step import VerifiedClient

    client = VerifiedClient(enforce_csrf_checks=True)
    client.force_login(manager)

    response = _send(client, ALL_GOOD)

    assert response.status_code == 403 and Upload.objects.count() == 0
