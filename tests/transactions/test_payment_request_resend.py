import datetime

import pytest
from django.utils import timezone

from lumapay import sms
from lumapay.models import AuditEvent
from org_profile.access import AccessDenied
from transactions.enums import PaymentRequestStatus
from transactions.errors import PatientUnreachableError, PaymentRequestError, PaymentRequestStateError
from transactions.links import payment_link_url
from transactions.models import PaymentRequestDelivery
from transactions.services.payment_requests import payment_request_resend

from ..factories import PaymentRequestFactory


@pytest.fixture
def open_request(organization, location, patient):
    """An open request sent a while ago, whose link runs out in two days."""
    return PaymentRequestFactory(
        organization=organization,
        location=location,
        patient=patient,
        expires_at=timezone.now() + datetime.timedelta(days=2),
        last_sent_at=timezone.now() - datetime.timedelta(days=28),
    )


def _unchanged(payment_request, expires_at, last_sent_at):
    payment_request.refresh_from_db()
    return (
        payment_request.expires_at == expires_at
        and payment_request.last_sent_at == last_sent_at
        and PaymentRequestDelivery.objects.count() == 0
        and AuditEvent.objects.count() == 0
    )


def test_resend_queues_new_deliveries_and_gives_the_link_a_fresh_lifetime(
    organization, patient, administrator, open_request, mailoutbox, django_capture_on_commit_callbacks
):
    # given an open request whose link runs out in two days
    old_expires_at = open_request.expires_at
    before = timezone.now()

    # when an administrator re-sends it
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        payment_request_resend(organization=organization, actor=administrator, payment_request=open_request)

    # then the link works for 30 more days, both messages went out again, and the audit says so
    after = timezone.now()
    assert len(callbacks) == 2
    open_request.refresh_from_db()
    assert open_request.status == PaymentRequestStatus.OPEN
    assert before + datetime.timedelta(days=30) <= open_request.expires_at <= after + datetime.timedelta(days=30)
    assert before <= open_request.last_sent_at <= after
    assert list(open_request.deliveries.order_by("id").values_list("channel", "destination", "status")) == [
        ("email", patient.email, "sent"),
        ("sms", patient.mobile_phone, "sent"),
    ]
    resent = AuditEvent.objects.get(action="payment_request.resent")
    assert (resent.actor_type, resent.actor_user, resent.patient, resent.payment_request) == (
        "staff", administrator, patient, open_request
    )
    assert resent.changes == {
        "expires_at": [old_expires_at.isoformat(), open_request.expires_at.isoformat()],
        "channels": ["email", "sms"],
    }
    link = payment_link_url(open_request)
    assert link in mailoutbox[0].body
    assert link in sms.outbox[0].body


def test_resend_goes_to_the_patients_current_contact_details(
    organization, patient, administrator, open_request, django_capture_on_commit_callbacks
):
    # given the patient changed e-mail address and withdrew SMS consent since the first send
    patient.email = "maria.new@mail.example"
    patient.sms_consent = False
    patient.save()

    # when the request is re-sent
    with django_capture_on_commit_callbacks(execute=True):
        payment_request_resend(organization=organization, actor=administrator, payment_request=open_request)

    # then only the new e-mail address gets it
    assert list(open_request.deliveries.values_list("channel", "destination")) == [
        ("email", "maria.new@mail.example")
    ]
    assert sms.outbox == []


@pytest.mark.parametrize(
    "status, message",
    [
        (PaymentRequestStatus.PAID, "This request has already been paid: there is nothing to re-send."),
        (
            PaymentRequestStatus.CANCELLED,
            "This request was cancelled, so it cannot be re-sent: send a new request instead.",
        ),
        (
            PaymentRequestStatus.EXPIRED,
            "This request has expired, so it cannot be re-sent: send a new request instead.",
        ),
    ],
)
def test_a_request_that_is_not_open_cannot_be_resent(
    organization, administrator, open_request, django_capture_on_commit_callbacks, status, message
):
    # given a paid, cancelled or expired request
    open_request.status = status
    open_request.save()
    expires_at, last_sent_at = open_request.expires_at, open_request.last_sent_at

    # when someone re-sends it
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(PaymentRequestStateError) as error:
            payment_request_resend(organization=organization, actor=administrator, payment_request=open_request)

    # then it is refused and nothing changed
    assert error.value.message == message
    assert callbacks == []
    assert _unchanged(open_request, expires_at, last_sent_at)
    assert open_request.status == status


def test_an_open_request_whose_link_ran_out_cannot_be_resent(organization, administrator, open_request):
    # given an open request past its expiry (the expiry task has not run yet)
    open_request.expires_at = timezone.now() - datetime.timedelta(minutes=5)
    open_request.save()
    expires_at, last_sent_at = open_request.expires_at, open_request.last_sent_at

    # when someone re-sends it
    with pytest.raises(PaymentRequestStateError) as error:
        payment_request_resend(organization=organization, actor=administrator, payment_request=open_request)

    # then it is refused and nothing changed
    assert error.value.message == "This request's link has expired: send a new request instead."
    assert _unchanged(open_request, expires_at, last_sent_at)


def test_a_request_to_a_patient_no_longer_reachable_cannot_be_resent(organization, patient, administrator, open_request):
    # given the patient's e-mail address was removed and SMS consent withdrawn
    patient.email = ""
    patient.sms_consent = False
    patient.save()
    expires_at, last_sent_at = open_request.expires_at, open_request.last_sent_at

    # when the request is re-sent
    with pytest.raises(PatientUnreachableError) as error:
        payment_request_resend(organization=organization, actor=administrator, payment_request=open_request)

    # then it is refused and nothing changed
    assert error.value.message.endswith(
        "has no e-mail address and has not agreed to text messages: add an e-mail address or record SMS consent first."
    )
    assert _unchanged(open_request, expires_at, last_sent_at)


def test_a_sub_account_user_cannot_resend_a_request_of_another_location(
    organization, other_location, patient, staff_user
):
    # given a request of the Northside Clinic and a sub-account user of the Downtown Clinic
    payment_request = PaymentRequestFactory(organization=organization, location=other_location, patient=patient)
    expires_at, last_sent_at = payment_request.expires_at, payment_request.last_sent_at

    # when they re-send it
    with pytest.raises(AccessDenied) as error:
        payment_request_resend(organization=organization, actor=staff_user, payment_request=payment_request)

    # then it is refused and nothing changed
    assert error.value.message.startswith("Northside Clinic is not one of your locations")
    assert _unchanged(payment_request, expires_at, last_sent_at)


def test_a_request_of_another_organization_cannot_be_resent(administrator, other_organization, open_request):
    # given the administrator's organization is not the request's
    expires_at, last_sent_at = open_request.expires_at, open_request.last_sent_at

    # when the request is re-sent in the name of another organization
    with pytest.raises(PaymentRequestError) as error:
        payment_request_resend(organization=other_organization, actor=administrator, payment_request=open_request)

    # then it is refused and nothing changed
    assert error.value.message == "This payment request belongs to another organization."
    assert _unchanged(open_request, expires_at, last_sent_at)
