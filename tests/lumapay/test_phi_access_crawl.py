"""Every staff page and download that shows a patient records it in the PHI access log.

The crawl visits each staff URL (the clinic's pages and the operators' admin) that shows a
patient and asserts one access row naming that patient, who looked, what page, and the address and
browser it came from. A staff URL nobody classified fails the first test, so a new page cannot
quietly skip the log.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass

import pytest
from django.contrib import admin
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

import ehr_sync.connection_urls
import ehr_sync.urls
import helpcenter.help_urls
import intake_forms.urls
import payouts.urls
import transactions.urls
import uploads.urls
from ehr_sync.models import Hl7Message
from lumapay.admin import PhiAccessAdminMixin
from lumapay.models import PhiAccess, PhiAccessPatient
from org_profile.enums import Role
from transactions.enums import DisputeStatus, SavedCardStatus
from transactions.models import Dispute, Refund, SavedCard

from ..factories import (
    AppointmentFactory,
    BalanceFactory,
    LocationFactory,
    MembershipFactory,
    PatientFactory,
    PaymentRequestDeliveryFactory,
    PaymentRequestFactory,
    UserFactory,
)
from ..transactions.payments import paid_transaction

pytestmark = pytest.mark.django_db

ADDRESS = "203.0.113.77"
BROWSER = "Mozilla/5.0 (crawl) PHI-access-test"


@dataclass
class World:
    organization: object
    location: object
    patient: object
    administrator: object
    transaction: object
    payment_request: object


@pytest.fixture
def world(organization, settings):
    location = LocationFactory(organization=organization, name="Downtown Clinic")
    patient = PatientFactory(organization=organization, first_name="Rosalind", last_name="Quimby")
    administrator = MembershipFactory(organization=organization, role=Role.ADMINISTRATOR).user
    transaction = paid_transaction(organization=organization, patient=patient, location=location, amount_cents=4500)
    payment_request = PaymentRequestFactory(patient=patient, location=location)
    return World(organization, location, patient, administrator, transaction, payment_request)


def _get(url, data=None):
    return lambda client, w: client.get(url(w), data or {})


def _post(url, data):
    return lambda client, w: client.post(url(w), data(w) if callable(data) else data)


def _payment_plan_new(client, w):
    # Plans are offered by clinics that keep cards on file (Stripe).
    type(w.organization).objects.filter(pk=w.organization.pk).update(payment_gateway="stripe")
    return client.get(reverse("transactions:payment_plan_new", args=[w.patient.pk]))


def _kept_export_download(client, w):
    from django.conf import settings

    settings.EXPORT_SYNC_MAX_ROWS = 0
    # The kept export is written by its task, queued on commit (run eagerly here).
    with TestCase.captureOnCommitCallbacks(execute=True):
        client.post(reverse("transactions:export_create"), {})
    from transactions.models import TransactionExport

    export = TransactionExport.objects.get()
    return client.get(reverse("transactions:export_download", args=[export.pk]))


def _upload_preview(client, w):
    # A file whose one row, about the world's patient, has a problem the preview shows.
    from django.core.files.uploadedfile import SimpleUploadedFile

    from uploads.models import Upload

    row = f"{w.patient.external_ehr_id},{w.patient.first_name},{w.patient.last_name},1984-03-09,not-an-email,"
    data = f"patient_id,first_name,last_name,date_of_birth,email,mobile_phone\n{row}\n".encode()
    client.post(reverse("uploads:send"), {"kind": "patients", "file": SimpleUploadedFile("p.csv", data)})
    return client.get(reverse("uploads:detail", args=[Upload.objects.latest("pk").pk]))


def _access_log_export(client, w):
    # Something to export first: the profile's own look.
    client.get(reverse("patients:profile", args=[w.patient.pk]))
    today = timezone.localdate()
    response = client.get(reverse("patients:access_log_export"), {"date_from": today, "date_to": today})
    b"".join(response.streaming_content)
    return response


def _run_with_a_rejection(client, w):
    from ehr_sync.enums import EhrConnectionKind, ImportSource
    from ehr_sync.models import EhrConnection, ImportRejection, ImportRun

    w.patient.external_ehr_id = "P-crawl"
    w.patient.save()
    connection = EhrConnection.objects.create(organization=w.organization, name="Epic", kind=EhrConnectionKind.FHIR)
    run = ImportRun.objects.create(organization=w.organization, source=ImportSource.FHIR, connection=connection)
    ImportRejection.objects.create(
        organization=w.organization, run=run, kind="patient", reference="Patient/P-crawl", field="email",
        value="rosalind.at.example", reason="This is not an e-mail address.",
    )
    return client.get(reverse("ehr_connections:run_detail", args=[run.pk]))


# Each staff page that shows a patient, and how the crawl opens it.
def _automation_with_a_line(client, w):
    # Something LumaPay did by itself today for the world's patient.
    from lumapay.audit import audit_event_record
    from lumapay.enums import AuditAction as Action
    from lumapay.models import ActorType

    audit_event_record(
        organization=w.organization,
        action=Action.PAYMENT_REQUEST_SENT,
        actor_type=ActorType.SYSTEM,
        patient=w.patient,
        payment_request=w.payment_request,
        changes={"rule": "copay_before_visit", "channels": ["email"]},
    )
    return client.get(reverse("transactions:automation"))


def _form_submission(w):
    from intake_forms.models import FormFile
    from intake_forms.services import form_create, form_publish, question_add, section_add, submission_start

    form = form_create(organization=w.organization, actor=w.administrator, title="Intake")
    section = section_add(organization=w.organization, actor=w.administrator, form=form, title="About you")
    question = question_add(organization=w.organization, actor=w.administrator, section=section, values={"kind": "file", "label": "Card"})
    form_publish(organization=w.organization, actor=w.administrator, form=form)
    submission = submission_start(form=form, patient=w.patient)
    FormFile.objects.create(
        organization=w.organization, submission=submission, question_key=question.key, file_name="card.png",
        content_type="image/png", size=9, data=b"\x89PNG\r\n\x1a\nx",
    )
    return submission


SHOWS_PATIENTS = {
    "intake_forms:submission_detail": _get(lambda w: reverse("intake_forms:submission_detail", args=[_form_submission(w).pk])),
    "intake_forms:submission_pdf": _get(lambda w: reverse("intake_forms:submission_pdf", args=[_form_submission(w).pk])),
    "intake_forms:form_file": _get(lambda w: reverse("intake_forms:form_file", args=[_form_submission(w).files.get().pk])),
    "transactions:automation": _automation_with_a_line,
    "patients:hub": _get(lambda w: reverse("patients:hub")),
    "patients:profile": _get(lambda w: reverse("patients:profile", args=[w.patient.pk])),
    "patients:edit": _get(lambda w: reverse("patients:edit", args=[w.patient.pk])),
    "patients:access_log": _get(lambda w: reverse("patients:access_log", args=[w.patient.pk])),
    "patients:access_log_export": _access_log_export,
    "transactions:dashboard": _get(lambda w: reverse("transactions:dashboard")),
    "transactions:transaction_detail": _get(lambda w: reverse("transactions:transaction_detail", args=[w.transaction.pk])),
    "transactions:transaction_refund": _post(
        lambda w: reverse("transactions:transaction_refund", args=[w.transaction.pk]),
        {"amount": "10.00", "reason": "Billed twice"},
    ),
    "transactions:transaction_receipt": _get(lambda w: reverse("transactions:transaction_receipt", args=[w.transaction.pk])),
    "transactions:export_create": _post(lambda w: reverse("transactions:export_create"), {}),
    "transactions:export_download": _kept_export_download,
    "transactions:payment_plan_new": _payment_plan_new,
    "transactions:payment_request_new": _get(lambda w: reverse("transactions:payment_request_new", args=[w.patient.pk])),
    "transactions:payment_request_detail": _get(
        lambda w: reverse("transactions:payment_request_detail", args=[w.payment_request.pk])
    ),
    "transactions:payment_request_cancel": _get(
        lambda w: reverse("transactions:payment_request_cancel", args=[w.payment_request.pk])
    ),
    "transactions:ehr_posting_file_download": _get(
        lambda w: reverse(
            "transactions:ehr_posting_file_download",
            args=[w.transaction.paid_at.astimezone(zoneinfo.ZoneInfo(w.organization.timezone)).date().isoformat()],
        )
    ),
    "ehr_connections:run_detail": _run_with_a_rejection,
    "uploads:detail": _upload_preview,
}

# Staff URLs that show no patient's details, and why.
SHOWS_NO_PATIENT = {
    "patients:new": "an empty form: what is typed is recorded as the patient is created (patient.created)",
    "transactions:export_list": "the member's exports: dates, row counts and status",
    "transactions:export_detail": "one export's progress and filters",
    "transactions:stripe_connect": "the organization's Stripe account",
    "transactions:ehr_posting_files": "days and how many payments each holds",
    "transactions:ehr_posting_retry": "redirects to the transaction",
    "transactions:collection_rules": "the organization's collection rules",
    # Actions that answer with a redirect to a page above (which records its own look).
    "transactions:transaction_capture": "redirects to the transaction",
    "transactions:transaction_release": "redirects to the transaction",
    "transactions:saved_card_charge": "redirects to the profile or the transaction",
    "transactions:saved_card_hold": "redirects to the profile or the transaction",
    "transactions:saved_card_remove": "redirects to the profile",
    "transactions:appointment_check_in": "redirects to the profile or the transaction",
    "transactions:payment_plan_cancel": "redirects to the profile",
    "transactions:payment_request_resend": "redirects to the request",
    "transactions:payment_request_unlock": "redirects to the request",
    "transactions:payment_request_replace_link": "redirects to the request",
    "ehr_connections:list": "the clinic's EHR connections and their health",
    "ehr_connections:new": "an empty connection form: no patient",
    "ehr_connections:edit": "a connection's settings: no patient",
    "ehr_connections:detail": "a connection's health and its runs' counts and errors",
    "ehr_connections:sync_now": "redirects to the connection",
    "uploads:center": "the upload form, templates, and the history: who, when, file names and counts",
    "uploads:template": "an empty template with an example row",
    "uploads:send": "redirects to the upload's preview",
    "uploads:import": "redirects to the upload's page",
    "uploads:discard": "redirects to the Upload Center",
    # Payouts are bookkeeping: amounts, dates, bank digits and links to transactions, never a patient
    # (payouts/views.py says why); the transaction page a line links to records its own look.
    "payouts:list": "the balance and the payouts: amounts, dates, statuses",
    "payouts:export": "the payouts as CSV: amounts, dates, bank digits, trace ids",
    "payouts:detail": "a payout's lines: kinds, amounts and transaction numbers, no patient names",
    "intake_forms:form_list": "the clinic's forms: titles, versions, counts",
    "intake_forms:form_edit": "a form's questions (the builder), no answers",
    "intake_forms:form_send": "sends a form, then back to the patient's profile (which records its look)",
    # The Help Center (helpcenter/help_urls.py, in helpcenter.urls): articles about the product, and support tickets, which
    # hold no patient information unless their member marked them; a look at a marked ticket or its
    # files is recorded without patients (it names none LumaPay knows), tests/helpcenter/test_tickets.py.
    "helpcenter:index": "articles about the product and the search of them",
    "helpcenter:article": "an article about the product",
    "helpcenter:ticket_list": "support tickets' subjects and statuses",
    "helpcenter:ticket_new": "an empty ticket form",
    "helpcenter:ticket_detail": "a support ticket; a marked one's look is recorded (no patient it could name)",
    "helpcenter:attachment_download": "a ticket's file; a marked ticket's is recorded (no patient it could name)",
}


def test_every_staff_url_is_either_crawled_or_said_to_show_no_patient():
    names = (
        {f"patients:{p.name}" for p in ehr_sync.urls.urlpatterns}
        | {f"transactions:{p.name}" for p in transactions.urls.urlpatterns}
        | {f"ehr_connections:{p.name}" for p in ehr_sync.connection_urls.urlpatterns}
        | {f"uploads:{p.name}" for p in uploads.urls.urlpatterns}
        | {f"payouts:{p.name}" for p in payouts.urls.urlpatterns}
        | {f"intake_forms:{p.name}" for p in intake_forms.urls.urlpatterns}
        | {f"helpcenter:{p.name}" for p in helpcenter.help_urls.urlpatterns}
    )

    assert set(SHOWS_PATIENTS) | set(SHOWS_NO_PATIENT) == names
    assert not set(SHOWS_PATIENTS) & set(SHOWS_NO_PATIENT)


@pytest.mark.parametrize("page", sorted(SHOWS_PATIENTS))
def test_a_staff_page_that_shows_a_patient_records_who_when_which_and_from_where(page, world, client):
    client.force_login(world.administrator)
    client.defaults.update(REMOTE_ADDR=ADDRESS, HTTP_USER_AGENT=BROWSER)
    before = timezone.now()

    response = SHOWS_PATIENTS[page](client, world)

    assert response.status_code == 200, response.status_code
    access = PhiAccess.objects.filter(page=page).latest("pk")
    assert PhiAccessPatient.objects.filter(access=access, patient=world.patient).exists()
    assert access.organization_id == world.organization.pk
    assert access.actor_user_id == world.administrator.pk
    assert access.is_operator is False
    assert access.ip_address == ADDRESS
    assert access.user_agent == BROWSER
    assert access.accessed_at >= before
    assert "?" not in access.path and access.patient_count >= 1


def test_the_hub_records_every_patient_of_the_page_in_one_access(world, client):
    others = PatientFactory.create_batch(30, organization=world.organization)
    client.force_login(world.administrator)

    response = client.get(reverse("patients:hub"))

    shown = {patient.pk for patient in response.context["page"].object_list}
    access = PhiAccess.objects.get(page="patients:hub")
    assert len(shown) == 25 and access.patient_count == 25
    assert set(PhiAccessPatient.objects.filter(access=access).values_list("patient_id", flat=True)) == shown
    assert len(others) == 30


def test_an_empty_search_records_nothing(world, client):
    client.force_login(world.administrator)

    client.get(reverse("patients:hub"), {"q": "nobody-by-this-name"})

    assert not PhiAccess.objects.filter(page="patients:hub").exists()


# -- the operators' admin --------------------------------------------------------------------------


def _admin_rows(world) -> dict:
    """One row of each admin model that shows a patient, all about ``world.patient``."""
    organization, patient = world.organization, world.patient
    refund = Refund.objects.create(
        organization=organization, transaction=world.transaction, amount_cents=100, currency="usd", reason="crawl"
    )
    return {
        "ehr_sync.Patient": patient,
        "ehr_sync.Appointment": AppointmentFactory(patient=patient, location=world.location),
        "ehr_sync.Balance": BalanceFactory(patient=patient),
        "transactions.PaymentRequest": world.payment_request,
        "transactions.PaymentRequestDelivery": PaymentRequestDeliveryFactory(payment_request=world.payment_request),
        "transactions.Transaction": world.transaction,
        "transactions.Refund": refund,
        "transactions.Dispute": Dispute.objects.create(
            organization=organization, transaction=world.transaction, gateway_dispute_id="dp_crawl",
            amount_cents=4500, status=DisputeStatus.NEEDS_RESPONSE,
        ),
        "transactions.SavedCard": SavedCard.objects.create(
            organization=organization, patient=patient, vendor=organization.payment_gateway,
            status=SavedCardStatus.ACTIVE, gateway_customer_id="cus_crawl", consent_text="Keep my card",
            consented_at=timezone.now(),
        ),
        "lumapay.AuditEvent": None,  # the profile's and the payment's events about the patient
        "ehr_sync.Hl7Message": Hl7Message.objects.create(
            organization=organization, control_id="MSG1", message_type="ADT^A08", sending_facility="RIVERSIDE",
            raw=(
                "MSH|^~\\&|EPIC|RIVERSIDE|LUMAPAY|LUMAPAY|20261120093000||ADT^A08|MSG1|P|2.5\r"
                f"PID|1||{patient.external_ehr_id}^^^^MR||Quimby^Rosalind||19840309\r"
            ),
        ),
    }


# Admin models that show no patient's details, and why.
ADMIN_SHOWS_NO_PATIENT = {
    "auth.Group": "permission groups",
    "org_profile.User": "staff and operators",
    "org_profile.Organization": "clinics",
    "org_profile.Membership": "who works where",
    "org_profile.Location": "clinic locations",
    "lumapay.PhiAccess": "who looked, what page, how many patients: never which patient or their details",
    "transactions.TransactionEvent": "ledger amounts and gateway references",
    "transactions.GatewayEvent": "processor events, which never carry PHI (tests/transactions/test_stripe_no_phi.py)",
    "axes.AccessAttempt": "failed sign-ins: staff e-mail addresses and network addresses",
    "axes.AccessFailureLog": "failed sign-ins: staff e-mail addresses and network addresses",
    "axes.AccessLog": "sign-ins: staff e-mail addresses and network addresses",
    "otp_totp.TOTPDevice": "staff authenticator apps",
    "otp_static.StaticDevice": "staff backup-code devices",
    "ehr_sync.EhrConnection": "a clinic's EHR settings (never its credentials)",
    "uploads.Upload": "who uploaded which kind of file, its status and counts: never its name, content or rows",
    "payouts.Payout": "payouts to the clinic's bank: amounts, dates, bank's last four, trace ids",
    "payouts.PayoutLine": "a payout's balance transactions: amounts and gateway ids, linked to a transaction by id only",
    "payouts.GatewayBalance": "the clinic's balance at its gateway",
    # Help Center (helpcenter/help_admin.py): tickets hold no patient information unless their member
    # marked them; a marked ticket's subject is not listed, and opening it (or its files) is recorded
    # (tests/helpcenter/test_ticket_email.py).
    "helpcenter.SupportTicket": "support tickets: unmarked ones hold no patient information; a marked one's look is recorded",
    "helpcenter.HelpArticle": "Help Center articles about the product",
}


def test_every_admin_model_is_either_recorded_or_said_to_show_no_patient():
    recorded = {model._meta.label for model, model_admin in admin.site._registry.items()
                if isinstance(model_admin, PhiAccessAdminMixin)}
    registered = {model._meta.label for model in admin.site._registry}

    assert recorded == registered - set(ADMIN_SHOWS_NO_PATIENT)
    assert recorded == set(_ADMIN_LABELS) | {"ehr_sync.ImportRun"}


_ADMIN_LABELS = [
    "ehr_sync.Patient", "ehr_sync.Appointment", "ehr_sync.Balance", "transactions.PaymentRequest",
    "transactions.PaymentRequestDelivery", "transactions.Transaction", "transactions.Refund",
    "transactions.Dispute", "transactions.SavedCard", "lumapay.AuditEvent", "ehr_sync.Hl7Message",
]


@pytest.mark.parametrize("label", _ADMIN_LABELS)
@pytest.mark.parametrize("view", ["changelist", "change"])
def test_an_operators_admin_page_that_shows_a_patient_records_it(label, view, world, client):
    from lumapay.models import AuditEvent

    row = _admin_rows(world)[label] or AuditEvent.objects.filter(patient=world.patient).first()
    operator = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(operator)
    client.defaults.update(REMOTE_ADDR=ADDRESS, HTTP_USER_AGENT=BROWSER)
    app_label, model_name = label.lower().split(".")
    url = reverse(f"admin:{app_label}_{model_name}_{view}", args=[row.pk] if view == "change" else [])

    response = client.get(url)

    assert response.status_code == 200
    access = PhiAccess.objects.filter(page=f"admin:{app_label}_{model_name}_{view}").latest("pk")
    assert access.is_operator is True
    assert access.actor_user_id == operator.pk
    assert access.organization_id == world.organization.pk
    assert access.ip_address == ADDRESS and access.user_agent == BROWSER
    assert PhiAccessPatient.objects.filter(access=access, patient=world.patient).exists()


def test_an_operators_edit_of_a_patient_is_recorded_and_audited_with_old_and_new_values(world, client):
    from lumapay.enums import AuditAction
    from lumapay.models import AuditEvent

    operator = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(operator)
    patient = world.patient
    url = reverse("admin:ehr_sync_patient_change", args=[patient.pk])
    data = {
        "first_name": patient.first_name, "last_name": "Quimby-Hart", "date_of_birth": patient.date_of_birth,
        "email": patient.email, "mobile_phone": patient.mobile_phone or "", "preferred_language": patient.preferred_language,
    }

    response = client.post(url, data)

    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.last_name == "Quimby-Hart"
    event = AuditEvent.objects.get(action=AuditAction.PATIENT_UPDATED, patient=patient)
    assert event.actor_user_id == operator.pk
    assert event.changes["last_name"] == ["Quimby", "Quimby-Hart"]
    assert PhiAccess.objects.filter(page="admin:ehr_sync_patient_change", method="POST", is_operator=True).exists()


def test_an_operator_opening_an_import_runs_rejected_records_is_recorded(world, client):
    """A run's list shows counts; its page lists the rejected records, values included."""
    from ehr_sync.enums import ImportSource
    from ehr_sync.models import ImportRejection, ImportRun

    world.patient.external_ehr_id = "P-crawl"
    world.patient.save()
    run = ImportRun.objects.create(organization=world.organization, source=ImportSource.FHIR)
    ImportRejection.objects.create(
        organization=world.organization, run=run, kind="patient", reference="Patient/P-crawl", field="email",
        value="rosalind.at.example", reason="This is not an e-mail address.",
    )
    operator = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(operator)

    assert client.get(reverse("admin:ehr_sync_importrun_changelist")).status_code == 200
    assert not PhiAccess.objects.exists()
    response = client.get(reverse("admin:ehr_sync_importrun_change", args=[run.pk]))

    assert response.status_code == 200 and b"rosalind.at.example" in response.content
    access = PhiAccess.objects.get(page="admin:ehr_sync_importrun_change")
    assert access.is_operator and access.organization_id == world.organization.pk
    assert list(PhiAccessPatient.objects.filter(access=access).values_list("patient_id", flat=True)) == [world.patient.pk]
