"""delivery_send: one owed message out through the real backends, marked sent, retried or failed."""

import datetime
import socket

from django.utils import timezone

from lumapay import sms
from lumapay.models import AuditEvent
from transactions.enums import PaymentRequestStatus
from transactions.models import PaymentRequest
from transactions.services.patient_messages import delivery_send
from transactions.services.payment_requests import payment_request_send
from transactions.tasks import patient_message_send

from ..factories import PaymentRequestDeliveryFactory, PaymentRequestFactory


def _send(organization, actor, patient, location):
    return payment_request_send(
        organization=organization,
        actor=actor,
        patient=patient,
        location=location,
        kind="balance",
        billing_item="Balance after insurance",
        amount_cents=12000,
    )


def _closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_failing_sms_provider_marks_that_delivery_failed_and_keeps_the_request(
    settings, organization, location, patient, administrator, mailoutbox, django_capture_on_commit_callbacks
):
    # given SMS goes through Twilio, which is not configured here, so the provider refuses
    settings.SMS_BACKEND = "twilio"
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_AUTH_TOKEN = ""

    # when a request is sent to a patient reachable by e-mail and SMS
    with django_capture_on_commit_callbacks(execute=True):
        payment_request = _send(organization, administrator, patient, location)

    # then the e-mail went out, the SMS delivery is failed with the provider's reason, and the
    # request stays open with both deliveries on record
    payment_request.refresh_from_db()
    assert payment_request.status == PaymentRequestStatus.OPEN
    deliveries = {d.channel: d for d in payment_request.deliveries.all()}
    assert (deliveries["email"].status, deliveries["email"].error_message) == ("sent", "")
    assert (deliveries["sms"].status, deliveries["sms"].error_message, deliveries["sms"].sent_at) == (
        "failed",
        "SMS is not configured: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN.",
        None,
    )
    assert len(mailoutbox) == 1
    failed = AuditEvent.objects.get(action="payment_request.delivery_failed")
    assert (failed.payment_request, failed.patient, failed.actor_type) == (payment_request, patient, "system")
    assert failed.changes == {
        "delivery_id": deliveries["sms"].pk,
        "channel": "sms",
        "status": ["queued", "failed"],
        "error_message": "SMS is not configured: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN.",
    }
    assert AuditEvent.objects.filter(action="payment_request.delivery_sent").count() == 1


def test_an_unreachable_mail_server_leaves_the_email_owed_and_a_later_attempt_sends_it(
    settings, organization, location, patient, administrator, mailoutbox, django_capture_on_commit_callbacks
):
    # given an SMTP server that refuses connections
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = _closed_port()
    settings.EMAIL_TIMEOUT = 5

    # when a request is sent
    with django_capture_on_commit_callbacks(execute=True):
        payment_request = _send(organization, administrator, patient, location)

    # then the e-mail is still owed, with the reason and a retry after the backoff; the text went
    # out, the request is open
    email_delivery = payment_request.deliveries.get(channel="email")
    assert (email_delivery.status, email_delivery.attempts, email_delivery.claimed_until) == ("queued", 1, None)
    assert email_delivery.error_message.startswith("The e-mail could not be sent: ")
    assert "Connection refused" in email_delivery.error_message
    assert email_delivery.next_attempt_at > timezone.now() + datetime.timedelta(seconds=20)
    assert payment_request.deliveries.get(channel="sms").status == "sent"
    assert len(sms.outbox) == 1
    assert PaymentRequest.objects.get().status == PaymentRequestStatus.OPEN
    assert not AuditEvent.objects.filter(action="payment_request.delivery_failed").exists()

    # when the mail server is back and the retry is due
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    email_delivery.next_attempt_at = timezone.now()
    email_delivery.save(update_fields=["next_attempt_at"])
    patient_message_send.delay(email_delivery.pk)

    # then it went out, once
    email_delivery.refresh_from_db()
    assert (email_delivery.status, email_delivery.attempts) == ("sent", 2)
    assert [message.to for message in mailoutbox] == [[patient.email]]


def test_a_delivery_sent_twice_goes_out_once(db, mailoutbox):
    # given a queued e-mail delivery
    delivery = PaymentRequestDeliveryFactory()

    # when the task runs twice (a redelivered Celery message)
    patient_message_send.delay(delivery.pk)
    delivery_send(delivery_id=delivery.pk)

    # then one e-mail went out and one "sent" event was written
    delivery.refresh_from_db()
    assert delivery.status == "sent"
    assert len(mailoutbox) == 1
    assert AuditEvent.objects.filter(action="payment_request.delivery_sent").count() == 1


def test_a_delivery_of_a_cancelled_request_is_not_sent(db, mailoutbox):
    # given a queued delivery whose request was cancelled before the task ran
    delivery = PaymentRequestDeliveryFactory(payment_request__status=PaymentRequestStatus.CANCELLED)

    # when the task runs
    delivery_send(delivery_id=delivery.pk)

    # then nothing was sent and the delivery says why
    delivery.refresh_from_db()
    assert (delivery.status, delivery.error_message) == (
        "failed",
        "Not sent: the request was cancelled before this message went out.",
    )
    assert mailoutbox == []
    assert AuditEvent.objects.get().action == "payment_request.delivery_failed"


def test_a_delivery_whose_link_has_expired_is_not_sent(db, mailoutbox):
    # given a queued delivery of an open request whose link ran out before the task ran
    delivery = PaymentRequestDeliveryFactory(
        payment_request__expires_at=timezone.now() - datetime.timedelta(minutes=1)
    )

    # when the task runs
    delivery_send(delivery_id=delivery.pk)

    # then nothing was sent and the delivery says why
    delivery.refresh_from_db()
    assert (delivery.status, delivery.error_message) == (
        "failed",
        "Not sent: the link had expired before this message went out.",
    )
    assert mailoutbox == []


def test_a_delivery_that_no_longer_exists_is_ignored(db, mailoutbox):
    # given no delivery with this id
    # when the task runs for it
    result = delivery_send(delivery_id=987654321)

    # then nothing happens
    assert result is None
    assert mailoutbox == []
    assert AuditEvent.objects.count() == 0


def test_the_email_never_names_the_billing_item_or_note_in_its_subject(db, mailoutbox):
    # given a request whose billing item and note describe the visit
    payment_request = PaymentRequestFactory(billing_item="Dermatology biopsy", note="Mole removal follow-up")
    delivery = PaymentRequestDeliveryFactory(payment_request=payment_request)

    # when it is delivered
    delivery_send(delivery_id=delivery.pk)

    # then the subject names only the clinic and the amount
    assert mailoutbox[0].subject == f"{payment_request.organization.name}: payment request for $45.00"
    assert "Dermatology biopsy" in mailoutbox[0].body
