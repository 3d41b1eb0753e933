"""Holds by rule: LumaPay holds an upcoming visit's copay on the patient's card on file, captures
it when the patient checks in, releases it when the visit will not happen, and renews it before
it lapses. Each pass runs on Celery beat (``transactions.tasks``) across clinics, acts as LumaPay
itself (``actor=None``, ``ActorType.SYSTEM``) and records the rule it acted by.

Which appointments are the hold rule's and which the copay request's: ``selectors.holds`` (one
contract for both). Safe to run twice at once, or again after a worker died mid-pass:

- the database holds at most one automatic hold per appointment from the hold rule, and at most
  one current automatic hold per appointment (partial unique constraints on ``Transaction``); a
  pass that loses the race to open a hold is refused by them and moves on;
- each pass claims its appointment (``FOR UPDATE SKIP LOCKED``) while it checks it is still due,
  so two passes work on different appointments rather than race on the same;
- a hold opened but never answered (the gateway away, the worker killed) is asked for again with
  the same idempotency key (``saved_card_charge_resume``): the gateway never holds twice;
- a capture or release claims the hold first (``saved_cards._hold_claim``): captured at most once.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import IntegrityError, transaction as db_transaction
from django.utils import timezone

from ehr_sync.enums import AppointmentStatus
from ehr_sync.models import Appointment
from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import ActorType
from org_profile.access import AccessDenied

from ..enums import CollectionRule, PaymentRequestKind, TransactionStatus
from ..gateways.base import GatewayUnavailable
from ..models import CollectionRules, Transaction
from ..sandbox import processor as sandbox_processor
from ..selectors.holds import (
    HOLD_RULES,
    appointments_due_for_hold,
    hold_cards,
    holds_superseded,
    holds_to_capture,
    holds_to_renew,
)
from .saved_cards import (
    CAPTURE,
    card_role_require,
    authorization_capture,
    authorization_release,
    saved_card_charge,
    saved_card_charge_resume,
)

logger = logging.getLogger(__name__)

HOLD_BILLING_ITEM = "Office visit copay"
# A hold opened this long ago and still unanswered is asked for again (its worker died, or the
# gateway was away); younger ones may still be in flight.
HOLD_RESUME_AFTER = timedelta(minutes=2)


def holds_place_before_visits(now=None) -> int:
    """Hold the copay of every appointment due for a hold (``selectors.holds.appointments_due_for_hold``)
    in every organization with the hold rule on. Returns how many holds were placed (held or
    declined); a declined hold is a failed transaction for the appointment, which leaves its copay
    to a payment request. First asks again for holds a dead pass left unanswered."""
    now = now or timezone.now()
    holds_resume_unanswered(now=now)
    placed = 0
    for rules in CollectionRules.objects.filter(hold_enabled=True).select_related("organization").order_by("pk"):
        organization = rules.organization
        for appointment_id in list(appointments_due_for_hold(organization=organization, now=now).values_list("pk", flat=True)):
            if _hold_place(organization=organization, appointment_id=appointment_id, now=now) is not None:
                placed += 1
    return placed


def _hold_place(*, organization, appointment_id: int, now) -> Transaction | None:
    with db_transaction.atomic():
        # Claimed while it is checked: another pass skips it rather than race for it.
        appointment = (
            Appointment.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("patient", "location")
            .filter(pk=appointment_id)
            .first()
        )
        if appointment is None or not appointments_due_for_hold(organization=organization, now=now).filter(pk=appointment_id).exists():
            return None
        card = hold_cards(organization=organization).filter(patient=appointment.patient_id).first()
    if card is None:
        return None
    try:
        return saved_card_charge(
            organization=organization,
            actor=None,
            saved_card=card,
            amount_cents=appointment.copay_cents,
            kind=PaymentRequestKind.COPAY,
            billing_item=HOLD_BILLING_ITEM,
            location=appointment.location,
            appointment=appointment,
            hold_only=True,
            rule=CollectionRule.HOLD_BEFORE_VISIT,
        )
    except IntegrityError:
        # Another pass opened this appointment's hold in the meantime: the database allows one.
        logger.info("appointment %s: held by another pass", appointment_id)
    except ApplicationError as error:
        # Refused (the card was removed meanwhile, …): nothing was written but the refusal; the
        # next pass sees the appointment as it is then.
        logger.warning("appointment %s: copay not held: %s", appointment_id, error.message)
    return None


def holds_resume_unanswered(now=None) -> int:
    """Ask again, with the same idempotency key, for the rules' holds opened but never answered."""
    now = now or timezone.now()
    resumed = 0
    unanswered = Transaction.objects.filter(
        automation_rule__in=HOLD_RULES,
        status=TransactionStatus.PENDING,
        gateway_checkout_id="",
        created_at__lte=now - HOLD_RESUME_AFTER,
    ).order_by("pk")
    for transaction_id in list(unanswered.values_list("pk", flat=True)):
        with db_transaction.atomic():
            transaction = (
                Transaction.objects.select_for_update(of=("self",), skip_locked=True)
                .select_related("organization", "saved_card", "patient")
                .filter(pk=transaction_id, status=TransactionStatus.PENDING, gateway_checkout_id="")
                .first()
            )
        if transaction is None:
            continue
        try:
            saved_card_charge_resume(transaction=transaction)
        except ApplicationError as error:
            logger.warning("transaction %s: hold still unanswered: %s", transaction_id, error.message)
            continue
        resumed += 1
    return resumed


# -- capture at check-in ---------------------------------------------------------------------------------


def holds_capture_at_check_in() -> int:
    """Capture every amount held for an appointment the EHR says the patient arrived at (status
    arrived or fulfilled, as the importer records it from FHIR, HL7 or uploads): beat, every
    minute. Returns how many this pass captured; a hold another pass or staff is capturing right
    now is left to them."""
    captured = 0
    for transaction in holds_to_capture().select_related("organization", "patient", "location"):
        try:
            authorization_capture(
                organization=transaction.organization, actor=None, transaction=transaction, rule=CollectionRule.CAPTURE_AT_CHECK_IN
            )
        except ApplicationError as error:
            logger.warning("transaction %s: the held copay was not captured: %s", transaction.pk, error.message)
            continue
        captured += 1
    return captured


def appointment_check_in(*, organization, actor, appointment: Appointment) -> list[Transaction]:
    """Staff check the patient in: the appointment is marked arrived (as the EHR would) and the
    amounts held for it are captured, by the staff member. Only members whose role may use cards on
    file, at the appointment's location. Returns the captured transactions; a hold the beat sweep
    captured at the same moment is not captured twice (and is not among them)."""
    if appointment.organization_id != organization.pk:
        raise ApplicationError("This appointment does not exist.")
    card_role_require(
        organization=organization, actor=actor, location=appointment.location, action=CAPTURE,
        patient=appointment.patient, amount_cents=appointment.copay_cents,
    )  # fmt: skip
    with db_transaction.atomic():
        locked = Appointment.objects.select_for_update(of=("self",)).get(pk=appointment.pk)
        if locked.status in (AppointmentStatus.CANCELLED, AppointmentStatus.NO_SHOW):
            raise ApplicationError(f"This appointment is {locked.get_status_display().lower()}: the patient cannot check in.")
        if locked.status == AppointmentStatus.BOOKED:
            locked.status = AppointmentStatus.ARRIVED
            locked.save(update_fields=["status"])
            audit_event_record(
                organization=organization,
                action=AuditAction.APPOINTMENT_CHECKED_IN,
                actor_type=ActorType.STAFF,
                actor_user=actor,
                patient=locked.patient,
                changes={"appointment": locked.pk, "status": [AppointmentStatus.BOOKED, AppointmentStatus.ARRIVED]},
            )
    captured = []
    for transaction in holds_to_capture().filter(appointment=appointment).select_related("organization", "patient", "location"):
        try:
            captured.append(authorization_capture(organization=organization, actor=actor, transaction=transaction))
        except AccessDenied:
            raise
        except ApplicationError as error:
            logger.info("transaction %s: not captured at check-in: %s", transaction.pk, error.message)
    return captured


# -- renewal before a hold lapses ---------------------------------------------------------------------------


def holds_renew(now=None) -> int:
    """Renew the rules' holds about to lapse (``selectors.holds.holds_to_renew``: older than 6 days,
    visit still ahead): a new hold (rule HOLD_RENEWAL), then the old one released. If the new hold
    is declined, the old one is released too and the appointment is left to a payment request (the
    failed renewal hands it over, ``selectors.holds``); the timeline says which. Also releases holds
    a renewal replaced whose release did not happen yet (the gateway away, a worker died). Returns
    how many holds were renewed."""
    now = now or timezone.now()
    renewed = 0
    for transaction_id in list(holds_to_renew(now=now).values_list("pk", flat=True)):
        if _hold_renew(transaction_id=transaction_id):
            renewed += 1
    for old in holds_superseded().select_related("organization", "patient", "location"):
        _superseded_release(old)
    return renewed


def _hold_renew(*, transaction_id: int) -> bool:
    with db_transaction.atomic():
        old = (
            Transaction.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("organization", "saved_card", "appointment", "location", "patient")
            .filter(pk=transaction_id, status=TransactionStatus.AUTHORIZED, hold_superseded_at__isnull=True)
            .first()
        )
    if old is None:
        return False
    organization = old.organization
    card = hold_cards(organization=organization).filter(patient=old.patient_id).first()
    new = None
    if card is not None:
        try:
            new = saved_card_charge(
                organization=organization,
                actor=None,
                saved_card=card,
                amount_cents=old.amount_cents,
                kind=old.kind,
                billing_item=old.billing_item,
                location=old.location,
                appointment=old.appointment,
                hold_only=True,
                rule=CollectionRule.HOLD_RENEWAL,
                renews=old,
            )
        except IntegrityError:
            logger.info("transaction %s: renewed by another pass", transaction_id)
            return False
        except ApplicationError as error:
            logger.warning("transaction %s: hold not renewed: %s", transaction_id, error.message)
            return False
    else:
        # No card the rule may use any more (removed, …): the old hold is let go as given up (not
        # as replaced), so the visit is left to a payment request.
        try:
            authorization_release(
                organization=organization, actor=None, transaction=old, rule=CollectionRule.HOLD_RENEWAL,
                reason="The hold could not be renewed: no card on file any more. The copay is asked for instead.",
            )  # fmt: skip
        except ApplicationError as error:
            logger.warning("transaction %s: hold not released: %s", transaction_id, error.message)
            return False
        audit_event_record(
            organization=organization,
            action=AuditAction.AUTHORIZATION_RENEWAL_FAILED,
            actor_type=ActorType.SYSTEM,
            patient=old.patient,
            transaction=old,
            changes={"rule": CollectionRule.HOLD_RENEWAL, "error": "No card on file any more."},
        )
        return False
    if new is not None and new.status == TransactionStatus.PENDING:
        return True  # the gateway did not answer: the next pass resumes it, then releases the old
    old.refresh_from_db()
    _superseded_release(old, renewal=new)
    return new is not None and new.status == TransactionStatus.AUTHORIZED


def _superseded_release(old: Transaction, *, renewal: Transaction | None = None) -> None:
    """Release a hold a renewal replaced, and say in its timeline whether the renewal held."""
    if renewal is None:
        renewal = (
            Transaction.objects.filter(
                appointment=old.appointment_id, automation_rule=CollectionRule.HOLD_RENEWAL, created_at__gte=old.created_at
            )
            .exclude(pk=old.pk)
            .order_by("-pk")
            .first()
        )
    renewed = renewal is not None and renewal.status in (TransactionStatus.AUTHORIZED, TransactionStatus.SUCCEEDED)
    reason = (
        f"Renewed before it lapsed: held again as transaction #{renewal.pk}."
        if renewed
        else "Could not be renewed before it lapsed: the copay is left to a payment request."
    )
    try:
        authorization_release(
            organization=old.organization, actor=None, transaction=old, reason=reason, rule=CollectionRule.HOLD_RENEWAL
        )
    except GatewayUnavailable as error:
        logger.warning("transaction %s: renewed hold not released yet: %s", old.pk, error.message)
        return
    except ApplicationError as error:
        logger.warning("transaction %s: renewed hold not released: %s", old.pk, error.message)
        return
    changes = {"rule": CollectionRule.HOLD_RENEWAL, "renewed_by": renewal.pk if renewal else None}
    if not renewed and renewal is not None:
        changes["error"] = renewal.last_error or "The card was declined."
    audit_event_record(
        organization=old.organization,
        action=AuditAction.AUTHORIZATION_RENEWED if renewed else AuditAction.AUTHORIZATION_RENEWAL_FAILED,
        actor_type=ActorType.SYSTEM,
        patient=old.patient,
        transaction=old,
        changes=changes,
    )
    if renewal is not None:
        audit_event_record(
            organization=old.organization,
            action=AuditAction.AUTHORIZATION_RENEWED if renewed else AuditAction.AUTHORIZATION_RENEWAL_FAILED,
            actor_type=ActorType.SYSTEM,
            patient=old.patient,
            transaction=renewal,
            changes={"rule": CollectionRule.HOLD_RENEWAL, "renews": old.pk, **({} if renewed else {"error": changes["error"]})},
        )


# -- the demo's clock --------------------------------------------------------------------------------------


def sandbox_hold_age(*, transaction: Transaction, by: timedelta) -> Transaction:
    """Make a Sandbox hold look ``by`` older, at the Sandbox and in LumaPay, as if that much time had
    passed since it was made (``manage.py sandbox_hold_age``: try renewal and lapse in ``make dev``
    without waiting days). Only for a hold at the Sandbox, which never moves money."""
    if transaction.vendor != "sandbox" or transaction.status != TransactionStatus.AUTHORIZED:
        raise ApplicationError("Only an amount held at the Sandbox can be aged.")
    if by <= timedelta(0):
        raise ApplicationError("Age a hold by a positive amount of time.")
    sandbox_processor.hold_age(transaction.gateway_checkout_id, by=by)
    with db_transaction.atomic():
        Transaction.objects.filter(pk=transaction.pk).update(created_at=transaction.created_at - by)
    transaction.refresh_from_db()
    return transaction
