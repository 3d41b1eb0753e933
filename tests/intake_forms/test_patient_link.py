"""The patient's form link: the date-of-birth gate and lockout, Spanish, progress kept when the
patient leaves half-way and comes back, and the uploaded files' checks."""

import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings

from intake_forms.models import FormFile, SubmissionStatus
from intake_forms.services import submission_start
from lumapay.models import AuditEvent

from ..transactions.pay_support import dob_fields
from .support import answers, form_make, form_url, open_form

pytestmark = pytest.mark.django_db

QUESTIONS = [
    {"kind": "short_text", "label": "Reason for the visit", "required": "yes"},
    {"kind": "phone", "label": "Phone", "required": "yes"},
    {"kind": "file", "label": "Insurance card"},
]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def submission(organization, manager, patient):
    form = form_make(organization=organization, actor=manager, questions=QUESTIONS)
    return submission_start(form=form, patient=patient)


def test_nothing_before_the_date_of_birth_and_the_link_locks_after_wrong_answers(client, submission, settings):
    settings.PAY_LINK_MAX_FAILED_DOB_ATTEMPTS = 3
    assert client.get(form_url("fill", submission))["Location"] == form_url("verify", submission)
    page = client.get(form_url("verify", submission)).content.decode()
    assert "Reason for the visit" not in page and submission.patient.last_name not in page

    wrong = dob_fields(datetime.date(1900, 1, 1))
    assert client.post(form_url("verify", submission), wrong).status_code == 200
    client.post(form_url("verify", submission), wrong)
    assert client.post(form_url("verify", submission), wrong).status_code == 429
    # Locked: even the right date of birth is refused now.
    response = client.post(form_url("verify", submission), dob_fields(submission.patient.date_of_birth))
    assert response.status_code == 429
    assert AuditEvent.objects.filter(action="form.link_locked").count() == 1


def test_a_tampered_link_is_not_found(client, submission):
    assert client.get(form_url("verify", submission)[:-3] + "xx/").status_code == 404


def test_the_form_speaks_spanish_for_a_spanish_speaking_patient(client, submission):
    submission.patient.preferred_language = "es"
    submission.patient.save()
    page = open_form(client, submission).get(form_url("fill", submission))
    assert page["Content-Language"] == "es"
    assert "Enviar el formulario" in page.content.decode()


def test_a_form_abandoned_half_way_is_resumed_with_its_answers(submission):
    first_visit = open_form(Client(), submission)
    response = first_visit.post(form_url("fill", submission), {"action": "save", **answers(submission, {"Reason for the visit": "Knee pain"})})
    assert response.status_code == 200
    submission.refresh_from_db()
    assert submission.status == SubmissionStatus.IN_PROGRESS

    # Days later, on another device: the date of birth again, and the answer is there.
    later = open_form(Client(), submission)
    page = later.get(form_url("fill", submission)).content.decode()
    assert 'value="Knee pain"' in page
    response = later.post(form_url("fill", submission), {"action": "finish", **answers(submission, {"Phone": "(555) 123-4567"})})
    assert response.status_code == 302
    submission.refresh_from_db()
    assert submission.status == SubmissionStatus.COMPLETE
    assert sorted(submission.answers.values()) == ["(555) 123-4567", "Knee pain"]


def _upload(client, submission, name, data):
    key = {q.label: q.key for s in submission.version.sections.all() for q in s.questions.all()}["Insurance card"]
    return client.post(form_url("fill", submission), {"action": "save", f"q_{key}": SimpleUploadedFile(name, data)})


def test_a_file_is_checked_by_its_content_not_its_name(client, submission):
    open_form(client, submission)
    response = _upload(client, submission, "card.png", b"<html><script>alert(1)</script>")
    assert response.status_code == 400 and not FormFile.objects.exists()
    response = _upload(client, submission, "card.txt", PNG)
    assert response.status_code == 200
    stored = FormFile.objects.get()
    assert (stored.content_type, stored.size, bytes(stored.data)) == ("image/png", len(PNG), PNG)


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=None)
def test_a_file_over_the_size_limit_is_refused(client, submission, monkeypatch):
    monkeypatch.setattr("intake_forms.services.FILE_MAX_BYTES", 100)
    open_form(client, submission)
    assert _upload(client, submission, "card.png", PNG + b"\x00" * 200).status_code == 400
    assert not FormFile.objects.exists()


def test_an_unfinished_forms_link_expires_and_asks_the_patient_to_contact_the_clinic(client, submission, settings):
    settings.INTAKE_FORM_LINK_TTL_DAYS = 30
    open_form(client, submission)
    assert client.get(form_url("fill", submission)).status_code == 200

    type(submission).objects.filter(pk=submission.pk).update(created_at=submission.created_at - datetime.timedelta(days=30))
    for name in ("verify", "fill"):
        response = client.get(form_url(name, submission) + "?lang=es")
        page = response.content.decode()
        assert response.status_code == 410
        assert "Este enlace al formulario ha vencido" in page and submission.organization.display_name in page
        # Nothing of the form or the patient's answers.
        assert submission.patient.last_name not in page and "Reason" not in page
    assert client.post(form_url("fill", submission), {"action": "save"}).status_code == 410


def test_a_completed_forms_link_still_shows_its_thank_you_page_after_the_link_lifetime(client, submission, settings):
    type(submission).objects.filter(pk=submission.pk).update(
        status=SubmissionStatus.COMPLETE, created_at=submission.created_at - datetime.timedelta(days=400)
    )
    open_form(client, submission)
    assert client.get(form_url("fill", submission)).status_code in (200, 302)
