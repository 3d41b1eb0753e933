"""The staff pages: the builder for managers and administrators only, sending a form, the
submission page and PDF and files for members of the organization only, each recorded as a PHI access."""

import io

import pytest
from django.core import mail
from django.urls import reverse

from intake_forms.models import FormFile, FormQuestion, FormSubmission, IntakeForm
from intake_forms.services import answers_save, form_draft, submission_start
from lumapay.models import PhiAccess

from ..factories import MembershipFactory, PatientFactory
from .support import answers, form_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def form(organization, manager):
    return form_make(organization=organization, actor=manager, questions=[
        {"kind": "short_text", "label": "Reason for the visit"},
        {"kind": "file", "label": "Insurance card"},
    ])


@pytest.fixture
def submission(form, patient):
    submission = submission_start(form=form, patient=patient)
    answers_save(submission=submission, data=answers(submission, {"Reason for the visit": "Knee pain"}))
    FormFile.objects.create(
        organization=form.organization, submission=submission, question_key=FormQuestion.objects.filter(
            section__version=submission.version, kind="file").get().key,
        file_name="card.png", content_type="image/png", size=9, data=b"\x89PNG\r\n\x1a\nx",
    )
    return submission


def test_a_manager_builds_a_form_through_the_pages(client_for, manager):
    client = client_for(manager)
    response = client.post(reverse("intake_forms:form_list"), {"title": "Before your visit"})
    form = IntakeForm.objects.get()
    edit = reverse("intake_forms:form_edit", args=[form.pk])
    assert response["Location"] == edit
    client.post(edit, {"op": "add_section", "title": "Health"})
    section = form_draft(form=form).sections.get()
    client.post(edit, {"op": "add_question", "section": section.pk, "kind": "single_choice", "label": "Allergies?", "choices": "yes\nno", "required": "yes"})
    allergies = FormQuestion.objects.get(label="Allergies?")
    client.post(edit, {"op": "add_question", "section": section.pk, "kind": "long_text", "label": "Which ones?", "condition_key": allergies.key, "condition_value": "yes"})
    client.post(edit, {"op": "add_question", "section": section.pk, "kind": "payment", "label": "Copay", "payment_mode": "copay", "declining_allowed": "yes"})
    client.post(edit, {"op": "question_up", "question": FormQuestion.objects.get(label="Copay").pk})
    client.post(edit, {"op": "publish"})
    client.post(edit, {"op": "settings", "with_copay_request": "yes"})

    form.refresh_from_db()
    assert form.with_copay_request
    version = form.versions.get(number=1)
    assert version.published_at is not None
    assert [q.label for q in FormQuestion.objects.filter(section__version=version)] == ["Allergies?", "Copay", "Which ones?"]
    page = client.get(edit).content.decode()
    assert "Editing draft version 2" in page and "Shown when “Allergies?” is “yes”" in page
    assert client.get(reverse("intake_forms:form_list")).status_code == 200


def test_sub_account_users_may_not_use_the_builder(client_for, staff_user, form):
    client = client_for(staff_user)
    assert client.get(reverse("intake_forms:form_list")).status_code == 403
    assert client.get(reverse("intake_forms:form_edit", args=[form.pk])).status_code == 403
    assert client.post(reverse("intake_forms:form_edit", args=[form.pk]), {"op": "publish"}).status_code == 403


def test_another_organizations_forms_submissions_and_files_are_not_found(client, other_organization, form, submission):
    outsider = MembershipFactory(organization=other_organization, role="administrator").user
    client.force_login(outsider)
    file = submission.files.get()
    for url in (
        reverse("intake_forms:form_edit", args=[form.pk]),
        reverse("intake_forms:submission_detail", args=[submission.pk]),
        reverse("intake_forms:submission_pdf", args=[submission.pk]),
        reverse("intake_forms:form_file", args=[file.pk]),
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("intake_forms:form_send", args=[form.pk]), {"patient": submission.patient.pk, "channel": "email"}).status_code == 404
    assert not PhiAccess.objects.exists()


def test_signed_out_visitors_go_to_the_login_page(client, form, submission):
    for url in (reverse("intake_forms:form_list"), reverse("intake_forms:submission_detail", args=[submission.pk])):
        assert client.get(url).status_code == 302


def test_staff_read_a_submission_its_pdf_and_its_file_and_each_look_is_recorded(client_for, staff_user, submission):
    client = client_for(staff_user)
    page = client.get(reverse("intake_forms:submission_detail", args=[submission.pk])).content.decode()
    assert "Knee pain" in page and "card.png" in page
    pdf = client.get(reverse("intake_forms:submission_pdf", args=[submission.pk]))
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    from pypdf import PdfReader

    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Knee pain" in text and submission.patient.last_name in text
    file = client.get(reverse("intake_forms:form_file", args=[submission.files.get().pk]))
    assert file["Content-Type"] == "image/png" and file["Content-Disposition"].startswith("attachment")
    assert file["X-Content-Type-Options"] == "nosniff"
    assert PhiAccess.objects.filter(actor_user=staff_user).count() == 3


def test_the_patient_profile_lists_submissions_and_sends_a_form_by_email(client_for, staff_user, form, submission, organization, django_capture_on_commit_callbacks):
    client = client_for(staff_user)
    patient = submission.patient
    page = client.get(reverse("patients:profile", args=[patient.pk])).content.decode()
    assert reverse("intake_forms:submission_detail", args=[submission.pk]) in page
    assert f'action="{reverse("intake_forms:form_send", args=[form.pk])}"' in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("intake_forms:form_send", args=[form.pk]), {"patient": patient.pk, "channel": "email"})
    assert response.status_code == 302
    assert FormSubmission.objects.filter(patient=patient).count() == 2
    message = mail.outbox[-1]
    assert message.to == [patient.email] and "/form/" in message.body
    # No PHI in the message: only the clinic's name and the link.
    assert patient.last_name not in message.body and patient.first_name not in message.body


def test_a_form_cannot_be_sent_to_another_organizations_patient(client_for, manager, form, other_organization):
    stranger = PatientFactory(organization=other_organization)
    response = client_for(manager).post(reverse("intake_forms:form_send", args=[form.pk]), {"patient": stranger.pk, "channel": "email"})
    assert response.status_code == 404
