"""Intake forms on other apps' pages, registered from ``IntakeFormsConfig.ready``:

- the patient profile (``ehr_sync.patient_panels``): the patient's submissions, and "Send a form";
- a transaction's page (``transactions.transaction_panels``): the form whose payment question it paid;
- the pay page (``transactions.pay_page_panels``): the form that goes with an automatic copay
  request, linked above the "Pay" button and named in the request's e-mail and text message;
- a new automatic copay request (``post_save`` of ``PaymentRequest``) starts a submission of each
  form marked "with the copay request before a visit".
"""

from __future__ import annotations

from django.http import HttpRequest

from ehr_sync.patient_panels import PatientPanels
from transactions.enums import CollectionRule
from transactions.pay_page_panels import PayPagePanels
from transactions.transaction_panels import TransactionPanels

from .models import FormSubmission, IntakeForm, SubmissionStatus


def patient_forms_context(request: HttpRequest, patient) -> dict:
    organization = request.organization
    return {
        "intake_submissions": list(
            FormSubmission.objects.filter(organization=organization, patient=patient).select_related(
                "version__form", "link_delivery"
            )[:50]
        ),
        "intake_forms_to_send": [
            form for form in IntakeForm.objects.filter(organization=organization) if form.versions.filter(published_at__isnull=False).exists()
        ],
    }


FORM_PATIENT_PANELS = PatientPanels(
    templates={"after_appointments": "intake_forms/_patient_forms.html"},
    context=patient_forms_context,
)


def pay_page_forms_context(payment_request) -> dict:
    from .services import form_link_token

    submissions = FormSubmission.objects.filter(
        organization_id=payment_request.organization_id, sent_with=payment_request
    ).select_related("version__form")
    return {
        "intake_form_links": [
            {"title": submission.version.form.title, "token": form_link_token(submission),
             "complete": submission.status == SubmissionStatus.COMPLETE}
            for submission in submissions
        ]
    }


def copay_request_message_lines(payment_request) -> list[str]:
    from .services import copay_request_message_lines as lines

    return lines(payment_request)


FORM_PAY_PAGE_PANELS = PayPagePanels(
    templates={"before_pay": "intake_forms/_pay_page_forms.html"},
    context=pay_page_forms_context,
    message_lines=copay_request_message_lines,
)


def copay_request_made(sender, instance, created, **kwargs) -> None:
    if created and instance.automation_rule == CollectionRule.COPAY_BEFORE_VISIT:
        from .services import forms_attach_to_copay_request

        forms_attach_to_copay_request(instance)


def transaction_forms_context(request: HttpRequest, transaction) -> dict:
    """The form whose payment question this transaction paid (any member who sees the transaction)."""
    return {
        "intake_form_submissions": list(
            FormSubmission.objects.filter(organization=request.organization, payment_transaction=transaction).select_related("version__form")
        )
    }


FORM_TRANSACTION_PANELS = TransactionPanels(
    templates={"after_money": "intake_forms/_transaction_forms.html"},
    context=transaction_forms_context,
)
