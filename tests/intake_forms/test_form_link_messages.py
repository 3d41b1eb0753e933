"""A form sent by itself goes out through the patients' outbox, like a payment link: owed with the
submission, retried after a failure that may pass, refused (and never retried) for a number that
replied STOP, in the patient's language, with its outcome on the patient's history and profile. A
form that goes with the copay request is named in that request's own e-mail and text."""

import datetime
import socket

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from intake_forms.models import FormSubmission
from intake_forms.services import form_send, submission_start
from lumapay import sms
from lumapay.models import AuditEvent, SmsOptOut
from transactions.enums import DeliveryStatus, MessagePurpose, PaymentRequestKind
from transactions.models import PaymentRequest, PaymentRequestDelivery
from transactions.services.patient_messages import DeliveryRetry, delivery_send, payment_link_deliveries_owe

from ..factories import AppointmentFactory, PatientFactory
from .support import form_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def form(organization, manager):
    return form_make(organization=organization, actor=manager, title="Health history", questions=[
        {"kind": "short_text", "label": "Reason for the visit"},
    ])


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _due_now(delivery) -> None:
    PaymentRequestDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - datetime.timedelta(minutes=2))


def test_a_form_sent_by_email_is_owed_with_its_submission_and_sent_in_the_patients_language(
    client_for, organization, manager, form, django_capture_on_commit_callbacks
):
    patient = PatientFactory(organization=organization, email="lucia@mail.example", preferred_language="es")
    with django_capture_on_commit_callbacks(execute=False) as queued:
        submission = form_send(organization=organization, actor=manager, form=form, patient=patient, channel="email")
    delivery = submission.link_delivery
    assert (delivery.purpose, delivery.channel, delivery.destination, delivery.status) == (
        MessagePurpose.FORM_LINK, "email", "lucia@mail.example", DeliveryStatus.QUEUED,
    )
    assert (delivery.payment_request, delivery.transaction) == (None, None)
    assert mail.outbox == [] and len(queued) == 1  # sent by the task, once the submission committed

    assert delivery_send(delivery_id=delivery.pk).status == DeliveryStatus.SENT
    (message,) = mail.outbox
    assert message.to == ["lucia@mail.example"]
    assert "Health history" in message.subject or "Health history" in message.body
    assert "antes de su visita" in message.body and "/form/" in message.body
    assert message.extra_headers["Message-ID"]
    html = message.alternatives[0][0]
    assert 'lang="es"' in html and "Abrir el formulario" in html
    # Nothing about the patient in the message.
    assert patient.last_name not in message.body and patient.first_name not in message.body

    event = AuditEvent.objects.get(action="form.link_delivery_sent")
    assert (event.patient, event.changes["channel"], event.changes["delivery_id"]) == (patient, "email", delivery.pk)
    # A second delivery of the task sends nothing more.
    delivery_send(delivery_id=delivery.pk)
    assert len(mail.outbox) == 1

    page = client_for(manager).get(reverse("patients:profile", args=[patient.pk])).content.decode()
    assert "link sent by e-mail" in page


def test_a_form_link_the_mail_server_could_not_take_stays_owed_and_goes_out_on_the_retry(
    organization, manager, form, patient, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", _closed_port(), 5
    with django_capture_on_commit_callbacks(execute=False):
        submission = form_send(organization=organization, actor=manager, form=form, patient=patient, channel="email")
    delivery = submission.link_delivery

    with pytest.raises(DeliveryRetry):
        delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.QUEUED, 1)
    assert "could not be sent" in delivery.error_message

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    _due_now(delivery)
    assert delivery_send(delivery_id=delivery.pk).status == DeliveryStatus.SENT
    assert len(mail.outbox) == 1


def test_a_form_link_to_a_number_that_replied_stop_since_is_not_sent_and_staff_see_why(
    client_for, organization, manager, form, django_capture_on_commit_callbacks
):
    patient = PatientFactory(organization=organization, mobile_phone="+16175550143", sms_consent=True)
    sms.outbox.clear()
    with django_capture_on_commit_callbacks(execute=False):
        submission = form_send(organization=organization, actor=manager, form=form, patient=patient, channel="sms")
    # STOP arrives before the task runs.
    SmsOptOut.objects.create(phone_number="+16175550143", keyword="STOP", opted_out_at=timezone.now())

    delivery = delivery_send(delivery_id=submission.link_delivery_id)
    assert delivery.status == DeliveryStatus.FAILED and "replied STOP" in delivery.error_message
    assert sms.outbox == []
    assert AuditEvent.objects.filter(action="form.link_delivery_failed", patient=patient).exists()
    page = client_for(manager).get(reverse("patients:profile", args=[patient.pk])).content.decode()
    assert "link not sent:" in page and "replied STOP" in page


def test_a_form_sent_by_text_message_names_the_form_and_the_link(organization, manager, form, django_capture_on_commit_callbacks):
    patient = PatientFactory(organization=organization, mobile_phone="+16175550188", sms_consent=True)
    sms.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        submission = form_send(organization=organization, actor=manager, form=form, patient=patient, channel="sms")
    (text,) = sms.outbox
    assert text.to == "+16175550188" and "Health history" in text.body and "/form/" in text.body
    assert "STOP" in text.body
    assert FormSubmission.objects.get(pk=submission.pk).link_delivery.status == DeliveryStatus.SENT


def test_the_copay_requests_own_message_names_the_form_that_goes_with_it(
    organization, location, manager, form, django_capture_on_commit_callbacks
):
    patient = PatientFactory(organization=organization, email="maria@mail.example", preferred_language="es")
    appointment = AppointmentFactory(organization=organization, patient=patient, location=location, copay_cents=3500)
    with django_capture_on_commit_callbacks(execute=True):
        copay_request = PaymentRequest.objects.create(
            organization=organization, patient=patient, location=location, appointment=appointment,
            kind=PaymentRequestKind.COPAY, amount_cents=3500, billing_item="Copay",
            automation_rule="copay_before_visit", expires_at=timezone.now() + datetime.timedelta(days=7),
        )
        submission_start(form=form, patient=patient, appointment=appointment, sent_with=copay_request)
        payment_link_deliveries_owe(payment_request=copay_request, channels=[("email", patient.email)])
    (message,) = mail.outbox
    assert "Complete también el formulario “Health history”" in message.body
    assert "Health history" in message.alternatives[0][0]

    # Once the form is complete, a reminder of the request does not ask for it again.
    FormSubmission.objects.filter(sent_with=copay_request).update(status="complete")
    with django_capture_on_commit_callbacks(execute=True):
        payment_link_deliveries_owe(payment_request=copay_request, channels=[("email", patient.email)])
    assert "Health history" not in mail.outbox[-1].body
