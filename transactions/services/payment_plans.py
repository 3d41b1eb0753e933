"""Payment plans: a balance (or a chosen amount) split into instalments charged to a card on file.

Set up by staff whose role may use cards on file (``Organization.saved_card_roles``) with the
patient's consent given to them (in person or by phone), or by the patient on their payment link
(past the date-of-birth check), choosing one of the offered schedules (``PLAN_OFFERS``). Either way
the consent is recorded as shown: the text, when, by whom or from where.

Charging (``payment_plan_instalments_charge_due``, on beat) takes each instalment due in three
steps, as the outbox does, with no lock held across the gateway call:

1. claim, under the instalment's lock: still due, the plan still active; write the attempt and its
   idempotency key (``plan_instalment:<instalment>:<attempt>``) *before* the gateway hears of it,
   or reuse the unfinished attempt of a sender that died mid-charge (its claim ran out);
2. ``saved_card_charge`` by LumaPay itself (``actor=None``, ``rule=PLAN_INSTALMENT``) with that
   key: called again with the same key it returns the first call's transaction and Stripe
   answers the same PaymentIntent, so a rerun never charges twice;
3. record the outcome under the plan's and the instalment's locks: paid; declined, tried again
   after ``PAYMENT_PLAN_RETRY_DAYS`` (the patient is told, with a link to pay it or put a new card
   on file); or, after the last retry, the plan needs staff.

Everything LumaPay does here is audited as ``ActorType.SYSTEM`` ("LumaPay") with
``changes["rule"] = "plan_instalment"``, on the instalment's transaction, so it shows on that
transaction's timeline; the plan's own history is on the patient's profile.
"""

from __future__ import annotations

import calendar
import datetime
import logging
import zoneinfo
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction as db_transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import ActorType
from lumapay.money import format_cents
from lumapay.task_queue import task_enqueue_on_commit

from ..enums import (
    CollectionRule,
    DeliveryChannel,
    InstalmentStatus,
    MessagePurpose,
    PaymentPlanStatus,
    PaymentRequestKind,
    PaymentRequestStatus,
    PlanConsentSource,
    SavedCardStatus,
    TransactionStatus,
)
from ..selectors.saved_cards import card_on_file_offered
from ..locks import payment_plan_lock, plan_instalment_lock, plan_instalments_lock
from ..models import (
    PaymentPlan,
    PaymentPlanAttempt,
    PaymentPlanInstalment,
    PaymentRequest,
    PaymentRequestDelivery,
    SavedCard,
    Transaction,
    collection_rules_for,
)
from .payments import PaymentLinkUnavailable, payment_request_checkout_close, payment_request_checkout_open
from .saved_cards import CHARGE, card_role_require, saved_card_charge

logger = logging.getLogger(__name__)

RULE = CollectionRule.PLAN_INSTALMENT
SEND_TASK = "transactions.tasks.patient_message_send"
CHARGE_TASK = "transactions.tasks.payment_plan_instalment_charge"
# What the patient may choose on their payment link: this many monthly instalments.
PLAN_OFFERS = (3, 6)
MIN_INSTALMENTS, MAX_INSTALMENTS = 2, 24
# A charger's claim on an instalment: longer than any gateway call takes; a charger that died
# mid-charge (a killed worker) is taken over once it runs out, with the same idempotency key.
CLAIM_LEASE = datetime.timedelta(minutes=10)
# An attempt the gateway left pending (unreachable) is asked again this much later, same key.
PENDING_RECHECK = datetime.timedelta(minutes=30)

# -- the schedule ------------------------------------------------------------------------------------


def add_months(day: datetime.date, months: int) -> datetime.date:
    """The same day ``months`` later, or the month's last day when it has no such day (Jan 31 → Feb 28)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return datetime.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class PlannedInstalment:
    number: int
    due_date: datetime.date
    amount_cents: int


def payment_plan_schedule(*, total_cents: int, instalment_count: int, first_due_date: datetime.date) -> list[PlannedInstalment]:
    """Monthly instalments whose cents add up to ``total_cents`` exactly: equal shares, the odd
    cents on the first one ($100.00 in 3: $33.34, $33.33, $33.33)."""
    if not MIN_INSTALMENTS <= instalment_count <= MAX_INSTALMENTS:
        raise ApplicationError(f"A plan has between {MIN_INSTALMENTS} and {MAX_INSTALMENTS} instalments.")
    if total_cents < instalment_count:
        raise ApplicationError("The amount is too small to split into that many instalments.")
    share, odd_cents = divmod(total_cents, instalment_count)
    return [
        PlannedInstalment(number, add_months(first_due_date, number - 1), share + (odd_cents if number == 1 else 0))
        for number in range(1, instalment_count + 1)
    ]


def clinic_today(organization) -> datetime.date:
    """Today in the clinic's time zone: the date instalments are due by."""
    return timezone.localtime(timezone.now(), _zone(organization)).date()


def _zone(organization) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(organization.timezone)


def instalment_charge_at(organization, due_date: datetime.date) -> datetime.datetime:
    """When an instalment due on ``due_date`` is charged: that day, in the clinic's time zone, when
    its quiet hours end (so a decline's message reaches the patient in the daytime)."""
    start = collection_rules_for(organization).quiet_hours_end
    if isinstance(start, str):
        start = datetime.time.fromisoformat(start)
    return datetime.datetime.combine(due_date, start, tzinfo=_zone(organization))


def payment_plan_consent_text(*, organization, saved_card: SavedCard, billing_item: str, schedule: list[PlannedInstalment]) -> str:
    """What the patient agrees to, in the active language: the pay page shows it in the patient's
    language, staff read it out; the text shown is the text recorded."""
    currency = organization.currency
    total = format_cents(sum(item.amount_cents for item in schedule), currency)
    payments = "; ".join(
        gettext("%(amount)s on %(date)s") % {"amount": format_cents(item.amount_cents, currency), "date": item.due_date.isoformat()}
        for item in schedule
    )
    retries = len(settings.PAYMENT_PLAN_RETRY_DAYS)
    return gettext(
        "I authorize %(clinic)s to charge my card %(card)s %(count)s payments for %(item)s, %(total)s in all: "
        "%(payments)s. A declined payment is tried again up to %(retries)s times. I can ask the clinic to "
        "cancel the plan at any time; payments already made are not refunded by cancelling."
    ) % {
        "clinic": organization.display_name,
        "card": str(saved_card),
        "count": len(schedule),
        "item": billing_item,
        "total": total,
        "payments": payments,
        "retries": retries,
    }


# -- setting one up ---------------------------------------------------------------------------------


def payment_plan_create(
    *,
    organization,
    actor,
    saved_card: SavedCard,
    location,
    total_cents: int,
    instalment_count: int,
    first_due_date: datetime.date,
    billing_item: str,
    consent_given: bool,
    consent_text: str,
    ip_address: str | None = None,
    source_payment_request: PaymentRequest | None = None,
    charge_due_now: bool = False,
) -> PaymentPlan:
    """Set up a plan on a card on file. ``actor`` is the staff member who took the patient's
    consent (their role must be one of ``saved_card_roles``, at ``location``), or None for the
    patient on their payment link (``source_payment_request``, past the date-of-birth check; the
    request is then closed as replaced by the plan). ``consent_text`` must be the text shown
    (``payment_plan_consent_text``) and ``consent_given`` true. With ``charge_due_now`` (the
    pages), an instalment already due (the first, when it is due today) is charged right after
    the commit rather than at the beat task's next pass. Raises ``ApplicationError``."""
    if saved_card.organization_id != organization.pk or location.organization_id != organization.pk:
        raise ApplicationError("This card does not exist.")
    if actor is None and source_payment_request is None:
        raise ApplicationError("A plan is set up by staff or by the patient on their payment link.")
    if actor is not None:
        card_role_require(
            organization=organization, actor=actor, location=location, action=CHARGE,
            patient=saved_card.patient, amount_cents=total_cents,
        )  # fmt: skip
    if saved_card.status != SavedCardStatus.ACTIVE:
        raise ApplicationError("This card is not on file (it was removed, or the patient never finished saving it).")
    if not 0 < total_cents <= settings.PAYMENT_REQUEST_MAX_CENTS:
        raise ApplicationError(f"The amount must be between $0.01 and {format_cents(settings.PAYMENT_REQUEST_MAX_CENTS, 'usd')}.")
    billing_item = (billing_item or "").strip()
    if not billing_item:
        raise ApplicationError("Say what the plan pays for. It is on every instalment's transaction.")
    today = clinic_today(organization)
    if first_due_date < today:
        raise ApplicationError("The first instalment cannot be due before today.")
    schedule = payment_plan_schedule(total_cents=total_cents, instalment_count=instalment_count, first_due_date=first_due_date)
    limit = organization.saved_card_charge_max_cents
    if max(item.amount_cents for item in schedule) > limit:
        raise ApplicationError(
            f"Each instalment may be at most {format_cents(limit, organization.currency)} (this organization's limit "
            "for one charge of a card on file): choose more instalments."
        )
    expected = payment_plan_consent_text(
        organization=organization, saved_card=saved_card, billing_item=billing_item, schedule=schedule
    )
    if not consent_given or consent_text != expected:
        raise ApplicationError(
            "The patient must agree to the plan as shown: tick the box once they have."
            if actor is not None
            else gettext("Tick the box to agree to the plan.")
        )

    # The balance requests LumaPay sent the patient by itself give way to the plan (their reminders
    # stop): their checkouts are closed first, like the link's the plan is set up from.
    balance_asks = list(
        PaymentRequest.objects.filter(
            organization=organization, patient=saved_card.patient, automation_rule=CollectionRule.BALANCE_REQUEST,
            status=PaymentRequestStatus.OPEN,
        ).exclude(pk=getattr(source_payment_request, "pk", None))
    )  # fmt: skip
    for ask in balance_asks:
        try:
            payment_request_checkout_close(payment_request=ask)
        except PaymentLinkUnavailable:
            raise ApplicationError(gettext("This payment link was just paid in full: no plan is needed.")) from None
    if source_payment_request is not None:
        # A checkout the patient began on the link is closed first, so they can never pay the
        # whole amount there and the plan too (paid meanwhile: no plan).
        try:
            payment_request_checkout_close(payment_request=source_payment_request)
        except PaymentLinkUnavailable:
            raise ApplicationError(gettext("This payment link was just paid in full: no plan is needed.")) from None
    now = timezone.now()
    with db_transaction.atomic():
        if source_payment_request is not None:
            from ..locks import payment_request_lock

            request = payment_request_lock(payment_request_id=source_payment_request.pk)
            if request.status != PaymentRequestStatus.OPEN or request.patient_id != saved_card.patient_id:
                raise ApplicationError(gettext("This payment link can no longer be paid in instalments."))
            if payment_request_checkout_open(request):
                raise ApplicationError(
                    gettext("A payment of this link is under way in another window: finish or close it, then try again.")
                )
        plan = PaymentPlan.objects.create(
            organization=organization,
            patient=saved_card.patient,
            location=location,
            saved_card=saved_card,
            billing_item=billing_item,
            total_cents=total_cents,
            currency=organization.currency,
            instalment_count=instalment_count,
            consent_text=expected,
            consented_at=now,
            consent_source=PlanConsentSource.STAFF if actor is not None else PlanConsentSource.PAY_LINK,
            consent_ip_address=ip_address,
            source_payment_request=source_payment_request,
            created_by=actor,
        )
        PaymentPlanInstalment.objects.bulk_create(
            PaymentPlanInstalment(
                organization=organization,
                plan=plan,
                number=item.number,
                due_date=item.due_date,
                amount_cents=item.amount_cents,
                next_attempt_at=instalment_charge_at(organization, item.due_date),
            )
            for item in schedule
        )
        audit_event_record(
            organization=organization,
            action=AuditAction.PAYMENT_PLAN_CREATED,
            actor_type=ActorType.STAFF if actor is not None else ActorType.PATIENT,
            actor_user=actor,
            patient=saved_card.patient,
            payment_request=source_payment_request,
            changes={
                "plan": plan.pk,
                "saved_card": saved_card.pk,
                "total_cents": total_cents,
                "instalments": [[item.due_date.isoformat(), item.amount_cents] for item in schedule],
                "consent_text": expected,
                "consent_source": plan.consent_source,
            },
            ip_address=ip_address,
        )
        if source_payment_request is not None:
            PaymentRequest.objects.filter(pk=source_payment_request.pk).update(
                status=PaymentRequestStatus.CANCELLED, cancelled_at=now
            )
            audit_event_record(
                organization=organization,
                action=AuditAction.PAYMENT_REQUEST_CANCELLED,
                actor_type=ActorType.PATIENT,
                patient=saved_card.patient,
                payment_request=source_payment_request,
                changes={"status": ["open", "cancelled"], "reason": f"Replaced by payment plan #{plan.pk}."},
                ip_address=ip_address,
            )
        for ask in balance_asks:
            if PaymentRequest.objects.filter(pk=ask.pk, status=PaymentRequestStatus.OPEN).update(
                status=PaymentRequestStatus.CANCELLED, cancelled_at=now
            ):
                audit_event_record(
                    organization=organization,
                    action=AuditAction.PAYMENT_REQUEST_CANCELLED,
                    actor_type=ActorType.SYSTEM,
                    patient=saved_card.patient,
                    payment_request=ask,
                    changes={
                        "status": ["open", "cancelled"], "rule": CollectionRule.BALANCE_REQUEST,
                        "reason": f"Replaced by payment plan #{plan.pk}.",
                    },
                )  # fmt: skip
        if charge_due_now:
            for instalment in plan.instalments.filter(next_attempt_at__lte=now):
                # robust: a broker that is down must not undo the plan; the beat task charges it.
                task_enqueue_on_commit(CHARGE_TASK, instalment.pk, robust=True)
    return plan


def payment_plan_cancel(*, organization, actor, plan: PaymentPlan) -> PaymentPlan:
    """Stop a plan (staff whose role may use cards on file): no instalment is charged after this.
    An instalment being charged this instant finishes (its money is the patient's payment)."""
    if plan.organization_id != organization.pk:
        raise ApplicationError("This plan does not exist.")
    card_role_require(
        organization=organization, actor=actor, location=plan.location, action=CHARGE,
        patient=plan.patient, amount_cents=0,
    )  # fmt: skip
    now = timezone.now()
    with db_transaction.atomic():
        locked = payment_plan_lock(plan_id=plan.pk)
        if locked.status in (PaymentPlanStatus.CANCELLED, PaymentPlanStatus.COMPLETED):
            raise ApplicationError(f"This plan is {locked.get_status_display().lower()}: there is nothing to cancel.")
        stopped = []
        for instalment in plan_instalments_lock(plan_id=plan.pk):
            if instalment.status in (InstalmentStatus.SCHEDULED, InstalmentStatus.RETRYING, InstalmentStatus.NEEDS_ATTENTION):
                instalment.status = InstalmentStatus.CANCELLED
                instalment.next_attempt_at = None
                instalment.save(update_fields=["status", "next_attempt_at"])
                stopped.append(instalment.number)
                _instalment_request_close(instalment, reason=f"Payment plan #{plan.pk} cancelled.", actor=actor)
        previous = locked.status
        locked.status = PaymentPlanStatus.CANCELLED
        locked.cancelled_at = now
        locked.cancelled_by = actor
        locked.save(update_fields=["status", "cancelled_at", "cancelled_by"])
        audit_event_record(
            organization=organization,
            action=AuditAction.PAYMENT_PLAN_CANCELLED,
            actor_type=ActorType.STAFF,
            actor_user=actor,
            patient=plan.patient,
            changes={"plan": plan.pk, "status": [previous, PaymentPlanStatus.CANCELLED], "instalments_cancelled": stopped},
        )
    plan.refresh_from_db()
    return plan


def payment_plan_card_change(*, plan: PaymentPlan, saved_card: SavedCard, ip_address: str | None = None) -> PaymentPlan:
    """The patient put a new card on file from the link sent after a decline: the plan's next
    attempts charge it, and an instalment that needed staff is tried again on it now."""
    if saved_card.patient_id != plan.patient_id or saved_card.status != SavedCardStatus.ACTIVE:
        raise ApplicationError("This card cannot be used for this plan.")
    # An instalment whose link's checkout the patient paid meanwhile is not charged again: its
    # checkout is closed first, and one found paid is recorded (the next pass marks it paid).
    paid_by_link = set()
    for instalment in plan.instalments.filter(payment_request__isnull=False).select_related("payment_request"):
        try:
            payment_request_checkout_close(payment_request=instalment.payment_request)
        except PaymentLinkUnavailable:
            paid_by_link.add(instalment.pk)
    now = timezone.now()
    with db_transaction.atomic():
        locked = payment_plan_lock(plan_id=plan.pk)
        if locked.status not in (PaymentPlanStatus.ACTIVE, PaymentPlanStatus.NEEDS_ATTENTION) or locked.saved_card_id == saved_card.pk:
            return locked
        previous = locked.saved_card_id
        locked.saved_card = saved_card
        locked.status = PaymentPlanStatus.ACTIVE
        locked.save(update_fields=["saved_card", "status"])
        for instalment in plan_instalments_lock(plan_id=plan.pk):
            if instalment.status in (InstalmentStatus.RETRYING, InstalmentStatus.NEEDS_ATTENTION) and instalment.pk not in paid_by_link:
                instalment.status = InstalmentStatus.RETRYING
                instalment.next_attempt_at = now
                instalment.save(update_fields=["status", "next_attempt_at"])
                task_enqueue_on_commit(CHARGE_TASK, instalment.pk, robust=True)
        audit_event_record(
            organization=locked.organization,
            action=AuditAction.PAYMENT_PLAN_CARD_CHANGED,
            actor_type=ActorType.PATIENT,
            patient=plan.patient,
            changes={"plan": plan.pk, "saved_card": [previous, saved_card.pk], "card": str(saved_card)},
            ip_address=ip_address,
        )
    return locked


# -- charging ----------------------------------------------------------------------------------------


def payment_plan_instalments_charge_due(*, now: datetime.datetime | None = None, limit: int = 500) -> int:
    """Charge every instalment due (beat, every ``PAYMENT_PLANS_CHARGE_EVERY_MINUTES``; spans clinics,
    the caller runs it with ``all_organizations()``). Returns how many were charged or recorded."""
    now = now or timezone.now()
    due = list(_due_instalments(now).order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:limit])
    done = 0
    for instalment_id in due:
        if payment_plan_instalment_charge(instalment_id=instalment_id, now=now) is not None:
            done += 1
    return done


def _due_instalments(now: datetime.datetime) -> QuerySet[PaymentPlanInstalment]:
    """Due for a charge, or declined and since paid by the patient through the link they were sent
    (then recorded as paid, with nothing charged)."""
    return PaymentPlanInstalment.objects.filter(
        (
            Q(status__in=[InstalmentStatus.SCHEDULED, InstalmentStatus.RETRYING], next_attempt_at__lte=now)
            | Q(status=InstalmentStatus.CHARGING, claimed_until__lte=now)
        )
        & Q(plan__status=PaymentPlanStatus.ACTIVE)
        | Q(
            status__in=[InstalmentStatus.RETRYING, InstalmentStatus.NEEDS_ATTENTION],
            payment_request__status=PaymentRequestStatus.PAID,
            plan__status__in=[PaymentPlanStatus.ACTIVE, PaymentPlanStatus.NEEDS_ATTENTION],
        )
    )


def payment_plan_instalment_charge(*, instalment_id: int, now: datetime.datetime | None = None) -> PaymentPlanAttempt | None:
    """Charge one instalment if it is due and no other charger holds it; the attempt, or None when
    nothing was due. Safe to run twice at once, and again after a charger died mid-charge."""
    now = now or timezone.now()
    # A declined instalment's link (sent to the patient to pay it) may have a checkout open right
    # now: it is closed before the card is charged again, so the two can never both be paid; one
    # found paid is recorded, and the claim below then sees the instalment paid.
    link = PaymentRequest.objects.filter(plan_instalments__pk=instalment_id, status=PaymentRequestStatus.OPEN).first()
    if link is not None:
        try:
            payment_request_checkout_close(payment_request=link)
        except PaymentLinkUnavailable:
            pass
    attempt = _claim(instalment_id, now)
    if attempt is None:
        return None
    instalment = attempt.instalment
    plan = instalment.plan
    try:
        transaction = saved_card_charge(
            organization=plan.organization,
            actor=None,
            saved_card=plan.saved_card,
            amount_cents=instalment.amount_cents,
            kind=PaymentRequestKind.BALANCE,
            billing_item=f"{plan.billing_item}: instalment {instalment.number} of {plan.instalment_count}"[:120],
            location=plan.location,
            rule=RULE,
            idempotency_key=attempt.idempotency_key,
        )
    except ApplicationError as error:
        # Not charged at all (the card was removed, the organization's limit was lowered, the
        # clinic left Stripe): a decline for the plan's purposes, with the reason.
        logger.warning("plan instalment %s: not charged: %s", instalment.pk, type(error).__name__)
        return _outcome_record(attempt.pk, transaction=None, failure=error.message, now=now)
    return _outcome_record(attempt.pk, transaction=transaction, failure=transaction.last_error, now=now)


def _claim(instalment_id: int, now: datetime.datetime) -> PaymentPlanAttempt | None:
    with db_transaction.atomic():
        instalment = plan_instalment_lock(instalment_id=instalment_id, skip_locked=True)
        if instalment is None:
            return None
        plan = PaymentPlan.objects.select_related("organization", "patient", "location", "saved_card").get(pk=instalment.plan_id)
        # The patient paid this instalment through the link sent after a decline: nothing to charge.
        if (
            instalment.payment_request_id
            and instalment.status in (InstalmentStatus.RETRYING, InstalmentStatus.NEEDS_ATTENTION)
            and plan.status in (PaymentPlanStatus.ACTIVE, PaymentPlanStatus.NEEDS_ATTENTION)
        ):
            request = PaymentRequest.objects.get(pk=instalment.payment_request_id)
            if request.status == PaymentRequestStatus.PAID:
                paid_by = request.transactions.filter(charged_cents__gt=0).order_by("-paid_at", "-pk").first()
                _instalment_paid(plan, instalment, paid_by, now=now, how="link")
                if plan.status == PaymentPlanStatus.NEEDS_ATTENTION and not plan.instalments.filter(
                    status=InstalmentStatus.NEEDS_ATTENTION
                ).exists():
                    PaymentPlan.objects.filter(pk=plan.pk, status=PaymentPlanStatus.NEEDS_ATTENTION).update(
                        status=PaymentPlanStatus.ACTIVE
                    )
                return None
        if plan.status != PaymentPlanStatus.ACTIVE:
            return None
        due = (
            instalment.status in (InstalmentStatus.SCHEDULED, InstalmentStatus.RETRYING)
            and instalment.next_attempt_at is not None
            and instalment.next_attempt_at <= now
        ) or (instalment.status == InstalmentStatus.CHARGING and instalment.claimed_until and instalment.claimed_until <= now)
        if not due:
            return None
        unfinished = instalment.charge_attempts.filter(outcome__in=["", "pending"]).order_by("-number").first()
        if unfinished is not None:
            attempt = unfinished  # a charger died mid-charge, or the gateway left it pending: same key
        else:
            number = instalment.attempts + 1
            attempt = PaymentPlanAttempt.objects.create(
                organization_id=instalment.organization_id,
                instalment=instalment,
                number=number,
                idempotency_key=f"plan_instalment:{instalment.pk}:{number}",
            )
            instalment.attempts = number
        instalment.status = InstalmentStatus.CHARGING
        instalment.claimed_until = now + CLAIM_LEASE
        instalment.save(update_fields=["status", "claimed_until", "attempts"])
    instalment.plan = plan
    attempt.instalment = instalment
    return attempt


def _outcome_record(attempt_id: int, *, transaction: Transaction | None, failure: str, now: datetime.datetime) -> PaymentPlanAttempt:
    with db_transaction.atomic():
        attempt = PaymentPlanAttempt.objects.select_related("instalment").get(pk=attempt_id)
        plan = payment_plan_lock(plan_id=attempt.instalment.plan_id)
        instalment = plan_instalment_lock(instalment_id=attempt.instalment_id)
        plan = PaymentPlan.objects.select_related("organization", "patient", "location", "saved_card").get(pk=plan.pk)
        if attempt.outcome not in ("", "pending"):
            return attempt  # recorded by another charger already
        attempt.transaction = transaction
        instalment.transaction = transaction
        if transaction is not None and transaction.status == TransactionStatus.SUCCEEDED:
            attempt.outcome, attempt.finished_at = "succeeded", now
            attempt.save(update_fields=["transaction", "outcome", "finished_at"])
            _instalment_paid(plan, instalment, transaction, now=now, how="card")
        elif transaction is not None and transaction.status == TransactionStatus.PENDING:
            # The gateway could not be reached: its events settle the transaction; ask again later
            # with the same key (which returns this transaction, never a second charge).
            attempt.outcome = "pending"
            attempt.save(update_fields=["transaction", "outcome"])
            instalment.claimed_until = now + PENDING_RECHECK
            instalment.save(update_fields=["transaction", "claimed_until"])
        else:
            attempt.outcome, attempt.finished_at = "failed", now
            attempt.save(update_fields=["transaction", "outcome", "finished_at"])
            if plan.status == PaymentPlanStatus.CANCELLED:
                # Cancelled by staff while this charge was under way: nothing more is tried or sent.
                instalment.status, instalment.claimed_until, instalment.last_error = (
                    InstalmentStatus.CANCELLED, None, (failure or "")[:500]
                )
                instalment.save(update_fields=["status", "claimed_until", "last_error", "transaction"])
                return attempt
            _instalment_declined(plan, instalment, transaction, failure or "The charge was declined.", now=now)
    return attempt


def _audit(plan: PaymentPlan, action: str, *, transaction: Transaction | None, payment_request=None, **changes) -> None:
    audit_event_record(
        organization=plan.organization,
        action=action,
        actor_type=ActorType.SYSTEM,
        patient=plan.patient,
        transaction=transaction,
        payment_request=payment_request,
        changes={"rule": RULE.value, "plan": plan.pk, **changes},
    )


def _instalment_paid(plan: PaymentPlan, instalment: PaymentPlanInstalment, transaction, *, now, how: str) -> None:
    instalment.status = InstalmentStatus.PAID
    instalment.paid_at = now
    instalment.claimed_until = None
    instalment.next_attempt_at = None
    instalment.last_error = ""
    if transaction is not None:
        instalment.transaction = transaction
    instalment.save(update_fields=["status", "paid_at", "claimed_until", "next_attempt_at", "last_error", "transaction"])
    _audit(
        plan, AuditAction.PAYMENT_PLAN_INSTALMENT_PAID, transaction=transaction,
        instalment=instalment.number, of=plan.instalment_count, amount_cents=instalment.amount_cents,
        message=f"Instalment {instalment.number} of {plan.instalment_count} of payment plan #{plan.pk}"
        + (" (paid by the patient through the link)" if how == "link" else "") + ".",
    )  # fmt: skip
    if how == "card":
        _instalment_request_close(instalment, reason=f"Instalment {instalment.number} charged to the card.", actor=None)
    if not plan.instalments.exclude(status__in=[InstalmentStatus.PAID]).exclude(pk=instalment.pk).exists():
        PaymentPlan.objects.filter(pk=plan.pk).update(status=PaymentPlanStatus.COMPLETED, completed_at=now)
        _audit(plan, AuditAction.PAYMENT_PLAN_COMPLETED, transaction=transaction, total_cents=plan.total_cents)


def _instalment_declined(plan: PaymentPlan, instalment: PaymentPlanInstalment, transaction, failure: str, *, now) -> None:
    retry_days = list(settings.PAYMENT_PLAN_RETRY_DAYS)
    retries_done = instalment.attempts - 1
    instalment.last_error = failure[:500]
    instalment.claimed_until = None
    if retries_done < len(retry_days):
        instalment.status = InstalmentStatus.RETRYING
        instalment.next_attempt_at = now + datetime.timedelta(days=retry_days[retries_done])
        action = AuditAction.PAYMENT_PLAN_INSTALMENT_FAILED
    else:
        instalment.status = InstalmentStatus.NEEDS_ATTENTION
        instalment.next_attempt_at = None
        action = AuditAction.PAYMENT_PLAN_NEEDS_ATTENTION
    request = _instalment_request(plan, instalment, now=now)
    instalment.save(update_fields=["status", "next_attempt_at", "last_error", "claimed_until", "transaction", "payment_request"])
    _audit(
        plan, action, transaction=transaction, payment_request=request,
        instalment=instalment.number, attempt=instalment.attempts, failure_message=failure[:300],
        next_attempt_at=instalment.next_attempt_at.isoformat() if instalment.next_attempt_at else None,
    )  # fmt: skip
    if action == AuditAction.PAYMENT_PLAN_NEEDS_ATTENTION:
        PaymentPlan.objects.filter(pk=plan.pk).update(status=PaymentPlanStatus.NEEDS_ATTENTION, needs_attention_at=now)
    _notice_owe(plan, request, transaction)


def _instalment_request(plan: PaymentPlan, instalment: PaymentPlanInstalment, *, now) -> PaymentRequest:
    """The link the patient is sent after a decline: pay this instalment, or put a new card on file
    for the plan. One open request per instalment, made by LumaPay by the plan rule."""
    if instalment.payment_request_id:
        request = PaymentRequest.objects.get(pk=instalment.payment_request_id)
        if request.status == PaymentRequestStatus.OPEN and request.expires_at > now:
            return request
    request = PaymentRequest.objects.create(
        organization=plan.organization,
        patient=plan.patient,
        location=plan.location,
        kind=PaymentRequestKind.BALANCE,
        billing_item=f"{plan.billing_item}: instalment {instalment.number} of {plan.instalment_count}"[:120],
        amount_cents=instalment.amount_cents,
        currency=plan.currency,
        expires_at=now + datetime.timedelta(days=settings.PAYMENT_LINK_TTL_DAYS),
        last_sent_at=now,
        automation_rule=RULE,
    )
    instalment.payment_request = request
    _audit(
        plan, AuditAction.PAYMENT_REQUEST_SENT, transaction=None, payment_request=request,
        instalment=instalment.number, amount_cents=instalment.amount_cents,
        message=f"Link to pay instalment {instalment.number} of payment plan #{plan.pk} or put a new card on file.",
    )  # fmt: skip
    return request


def _instalment_request_close(instalment: PaymentPlanInstalment, *, reason: str, actor) -> None:
    """The instalment no longer needs its link (charged, or the plan cancelled)."""
    if not instalment.payment_request_id:
        return
    closed = PaymentRequest.objects.filter(pk=instalment.payment_request_id, status=PaymentRequestStatus.OPEN).update(
        status=PaymentRequestStatus.CANCELLED, cancelled_at=timezone.now(), cancelled_by=actor
    )
    if closed:
        request = PaymentRequest.objects.select_related("organization", "patient").get(pk=instalment.payment_request_id)
        changes = {"status": ["open", "cancelled"], "reason": reason}
        if actor is None:
            changes["rule"] = RULE.value
        audit_event_record(
            organization=request.organization,
            action=AuditAction.PAYMENT_REQUEST_CANCELLED,
            actor_type=ActorType.STAFF if actor is not None else ActorType.SYSTEM,
            actor_user=actor,
            patient=request.patient,
            payment_request=request,
            changes=changes,
        )


def _notice_owe(plan: PaymentPlan, request: PaymentRequest, transaction: Transaction | None) -> None:
    """Tell the patient the charge failed, when it is tried again and how to update the card:
    through the outbox, by every channel they can be reached on (an opted-out number is refused
    there, with the reason on the request's history)."""
    patient = plan.patient
    channels = []
    if patient.email:
        channels.append((DeliveryChannel.EMAIL.value, patient.email))
    if patient.can_receive_sms:
        channels.append((DeliveryChannel.SMS.value, patient.mobile_phone))
    for channel, destination in channels:
        delivery = PaymentRequestDelivery.objects.create(
            organization_id=plan.organization_id,
            purpose=MessagePurpose.PLAN_CHARGE_FAILED,
            payment_request=request,
            transaction=transaction,
            channel=channel,
            destination=destination,
        )
        task_enqueue_on_commit(SEND_TASK, delivery.pk, robust=True)


def plan_link_purpose(payment_request: PaymentRequest) -> str | None:
    """What a payment link offers about plans: "instalment" for the link sent after a plan's
    instalment was declined (pay it, or put a new card on file for the plan), "offer" for an open
    balance request of a clinic that keeps cards on file, payable in one of ``PLAN_OFFERS``;
    None otherwise."""
    if not card_on_file_offered(payment_request.organization) or payment_request.status != PaymentRequestStatus.OPEN:
        return None
    if payment_request.plan_instalments.exists():
        return "instalment"
    if (
        payment_request.kind == PaymentRequestKind.BALANCE
        and plan_offers_for(organization=payment_request.organization, total_cents=payment_request.amount_cents)
    ):
        return "offer"
    return None


def plan_offers_for(*, organization, total_cents: int) -> list[list[PlannedInstalment]]:
    """The schedules a patient may choose on their payment link, starting today: those whose
    instalments fit the organization's limit for one charge of a card on file."""
    today = clinic_today(organization)
    offers = []
    for count in PLAN_OFFERS:
        if total_cents < count * 100:
            continue  # no instalments under $1
        schedule = payment_plan_schedule(total_cents=total_cents, instalment_count=count, first_due_date=today)
        if max(item.amount_cents for item in schedule) <= organization.saved_card_charge_max_cents:
            offers.append(schedule)
    return offers
