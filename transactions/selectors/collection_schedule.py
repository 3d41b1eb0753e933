"""What the collection rules have to do: the scheduler's selections, across organizations, and the
Automation page's "today" and "tomorrow".

Each selection is ONE query over every organization whose rule is on (the beat's pass runs it
once a minute). Times are compared in the database, in each clinic's own time zone
(``Organization.timezone``), so quiet hours and "tomorrow" follow daylight saving time.

The hold rule takes some copays instead of a request: ``selectors.holds`` says which (its
contract, ``appointments_left_to_hold_rule``). Its test reads each card's recorded consent, which
names the clinic, so it is not one cross-organization predicate: the copay selections here leave it
out, and their callers drop the appointments it takes with ``without_those_left_to_hold_rule``, one
query per organization in the batch (never per appointment).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import (
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    TimeField,
    Value,
)
from django.db.models.functions import Cast

from ehr_sync.enums import AppointmentStatus
from ehr_sync.models import Appointment, Balance
from lumapay.models import ActorType, AuditEvent
from org_profile.models import Organization

from ..enums import CollectionRule, PaymentPlanStatus, PaymentRequestKind, PaymentRequestStatus, TransactionStatus
from ..models import BalanceAsked, CollectionRules, PaymentPlan, PaymentRequest, Transaction
from .holds import HOLD_LIFE, HOLD_RULES, appointments_left_to_hold_rule
from .payment_plans import plan_instalments_due_on

RULES = "organization__collection_rules__"


def copay_request_expires_at(starts_at: datetime.datetime) -> datetime.datetime:
    """An automatic copay request's link works until this long after the visit: the patient can
    still pay the copay from the link on the days after it (then staff take it from the balance)."""
    return starts_at + datetime.timedelta(hours=settings.COPAY_REQUEST_EXPIRES_AFTER_VISIT_HOURS)


# -- clinic time --------------------------------------------------------------------------------------


def _clinic_local_time(now: datetime.datetime, organization_path: str = "organization__"):
    """The clinic's wall-clock time at ``now`` (PostgreSQL's ``timezone(zone, moment)``)."""
    local = Func(
        F(f"{organization_path}timezone"), Value(now), function="timezone", output_field=DateTimeField()
    )
    return Cast(local, TimeField())


def _outside_quiet_hours(rules: str = RULES) -> Q:
    """The clinic's time (the ``local_time`` alias) is outside its quiet hours. Quiet hours may
    wrap midnight (21:00 to 08:00); equal start and end mean none."""
    start, end = F(f"{rules}quiet_hours_start"), F(f"{rules}quiet_hours_end")
    return (
        Q(**{f"{rules}quiet_hours_start": end})
        | (Q(**{f"{rules}quiet_hours_start__lt": end}) & (Q(local_time__lt=start) | Q(local_time__gte=end)))
        | (Q(**{f"{rules}quiet_hours_start__gt": end}) & Q(local_time__gte=end) & Q(local_time__lt=start))
    )


def is_quiet(rules: CollectionRules, moment: datetime.datetime, zone: str) -> bool:
    """Python's twin of ``_outside_quiet_hours`` (negated), for one moment: the pages use it."""
    local = moment.astimezone(ZoneInfo(zone)).time().replace(tzinfo=None)
    start, end = rules.quiet_hours_start, rules.quiet_hours_end
    if isinstance(start, str):
        start = datetime.time.fromisoformat(start)
    if isinstance(end, str):
        end = datetime.time.fromisoformat(end)
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_hours_end_after(rules: CollectionRules, moment: datetime.datetime, zone: str) -> datetime.datetime:
    """When a message due at ``moment`` can go: ``moment`` itself outside quiet hours, else the
    quiet hours' end (in the clinic's zone, whatever daylight saving time does that night)."""
    if not is_quiet(rules, moment, zone):
        return moment
    tz = ZoneInfo(zone)
    local = moment.astimezone(tz)
    end = rules.quiet_hours_end if not isinstance(rules.quiet_hours_end, str) else datetime.time.fromisoformat(rules.quiet_hours_end)
    candidate = datetime.datetime.combine(local.date(), end, tzinfo=tz)
    if candidate <= local:
        candidate += datetime.timedelta(days=1)
        candidate = datetime.datetime.combine(candidate.date(), end, tzinfo=tz)
    return candidate


def _reachable(patient: str = "patient__") -> Q:
    """An e-mail address, or a mobile number with consent to texts. (An opted-out number is
    refused centrally by the outbox, patient_messages.)"""
    return ~Q(**{f"{patient}email": ""}) | (~Q(**{f"{patient}mobile_phone": ""}) & Q(**{f"{patient}sms_consent": True}))


def _hours(path: str) -> ExpressionWrapper:
    return ExpressionWrapper(F(path) * Value(datetime.timedelta(hours=1)), output_field=DurationField())


# -- copay before the visit -------------------------------------------------------------------------


def without_those_left_to_hold_rule(appointments: list[Appointment]) -> tuple[list[Appointment], set[int]]:
    """``appointments`` split into those a copay request is for, and the ids of those the hold rule
    takes (``selectors.holds.appointments_left_to_hold_rule``): one query per organization with the
    hold rule on, whatever the number of appointments."""
    by_organization: dict[int, list[int]] = {}
    for appointment in appointments:
        by_organization.setdefault(appointment.organization_id, []).append(appointment.pk)
    holding = CollectionRules.objects.filter(organization_id__in=by_organization, hold_enabled=True)
    left: set[int] = set()
    for organization in Organization.objects.filter(pk__in=holding.values("organization_id")):
        left.update(
            appointments_left_to_hold_rule(
                organization=organization, appointments=Appointment.objects.filter(pk__in=by_organization[organization.pk])
            ).values_list("pk", flat=True)
        )
    return [appointment for appointment in appointments if appointment.pk not in left], left


def _copay_candidates(now: datetime.datetime) -> QuerySet[Appointment]:
    """Booked appointments with a copay, of organizations with the rule on, whose patient can be
    reached and who has no copay request, payment or hold for it yet (those the hold rule takes are
    dropped by the caller: ``without_those_left_to_hold_rule``)."""
    asked = PaymentRequest.objects.filter(appointment_id=OuterRef("pk")).filter(
        Q(automation_rule=CollectionRule.COPAY_BEFORE_VISIT)
        | Q(kind=PaymentRequestKind.COPAY, status__in=[PaymentRequestStatus.OPEN, PaymentRequestStatus.PAID])
    )
    paid = Transaction.objects.filter(appointment_id=OuterRef("pk")).filter(
        # Paid, or held and the hold still alive (a hold past the processor's 7 days has lapsed).
        Q(charged_cents__gt=0) | Q(status=TransactionStatus.AUTHORIZED, created_at__gt=now - HOLD_LIFE)
    )
    return (
        Appointment.objects.filter(
            **{f"{RULES}copay_request_enabled": True},
            status=AppointmentStatus.BOOKED,
            copay_cents__gt=0,
            starts_at__gt=now,
        )
        .filter(_reachable())
        .filter(~Exists(asked), ~Exists(paid))
    )


def copay_requests_due(*, now: datetime.datetime) -> QuerySet[Appointment]:
    """The appointments whose copay request is due now, across organizations, in one query: the
    visit starts within the organization's ``copay_request_hours_before`` and has not started, and
    the clinic is outside its quiet hours (a request due inside them waits for their end: it is
    simply not due yet). Soonest visit first. The pass locks these and reads what each request
    needs a batch at a time (``copay_request_appointments``)."""
    return (
        _copay_candidates(now)
        .alias(
            local_time=_clinic_local_time(now),
            due_from=ExpressionWrapper(Value(now) + _hours(f"{RULES}copay_request_hours_before"), output_field=DateTimeField()),
        )
        .filter(starts_at__lte=F("due_from"))
        .filter(_outside_quiet_hours())
        .order_by("starts_at", "pk")
    )


def copay_request_appointments(ids) -> list[Appointment]:
    """The appointments ``ids``, with the patient and location read alongside (only the fields a
    request needs: building a thousand rows' full models is most of a pass's reading), soonest
    first. The organizations (a handful) are read once per batch by the caller."""
    return list(
        Appointment.objects.filter(pk__in=list(ids)).select_related("patient", "location").only(*_DUE_FIELDS).order_by("starts_at", "pk")
    )


_DUE_FIELDS = (
    "organization_id", "patient_id", "location_id", "starts_at", "status", "copay_cents", "currency",
    "patient__organization_id", "patient__first_name", "patient__last_name", "patient__email",
    "patient__mobile_phone", "patient__sms_consent", "patient__preferred_language",
    "location__organization_id", "location__name", "location__is_active",
)


def copay_requests_to_cancel() -> QuerySet[PaymentRequest]:
    """Open automatic copay requests whose visit the EHR (or an upload) now says was cancelled or
    missed."""
    return PaymentRequest.objects.filter(
        automation_rule=CollectionRule.COPAY_BEFORE_VISIT,
        status=PaymentRequestStatus.OPEN,
        appointment__status__in=[AppointmentStatus.CANCELLED, AppointmentStatus.NO_SHOW],
    ).order_by("pk")


def copay_requests_to_move() -> QuerySet[PaymentRequest]:
    """Open automatic copay requests whose visit moved: their link's lifetime no longer follows
    the visit's start."""
    return (
        PaymentRequest.objects.filter(
            automation_rule=CollectionRule.COPAY_BEFORE_VISIT,
            status=PaymentRequestStatus.OPEN,
            appointment__status=AppointmentStatus.BOOKED,
        )
        .exclude(
            expires_at=ExpressionWrapper(
                F("appointment__starts_at")
                + Value(datetime.timedelta(hours=settings.COPAY_REQUEST_EXPIRES_AFTER_VISIT_HOURS)),
                output_field=DateTimeField(),
            )
        )
        .order_by("pk")
    )


# -- balances -------------------------------------------------------------------------------------------


def balance_requests_due(*, now: datetime.datetime) -> QuerySet[Balance]:
    """Balances above the organization's threshold and above what LumaPay already asked the
    patient for (``BalanceAsked``), of reachable patients, outside the clinic's quiet hours,
    across organizations, in one query. A balance whose open automatic request has a checkout
    under way waits for it to end (the patient may be paying it right now). A patient paying their
    balance through a payment plan (active, or waiting for staff) is not asked for it again."""
    on_a_plan = PaymentPlan.objects.filter(
        patient_id=OuterRef("patient_id"), status__in=[PaymentPlanStatus.ACTIVE, PaymentPlanStatus.NEEDS_ATTENTION]
    )
    asked = BalanceAsked.objects.filter(patient_id=OuterRef("patient_id"), asked_cents__gte=OuterRef("amount_due_cents"))
    paying = Transaction.objects.filter(
        payment_request__patient_id=OuterRef("patient_id"),
        payment_request__automation_rule=CollectionRule.BALANCE_REQUEST,
        payment_request__status=PaymentRequestStatus.OPEN,
    )
    return (
        Balance.objects.filter(**{f"{RULES}balance_request_enabled": True})
        .filter(amount_due_cents__gt=F(f"{RULES}balance_threshold_cents"))
        .filter(_reachable(), ~Exists(asked), ~Exists(paying), ~Exists(on_a_plan))
        .alias(local_time=_clinic_local_time(now))
        .filter(_outside_quiet_hours())
        .select_related("patient", "organization", "organization__collection_rules")
        .order_by("pk")
    )


def balance_requests_to_cancel() -> QuerySet[PaymentRequest]:
    """Open automatic balance requests whose patient's balance is now zero (or a credit): paid
    at the desk, adjusted in the EHR."""
    return PaymentRequest.objects.filter(
        automation_rule=CollectionRule.BALANCE_REQUEST,
        status=PaymentRequestStatus.OPEN,
        patient__balance__amount_due_cents__lte=0,
    ).order_by("pk")


def balance_asked_lower_sql() -> str:
    """The statement that lowers ``BalanceAsked`` to balances that dropped (one per pass)."""
    return """
        UPDATE transactions_balanceasked AS asked SET asked_cents = GREATEST(balance.amount_due_cents, 0),
               updated_at = %s
        FROM ehr_sync_balance AS balance
        WHERE balance.patient_id = asked.patient_id AND balance.amount_due_cents < asked.asked_cents
    """


_REMINDERS_DUE_SQL = """
    SELECT pr.id, step.number, step.days_after
    FROM transactions_paymentrequest pr
    JOIN org_profile_organization org ON org.id = pr.organization_id
    JOIN transactions_collectionrules rules ON rules.organization_id = pr.organization_id
    JOIN ehr_sync_patient patient ON patient.id = pr.patient_id
    JOIN ehr_sync_balance balance ON balance.patient_id = pr.patient_id
    CROSS JOIN LATERAL (
        -- The latest step of the cadence that is due: a pass that missed an earlier step (the
        -- beat was down) sends the current one only, never two reminders at once.
        SELECT count(*) AS number, max(d.value::int) AS days_after
        FROM jsonb_array_elements_text(rules.balance_reminder_days) AS d(value)
        WHERE pr.created_at + make_interval(days => d.value::int) <= %(now)s
    ) AS step
    WHERE pr.automation_rule = 'balance_request' AND pr.status = 'open' AND pr.expires_at > %(now)s
      AND rules.balance_request_enabled
      AND balance.amount_due_cents > 0
      AND (patient.email <> '' OR (patient.mobile_phone <> '' AND patient.sms_consent))
      AND step.number > COALESCE((SELECT max(r.number) FROM transactions_paymentreminder r
                                  WHERE r.payment_request_id = pr.id), 0)
      AND (CASE
             WHEN rules.quiet_hours_start = rules.quiet_hours_end THEN true
             WHEN rules.quiet_hours_start < rules.quiet_hours_end THEN
               timezone(org.timezone, %(now)s)::time < rules.quiet_hours_start
               OR timezone(org.timezone, %(now)s)::time >= rules.quiet_hours_end
             ELSE timezone(org.timezone, %(now)s)::time >= rules.quiet_hours_end
                  AND timezone(org.timezone, %(now)s)::time < rules.quiet_hours_start
           END)
    ORDER BY pr.id
"""


def balance_reminders_due(*, now: datetime.datetime) -> list[tuple[int, int, int]]:
    """(payment request id, reminder number, days after the first send) of every reminder due
    now, across organizations, in one query: the request is open and unexpired, the balance is
    still owed, the patient can be reached, the rule is on and the clinic is outside its quiet
    hours."""
    with connection.cursor() as cursor:
        cursor.execute(_REMINDERS_DUE_SQL, {"now": now})
        return [tuple(row) for row in cursor.fetchall()]


# -- the Automation page ------------------------------------------------------------------------------


def clinic_day(organization: Organization, day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    """The day's start and end in the clinic's time zone (23 or 25 hours on a DST change)."""
    tz = ZoneInfo(organization.timezone)
    start = datetime.datetime.combine(day, datetime.time(), tzinfo=tz)
    end = datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time(), tzinfo=tz)
    return start, end


def automation_done(*, organization: Organization, start: datetime.datetime, end: datetime.datetime) -> QuerySet[AuditEvent]:
    """What LumaPay did by itself between ``start`` and ``end``: audit events of the system with
    the rule that acted, newest first."""
    return (
        AuditEvent.objects.filter(
            organization=organization,
            actor_type=ActorType.SYSTEM,
            created_at__gte=start,
            created_at__lt=end,
            changes__has_key="rule",
        )
        .select_related("patient", "payment_request", "transaction")
        .order_by("-created_at", "-id")
    )


@dataclass(frozen=True)
class PlannedAction:
    """Something a collection rule will do: when, for whom, how much, and the row to open (a
    request or transaction, by id: no PHI in its address)."""

    rule: str
    at: datetime.datetime
    patient_id: int
    patient_name: str
    amount_cents: int
    currency: str
    what: str
    payment_request_id: int | None = None
    transaction_id: int | None = None


# A source of "tomorrow": (organization, rules, start, end) -> the actions it will take in [start, end).
TomorrowSource = Callable[[Organization, CollectionRules, datetime.datetime, datetime.datetime], Iterable[PlannedAction]]


def copay_requests_planned(organization, rules, start, end) -> Iterable[PlannedAction]:
    """Copay requests the rule will send between ``start`` and ``end``: the visit's start minus the
    lead falls in the window (pushed to the quiet hours' end when it falls inside them)."""
    if not rules.copay_request_enabled:
        return []
    lead = datetime.timedelta(hours=rules.copay_request_hours_before)
    appointments = (
        _copay_candidates(start)
        .filter(organization=organization, starts_at__gte=start, starts_at__lt=end + lead + datetime.timedelta(hours=24))
        .select_related("patient")
        .order_by("starts_at", "pk")
    )
    planned = []
    appointments, _held = without_those_left_to_hold_rule(list(appointments))
    for appointment in appointments:
        at = quiet_hours_end_after(rules, max(appointment.starts_at - lead, start), organization.timezone)
        if start <= at < end and at < appointment.starts_at:
            planned.append(
                PlannedAction(
                    rule=CollectionRule.COPAY_BEFORE_VISIT,
                    at=at,
                    patient_id=appointment.patient_id,
                    patient_name=appointment.patient.full_name,
                    amount_cents=appointment.copay_cents,
                    currency=appointment.currency,
                    what="Copay request before the visit",
                )
            )
    return planned


def holds_planned(organization, rules, start, end) -> Iterable[PlannedAction]:
    """Holds the hold rule will place between ``start`` and ``end`` (by its lead): the appointments
    it takes (``selectors.holds.appointments_left_to_hold_rule``) not held by it yet."""
    if not rules.hold_enabled:
        return []
    lead = datetime.timedelta(hours=rules.hold_hours_before)
    held = Transaction.objects.filter(appointment_id=OuterRef("pk"), automation_rule__in=HOLD_RULES)
    upcoming = Appointment.objects.filter(
        organization=organization,
        status=AppointmentStatus.BOOKED,
        copay_cents__gt=0,
        starts_at__gte=start + lead,
        starts_at__lt=end + lead,
    )
    appointments = (
        appointments_left_to_hold_rule(organization=organization, appointments=upcoming)
        .filter(~Exists(held))
        .select_related("patient")
        .order_by("starts_at", "pk")
    )
    return [
        PlannedAction(
            rule=CollectionRule.HOLD_BEFORE_VISIT,
            at=appointment.starts_at - lead,
            patient_id=appointment.patient_id,
            patient_name=appointment.patient.full_name,
            amount_cents=appointment.copay_cents,
            currency=appointment.currency,
            what="Copay held on the card on file",
        )
        for appointment in appointments
    ]


def balance_reminders_planned(organization, rules, start, end) -> Iterable[PlannedAction]:
    """Reminders of open automatic balance requests whose cadence step falls between ``start``
    and ``end`` (quiet hours pushing it to their end)."""
    if not rules.balance_request_enabled:
        return []
    days = sorted(int(day) for day in rules.balance_reminder_days or [])
    if not days:
        return []
    requests = (
        PaymentRequest.objects.filter(
            organization=organization,
            automation_rule=CollectionRule.BALANCE_REQUEST,
            status=PaymentRequestStatus.OPEN,
            patient__balance__amount_due_cents__gt=0,
            created_at__gte=start - datetime.timedelta(days=days[-1] + 1),
        )
        .select_related("patient")
        .prefetch_related("reminders")
        .order_by("pk")
    )
    planned = []
    for payment_request in requests:
        sent = max((reminder.number for reminder in payment_request.reminders.all()), default=0)
        for number, day in enumerate(days, start=1):
            if number <= sent:
                continue
            at = quiet_hours_end_after(rules, payment_request.created_at + datetime.timedelta(days=day), organization.timezone)
            if start <= at < end and at < payment_request.expires_at:
                planned.append(
                    PlannedAction(
                        rule=CollectionRule.BALANCE_REMINDER,
                        at=at,
                        patient_id=payment_request.patient_id,
                        patient_name=payment_request.patient.full_name,
                        amount_cents=payment_request.amount_cents,
                        currency=payment_request.currency,
                        what=f"Reminder {number} (day {day})",
                        payment_request_id=payment_request.pk,
                    )
                )
    return planned


# What the automation will do tomorrow: each source lists its own actions. The payment-plan
# instalments (branch ``plans``) and the hold rule's own selector are added here at merge.
def plan_instalments_planned(organization, rules, start, end) -> Iterable[PlannedAction]:
    """Plan instalments LumaPay will charge (or try again) between ``start`` and ``end``: those due
    on the clinic's dates the window covers, by when each is charged."""
    zone = ZoneInfo(organization.timezone)
    first, last = start.astimezone(zone).date(), (end - datetime.timedelta(microseconds=1)).astimezone(zone).date()
    planned = []
    day = first
    while day <= last:
        for instalment in plan_instalments_due_on(organization=organization, day=day):
            if start <= instalment.next_attempt_at < end:
                plan = instalment.plan
                planned.append(
                    PlannedAction(
                        rule=CollectionRule.PLAN_INSTALMENT,
                        at=instalment.next_attempt_at,
                        patient_id=plan.patient_id,
                        patient_name=plan.patient.full_name,
                        amount_cents=instalment.amount_cents,
                        currency=plan.currency,
                        what=f"Instalment {instalment.number} of {plan.instalment_count}"
                        + (" (tried again after a decline)" if instalment.attempts else ""),
                        transaction_id=instalment.transaction_id,
                    )
                )
        day += datetime.timedelta(days=1)
    return planned


TOMORROW_SOURCES: list[TomorrowSource] = [copay_requests_planned, holds_planned, balance_reminders_planned, plan_instalments_planned]


def automation_planned(
    *, organization: Organization, start: datetime.datetime, end: datetime.datetime, sources: Iterable[TomorrowSource] | None = None
) -> list[PlannedAction]:
    """Every action the rules will take between ``start`` and ``end``, soonest first."""
    from ..models import collection_rules_for

    rules = collection_rules_for(organization)
    planned = [action for source in (sources or TOMORROW_SOURCES) for action in source(organization, rules, start, end)]
    return sorted(planned, key=lambda action: (action.at, action.rule, action.patient_id))
