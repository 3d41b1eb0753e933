"""The Sandbox pays its merchants out, as a processor does: their balance and their daily payouts.

Every paid charge and every refund that went through moves the merchant's balance at the Sandbox
(one ``SandboxBalanceTransaction`` each, booked once: at payout time for whatever is not booked
yet, so charges and refunds written in bulk, like the demo's, are booked too). A charge's money is
the amount less the Sandbox's fee (``processor.sandbox_fee_cents``) and the platform's application
fee; it becomes available ``AVAILABLE_AFTER_BUSINESS_DAYS`` business days after the charge. A
refund takes its amount out at once (its fees are not returned, as on Stripe).

The schedule (daily, business days, UTC):

- at midnight of each business day, a payout of every balance transaction available by that day
  and not paid out yet (nothing when they add up to zero or less): **pending**;
- at midnight of the next business day it leaves for the bank: **in transit**, with a trace id;
- it arrives ``1`` or ``2`` business days after the day it was made for (its ``arrival_date``),
  and is **paid** once that day is over;
- one payout in twenty (drawn from its id) is returned by the bank instead: **failed** with the
  bank's reason when it would have been paid. Its money comes back to the balance at once (a
  ``payout_failure`` balance transaction) and goes out in a later payout.

``payouts_advance`` brings one merchant up to now: it books, makes the payouts due (catching up any
day missed) and moves each along its schedule, posting ``payout.created``, ``payout.updated`` (in
transit), ``payout.paid``, ``payout.failed`` and ``balance.available`` to the webhook path. A beat
runs it for every Sandbox merchant; it takes a per-merchant lock (a second run at the same time
skips that merchant) and everything it writes is unique (a payout per merchant, currency and day;
a balance transaction per source), so running it again or twice at once changes nothing.

Nothing here knows LumaPay's ledger: the gateway (``transactions.gateways.sandbox``) reads these.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time as day_time, timedelta, timezone as dt_timezone

from django.db import connection, transaction as db_transaction
from django.db.models import Exists, Max, OuterRef, Q, Sum
from django.utils import timezone

from org_profile.enums import PaymentGateway
from org_profile.models import Organization

from .enums import SandboxBalanceType, SandboxPayoutStatus
from .models import SandboxBalanceTransaction, SandboxCharge, SandboxPayout, SandboxRefund
from .processor import _event_send_on_commit, sandbox_fee_cents

logger = logging.getLogger(__name__)

AVAILABLE_AFTER_BUSINESS_DAYS = 2
# One payout in FAILURE_ONE_IN is returned by the bank (drawn from the payout's id).
FAILURE_ONE_IN = 20
# Bank-side reasons a payout comes back (Stripe's failure codes and messages for them).
BANK_FAILURES = [
    ("account_closed", "The bank account has been closed."),
    ("no_account", "The bank could not locate an account with the details on file."),
    ("account_frozen", "The bank account has been frozen."),
    ("could_not_process", "The bank could not process this payout."),
    (
        "bank_account_restricted",
        "The bank account does not accept this kind of deposit (it may be a savings account).",
    ),
]
BANK_NAMES = ["Sandbox Community Bank", "Sandbox National Bank", "Sandbox Federal Credit Union"]
METHOD = "standard"
# How many business days ahead the next payout is looked for.
NEXT_PAYOUT_HORIZON = 10
# How far back a merchant's first catch-up looks for money to pay out.
CATCH_UP_DAYS = 400
# pg_try_advisory_xact_lock's first key: "SP", the Sandbox's payouts; the second is the merchant.
_LOCK_CLASS = 0x5350
_OPEN = (SandboxPayoutStatus.PENDING, SandboxPayoutStatus.IN_TRANSIT)


@dataclass
class AdvanceResult:
    booked: int = 0
    created: int = 0
    in_transit: int = 0
    paid: int = 0
    failed: int = 0
    skipped: bool = False  # another run holds this merchant's lock


# -- days ------------------------------------------------------------------------------------------


def is_business_day(day: date) -> bool:
    return day.weekday() < 5


def business_days_after(day: date, count: int) -> date:
    while count > 0:
        day += timedelta(days=1)
        if is_business_day(day):
            count -= 1
    return day


def _midnight(day: date) -> datetime:
    return datetime.combine(day, day_time.min, tzinfo=dt_timezone.utc)


def _utc_date(moment: datetime) -> date:
    return moment.astimezone(dt_timezone.utc).date()


# -- what a payout's id decides --------------------------------------------------------------------


def payout_id_for(organization_id: int, currency: str, payout_date: date) -> str:
    digest = hashlib.sha256(f"sandbox-payout:{organization_id}:{currency}:{payout_date.isoformat()}".encode()).hexdigest()
    return f"po_sbx_{digest[:24]}"


def _draw(payout_id: str, salt: str) -> int:
    return int(hashlib.sha256(f"{salt}:{payout_id}".encode()).hexdigest()[:12], 16)


def payout_failure(payout_id: str) -> tuple[str, str] | None:
    """The bank's reason for returning this payout, for one payout in ``FAILURE_ONE_IN``; else None."""
    if _draw(payout_id, "fails") % FAILURE_ONE_IN:
        return None
    return BANK_FAILURES[_draw(payout_id, "reason") % len(BANK_FAILURES)]


def arrival_date_for(payout_id: str, payout_date: date) -> date:
    """One or two business days after the day the payout is made for (two, one time in three)."""
    return business_days_after(payout_date, 2 if _draw(payout_id, "arrival") % 3 == 0 else 1)


def trace_id_for(payout_id: str) -> str:
    """An ACH trace number (15 digits), given when the payout leaves for the bank."""
    return f"{_draw(payout_id, 'trace') % 10**15:015d}"


def bank_account_for(organization_id: int) -> tuple[str, str]:
    """The bank account the merchant gave the Sandbox: (bank name, last four digits)."""
    return BANK_NAMES[organization_id % len(BANK_NAMES)], f"{(organization_id * 7919 + 6789) % 10000:04d}"


def in_transit_at(payout: SandboxPayout) -> datetime:
    return _midnight(business_days_after(payout.payout_date, 1))


def settles_at(payout: SandboxPayout) -> datetime:
    """When it is paid (or returned): once its arrival date is over."""
    return _midnight(payout.arrival_date + timedelta(days=1))


# -- the books ---------------------------------------------------------------------------------------


def books_update(organization_id: int) -> int:
    """Book every paid charge and every refund that went through of the merchant that has no
    balance transaction yet (once each: a second booking of the same one is ignored). Returns how
    many were booked."""
    booked_charges = SandboxBalanceTransaction.objects.filter(type=SandboxBalanceType.CHARGE, source_id=OuterRef("id"))
    charges = (
        SandboxCharge.objects.filter(is_paid=True)
        .filter(Q(session__organization_id=organization_id) | Q(payment_intent__organization_id=organization_id))
        .filter(~Exists(booked_charges))
        .select_related("session", "payment_intent")
    )
    rows = []
    for charge in charges:
        fee = sandbox_fee_cents(charge.amount_cents) + charge.source.application_fee_cents
        rows.append(
            SandboxBalanceTransaction(
                id=_balance_transaction_id(SandboxBalanceType.CHARGE, charge.id),
                organization_id=organization_id,
                type=SandboxBalanceType.CHARGE,
                source_id=charge.id,
                charge_id=charge.checkout_id if charge.payment_intent_id else charge.id,
                amount_cents=charge.amount_cents,
                fee_cents=fee,
                net_cents=charge.amount_cents - fee,
                currency=charge.currency,
                created_at=charge.created_at,
                available_on=business_days_after(_utc_date(charge.created_at), AVAILABLE_AFTER_BUSINESS_DAYS),
            )
        )
    booked_refunds = SandboxBalanceTransaction.objects.filter(type=SandboxBalanceType.REFUND, source_id=OuterRef("id"))
    refunds = (
        SandboxRefund.objects.filter(status="succeeded")
        .filter(
            Q(charge__session__organization_id=organization_id)
            | Q(charge__payment_intent__organization_id=organization_id)
        )
        .filter(~Exists(booked_refunds))
        .select_related("charge")
    )
    for refund in refunds:
        charge = refund.charge
        rows.append(
            SandboxBalanceTransaction(
                id=_balance_transaction_id(SandboxBalanceType.REFUND, refund.id),
                organization_id=organization_id,
                type=SandboxBalanceType.REFUND,
                source_id=refund.id,
                # A card-on-file payment is known to the merchant by its payment's id.
                charge_id=charge.payment_intent_id or charge.id,
                amount_cents=-refund.amount_cents,
                fee_cents=0,
                net_cents=-refund.amount_cents,
                currency=charge.currency,
                created_at=refund.created_at,
                available_on=_utc_date(refund.created_at),
            )
        )
    if rows:
        SandboxBalanceTransaction.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return len(rows)


def _balance_transaction_id(kind: str, source_id: str) -> str:
    return f"txn_sbx_{hashlib.sha256(f'{kind}:{source_id}'.encode()).hexdigest()[:24]}"


def _unpaid(organization_id: int):
    return SandboxBalanceTransaction.objects.filter(organization_id=organization_id, payout__isnull=True)


# -- the schedule ----------------------------------------------------------------------------------


def payouts_advance(organization_id: int, *, now: datetime | None = None, notify: bool = True) -> AdvanceResult:
    """Bring the merchant's payouts up to ``now``: book, make each business day's payout due
    (catching up days missed) and move each payout along its schedule. With ``notify``, the events
    go to the webhook path once this commits (the demo seed applies what they say itself).
    A merchant another run is advancing right now is skipped."""
    now = now or timezone.now()
    result = AdvanceResult()
    events: list[tuple[str, dict]] = []
    with db_transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, organization_id])
            if not cursor.fetchone()[0]:
                result.skipped = True
                return result
        result.booked = books_update(organization_id)
        today = _utc_date(now)
        last = dict(
            SandboxPayout.objects.filter(organization_id=organization_id, method=METHOD)
            .values_list("currency")
            .annotate(last=Max("payout_date"))
        )
        # The first day something can happen: money becomes available to pay out, or an open payout
        # comes back from the bank (its money then goes out in a later payout).
        starts = []
        first_unpaid = _unpaid(organization_id).order_by("available_on").values_list("available_on", flat=True).first()
        if first_unpaid is not None:
            # No payout is made again for a day that has one already.
            starts.append(max(first_unpaid, min(last.values()) + timedelta(days=1)) if last else first_unpaid)
        first_open = (
            SandboxPayout.objects.filter(organization_id=organization_id, status__in=_OPEN)
            .order_by("payout_date")
            .values_list("payout_date", flat=True)
            .first()
        )
        if first_open is not None:
            starts.append(first_open + timedelta(days=1))
        day = max(min(starts, default=today + timedelta(days=1)), today - timedelta(days=CATCH_UP_DAYS))
        while day <= today:
            if is_business_day(day):
                _statuses_advance(organization_id, at=_midnight(day), result=result, events=events)
                currencies = set(_unpaid(organization_id).values_list("currency", flat=True).distinct())
                for currency in sorted(currencies):
                    if currency in last and day <= last[currency]:
                        continue
                    payout = _payout_make(organization_id, currency, day)
                    if payout is not None:
                        result.created += 1
                        events.append(("payout.created", payout_payload(payout)))
            day += timedelta(days=1)
        _statuses_advance(organization_id, at=now, result=result, events=events)
        if notify:
            for event_type, obj in events:
                _event_send_on_commit(event_type, obj, organization_id)
            if result.booked or result.created or result.failed:
                _event_send_on_commit("balance.available", balance_payload(organization_id, now=now), organization_id)
    if result.created or result.in_transit or result.paid or result.failed:
        logger.info(
            "sandbox payouts for organization %s: %s made, %s in transit, %s paid, %s failed",
            organization_id, result.created, result.in_transit, result.paid, result.failed,
        )  # fmt: skip
    return result


def _payout_make(organization_id: int, currency: str, day: date) -> SandboxPayout | None:
    """The payout of ``day``: every balance transaction available by then, booked before its
    midnight and not paid out yet. None when they add up to nothing to send."""
    made_at = _midnight(day)
    carried, total = _carried(
        _unpaid(organization_id).filter(currency=currency, available_on__lte=day, created_at__lt=made_at)
    )
    if total <= 0:
        return None
    payout_id = payout_id_for(organization_id, currency, day)
    bank_name, bank_last4 = bank_account_for(organization_id)
    payout = SandboxPayout.objects.create(
        id=payout_id,
        organization_id=organization_id,
        currency=currency,
        amount_cents=total,
        payout_date=day,
        arrival_date=arrival_date_for(payout_id, day),
        bank_name=bank_name,
        bank_last4=bank_last4,
        created_at=made_at,
    )
    SandboxBalanceTransaction.objects.filter(id__in=carried).update(payout=payout)
    return payout


def _carried(unpaid) -> tuple[list[str], int]:
    """The ids of the balance transactions a payout takes, locked, and their net added up: the
    payout carries exactly the rows it was summed from (one booked meanwhile by a balance read,
    which books without the schedule's lock, waits for the next payout)."""
    rows = list(unpaid.select_for_update().values_list("id", "net_cents"))
    return [row_id for row_id, _ in rows], sum(net for _, net in rows)


def _statuses_advance(organization_id: int, *, at: datetime, result: AdvanceResult, events: list) -> None:
    due = (
        SandboxPayout.objects.select_for_update()
        .filter(organization_id=organization_id, status__in=_OPEN, created_at__lte=at)
        .order_by("created_at")
    )
    for payout in due:
        if payout.status == SandboxPayoutStatus.PENDING and in_transit_at(payout) <= at:
            payout.status = SandboxPayoutStatus.IN_TRANSIT
            payout.in_transit_at = in_transit_at(payout)
            payout.trace_id = trace_id_for(payout.id)
            payout.save(update_fields=["status", "in_transit_at", "trace_id"])
            result.in_transit += 1
            events.append(("payout.updated", payout_payload(payout)))
        if payout.status == SandboxPayoutStatus.IN_TRANSIT and settles_at(payout) <= at:
            payout.settled_at = settles_at(payout)
            failure = payout_failure(payout.id)
            if failure is None:
                payout.status = SandboxPayoutStatus.PAID
                payout.save(update_fields=["status", "settled_at"])
                result.paid += 1
                events.append(("payout.paid", payout_payload(payout)))
                continue
            payout.status = SandboxPayoutStatus.FAILED
            payout.failure_code, payout.failure_message = failure
            payout.save(update_fields=["status", "settled_at", "failure_code", "failure_message"])
            # The bank sent the money back: it is in the balance again, for a later payout.
            SandboxBalanceTransaction.objects.get_or_create(
                id=_balance_transaction_id(SandboxBalanceType.PAYOUT_FAILURE, payout.id),
                defaults={
                    "organization_id": organization_id,
                    "type": SandboxBalanceType.PAYOUT_FAILURE,
                    "source_id": payout.id,
                    "amount_cents": payout.amount_cents,
                    "fee_cents": 0,
                    "net_cents": payout.amount_cents,
                    "currency": payout.currency,
                    "created_at": payout.settled_at,
                    "available_on": _utc_date(payout.settled_at),
                },
            )
            result.failed += 1
            events.append(("payout.failed", payout_payload(payout)))


def payout_instant(organization_id: int, *, now: datetime | None = None) -> SandboxPayout | None:
    """Pay the merchant out at once everything it has at the Sandbox, as if its charges had
    settled: an instant payout (Stripe's ``method=instant``) made, sent and paid now, one per
    currency, posting ``payout.created``, ``payout.updated``, ``payout.paid`` and
    ``balance.available``. For trying payouts in development without waiting the two business days
    a charge takes to settle (``manage.py sandbox_pay_out_now``); the Sandbox moves no real money.
    Returns the (last) payout made, or None when there was nothing to pay out."""
    now = now or timezone.now()
    today = _utc_date(now)
    made = None
    with db_transaction.atomic():
        with connection.cursor() as cursor:
            # The same lock as the schedule: never both at once for one merchant.
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, organization_id])
        books_update(organization_id)
        unpaid = _unpaid(organization_id).filter(created_at__lte=now)
        for currency in sorted(set(unpaid.values_list("currency", flat=True).distinct())):
            carried, total = _carried(unpaid.filter(currency=currency))
            if total <= 0:
                continue
            payout_id = "po_sbx_i" + hashlib.sha256(f"sandbox-instant:{organization_id}:{currency}:{now.isoformat()}".encode()).hexdigest()[:23]
            bank_name, bank_last4 = bank_account_for(organization_id)
            payout = SandboxPayout.objects.create(
                id=payout_id,
                organization_id=organization_id,
                currency=currency,
                amount_cents=total,
                payout_date=today,
                method="instant",
                arrival_date=today,
                bank_name=bank_name,
                bank_last4=bank_last4,
                created_at=now,
            )
            SandboxBalanceTransaction.objects.filter(id__in=carried).update(payout=payout, available_on=today)
            _event_send_on_commit("payout.created", payout_payload(payout), organization_id)
            payout.status = SandboxPayoutStatus.IN_TRANSIT
            payout.in_transit_at = now
            payout.trace_id = trace_id_for(payout.id)
            payout.save(update_fields=["status", "in_transit_at", "trace_id"])
            _event_send_on_commit("payout.updated", payout_payload(payout), organization_id)
            payout.status = SandboxPayoutStatus.PAID
            payout.settled_at = now
            payout.save(update_fields=["status", "settled_at"])
            _event_send_on_commit("payout.paid", payout_payload(payout), organization_id)
            made = payout
        if made is not None:
            _event_send_on_commit("balance.available", balance_payload(organization_id, now=now), organization_id)
    return made


def payouts_advance_all(*, now: datetime | None = None) -> int:
    """``payouts_advance`` for every merchant taking payments through the Sandbox (beat). Returns
    how many payouts were made. One merchant's failure is logged and does not stop the others."""
    now = now or timezone.now()
    made = 0
    organization_ids = Organization.objects.filter(payment_gateway=PaymentGateway.SANDBOX).values_list("id", flat=True)
    for organization_id in list(organization_ids):
        try:
            made += payouts_advance(organization_id, now=now).created
        except Exception:  # noqa: BLE001 - one merchant's fault must not stop every other's payouts
            logger.exception("sandbox payouts for organization %s could not be advanced", organization_id)
    return made


# -- the processor's API: what a merchant's server reads -------------------------------------------


def payout_payload(payout: SandboxPayout) -> dict:
    return {
        "object": "payout",
        "id": payout.id,
        "account": payout.organization_id,
        "amount": payout.amount_cents,
        "currency": payout.currency,
        "status": payout.status,
        "method": payout.method,
        "automatic": payout.method == METHOD,  # an instant payout is asked for, not scheduled
        "created": int(payout.created_at.timestamp()),
        "arrival_date": payout.arrival_date.isoformat(),
        "bank_account": {"bank_name": payout.bank_name, "last4": payout.bank_last4},
        "trace_id": payout.trace_id,
        "failure_code": payout.failure_code,
        "failure_message": payout.failure_message,
        "description": "SANDBOX PAYOUT",
    }


def balance_amounts(organization_id: int, *, now: datetime | None = None) -> dict[str, dict[str, int]]:
    """{currency: {"available": cents, "pending": cents}}: what can be paid out now, and what is
    not available yet. Books first."""
    today = _utc_date(now or timezone.now())
    books_update(organization_id)
    amounts: dict[str, dict[str, int]] = defaultdict(lambda: {"available": 0, "pending": 0})
    rows = (
        _unpaid(organization_id)
        .values("currency")
        .annotate(
            available=Sum("net_cents", filter=Q(available_on__lte=today)),
            pending=Sum("net_cents", filter=Q(available_on__gt=today)),
        )
    )
    for row in rows:
        amounts[row["currency"]] = {"available": row["available"] or 0, "pending": row["pending"] or 0}
    return dict(amounts)


def balance_payload(organization_id: int, *, now: datetime | None = None) -> dict:
    amounts = balance_amounts(organization_id, now=now) or {"usd": {"available": 0, "pending": 0}}
    return {
        "object": "balance",
        "account": organization_id,
        "available": [{"currency": c, "amount": a["available"]} for c, a in sorted(amounts.items())],
        "pending": [{"currency": c, "amount": a["pending"]} for c, a in sorted(amounts.items())],
    }


def next_payouts(organization_id: int, *, now: datetime | None = None) -> list[dict]:
    """Per currency, the next payout the schedule will make: its day, expected arrival and
    amount as the books stand now (the first of the next ``NEXT_PAYOUT_HORIZON`` business days
    with money to send; none when there is none)."""
    now = now or timezone.now()
    today = _utc_date(now)
    books_update(organization_id)
    days = [business_days_after(today, count) for count in range(1, NEXT_PAYOUT_HORIZON + 1)]
    by_currency: dict[str, list[tuple[date, int]]] = defaultdict(list)
    rows = (
        _unpaid(organization_id)
        .filter(available_on__lte=days[-1])
        .values("currency", "available_on")
        .annotate(total=Sum("net_cents"))
        .order_by("currency", "available_on")
    )
    for row in rows:
        by_currency[row["currency"]].append((row["available_on"], row["total"] or 0))
    upcoming = []
    for currency, amounts in sorted(by_currency.items()):
        for day in days:
            total = sum(cents for available_on, cents in amounts if available_on <= day)
            if total > 0:
                payout_id = payout_id_for(organization_id, currency, day)
                upcoming.append(
                    {
                        "currency": currency,
                        "payout_date": day.isoformat(),
                        "arrival_date": arrival_date_for(payout_id, day).isoformat(),
                        "amount": total,
                    }
                )
                break
    return upcoming


def payouts_list(organization_id: int, *, created_after: datetime) -> list[SandboxPayout]:
    return list(
        SandboxPayout.objects.filter(organization_id=organization_id, created_at__gt=created_after).order_by(
            "-created_at", "-id"
        )
    )


def payout_get(organization_id: int, payout_id: str) -> SandboxPayout | None:
    return SandboxPayout.objects.filter(organization_id=organization_id, id=payout_id).first()


def payout_balance_transactions(organization_id: int, payout_id: str) -> list[SandboxBalanceTransaction]:
    """Every balance transaction the payout carries, oldest first (the payout's own withdrawal is
    not one: the Sandbox keeps it as the payout)."""
    return list(
        SandboxBalanceTransaction.objects.filter(organization_id=organization_id, payout_id=payout_id).order_by(
            "created_at", "id"
        )
    )
