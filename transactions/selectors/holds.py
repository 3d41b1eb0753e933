"""Which appointments the hold rule takes care of, and which holds are due for something: read by
the hold passes (``services.holds``) and by the copay-request scheduler, so the two never both
collect one copay and never both leave it.

The contract, in one sentence: an appointment is **left to the hold rule** exactly when its
organization has ``hold_enabled``, its patient has an active card on file at the organization's
gateway whose recorded consent covers holding a copay before a visit, its copay is within the
organization's limit for one hold of a card (``saved_card_charge_max_cents``; a larger copay is
asked for, never held), and no hold the rules made
for it (``automation_rule`` HOLD_BEFORE_VISIT or HOLD_RENEWAL) has failed, or been released
uncaptured (by staff, for a missed visit, or because it lapsed at the processor). A hold released
because a renewal replaced it does not count: the renewal stands for it (and if the renewal
fails, that failure counts). Everything else is the copay request's.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from ehr_sync.enums import AppointmentStatus
from ehr_sync.models import Appointment
from org_profile.models import Membership, Organization
from org_profile.selectors import scope_to_locations

from ..enums import CollectionRule, PaymentRequestStatus, SavedCardStatus, TransactionStatus
from ..models import PaymentRequest, SavedCard, Transaction, collection_rules_for
from .saved_cards import card_on_file_consent_texts, card_on_file_offered

HOLD_RULES = (CollectionRule.HOLD_BEFORE_VISIT, CollectionRule.HOLD_RENEWAL)
# A hold lasts 7 days at the processor: one older than this, for a visit still ahead, is renewed.
HOLD_RENEW_AFTER = timedelta(days=6)
HOLD_LIFE = timedelta(days=7)
# Appointment statuses that mean the patient came: the held copay is captured.
ARRIVED_STATUSES = (AppointmentStatus.ARRIVED, AppointmentStatus.FULFILLED)


def hold_cards(*, organization: Organization) -> QuerySet[SavedCard]:
    """The organization's cards the hold rule may use: active, kept by its gateway today, with a
    recorded consent that covers holding a copay before a visit, newest first."""
    return SavedCard.objects.filter(
        organization=organization,
        status=SavedCardStatus.ACTIVE,
        vendor=organization.payment_gateway,
        consent_text__in=card_on_file_consent_texts(organization),
    ).order_by("-consented_at", "-id")


def holds_given_up(*, organization: Organization) -> QuerySet[Transaction]:
    """The rules' holds that did not hold (declined, failed), were let go uncaptured (released by
    staff, for a missed visit, or lapsed and recorded so), or are past the processor's 7 days though
    no one has recorded the lapse yet; not counting one a renewal replaced."""
    lapsed = Q(status=TransactionStatus.AUTHORIZED, hold_superseded_at__isnull=True, created_at__lte=timezone.now() - HOLD_LIFE)
    return Transaction.objects.filter(organization=organization, automation_rule__in=HOLD_RULES).filter(
        Q(status=TransactionStatus.FAILED) | Q(status=TransactionStatus.RELEASED, hold_superseded_at__isnull=True) | lapsed
    )


def appointments_left_to_hold_rule(
    *, organization: Organization, appointments: QuerySet[Appointment] | None = None
) -> QuerySet[Appointment]:
    """Of ``appointments`` (default: all the organization's), those the hold rule takes care of
    (see the module's contract). The copay-request scheduler excludes these; the hold pass picks
    from them. None at all when the rule is off or the organization's gateway keeps no cards."""
    appointments = Appointment.objects.all() if appointments is None else appointments
    appointments = appointments.filter(organization=organization)
    if not collection_rules_for(organization).hold_enabled or not card_on_file_offered(organization):
        return appointments.none()
    return appointments.filter(
        Exists(hold_cards(organization=organization).filter(patient=OuterRef("patient"))),
        copay_cents__lte=organization.saved_card_charge_max_cents,
    ).exclude(Exists(holds_given_up(organization=organization).filter(appointment=OuterRef("pk"))))


def appointment_left_to_hold_rule(appointment: Appointment) -> bool:
    """``appointments_left_to_hold_rule`` for one appointment."""
    return appointments_left_to_hold_rule(
        organization=appointment.organization, appointments=Appointment.objects.filter(pk=appointment.pk)
    ).exists()


def appointments_due_for_hold(*, organization: Organization, now: datetime) -> QuerySet[Appointment]:
    """Booked appointments with a copay, starting within the organization's ``hold_hours_before``
    and not yet started, left to the hold rule, never held by it yet, and whose copay is not
    already paid or held (by anyone) nor asked for by a request still open (staff sent one: the
    patient may pay it, so holding too could collect twice), soonest first."""
    rules = collection_rules_for(organization)
    upcoming = Appointment.objects.filter(
        organization=organization,
        status=AppointmentStatus.BOOKED,
        copay_cents__gt=0,
        starts_at__gt=now,
        starts_at__lte=now + timedelta(hours=rules.hold_hours_before),
    )
    paid_or_held = Transaction.objects.filter(appointment=OuterRef("pk")).filter(
        Q(charged_cents__gt=0) | Q(status__in=[TransactionStatus.AUTHORIZED, TransactionStatus.PENDING])
    )
    held_by_rule = Transaction.objects.filter(appointment=OuterRef("pk"), automation_rule__in=HOLD_RULES)
    asked_or_paid = PaymentRequest.objects.filter(
        appointment=OuterRef("pk"), status__in=[PaymentRequestStatus.PAID, PaymentRequestStatus.OPEN]
    )
    return (
        appointments_left_to_hold_rule(organization=organization, appointments=upcoming)
        .exclude(Exists(paid_or_held))
        .exclude(Exists(held_by_rule))
        .exclude(Exists(asked_or_paid))
        .order_by("starts_at", "id")
    )


def holds_to_capture() -> QuerySet[Transaction]:
    """Amounts held (current, not being replaced) for appointments the EHR says the patient came to."""
    return Transaction.objects.filter(
        status=TransactionStatus.AUTHORIZED,
        hold_superseded_at__isnull=True,
        appointment__status__in=ARRIVED_STATUSES,
    ).order_by("pk")


def holds_to_renew(*, now: datetime) -> QuerySet[Transaction]:
    """The rules' current holds made more than ``HOLD_RENEW_AFTER`` ago whose visit is still ahead
    and booked: renewed before they lapse."""
    return Transaction.objects.filter(
        status=TransactionStatus.AUTHORIZED,
        automation_rule__in=HOLD_RULES,
        hold_superseded_at__isnull=True,
        created_at__lte=now - HOLD_RENEW_AFTER,
        appointment__status=AppointmentStatus.BOOKED,
        appointment__starts_at__gt=now,
    ).order_by("pk")


def holds_superseded() -> QuerySet[Transaction]:
    """Holds still held after a renewal began to replace them, whose renewal is no longer being
    made (held, or failed): to be released."""
    renewal_in_flight = Transaction.objects.filter(
        appointment=OuterRef("appointment"),
        automation_rule=CollectionRule.HOLD_RENEWAL,
        status=TransactionStatus.PENDING,
    )
    return (
        Transaction.objects.filter(status=TransactionStatus.AUTHORIZED, hold_superseded_at__isnull=False)
        .exclude(Exists(renewal_in_flight))
        .order_by("pk")
    )


def appointment_for_check_in(*, membership: Membership, pk: int) -> Appointment | None:
    """One of the organization's appointments at the member's locations (None otherwise: a 404)."""
    appointments = Appointment.objects.filter(organization=membership.organization, pk=pk).select_related("patient", "location")
    return scope_to_locations(appointments, membership=membership).first()


def appointments_held(*, membership: Membership, patient) -> set[int]:
    """The patient's booked appointments at the member's locations with an amount held for them:
    staff may check them in (and capture) from the profile."""
    held = Transaction.objects.filter(
        organization=membership.organization,
        patient=patient,
        status=TransactionStatus.AUTHORIZED,
        hold_superseded_at__isnull=True,
        appointment__status=AppointmentStatus.BOOKED,
    )
    return set(scope_to_locations(held, membership=membership, field="appointment__location").values_list("appointment_id", flat=True))
