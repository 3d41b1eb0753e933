"""Payment requests: staff ask a patient to pay, by a signed link sent by e-mail and/or SMS.

A request is written in one database transaction with one delivery row per channel and its audit
event: the messages the patient is owed, sent after commit through the outbox
(``patient_messages``). A request is never deleted: cancelled and expired requests stay on record.
"""

from __future__ import annotations

import datetime
import logging
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ehr_sync.models import Appointment, Patient
from lumapay.audit import actor_from, audit_event_record
from lumapay.dates import format_datetime
from lumapay.enums import AuditAction
from lumapay.models import ActorType
from lumapay.money import format_cents
from org_profile.access import MANAGERS, AccessDenied, staff_access
from org_profile.models import Location, Organization

from ..enums import DeliveryChannel, PaymentRequestKind, PaymentRequestStatus
from ..errors import PatientUnreachableError, PaymentRequestError, PaymentRequestStateError
from ..locks import payment_request_lock
from ..models import PaymentRequest, Transaction
from .patient_messages import payment_link_deliveries_owe

logger = logging.getLogger(__name__)


def payment_request_send(
    *,
    organization: Organization,
    actor,
    patient: Patient,
    location: Location,
    kind: str,
    billing_item: str,
    amount_cents: int,
    note: str = "",
    appointment: Appointment | None = None,
    automation_rule: str = "",
    expires_at: datetime.datetime | None = None,
) -> PaymentRequest:
    """Ask a patient to pay: the request, a queued delivery per channel and the audit event, in
    one transaction; the e-mail and SMS go out after commit.

    The collection rules (``services/collection_schedule``) ask through here too, with
    ``actor=None`` (LumaPay itself), the ``automation_rule`` that acted (recorded on the request
    and as ``changes["rule"]``) and, for a copay before a visit, an ``expires_at`` that follows
    the visit. A second automatic copay request for one appointment raises ``IntegrityError``
    (the database's one-per-appointment constraint), with nothing written."""
    billing_item = (billing_item or "").strip()
    note = (note or "").strip()
    if patient.organization_id != organization.pk:
        raise PaymentRequestError("This patient is not one of this organization's patients.")
    _location_check(organization=organization, actor=actor, location=location)
    if not location.is_active:
        raise PaymentRequestError(
            f"{location.name} is no longer active: choose another location.", extra={"field": "location"}
        )
    _amount_check(amount_cents)
    if kind not in PaymentRequestKind.values:
        raise PaymentRequestError(
            "Choose what the request is for: copay, balance or other.", extra={"field": "kind"}
        )
    if not billing_item:
        raise PaymentRequestError(
            "Enter the billing item the patient is paying for, such as “Office visit copay”.",
            extra={"field": "billing_item"},
        )
    if len(billing_item) > 120:
        raise PaymentRequestError(
            "The billing item can be at most 120 characters long.", extra={"field": "billing_item"}
        )
    if len(note) > 500:
        raise PaymentRequestError("The note can be at most 500 characters long.", extra={"field": "note"})
    if appointment is not None:
        if appointment.patient_id != patient.pk or appointment.organization_id != organization.pk:
            raise PaymentRequestError(
                "That appointment is not one of this patient's appointments.", extra={"field": "appointment"}
            )
        if appointment.location_id != location.pk:
            raise PaymentRequestError(
                f"That appointment is at {appointment.location.name}: choose that location, "
                "or leave the appointment out.",
                extra={"field": "appointment"},
            )
    channels = _delivery_channels(patient)

    now = timezone.now()
    actor_type, actor_user = actor_from(actor)
    with transaction.atomic():
        payment_request = PaymentRequest.objects.create(
            organization=organization,
            patient=patient,
            location=location,
            appointment=appointment,
            kind=kind,
            billing_item=billing_item,
            amount_cents=amount_cents,
            currency=organization.currency,
            note=note,
            expires_at=expires_at or now + datetime.timedelta(days=settings.PAYMENT_LINK_TTL_DAYS),
            created_by=actor_user,
            last_sent_at=now,
            automation_rule=automation_rule,
        )
        payment_link_deliveries_owe(payment_request=payment_request, channels=channels)
        rule = {"rule": automation_rule} if automation_rule else {}
        audit_event_record(
            organization=organization,
            action=AuditAction.PAYMENT_REQUEST_SENT,
            actor_type=actor_type,
            actor_user=actor_user,
            patient=patient,
            payment_request=payment_request,
            changes={
                "status": [None, PaymentRequestStatus.OPEN],
                "amount_cents": [None, amount_cents],
                "currency": [None, payment_request.currency],
                "kind": [None, kind],
                "billing_item": [None, billing_item],
                "note": [None, note],
                "location_id": [None, location.pk],
                "appointment_id": [None, appointment.pk if appointment else None],
                "expires_at": [None, payment_request.expires_at.isoformat()],
                "channels": [channel for channel, _ in channels],
                **rule,
            },
        )
    return payment_request


def payment_request_resend(*, organization: Organization, actor, payment_request: PaymentRequest) -> PaymentRequest:
    """Send an open, unexpired request's link again, to the patient's current contact details,
    and give the link a fresh lifetime. Returns the request as stored (the row it locked)."""
    if payment_request.organization_id != organization.pk:
        raise PaymentRequestError("This payment request belongs to another organization.")
    now = timezone.now()
    actor_type, actor_user = actor_from(actor)
    with transaction.atomic():
        locked = payment_request_lock(payment_request_id=payment_request.pk)
        _location_check(organization=organization, actor=actor, location=locked.location)
        _open_check(locked, refusals=_RESEND_REFUSALS)
        if locked.expires_at <= now:
            raise PaymentRequestStateError("This request's link has expired: send a new request instead.")
        if locked.verification_locked_until and locked.verification_locked_until > now:
            raise PaymentRequestStateError(
                f"This request's link is locked until {format_datetime(locked.verification_locked_until, organization)} "
                "after too many wrong dates of birth: re-sending would send the locked link. "
                "Unlock it, or send a fresh link."
            )
        channels = _delivery_channels(locked.patient)
        old_expires_at = locked.expires_at
        locked.expires_at = now + datetime.timedelta(days=settings.PAYMENT_LINK_TTL_DAYS)
        locked.last_sent_at = now
        locked.save(update_fields=["expires_at", "last_sent_at"])
        payment_link_deliveries_owe(payment_request=locked, channels=channels)
        audit_event_record(
            organization=organization,
            action=AuditAction.PAYMENT_REQUEST_RESENT,
            actor_type=actor_type,
            actor_user=actor_user,
            patient=locked.patient,
            payment_request=locked,
            changes={
                "expires_at": [old_expires_at.isoformat(), locked.expires_at.isoformat()],
                "channels": [channel for channel, _ in channels],
            },
        )
    return locked


def pay_link_unlock(*, organization: Organization, actor, payment_request: PaymentRequest) -> PaymentRequest:
    """Lift the lock that wrong dates of birth put on an open request's link, so the patient can
    answer again (with a full set of attempts). Managers and administrators only. Returns the
    request row as it was locked and saved."""
    _link_manager_check(organization=organization, actor=actor, payment_request=payment_request)
    now = timezone.now()
    actor_type, actor_user = actor_from(actor)
    with transaction.atomic():
        locked = payment_request_lock(payment_request_id=payment_request.pk)
        _open_check(locked, refusals=_LINK_REFUSALS)
        if locked.expires_at <= now:
            raise PaymentRequestStateError("This request's link has expired: send a new request instead.")
        if not locked.verification_locked_until or locked.verification_locked_until <= now:
            raise PaymentRequestStateError("This link is not locked: the patient can open it.")
        old_locked_until = locked.verification_locked_until
        locked.verification_locked_until = None
        locked.failed_verification_count = 0
        locked.save(update_fields=["verification_locked_until", "failed_verification_count"])
        audit_event_record(
            organization=organization,
            action=AuditAction.PAY_LINK_UNLOCKED,
            actor_type=actor_type,
            actor_user=actor_user,
            patient=locked.patient,
            payment_request=locked,
            changes={"verification_locked_until": [old_locked_until.isoformat(), None]},
        )
    return locked


def pay_link_replace(*, organization: Organization, actor, payment_request: PaymentRequest) -> PaymentRequest:
    """Send the patient a fresh link for an open request: a new token (the old link stops working
    at once), no lock, a fresh lifetime, and one delivery per channel after commit. Managers and
    administrators only. Returns the request row as it was locked and saved."""
    _link_manager_check(organization=organization, actor=actor, payment_request=payment_request)
    now = timezone.now()
    actor_type, actor_user = actor_from(actor)
    with transaction.atomic():
        locked = payment_request_lock(payment_request_id=payment_request.pk)
        _open_check(locked, refusals=_LINK_REFUSALS)
        if locked.expires_at <= now:
            raise PaymentRequestStateError("This request's link has expired: send a new request instead.")
        channels = _delivery_channels(locked.patient)
        old_locked_until, old_expires_at = locked.verification_locked_until, locked.expires_at
        # The token is the signed public id: a new one makes every copy of the old link unknown.
        locked.public_id = uuid.uuid4()
        locked.verification_locked_until = None
        locked.failed_verification_count = 0
        locked.expires_at = now + datetime.timedelta(days=settings.PAYMENT_LINK_TTL_DAYS)
        locked.last_sent_at = now
        locked.save(
            update_fields=["public_id", "verification_locked_until", "failed_verification_count", "expires_at", "last_sent_at"]
        )
        # A checkout begun on the old link returns to the old link's pages, which no longer
        # exist: make it not resumable, so the next "Pay" closes it at the gateway (before any
        # new one) and starts one that returns to the fresh link.
        Transaction.objects.filter(payment_request=locked, charged_cents=0).exclude(gateway_checkout_id="").update(
            gateway_checkout_expires_at=now, updated_at=now
        )
        payment_link_deliveries_owe(payment_request=locked, channels=channels)
        audit_event_record(
            organization=organization,
            action=AuditAction.PAY_LINK_REPLACED,
            actor_type=actor_type,
            actor_user=actor_user,
            patient=locked.patient,
            payment_request=locked,
            changes={
                "link": "replaced",
                "verification_locked_until": [old_locked_until.isoformat() if old_locked_until else None, None],
                "expires_at": [old_expires_at.isoformat(), locked.expires_at.isoformat()],
                "channels": [channel for channel, _ in channels],
            },
        )
    return locked


def payment_request_cancel(
    *, organization: Organization, actor, payment_request: PaymentRequest, reason: str = "", rule: str = ""
) -> PaymentRequest:
    """Withdraw an open request: its link stops working, and it stays on record as cancelled.
    Returns the request as stored (the row it locked). A collection rule that cancels its own
    request (the visit was cancelled, the balance was paid elsewhere) passes ``actor=None`` and
    the ``rule``, recorded as ``changes["rule"]``."""
    reason = (reason or "").strip()
    if payment_request.organization_id != organization.pk:
        raise PaymentRequestError("This payment request belongs to another organization.")
    if len(reason) > 500:
        raise PaymentRequestError("The reason can be at most 500 characters long.", extra={"field": "reason"})
    now = timezone.now()
    actor_type, actor_user = actor_from(actor)
    with transaction.atomic():
        locked = payment_request_lock(payment_request_id=payment_request.pk)
        _location_check(organization=organization, actor=actor, location=locked.location)
        _open_check(locked, refusals=_CANCEL_REFUSALS)
        locked.status = PaymentRequestStatus.CANCELLED
        locked.cancelled_at = now
        locked.cancelled_by = actor_user
        locked.save(update_fields=["status", "cancelled_at", "cancelled_by"])
        audit_event_record(
            organization=organization,
            action=AuditAction.PAYMENT_REQUEST_CANCELLED,
            actor_type=actor_type,
            actor_user=actor_user,
            patient=locked.patient,
            payment_request=locked,
            changes={
                "status": [PaymentRequestStatus.OPEN, PaymentRequestStatus.CANCELLED],
                "reason": reason,
                **({"rule": rule} if rule else {}),
            },
        )
    return locked


def payment_requests_expire_overdue() -> int:
    """Mark open requests whose link has run out as expired (the beat task). Returns how many.

    Each request is locked and checked again on its own, so a request re-sent or paid while this
    runs is left alone.
    """
    now = timezone.now()
    overdue_ids = list(
        PaymentRequest.objects.filter(status=PaymentRequestStatus.OPEN, expires_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    expired = 0
    for payment_request_id in overdue_ids:
        with transaction.atomic():
            locked = payment_request_lock(payment_request_id=payment_request_id)
            if locked.status != PaymentRequestStatus.OPEN or locked.expires_at > now:
                continue
            locked.status = PaymentRequestStatus.EXPIRED
            locked.save(update_fields=["status"])
            audit_event_record(
                organization=locked.organization,
                action=AuditAction.PAYMENT_REQUEST_EXPIRED,
                actor_type=ActorType.SYSTEM,
                patient=locked.patient,
                payment_request=locked,
                changes={
                    "status": [PaymentRequestStatus.OPEN, PaymentRequestStatus.EXPIRED],
                    "expires_at": locked.expires_at.isoformat(),
                },
            )
            expired += 1
    return expired


# What stops a request that is no longer open from being re-sent or cancelled, by its status.
_RESEND_REFUSALS = {
    PaymentRequestStatus.PAID: "This request has already been paid: there is nothing to re-send.",
    PaymentRequestStatus.CANCELLED: "This request was cancelled, so it cannot be re-sent: send a new request instead.",
    PaymentRequestStatus.EXPIRED: "This request has expired, so it cannot be re-sent: send a new request instead.",
}
_CANCEL_REFUSALS = {
    PaymentRequestStatus.PAID: (
        "This request has already been paid, so it cannot be cancelled: refund the transaction instead."
    ),
    PaymentRequestStatus.CANCELLED: "This request is already cancelled.",
    PaymentRequestStatus.EXPIRED: (
        "This request has already expired: its link no longer works, so there is nothing to cancel."
    ),
}


_LINK_REFUSALS = {
    PaymentRequestStatus.PAID: "This request has already been paid: its link is no longer needed.",
    PaymentRequestStatus.CANCELLED: "This request was cancelled: send a new request instead.",
    PaymentRequestStatus.EXPIRED: "This request has expired: send a new request instead.",
}


def _link_manager_check(*, organization: Organization, actor, payment_request: PaymentRequest) -> None:
    """Only an active manager or administrator of the request's organization unlocks or replaces
    its link: both let someone in after the date-of-birth check stopped them."""
    if payment_request.organization_id != organization.pk:
        raise PaymentRequestError("This payment request belongs to another organization.")
    staff_access(
        organization=organization,
        actor=actor,
        roles=MANAGERS,
        denied={AccessDenied.ROLE: "Only managers and administrators can unlock a payment link or send a fresh one."},
    )


def _open_check(payment_request: PaymentRequest, *, refusals: dict[str, str]) -> None:
    if payment_request.status != PaymentRequestStatus.OPEN:
        raise PaymentRequestStateError(refusals[payment_request.status])


def _amount_check(amount_cents) -> None:
    # The same words as lumapay.money.cents_from_text, so staff read one message whatever the path.
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int):
        raise PaymentRequestError("Enter the amount as a whole number of cents.", extra={"field": "amount"})
    if amount_cents <= 0:
        raise PaymentRequestError("The amount must be more than $0.00.", extra={"field": "amount"})
    if amount_cents > settings.PAYMENT_REQUEST_MAX_CENTS:
        raise PaymentRequestError(
            f"The amount cannot be more than {format_cents(settings.PAYMENT_REQUEST_MAX_CENTS)}.",
            extra={"field": "amount"},
        )


def _location_check(*, organization: Organization, actor, location: Location) -> None:
    """The location is the organization's and, for a sub-account user, one of theirs."""
    if location.organization_id != organization.pk:
        raise PaymentRequestError(
            "This location is not one of this organization's locations.", extra={"field": "location"}
        )
    if actor is None:
        return
    staff_access(
        organization=organization,
        actor=actor,
        location=location,
        denied={
            AccessDenied.LOCATION: "{location} is not one of your locations: you can only work with payment "
            "requests for the locations your administrator gave you."
        },
    )


def _delivery_channels(patient: Patient) -> list[tuple[str, str]]:
    """(channel, destination) for every way this patient can be reached, or why there is none."""
    channels = []
    if patient.email:
        channels.append((DeliveryChannel.EMAIL.value, patient.email))
    if patient.can_receive_sms:
        channels.append((DeliveryChannel.SMS.value, patient.mobile_phone))
    if not channels:
        raise PatientUnreachableError(
            f"{patient.full_name} has no e-mail address and has not agreed to text messages: "
            "add an e-mail address or record SMS consent first."
        )
    return channels
