import datetime
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from ehr_sync.enums import PreferredLanguage
from lumapay import sms
from lumapay.models import AuditEvent
from org_profile.access import AccessDenied
from org_profile.enums import Role
from transactions.enums import DeliveryChannel, DeliveryStatus, PaymentRequestKind, PaymentRequestStatus
from transactions.errors import PatientUnreachableError, PaymentRequestError
from transactions.links import payment_link_url
from transactions.models import PaymentRequest, PaymentRequestDelivery
from transactions.services.payment_requests import payment_request_send

from ..factories import AppointmentFactory, LocationFactory, MembershipFactory, OrganizationFactory, PatientFactory

SPANISH_MONTHS = [
    "ene", "feb", "mar", "abr", "may", "jun",
    "jul", "ago", "sep", "oct", "nov", "dic",
]


def _send(organization, actor, patient, location, **overrides):
    arguments = {
        "organization": organization,
        "actor": actor,
        "patient": patient,
        "location": location,
        "kind": PaymentRequestKind.COPAY,
        "billing_item": "Office visit copay",
        "amount_cents": 4500,
        "note": "For your visit on Monday",
    }
    arguments.update(overrides)
    return payment_request_send(**arguments)


def _nothing_written():
    return (
        PaymentRequest.objects.count(),
        PaymentRequestDelivery.objects.count(),
        AuditEvent.objects.count(),
    ) == (0, 0, 0)


def test_send_writes_the_request_its_deliveries_and_audit_event_then_sends_email_and_sms(
    organization, location, patient, administrator, mailoutbox, django_capture_on_commit_callbacks
):
    # given a patient with an e-mail address and a consented mobile phone
    before = timezone.now()

    # when an administrator sends a $45 copay request
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        payment_request = _send(organization, administrator, patient, location)

    # then one request, two deliveries and the audit events exist, and both messages went out
    after = timezone.now()
    assert len(callbacks) == 2
    payment_request.refresh_from_db()
    assert (
        payment_request.organization, payment_request.patient, payment_request.location,
        payment_request.kind, payment_request.billing_item, payment_request.amount_cents,
        payment_request.currency, payment_request.note, payment_request.status, payment_request.created_by,
        payment_request.appointment,
    ) == (
        organization, patient, location, "copay", "Office visit copay", 4500,
        "usd", "For your visit on Monday", PaymentRequestStatus.OPEN, administrator, None,
    )
    assert before + datetime.timedelta(days=30) <= payment_request.expires_at <= after + datetime.timedelta(days=30)
    assert before <= payment_request.last_sent_at <= after

    deliveries = list(payment_request.deliveries.order_by("id"))
    assert [(d.channel, d.destination, d.status, d.error_message) for d in deliveries] == [
        (DeliveryChannel.EMAIL, patient.email, DeliveryStatus.SENT, ""),
        (DeliveryChannel.SMS, patient.mobile_phone, DeliveryStatus.SENT, ""),
    ]
    assert deliveries[0].provider_message_id.startswith("<") and deliveries[0].provider_message_id.endswith(">")
    assert deliveries[1].provider_message_id == "memory-1"
    assert all(before <= d.sent_at <= after for d in deliveries)

    events = list(AuditEvent.objects.filter(payment_request=payment_request).order_by("id"))
    assert [(e.action, e.actor_type, e.actor_user, e.patient) for e in events] == [
        ("payment_request.sent", "staff", administrator, patient),
        ("payment_request.delivery_sent", "system", None, patient),
        ("payment_request.delivery_sent", "system", None, patient),
    ]
    assert events[0].changes == {
        "status": [None, "open"],
        "amount_cents": [None, 4500],
        "currency": [None, "usd"],
        "kind": [None, "copay"],
        "billing_item": [None, "Office visit copay"],
        "note": [None, "For your visit on Monday"],
        "location_id": [None, location.pk],
        "appointment_id": [None, None],
        "expires_at": [None, payment_request.expires_at.isoformat()],
        "channels": ["email", "sms"],
    }
    assert events[1].changes == {
        "delivery_id": deliveries[0].pk,
        "channel": "email",
        "status": ["queued", "sent"],
        "provider_message_id": deliveries[0].provider_message_id,
    }

    link = payment_link_url(payment_request)
    assert link.startswith("http://testserver/pay/")
    assert len(mailoutbox) == 1
    email = mailoutbox[0]
    assert email.to == [patient.email]
    assert email.from_email == "Riverside Family Medicine <no-reply@lumapay.localhost>"
    assert email.reply_to == ["billing@riverside.example"]
    assert email.subject == "Riverside Family Medicine: payment request for $45.00"
    assert "Office visit" not in email.subject and "Monday" not in email.subject
    assert email.extra_headers["Message-ID"] == deliveries[0].provider_message_id
    assert link in email.body
    assert "Amount: $45.00" in email.body
    assert "For: Office visit copay" in email.body
    assert "Note from the clinic: For your visit on Monday" in email.body
    html, mimetype = email.alternatives[0]
    assert mimetype == "text/html"
    assert f'href="{link}"' in html
    assert '<html lang="en">' in html

    assert sms.outbox == [
        sms.SmsMessage(
            to=patient.mobile_phone,
            body=f"Riverside Family Medicine: you have a payment request for $45.00. Pay securely: {link} "
            "Reply STOP to opt out.",
        )
    ]


def test_send_queues_the_messages_until_the_transaction_commits(
    organization, location, patient, administrator, mailoutbox, django_capture_on_commit_callbacks
):
    # given a patient reachable by e-mail and SMS
    # when the request is sent but the transaction has not committed yet
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        payment_request = _send(organization, administrator, patient, location)

    # then both deliveries wait, queued, and nothing has been sent
    assert len(callbacks) == 2
    assert list(payment_request.deliveries.values_list("status", flat=True)) == ["queued", "queued"]
    assert mailoutbox == []
    assert sms.outbox == []


def test_a_spanish_speaking_patient_gets_the_messages_in_spanish(
    organization, location, administrator, mailoutbox, django_capture_on_commit_callbacks
):
    # given a patient whose preferred language is Spanish
    patient = PatientFactory(organization=organization, preferred_language=PreferredLanguage.SPANISH)

    # when a request is sent
    with django_capture_on_commit_callbacks(execute=True):
        payment_request = _send(organization, administrator, patient, location)

    # then the e-mail is rendered in Spanish: its language and the expiry date (Django's own
    # catalogue translates month names) say so
    expires_on = payment_request.expires_at.astimezone(ZoneInfo(organization.timezone))
    spanish_date = f"{expires_on.day} {SPANISH_MONTHS[expires_on.month - 1]} {expires_on.year}"
    html, _ = mailoutbox[0].alternatives[0]
    assert '<html lang="es">' in html
    assert spanish_date in html
    assert spanish_date in mailoutbox[0].body


def test_a_patient_with_only_an_email_address_gets_only_an_email(
    organization, location, administrator, mailoutbox, django_capture_on_commit_callbacks
):
    # given a patient with an e-mail address and no SMS consent
    patient = PatientFactory(organization=organization, sms_consent=False, sms_consent_at=None)

    # when a request is sent
    with django_capture_on_commit_callbacks(execute=True):
        payment_request = _send(organization, administrator, patient, location)

    # then only the e-mail delivery exists and only the e-mail went out
    assert list(payment_request.deliveries.values_list("channel", "status")) == [("email", "sent")]
    assert len(mailoutbox) == 1
    assert sms.outbox == []


def test_a_patient_with_only_a_consented_phone_gets_only_a_text(
    organization, location, administrator, mailoutbox, django_capture_on_commit_callbacks
):
    # given a patient with no e-mail address and a consented mobile phone
    patient = PatientFactory(organization=organization, email="", mobile_phone="+12175550199")

    # when a request is sent
    with django_capture_on_commit_callbacks(execute=True):
        payment_request = _send(organization, administrator, patient, location)

    # then only the SMS delivery exists and only the text went out
    assert list(payment_request.deliveries.values_list("channel", "destination", "status")) == [
        ("sms", "+12175550199", "sent")
    ]
    assert mailoutbox == []
    assert [message.to for message in sms.outbox] == ["+12175550199"]


def test_a_request_can_name_one_of_the_patients_appointments(
    organization, location, patient, administrator, django_capture_on_commit_callbacks
):
    # given an appointment of the patient at the location
    appointment = AppointmentFactory(patient=patient, organization=organization, location=location)

    # when a request is sent for it
    with django_capture_on_commit_callbacks(execute=True):
        payment_request = _send(organization, administrator, patient, location, appointment=appointment)

    # then the request points at it
    assert PaymentRequest.objects.get().appointment == appointment
    assert AuditEvent.objects.get(action="payment_request.sent").changes["appointment_id"] == [None, appointment.pk]


def test_the_largest_amount_allowed_is_100000_dollars(organization, location, patient, administrator):
    # given the largest amount
    # when it is sent
    payment_request = _send(organization, administrator, patient, location, amount_cents=100_000_00)

    # then it is accepted
    assert PaymentRequest.objects.get(pk=payment_request.pk).amount_cents == 100_000_00


def test_a_sub_account_user_can_send_from_their_own_location(organization, location, patient, staff_user):
    # given a sub-account user of the Downtown Clinic
    # when they send a request from it
    payment_request = _send(organization, staff_user, patient, location)

    # then it is written, with them as its author
    assert PaymentRequest.objects.get().created_by == staff_user
    assert payment_request.location == location


@pytest.mark.parametrize(
    "amount_cents, message",
    [
        (0, "The amount must be more than $0.00."),
        (-500, "The amount must be more than $0.00."),
        (100_000_01, "The amount cannot be more than $100,000.00."),
        ("45", "Enter the amount as a whole number of cents."),
        (45.0, "Enter the amount as a whole number of cents."),
    ],
)
def test_an_amount_out_of_range_is_refused_and_nothing_is_written(
    organization, location, patient, administrator, django_capture_on_commit_callbacks, amount_cents, message
):
    # given an amount that is zero, negative, over $100,000 or not whole cents
    # when a request is sent with it
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(PaymentRequestError) as error:
            _send(organization, administrator, patient, location, amount_cents=amount_cents)

    # then it is refused with a specific message, and nothing was written or queued
    assert error.value.message == message
    assert error.value.extra == {"field": "amount"}
    assert _nothing_written()
    assert callbacks == []


def test_a_patient_with_neither_email_nor_consented_phone_is_refused_and_nothing_is_written(
    organization, location, administrator, django_capture_on_commit_callbacks
):
    # given a patient with no e-mail address and a phone without SMS consent
    patient = PatientFactory(
        organization=organization, first_name="Ana", last_name="Ruiz", email="", sms_consent=False, sms_consent_at=None
    )

    # when a request is sent to them
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(PatientUnreachableError) as error:
            _send(organization, administrator, patient, location)

    # then it is refused with what to do about it, and nothing was written
    assert error.value.message == (
        "Ana Ruiz has no e-mail address and has not agreed to text messages: "
        "add an e-mail address or record SMS consent first."
    )
    assert _nothing_written()
    assert callbacks == []
    assert sms.outbox == []


def test_another_organizations_location_is_refused(organization, patient, administrator, other_organization):
    # given a location of another organization
    foreign_location = LocationFactory(organization=other_organization)

    # when a request names it
    with pytest.raises(PaymentRequestError) as error:
        _send(organization, administrator, patient, foreign_location)

    # then it is refused and nothing was written
    assert error.value.message == "This location is not one of this organization's locations."
    assert _nothing_written()


def test_another_organizations_patient_is_refused(organization, location, administrator, other_organization):
    # given a patient of another organization
    foreign_patient = PatientFactory(organization=other_organization)

    # when a request names them
    with pytest.raises(PaymentRequestError) as error:
        _send(organization, administrator, foreign_patient, location)

    # then it is refused and nothing was written
    assert error.value.message == "This patient is not one of this organization's patients."
    assert _nothing_written()


def test_a_sub_account_user_cannot_send_from_a_location_that_is_not_theirs(
    organization, other_location, patient, staff_user
):
    # given a sub-account user of the Downtown Clinic
    # when they send a request from the Northside Clinic
    with pytest.raises(AccessDenied) as error:
        _send(organization, staff_user, patient, other_location)

    # then it is refused and nothing was written
    assert error.value.message == (
        "Northside Clinic is not one of your locations: you can only work with payment requests "
        "for the locations your administrator gave you."
    )
    assert _nothing_written()


def test_a_user_of_another_organization_cannot_send(organization, location, patient, other_organization):
    # given a user who is an administrator elsewhere only
    outsider = MembershipFactory(organization=other_organization, role=Role.ADMINISTRATOR).user

    # when they send a request in this organization
    with pytest.raises(AccessDenied) as error:
        _send(organization, outsider, patient, location)

    # then it is refused and nothing was written
    assert error.value.message == "You are not a member of this organization."
    assert _nothing_written()


def test_an_inactive_location_is_refused(organization, patient, administrator):
    # given a location that is no longer active
    closed = LocationFactory(organization=organization, name="Old Town Clinic", is_active=False)

    # when a request names it
    with pytest.raises(PaymentRequestError) as error:
        _send(organization, administrator, patient, closed)

    # then it is refused and nothing was written
    assert error.value.message == "Old Town Clinic is no longer active: choose another location."
    assert _nothing_written()


def test_an_appointment_of_another_patient_is_refused(organization, location, patient, administrator):
    # given an appointment of a different patient
    appointment = AppointmentFactory(organization=organization, location=location)

    # when a request names it
    with pytest.raises(PaymentRequestError) as error:
        _send(organization, administrator, patient, location, appointment=appointment)

    # then it is refused and nothing was written
    assert error.value.message == "That appointment is not one of this patient's appointments."
    assert _nothing_written()


def test_an_appointment_at_another_location_is_refused(organization, location, other_location, patient, administrator):
    # given the patient's appointment at the Northside Clinic
    appointment = AppointmentFactory(patient=patient, organization=organization, location=other_location)

    # when a request from the Downtown Clinic names it
    with pytest.raises(PaymentRequestError) as error:
        _send(organization, administrator, patient, location, appointment=appointment)

    # then it is refused and nothing was written
    assert error.value.message == (
        "That appointment is at Northside Clinic: choose that location, or leave the appointment out."
    )
    assert _nothing_written()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"billing_item": "   "}, "Enter the billing item the patient is paying for, such as “Office visit copay”."),
        ({"billing_item": "x" * 121}, "The billing item can be at most 120 characters long."),
        ({"kind": "donation"}, "Choose what the request is for: copay, balance or other."),
        ({"note": "x" * 501}, "The note can be at most 500 characters long."),
    ],
)
def test_a_missing_or_unknown_detail_is_refused(organization, location, patient, administrator, overrides, message):
    # given a blank billing item, an unknown kind or an over-long note
    # when a request is sent with it
    with pytest.raises(PaymentRequestError) as error:
        _send(organization, administrator, patient, location, **overrides)

    # then it is refused and nothing was written
    assert error.value.message == message
    assert _nothing_written()


def test_a_second_organization_gets_its_own_requests(location, patient, administrator):
    # given a second organization with its own patient and location (tenant rows never mix)
    other = OrganizationFactory(name="Lakeside Pediatrics", public_name="Lakeside Kids")
    other_admin = MembershipFactory(organization=other, role=Role.ADMINISTRATOR).user
    other_patient = PatientFactory(organization=other)
    other_location = LocationFactory(organization=other)

    # when each sends a request
    mine = _send(patient.organization, administrator, patient, location)
    theirs = _send(other, other_admin, other_patient, other_location)

    # then each request, delivery and audit event carries its own organization
    assert PaymentRequest.objects.filter(organization=other).get() == theirs
    assert set(mine.deliveries.values_list("organization_id", flat=True)) == {patient.organization_id}
    assert set(theirs.deliveries.values_list("organization_id", flat=True)) == {other.pk}
    assert AuditEvent.objects.get(payment_request=theirs).organization == other
