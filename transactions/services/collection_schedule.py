"""The collection rules at work: what LumaPay asks patients for by itself, once a minute (the beat
task ``collection_schedule_run``), and the rules' settings.

One pass (``collection_schedule_run``)
--------------------------------------
1. Copay requests follow their visits: an open automatic request whose visit the EHR (or an upload)
   now reports cancelled or a no-show is cancelled; one whose visit moved gets a link that lasts
   until the new visit plus ``COPAY_REQUEST_EXPIRES_AFTER_VISIT_HOURS``. The patient is not sent
   anything about the move: the link they have keeps working, and the clinic's own scheduling
   tells them of the new time. ehr_sync never calls up here: this pass reads the mirror.
2. Copay requests that are due are made (``copay_requests_send_due``).
3. Balance requests: balances that dropped lower what was asked (``BalanceAsked``); an open
   automatic balance request whose balance is now zero is cancelled; balances that appeared or
   grew above the threshold are asked for, replacing the open request when there is one (see
   ``balance_requests_send_due`` for why).
4. Reminders of open automatic balance requests, on the organization's cadence.

Quiet hours: a request or reminder due inside the clinic's quiet hours is not made until they end
(the selectors treat it as not due yet). The request is not made early with its messages held:
then staff would see "sent" on a request no patient has seen, its link's lifetime and the
"sent at" on its history would be wrong, and the outbox would have to learn about clinics' quiet
hours. Waiting keeps one meaning for a request's existence: the patient has been asked.

Exactly one request per appointment: each batch locks the due appointments it takes
(``FOR UPDATE SKIP LOCKED``, so a second pass at once takes other rows, and an import that is
writing an appointment holds it back until the next pass), and each request is made in its own
savepoint, so the database's one-per-appointment constraint turns a request another pass made
first into a skipped row (``IntegrityError``), never a failed pass. A worker killed mid-pass
rolls its batch back: its appointments are due again on the next pass. Messages are owed in the
same transaction through the outbox (``patient_messages``), which sends them after commit.

Every action is recorded with ``ActorType.SYSTEM`` ("LumaPay") and ``changes["rule"]``.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_noop

from ehr_sync.enums import AppointmentStatus
from ehr_sync.models import Appointment
from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import ActorType
from org_profile.access import MANAGERS, AccessDenied, staff_access
from org_profile.models import Location, Organization

from ..enums import CollectionRule, PaymentRequestKind, PaymentRequestStatus
from ..errors import PatientUnreachableError
from ..locks import payment_request_lock
from ..models import BalanceAsked, CollectionRules, PaymentReminder, PaymentRequest
from ..selectors.collection_schedule import (
    balance_asked_lower_sql,
    balance_reminders_due,
    balance_requests_due,
    balance_requests_to_cancel,
    copay_request_expires_at,
    copay_request_appointments,
    copay_requests_due,
    without_those_left_to_hold_rule,
    copay_requests_to_cancel,
    copay_requests_to_move,
)
from .patient_messages import payment_link_deliveries_owe
from .payment_requests import _delivery_channels, payment_request_cancel, payment_request_send

logger = logging.getLogger(__name__)

# What the patient reads on the message and the pay page (no visit reason, no provider), stored in
# the patient's language (``_in_language_of``) as staff would type it for them.
COPAY_BILLING_ITEM = gettext_noop("Your upcoming visit")
BALANCE_BILLING_ITEM = gettext_noop("Account balance")
BATCH_SIZE = 200

_MISSED_VISIT_REASONS = {
    AppointmentStatus.CANCELLED: "The visit was cancelled.",
    AppointmentStatus.NO_SHOW: "The patient did not come to the visit.",
}


@dataclass
class PassOutcome:
    """What one pass did, by kind (the task returns it as a dict; the benchmark reads it)."""

    copay_sent: int = 0
    copay_cancelled: int = 0
    copay_moved: int = 0
    balance_sent: int = 0
    balance_replaced: int = 0
    balance_cancelled: int = 0
    reminders_sent: int = 0
    skipped: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def collection_schedule_run(*, now: datetime.datetime | None = None, batch_size: int = BATCH_SIZE) -> PassOutcome:
    """One pass of every collection rule, across organizations (beat, every minute)."""
    now = now or timezone.now()
    outcome = PassOutcome()
    copay_requests_follow_visits(outcome=outcome)
    copay_requests_send_due(now=now, outcome=outcome, batch_size=batch_size)
    balance_requests_send_due(now=now, outcome=outcome, batch_size=batch_size)
    balance_reminders_send_due(now=now, outcome=outcome)
    return outcome


# -- copay before the visit -----------------------------------------------------------------------


def copay_requests_follow_visits(*, outcome: PassOutcome | None = None) -> PassOutcome:
    """Cancel the open automatic copay requests of cancelled and missed visits; move the link's
    lifetime of those whose visit moved."""
    outcome = outcome or PassOutcome()
    for payment_request in copay_requests_to_cancel().select_related("organization", "appointment"):
        try:
            payment_request_cancel(
                organization=payment_request.organization,
                actor=None,
                payment_request=payment_request,
                reason=_MISSED_VISIT_REASONS.get(payment_request.appointment.status, "The visit will not happen."),
                rule=CollectionRule.COPAY_BEFORE_VISIT,
            )
        except ApplicationError:
            continue  # paid, or cancelled by staff, since the query ran
        outcome.copay_cancelled += 1
    for payment_request_id in copay_requests_to_move().values_list("pk", flat=True):
        if copay_request_move(payment_request_id=payment_request_id):
            outcome.copay_moved += 1
    return outcome


def copay_request_move(*, payment_request_id: int) -> bool:
    """The request's link now lasts until its visit's new start plus the grace period. Returns
    whether it moved (an appointment read under the request's lock, so the newest start wins)."""
    with transaction.atomic():
        locked = payment_request_lock(payment_request_id=payment_request_id)
        if locked.status != PaymentRequestStatus.OPEN or locked.appointment_id is None:
            return False
        appointment = Appointment.objects.get(pk=locked.appointment_id)
        if appointment.status != AppointmentStatus.BOOKED:
            return False
        expires_at = copay_request_expires_at(appointment.starts_at)
        if expires_at == locked.expires_at:
            return False
        old_expires_at = locked.expires_at
        locked.expires_at = expires_at
        locked.save(update_fields=["expires_at"])
        audit_event_record(
            organization=locked.organization,
            action=AuditAction.PAYMENT_REQUEST_MOVED,
            actor_type=ActorType.SYSTEM,
            patient=locked.patient,
            payment_request=locked,
            changes={
                "expires_at": [old_expires_at.isoformat(), expires_at.isoformat()],
                "appointment_id": appointment.pk,
                "appointment_starts_at": appointment.starts_at.isoformat(),
                "patient_told": False,
                "rule": CollectionRule.COPAY_BEFORE_VISIT,
            },
        )
    return True


def copay_requests_send_due(
    *, now: datetime.datetime, outcome: PassOutcome | None = None, batch_size: int = BATCH_SIZE
) -> PassOutcome:
    """Make the copay request of every appointment due now (``copay_requests_due``), a batch at a
    time, each batch in one transaction holding its appointments' locks. Per request a constant
    number of statements: a savepoint, the request, a delivery per channel, the audit event."""
    outcome = outcome or PassOutcome()
    skipped: set[int] = set()
    while True:
        with transaction.atomic():
            # The due appointments of this batch, locked (another pass skips them), then read.
            due = copay_request_appointments(
                copay_requests_due(now=now)
                .exclude(pk__in=skipped)
                .select_for_update(of=("self",), skip_locked=True)
                .values_list("pk", flat=True)[:batch_size]
            )
            # The hold rule's share of the batch is its to take (one query per organization).
            to_ask, held = without_those_left_to_hold_rule(due)
            skipped |= held
            organizations = Organization.objects.in_bulk({appointment.organization_id for appointment in to_ask})
            for appointment in to_ask:
                appointment.organization = organizations[appointment.organization_id]
                if _copay_request_make(appointment):
                    outcome.copay_sent += 1
                else:
                    skipped.add(appointment.pk)
                    outcome.skipped += 1
        if len(due) < batch_size:
            return outcome


def _copay_request_make(appointment: Appointment) -> bool:
    try:
        payment_request_send(
            organization=appointment.organization,
            actor=None,
            patient=appointment.patient,
            location=appointment.location,
            kind=PaymentRequestKind.COPAY,
            billing_item=_in_language_of(appointment.patient, COPAY_BILLING_ITEM),
            amount_cents=appointment.copay_cents,
            appointment=appointment,
            automation_rule=CollectionRule.COPAY_BEFORE_VISIT,
            expires_at=copay_request_expires_at(appointment.starts_at),
        )
    except IntegrityError:
        # Another pass made this appointment's request first: the constraint kept it to one.
        logger.info("appointment %s: its automatic copay request exists already", appointment.pk)
        return False
    except ApplicationError as error:
        # A location closed, an amount over the limit: staff see it on the Automation page's
        # "tomorrow" until it is fixed. The type only: the message can name the patient.
        logger.warning("appointment %s: no automatic copay request (%s)", appointment.pk, type(error).__name__)
        return False
    return True


def _in_language_of(patient, text: str) -> str:
    with translation.override(patient.preferred_language or settings.LANGUAGE_CODE):
        return gettext(text)


# -- balances -------------------------------------------------------------------------------------


def balance_requests_send_due(
    *, now: datetime.datetime, outcome: PassOutcome | None = None, batch_size: int = BATCH_SIZE
) -> PassOutcome:
    """Ask for balances that appeared or grew above the threshold.

    A balance that grows while an automatic request for it is open *replaces* that request: the
    open one is cancelled (rule recorded, "replaced") and one for the whole new balance is sent.
    Leaving it would have the patient pay the old amount believing they are done, with reminders
    quoting a figure that is no longer what they owe, and the growth asked for only after. A
    request whose checkout is under way is left alone until it ends (``balance_requests_due``)."""
    outcome = outcome or PassOutcome()
    with connection.cursor() as cursor:
        cursor.execute(balance_asked_lower_sql(), [now])
    for payment_request in balance_requests_to_cancel().select_related("organization"):
        try:
            payment_request_cancel(
                organization=payment_request.organization,
                actor=None,
                payment_request=payment_request,
                reason="The balance has been paid.",
                rule=CollectionRule.BALANCE_REQUEST,
            )
        except ApplicationError:
            continue
        outcome.balance_cancelled += 1
    skipped: set[int] = set()
    while True:
        with transaction.atomic():
            due = list(
                balance_requests_due(now=now).exclude(pk__in=skipped).select_for_update(of=("self",), skip_locked=True)[
                    :batch_size
                ]
            )
            patient_ids = [balance.patient_id for balance in due]
            open_requests = {
                payment_request.patient_id: payment_request
                for payment_request in PaymentRequest.objects.select_for_update(of=("self",))
                .filter(
                    patient_id__in=patient_ids,
                    automation_rule=CollectionRule.BALANCE_REQUEST,
                    status=PaymentRequestStatus.OPEN,
                )
                .select_related("organization", "patient", "location")
                .order_by("pk")
            }
            locations = _balance_locations(due)
            for balance in due:
                made = _balance_request_make(
                    balance, replaces=open_requests.get(balance.patient_id), location=locations.get(balance.patient_id)
                )
                if made:
                    outcome.balance_sent += 1
                    outcome.balance_replaced += balance.patient_id in open_requests
                else:
                    skipped.add(balance.pk)
                    outcome.skipped += 1
        if len(due) < batch_size:
            return outcome


def _balance_locations(balances) -> dict[int, Location]:
    """Where each balance is asked from: the location of the patient's latest visit, else the
    organization's first active location. Two queries a batch."""
    patient_ids = [balance.patient_id for balance in balances]
    latest = {
        appointment.patient_id: appointment.location
        for appointment in Appointment.objects.filter(patient_id__in=patient_ids, location__is_active=True)
        .select_related("location")
        .order_by("patient_id", "-starts_at", "-pk")
        .distinct("patient_id")
    }
    organization_ids = {balance.organization_id for balance in balances if balance.patient_id not in latest}
    first = {}
    for location in Location.objects.filter(organization_id__in=organization_ids, is_active=True).order_by("organization_id", "pk"):
        first.setdefault(location.organization_id, location)
    return {balance.patient_id: latest.get(balance.patient_id) or first.get(balance.organization_id) for balance in balances}


def _balance_request_make(balance, *, replaces: PaymentRequest | None, location: Location | None) -> bool:
    if location is None:
        logger.warning("balance %s: no active location to ask from", balance.pk)
        return False
    try:
        with transaction.atomic():
            if replaces is not None:
                payment_request_cancel(
                    organization=balance.organization,
                    actor=None,
                    payment_request=replaces,
                    reason="Replaced by a request for the new balance.",
                    rule=CollectionRule.BALANCE_REQUEST,
                )
            payment_request = payment_request_send(
                organization=balance.organization,
                actor=None,
                patient=balance.patient,
                location=location,
                kind=PaymentRequestKind.BALANCE,
                billing_item=_in_language_of(balance.patient, BALANCE_BILLING_ITEM),
                amount_cents=balance.amount_due_cents,
                automation_rule=CollectionRule.BALANCE_REQUEST,
            )
            BalanceAsked.objects.update_or_create(
                patient_id=balance.patient_id,
                defaults={
                    "organization_id": balance.organization_id,
                    "asked_cents": balance.amount_due_cents,
                    "payment_request": payment_request,
                },
            )
    except IntegrityError:
        logger.info("balance %s: another pass asked for it first", balance.pk)
        return False
    except ApplicationError as error:
        logger.warning("balance %s: no automatic balance request (%s)", balance.pk, type(error).__name__)
        return False
    return True


def balance_reminders_send_due(*, now: datetime.datetime, outcome: PassOutcome | None = None) -> PassOutcome:
    """Send every reminder due now (``balance_reminders_due``). Each is recorded
    (``PaymentReminder``, unique per request and number) in the transaction that owes its
    messages: a second pass at once, or a retry, cannot send it twice."""
    outcome = outcome or PassOutcome()
    for payment_request_id, number, days_after in balance_reminders_due(now=now):
        try:
            sent = balance_reminder_send(
                payment_request_id=payment_request_id, number=number, days_after=days_after, now=now
            )
        except IntegrityError:
            sent = False  # another pass sent it
        if sent:
            outcome.reminders_sent += 1
        else:
            outcome.skipped += 1
    return outcome


def balance_reminder_send(*, payment_request_id: int, number: int, days_after: int, now: datetime.datetime) -> bool:
    """Remind the patient of an open automatic balance request: the same link again, by their
    current channels. Returns whether it was sent (not when the request closed meanwhile or the
    patient can no longer be reached)."""
    with transaction.atomic():
        locked = payment_request_lock(payment_request_id=payment_request_id)
        if locked.status != PaymentRequestStatus.OPEN or locked.expires_at <= now:
            return False
        try:
            channels = _delivery_channels(locked.patient)
        except PatientUnreachableError:
            return False
        PaymentReminder.objects.create(
            organization_id=locked.organization_id,
            payment_request=locked,
            number=number,
            days_after=days_after,
            sent_at=now,
        )
        locked.last_sent_at = now
        locked.save(update_fields=["last_sent_at"])
        payment_link_deliveries_owe(payment_request=locked, channels=channels)
        audit_event_record(
            organization=locked.organization,
            action=AuditAction.PAYMENT_REQUEST_REMINDED,
            actor_type=ActorType.SYSTEM,
            patient=locked.patient,
            payment_request=locked,
            changes={
                "reminder": number,
                "days_after": days_after,
                "channels": [channel for channel, _ in channels],
                "rule": CollectionRule.BALANCE_REMINDER,
            },
        )
    return True


# -- the rules' settings ------------------------------------------------------------------------------

RULE_FIELDS = (
    "copay_request_enabled",
    "copay_request_hours_before",
    "hold_enabled",
    "hold_hours_before",
    "balance_request_enabled",
    "balance_threshold_cents",
    "balance_reminder_days",
    "quiet_hours_start",
    "quiet_hours_end",
)


def collection_rules_update(*, organization: Organization, actor, values: dict) -> CollectionRules:
    """Save the organization's collection rules (managers and administrators), with an audit
    event of the old and new values. Saving sends nothing: the next pass of the scheduler acts on
    the new rules. ``values`` are already checked (``CollectionRulesForm``)."""
    staff_access(
        organization=organization,
        actor=actor,
        roles=MANAGERS,
        denied={AccessDenied.ROLE: "Only managers and administrators can change the collection rules."},
    )
    with transaction.atomic():
        rules, created = CollectionRules.objects.select_for_update(of=("self",)).get_or_create(organization=organization)
        if created:
            rules.refresh_from_db()  # the defaults as the database holds them (times, not text)
        changes = {}
        for name in RULE_FIELDS:
            if name not in values:
                continue
            old, new = getattr(rules, name), values[name]
            if old != new:
                changes[name] = [_audit_value(old), _audit_value(new)]
                setattr(rules, name, new)
        if changes:
            rules.updated_by = actor
            rules.save()
            audit_event_record(
                organization=organization,
                action=AuditAction.COLLECTION_RULES_CHANGED,
                actor_type=ActorType.STAFF,
                actor_user=actor,
                changes=changes,
            )
    return rules


def _audit_value(value):
    if isinstance(value, datetime.time):
        return value.strftime("%H:%M")
    return value
