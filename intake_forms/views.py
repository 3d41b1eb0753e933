"""Staff pages of intake forms.

- The builder (managers and administrators; sub-account users get 403): the list of forms, a new
  form, and one form's draft: sections and questions added, moved, removed; conditions; required;
  the payment question; publish (a new version); "with the copay request before a visit".
- "Send a form" from the patient's profile (any member).
- A submission, its PDF and its files (any member of the organization; each records the PHI
  access). Another organization's form, submission or file is "not found".
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from ehr_sync.selectors import patient_get
from lumapay.audit import client_ip
from lumapay.errors import ApplicationError
from lumapay.phi_access import phi_access_record
from org_profile.access import MANAGERS, found_or_404, membership_required
from transactions.views.transaction_detail import pdf_response

from .models import FormFile, FormQuestion, FormSection, FormSubmission, IntakeForm, PaymentMode, QuestionKind
from .services import (
    form_create,
    form_draft,
    form_publish,
    form_published_version,
    form_send,
    form_settings_update,
    item_move,
    item_remove,
    question_add,
    section_add,
)
from .submission_documents import submission_context, submission_pdf as submission_pdf_make


def _form_of(request, pk) -> IntakeForm:
    return found_or_404(IntakeForm.objects.filter(organization=request.organization, pk=pk).first(), "No such form.")


@membership_required(roles=MANAGERS)
@require_http_methods(["GET", "HEAD", "POST"])
def form_list(request):
    organization = request.organization
    if request.method == "POST":
        try:
            form = form_create(organization=organization, actor=request.user, title=request.POST.get("title", ""))
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            return redirect("intake_forms:form_edit", pk=form.pk)
    forms = [
        {"form": form, "published": form_published_version(form), "submissions": FormSubmission.objects.filter(version__form=form).count()}
        for form in IntakeForm.objects.filter(organization=organization)
    ]
    return render(request, "intake_forms/form_list.html", {"nav": "forms", "forms": forms})


@membership_required(roles=MANAGERS)
@require_http_methods(["GET", "HEAD", "POST"])
def form_edit(request, pk):
    organization = request.organization
    form = _form_of(request, pk)
    if request.method == "POST":
        op = request.POST.get("op", "")
        try:
            _edit(request, form, op)
        except ApplicationError as error:
            messages.error(request, error.message)
        return redirect("intake_forms:form_edit", pk=form.pk)
    draft = form_draft(form=form)
    sections = list(draft.sections.prefetch_related("questions"))
    questions = [question for section in sections for question in section.questions.all()]
    return render(
        request,
        "intake_forms/form_edit.html",
        {
            "nav": "forms",
            "form": form,
            "draft": draft,
            "published": form_published_version(form),
            "sections": sections,
            "questions": questions,
            "kinds": QuestionKind.choices,
            "payment_modes": PaymentMode.choices,
            "organization": organization,
        },
    )


def _edit(request, form: IntakeForm, op: str) -> None:
    organization, actor = request.organization, request.user
    draft = form_draft(form=form)

    def section():
        return found_or_404(FormSection.objects.filter(organization=organization, version=draft, pk=request.POST.get("section") or 0).first())

    def question():
        return found_or_404(
            FormQuestion.objects.filter(organization=organization, section__version=draft, pk=request.POST.get("question") or 0).first()
        )

    if op == "add_section":
        section_add(organization=organization, actor=actor, form=form, title=request.POST.get("title", ""))
    elif op == "add_question":
        question_add(organization=organization, actor=actor, section=section(), values=request.POST)
    elif op in ("section_up", "section_down"):
        item_move(organization=organization, actor=actor, item=section(), direction=op.rpartition("_")[2])
    elif op in ("question_up", "question_down"):
        item_move(organization=organization, actor=actor, item=question(), direction=op.rpartition("_")[2])
    elif op == "remove_section":
        item_remove(organization=organization, actor=actor, item=section())
    elif op == "remove_question":
        item_remove(organization=organization, actor=actor, item=question())
    elif op == "publish":
        version = form_publish(organization=organization, actor=actor, form=form, ip_address=client_ip(request))
        messages.success(request, f"Version {version.number} is published: patients get it from now on.")
    elif op == "settings":
        form_settings_update(organization=organization, actor=actor, form=form, with_copay_request=request.POST.get("with_copay_request") == "yes")
        messages.success(request, "Saved.")
    else:
        raise Http404


@membership_required()
@require_POST
def form_send_view(request, pk):
    organization = request.organization
    form = _form_of(request, pk)
    patient_id = request.POST.get("patient", "")
    patient = found_or_404(
        patient_get(organization=organization, patient_id=int(patient_id)) if patient_id.isdigit() else None, "No such patient."
    )
    try:
        form_send(organization=organization, actor=request.user, form=form, patient=patient,
                  channel=request.POST.get("channel", ""), ip_address=client_ip(request))
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"“{form.title}” was sent to the patient.")
    return redirect("patients:profile", pk=patient.pk)


def _submission_of(request, pk) -> FormSubmission:
    return found_or_404(
        FormSubmission.objects.filter(organization=request.organization, pk=pk)
        .select_related("patient", "version__form", "payment_request", "payment_transaction")
        .first(),
        "No such submission.",
    )


@membership_required()
@require_safe
def submission_detail(request, pk):
    submission = _submission_of(request, pk)
    phi_access_record(request=request, patients=[submission.patient])
    return render(request, "intake_forms/submission_detail.html", {"nav": "forms", **submission_context(submission)})


@membership_required()
@require_safe
def submission_pdf(request, pk):
    submission = _submission_of(request, pk)
    phi_access_record(request=request, patients=[submission.patient])
    return pdf_response(submission_pdf_make(submission), filename=f"form-{submission.pk}.pdf")


@membership_required()
@require_safe
def form_file_download(request, pk):
    """A patient's uploaded file, for staff of its organization only, recorded as a PHI access.
    Sent as an attachment with its checked type, never rendered inline by the browser."""
    file = found_or_404(FormFile.objects.filter(organization=request.organization, pk=pk).select_related("submission__patient").first())
    phi_access_record(request=request, patients=[file.submission.patient])
    response = HttpResponse(bytes(file.data), content_type=file.content_type)
    response["Content-Disposition"] = f'attachment; filename="{file.file_name}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
