import datetime

from django.conf import settings
from django.utils import timezone

from lumapay.models import AuditEvent
from transactions.enums import PaymentRequestStatus
from transactions.models import PaymentRequest
from transactions.services.payment_requests import payment_requests_expire_overdue
from transactions.tasks import payment_requests_expire_overdue as expire_task

from ..factories import PaymentRequestFactory


def _request(organization, status, expires_in):
    return PaymentRequestFactory(
        patient__organization=organization,
        organization=organization,
        status=status,
        expires_at=timezone.now() + expires_in,
    )


def test_open_requests_past_their_expiry_become_expired_and_stay_on_record(organization):
    # given overdue open requests, an open one not yet due, and closed ones past their date
    overdue = [
        _request(organization, PaymentRequestStatus.OPEN, -datetime.timedelta(minutes=1)),
        _request(organization, PaymentRequestStatus.OPEN, -datetime.timedelta(days=3)),
    ]
    not_due = _request(organization, PaymentRequestStatus.OPEN, datetime.timedelta(hours=1))
    cancelled = _request(organization, PaymentRequestStatus.CANCELLED, -datetime.timedelta(days=1))
    paid = _request(organization, PaymentRequestStatus.PAID, -datetime.timedelta(days=1))

    # when the expiry task runs
    expired_count = payment_requests_expire_overdue()

    # then exactly the overdue open requests are expired, each with a system audit event
    assert expired_count == 2
    statuses = dict(PaymentRequest.objects.values_list("pk", "status"))
    assert statuses == {
        overdue[0].pk: "expired",
        overdue[1].pk: "expired",
        not_due.pk: "open",
        cancelled.pk: "cancelled",
        paid.pk: "paid",
    }
    events = list(AuditEvent.objects.order_by("payment_request_id"))
    assert [(e.action, e.actor_type, e.actor_user, e.payment_request_id, e.patient_id) for e in events] == [
        ("payment_request.expired", "system", None, request.pk, request.patient_id) for request in overdue
    ]
    assert events[0].changes == {
        "status": ["open", "expired"],
        "expires_at": PaymentRequest.objects.get(pk=overdue[0].pk).expires_at.isoformat(),
    }


def test_running_the_expiry_again_changes_nothing(organization):
    # given one overdue request, already expired by a first run
    _request(organization, PaymentRequestStatus.OPEN, -datetime.timedelta(minutes=1))
    assert payment_requests_expire_overdue() == 1

    # when the task runs again
    second_count = payment_requests_expire_overdue()

    # then nothing more is expired or recorded
    assert second_count == 0
    assert AuditEvent.objects.count() == 1


def test_the_beat_task_expires_overdue_requests(organization):
    # given an overdue request, and the beat schedule naming the task
    overdue = _request(organization, PaymentRequestStatus.OPEN, -datetime.timedelta(minutes=1))
    assert settings.CELERY_BEAT_SCHEDULE["payment-requests-expire"]["task"] == expire_task.name

    # when the Celery task runs
    result = expire_task.delay().get()

    # then it expired the request and reports how many
    assert result == 1
    overdue.refresh_from_db()
    assert overdue.status == PaymentRequestStatus.EXPIRED
