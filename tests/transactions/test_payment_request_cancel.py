import pytest
from django.utils import timezone

from lumapay.models import AuditEvent
from org_profile.access import AccessDenied
from transactions.enums import PaymentRequestStatus
from transactions.errors import PaymentRequestError, PaymentRequestStateError
from transactions.models import PaymentRequest
from transactions.services.payment_requests import payment_request_cancel

from ..factories import PaymentRequestFactory


@pytest.fixture
def open_request(organization, location, patient):
    return PaymentRequestFactory(organization=organization, location=location, patient=patient)


def test_cancel_withdraws_an_open_request_and_keeps_it_on_record(
    organization, patient, manager, open_request, django_capture_on_commit_callbacks
):
    # given an open request
    before = timezone.now()

    # when a manager cancels it with a reason
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        cancelled = payment_request_cancel(
            organization=organization, actor=manager, payment_request=open_request, reason="  Paid at the front desk "
        )

    # then it is cancelled by them, still on record, and the audit event holds the reason
    assert callbacks == []
    stored = PaymentRequest.objects.get(pk=open_request.pk)
    assert (stored.status, stored.cancelled_by) == (PaymentRequestStatus.CANCELLED, manager)
    assert before <= stored.cancelled_at <= timezone.now()
    assert (cancelled.pk, cancelled.status, cancelled.cancelled_by) == (open_request.pk, PaymentRequestStatus.CANCELLED, manager)
    event = AuditEvent.objects.get()
    assert (event.action, event.actor_type, event.actor_user, event.patient, event.payment_request) == (
        "payment_request.cancelled", "staff", manager, patient, stored
    )
    assert event.changes == {"status": ["open", "cancelled"], "reason": "Paid at the front desk"}


def test_a_sub_account_user_can_cancel_a_request_of_their_location(organization, staff_user, open_request):
    # given a request of the Downtown Clinic and a sub-account user of it
    # when they cancel it without a reason
    payment_request_cancel(organization=organization, actor=staff_user, payment_request=open_request)

    # then it is cancelled and the audit records an empty reason
    assert PaymentRequest.objects.get().status == PaymentRequestStatus.CANCELLED
    assert AuditEvent.objects.get().changes == {"status": ["open", "cancelled"], "reason": ""}


@pytest.mark.parametrize(
    "status, message",
    [
        (
            PaymentRequestStatus.PAID,
            "This request has already been paid, so it cannot be cancelled: refund the transaction instead.",
        ),
        (PaymentRequestStatus.CANCELLED, "This request is already cancelled."),
        (
            PaymentRequestStatus.EXPIRED,
            "This request has already expired: its link no longer works, so there is nothing to cancel.",
        ),
    ],
)
def test_only_an_open_request_can_be_cancelled(organization, administrator, open_request, status, message):
    # given a paid, cancelled or expired request
    open_request.status = status
    open_request.save()

    # when someone cancels it
    with pytest.raises(PaymentRequestStateError) as error:
        payment_request_cancel(organization=organization, actor=administrator, payment_request=open_request)

    # then it is refused and nothing changed
    assert error.value.message == message
    stored = PaymentRequest.objects.get()
    assert (stored.status, stored.cancelled_at, stored.cancelled_by) == (status, None, None)
    assert AuditEvent.objects.count() == 0


def test_a_reason_longer_than_500_characters_is_refused(organization, administrator, open_request):
    # given a very long reason
    # when the request is cancelled with it
    with pytest.raises(PaymentRequestError) as error:
        payment_request_cancel(
            organization=organization, actor=administrator, payment_request=open_request, reason="x" * 501
        )

    # then it is refused and nothing changed
    assert error.value.message == "The reason can be at most 500 characters long."
    assert PaymentRequest.objects.get().status == PaymentRequestStatus.OPEN
    assert AuditEvent.objects.count() == 0


def test_a_sub_account_user_cannot_cancel_a_request_of_another_location(
    organization, other_location, patient, staff_user
):
    # given a request of the Northside Clinic and a sub-account user of the Downtown Clinic
    payment_request = PaymentRequestFactory(organization=organization, location=other_location, patient=patient)

    # when they cancel it
    with pytest.raises(AccessDenied) as error:
        payment_request_cancel(organization=organization, actor=staff_user, payment_request=payment_request)

    # then it is refused and nothing changed
    assert error.value.message.startswith("Northside Clinic is not one of your locations")
    assert PaymentRequest.objects.get().status == PaymentRequestStatus.OPEN
    assert AuditEvent.objects.count() == 0


def test_a_request_of_another_organization_cannot_be_cancelled(administrator, other_organization, open_request):
    # given a request of the administrator's organization
    # when it is cancelled in the name of another organization
    with pytest.raises(PaymentRequestError) as error:
        payment_request_cancel(organization=other_organization, actor=administrator, payment_request=open_request)

    # then it is refused and nothing changed
    assert error.value.message == "This payment request belongs to another organization."
    assert PaymentRequest.objects.get().status == PaymentRequestStatus.OPEN
    assert AuditEvent.objects.count() == 0
