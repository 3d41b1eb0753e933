"""SMS opt-out: Twilio's inbound webhook (signed with twilio's own RequestValidator), the keywords,
and the outbox refusing to text an opted-out number."""

import pytest
from django.test import Client
from django.urls import reverse
from twilio.request_validator import RequestValidator

from lumapay import sms
from lumapay.models import AuditEvent, SmsOptOut
from lumapay.sms import SmsOptedOut, sms_send
from transactions.services.patient_messages import delivery_send
from transactions.services.payment_requests import payment_request_send

from ..factories import OrganizationFactory, PatientFactory

TOKEN = "twilio-test-auth-token"
OUR_NUMBER = "+12175550999"
URL = "/webhooks/twilio/sms/"


@pytest.fixture(autouse=True)
def _twilio(settings):
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.SITE_URL = "https://pay.example.com"


def _post(body: str, from_number: str, *, token: str = TOKEN, signature: str | None = None, url: str | None = None):
    params = {"From": from_number, "To": OUR_NUMBER, "Body": body, "MessageSid": "SM" + "0" * 32, "AccountSid": "AC" + "1" * 32}
    if signature is None:
        # The signature Twilio computes, by the library's own implementation of its algorithm.
        signature = RequestValidator(token).compute_signature(url or f"https://pay.example.com{URL}", params)
    # A CSRF-enforcing client: the webhook alone is exempt.
    return Client(enforce_csrf_checks=True).post(URL, params, HTTP_X_TWILIO_SIGNATURE=signature)


def test_the_url_is_the_named_route():
    assert reverse("webhooks:twilio_sms") == URL


@pytest.mark.parametrize("keyword", ["STOP", "stop", " Stop ", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"])
def test_each_opt_out_keyword_opts_the_number_out_and_is_audited_on_the_patient(keyword, patient):
    # when the patient texts the keyword
    response = _post(keyword, patient.mobile_phone)

    # then the number is opted out, the patient's clinic has the event, and TwiML confirms it
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert b"<Message>LumaPay: You will get no more text messages from us." in response.content
    row = SmsOptOut.objects.get(phone_number=patient.mobile_phone)
    assert (row.is_opted_out, row.keyword, row.received_on) == (True, keyword.strip().upper(), OUR_NUMBER)
    assert row.opted_out_at is not None
    event = AuditEvent.objects.get(action="sms.opted_out")
    assert (event.organization_id, event.patient_id, event.actor_type, event.changes) == (
        patient.organization_id, patient.pk, "patient", {"keyword": keyword.strip().upper(), "how": "text message"},
    )


@pytest.mark.parametrize("keyword", ["START", "YES", "UNSTOP", "start"])
def test_each_opt_in_keyword_opts_the_number_back_in(keyword, patient):
    _post("STOP", patient.mobile_phone)

    response = _post(keyword, patient.mobile_phone)

    assert response.status_code == 200
    assert b"You will get text messages about your payments again" in response.content
    row = SmsOptOut.objects.get(phone_number=patient.mobile_phone)
    assert (row.is_opted_out, row.keyword) == (False, keyword.upper())
    assert row.opted_in_at >= row.opted_out_at
    assert list(AuditEvent.objects.filter(patient=patient).order_by("pk").values_list("action", flat=True)) == [
        "sms.opted_out", "sms.opted_in",
    ]


def test_a_second_stop_is_not_audited_twice(patient):
    _post("STOP", patient.mobile_phone)
    _post("QUIT", patient.mobile_phone)
    assert AuditEvent.objects.filter(action="sms.opted_out").count() == 1
    assert SmsOptOut.objects.get().keyword == "QUIT"


@pytest.mark.parametrize("keyword", ["HELP", "info"])
def test_help_answers_with_the_clinics_contact_and_changes_nothing(keyword, organization):
    organization.support_phone = "(217) 555-0142"
    organization.save()
    patient = PatientFactory(organization=organization)

    response = _post(keyword, patient.mobile_phone)

    assert response.status_code == 200
    assert (
        "Riverside Family Medicine sends payment messages through LumaPay. For help, contact (217) 555-0142, billing@riverside.example."
        in response.content.decode()
    )
    assert not SmsOptOut.objects.exists()
    assert not AuditEvent.objects.exists()


def test_help_from_an_unknown_number_answers_with_lumapays_text(db):
    response = _post("HELP", "+15005550006")
    assert "LumaPay sends payment messages for your clinic." in response.content.decode()


def test_the_reply_is_in_the_patients_language(organization):
    patient = PatientFactory(organization=organization, preferred_language="es")

    response = _post("STOP", patient.mobile_phone)

    assert "LumaPay: No recibirá más mensajes de texto nuestros. Responda START para recibirlos de nuevo." in response.content.decode()


def test_any_other_text_gets_an_empty_answer_and_changes_nothing(patient):
    response = _post("Can I pay next week?", patient.mobile_phone)
    assert response.status_code == 200
    assert response.content.decode().replace("\n", "").endswith("<Response />")
    assert not SmsOptOut.objects.exists()


def test_a_stop_covers_every_clinic_with_that_number(patient):
    # given the same person at a second clinic, with the same mobile number
    other = PatientFactory(organization=OrganizationFactory(name="Lakeside Pediatrics"), mobile_phone=patient.mobile_phone)

    _post("STOP", patient.mobile_phone)

    # then each clinic's audit trail has it, on its own patient
    assert sorted(AuditEvent.objects.filter(action="sms.opted_out").values_list("organization_id", "patient_id")) == sorted(
        [(patient.organization_id, patient.pk), (other.organization_id, other.pk)]
    )


@pytest.mark.parametrize(
    "how",
    ["wrong_token", "no_signature", "other_url", "tampered_body"],
)
def test_a_bad_signature_is_refused_with_403_and_nothing_changes(how, patient):
    if how == "wrong_token":
        response = _post("STOP", patient.mobile_phone, token="not-our-token")
    elif how == "no_signature":
        response = _post("STOP", patient.mobile_phone, signature="")
    elif how == "other_url":
        response = _post("STOP", patient.mobile_phone, url="https://attacker.example/webhooks/twilio/sms/")
    else:
        params = {"From": patient.mobile_phone, "To": OUR_NUMBER, "Body": "HELLO"}
        signature = RequestValidator(TOKEN).compute_signature(f"https://pay.example.com{URL}", params)
        response = Client().post(URL, {**params, "Body": "STOP"}, HTTP_X_TWILIO_SIGNATURE=signature)

    assert response.status_code == 403
    assert not SmsOptOut.objects.exists()
    assert not AuditEvent.objects.exists()


def test_without_an_auth_token_nothing_is_accepted(settings, patient):
    settings.TWILIO_AUTH_TOKEN = ""
    response = _post("STOP", patient.mobile_phone, token="")
    assert response.status_code == 403
    assert not SmsOptOut.objects.exists()


def test_get_is_not_allowed(db):
    assert Client().get(URL).status_code == 405


def test_an_opted_out_number_gets_no_payment_link_by_sms_and_the_request_says_why(
    organization, location, patient, administrator, mailoutbox, django_capture_on_commit_callbacks
):
    # given the patient replied STOP
    _post("STOP", patient.mobile_phone)

    # when staff send a request by e-mail and SMS
    with django_capture_on_commit_callbacks(execute=True):
        payment_request = payment_request_send(
            organization=organization, actor=administrator, patient=patient, location=location,
            kind="balance", billing_item="Balance after insurance", amount_cents=12000,
        )

    # then the e-mail went, no text did, and the SMS delivery is failed for good with a plain reason
    assert len(mailoutbox) == 1
    assert sms.outbox == []
    delivery = payment_request.deliveries.get(channel="sms")
    assert delivery.status == "failed"
    assert delivery.attempts == 0
    assert delivery.error_message.startswith("Not sent: the patient replied STOP to our text messages on ")
    assert delivery.error_message.endswith("and gets no texts until they reply START.")
    history = AuditEvent.objects.get(payment_request=payment_request, action="payment_request.delivery_failed")
    assert history.changes["error_message"] == delivery.error_message

    # and a second try (the task delivered again, the sweep) sends nothing
    delivery_send(delivery_id=delivery.pk)
    assert sms.outbox == []


def test_after_start_texts_go_again(
    organization, location, patient, administrator, django_capture_on_commit_callbacks
):
    _post("STOP", patient.mobile_phone)
    _post("START", patient.mobile_phone)

    with django_capture_on_commit_callbacks(execute=True):
        payment_request = payment_request_send(
            organization=organization, actor=administrator, patient=patient, location=location,
            kind="balance", billing_item="Balance after insurance", amount_cents=12000,
        )

    assert payment_request.deliveries.get(channel="sms").status == "sent"
    assert [message.to for message in sms.outbox] == [patient.mobile_phone]


def test_sms_send_itself_refuses_an_opted_out_number(patient):
    # Every sender goes through lumapay.sms.sms_send, including ones that skip the outbox.
    _post("STOP", patient.mobile_phone)
    with pytest.raises(SmsOptedOut):
        sms_send(to=patient.mobile_phone, body="Your payment is due")
    assert sms.outbox == []


def test_staff_see_the_opt_out_on_the_profile(client, administrator, patient):
    _post("STOP", patient.mobile_phone)
    client.force_login(administrator)

    page = client.get(f"/patients/{patient.pk}/").content.decode()

    assert "<strong>Opted out</strong>: replied STOP by text on" in page
    assert "No texts are sent to this number until the patient replies START" in page


def test_no_number_or_message_in_the_logs(caplog, patient):
    with caplog.at_level("DEBUG"):
        _post("STOP", patient.mobile_phone)
        _post("Can I pay next week?", patient.mobile_phone)
    logged = caplog.text
    assert patient.mobile_phone not in logged and patient.mobile_phone[2:] not in logged
    assert "pay next week" not in logged
    assert "inbound SMS: opt_out, 1 known patient record(s)" in logged
