"""A clinic's payouts and balance at Stripe: read from its connected account, never moved.

Every call carries the clinic's connected account (``stripe_account=``, Stripe's ``Stripe-Account``
header) and nothing else of ours: ids Stripe gave us, dates, and Stripe's own words. No patient's
data is ever in a payout call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone

from org_profile.models import Organization

from ..base import BalanceFact, GatewayError, GatewayUnavailable, NextPayout, PayoutFact, PayoutLineFact
from .client import account_of, as_dict, stripe_call, stripe_client
from .facts import (
    PAYOUT_OWN_TYPE,
    balance_fact_from_balance,
    bank_of,
    payout_fact_from_payout,
    payout_line_from_balance_transaction,
)

logger = logging.getLogger(__name__)

PAGE_SIZE = 100  # Stripe's largest page
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class StripePayouts:
    """Payouts and the balance (part of ``StripeGateway``; ``transactions.gateways.base.Payouts``)."""

    # Stripe filters balance transactions by payout for automatic payouts only ("can only be
    # filtered on automatic transfers"): an instant or other manual payout has no list of lines.
    itemizes_manual_payouts = False

    def payout_lines(self, *, organization: Organization, gateway_payout_id: str) -> Iterator[PayoutLineFact]:
        """Every balance transaction the payout carries (``BalanceTransaction.list(payout=)``, each
        one's source expanded to find the charge a refund or dispute concerns), all pages followed.
        The payout's own withdrawal (type ``payout``) is left out: the lines' net adds up to the
        payout's amount."""
        account = account_of(organization)
        with stripe_call("listing the payout's transactions"):
            page = stripe_client().v1.balance_transactions.list(
                {"payout": gateway_payout_id, "limit": PAGE_SIZE, "expand": ["data.source"]},
                {"stripe_account": account},
            )
            for balance_transaction in page.auto_paging_iter():
                balance_transaction = as_dict(balance_transaction)
                if balance_transaction.get("type") == PAYOUT_OWN_TYPE:
                    continue
                yield payout_line_from_balance_transaction(balance_transaction)

    def payouts_list(self, *, organization: Organization, created_after: datetime) -> Iterator[PayoutFact]:
        """The clinic's payouts created after ``created_after``, newest first, all pages followed,
        each with its bank account (the destination expanded)."""
        account = account_of(organization)
        as_of = int(timezone.now().timestamp())
        with stripe_call("listing payouts"):
            page = stripe_client().v1.payouts.list(
                {"created": {"gt": int(created_after.timestamp())}, "limit": PAGE_SIZE, "expand": ["data.destination"]},
                {"stripe_account": account},
            )
            for payout in page.auto_paging_iter():
                yield payout_fact_from_payout(as_dict(payout), organization_id=organization.pk, as_of=as_of)

    def payout_get(self, *, organization: Organization, gateway_payout_id: str) -> PayoutFact:
        payout = self._payout_retrieve(organization, gateway_payout_id)
        return payout_fact_from_payout(payout, organization_id=organization.pk, as_of=int(timezone.now().timestamp()))

    def balance(self, *, organization: Organization) -> BalanceFact:
        account = account_of(organization)
        with stripe_call("reading the balance"):
            balance = as_dict(stripe_client().v1.balance.retrieve(options={"stripe_account": account}))
        return balance_fact_from_balance(balance, organization_id=organization.pk, as_of=int(timezone.now().timestamp()))

    def next_payouts(self, *, organization: Organization) -> list[NextPayout]:
        """The next payout Stripe's schedule will make, per currency, estimated from the account's
        payout schedule (``settings.payouts.schedule``) and its balance, both read now.

        The day: the first day after today (today in the account's Stripe time zone, else UTC)
        that the schedule pays out on: every weekday for ``daily``; the ``weekly_anchor`` weekday
        (or the nearest of ``weekly_payout_days``) for ``weekly``; the ``monthly_anchor`` day of
        the month (or the nearest of ``monthly_payout_days``; a month's last day when it is
        shorter) for ``monthly``. A day on a weekend moves to the Monday after. Bank holidays are
        not known here, so Stripe may pay a day later than said.

        The amount, per currency of the balance: the available balance, plus the pending balance
        when the day is at least ``delay_days`` days away (then every fund pending today will be
        available by then). When it is nearer, only the available balance is counted: a floor,
        since part of what is pending will become available in time and join it.

        None at all when payouts are disabled or the schedule is ``manual``; none for a currency
        whose available and pending balance add up to nothing."""
        account = account_of(organization)
        with stripe_call("reading the payout schedule"):
            connected = as_dict(stripe_client().v1.accounts.retrieve_current(options={"stripe_account": account}))
        schedule = ((connected.get("settings") or {}).get("payouts") or {}).get("schedule") or {}
        if not connected.get("payouts_enabled") or schedule.get("interval") in (None, "manual"):
            return []
        today = timezone.now().astimezone(_account_zone(connected)).date()
        day = next_payout_day(schedule, today)
        if day is None:
            return []
        all_pending_in_time = (day - today).days >= int(schedule.get("delay_days") or 0)
        estimates = []
        for amount in self.balance(organization=organization).amounts:
            if amount.available_cents + amount.pending_cents <= 0:
                continue
            estimate = amount.available_cents + (amount.pending_cents if all_pending_in_time else 0)
            estimates.append(NextPayout(currency=amount.currency, payout_date=day, estimated_cents=max(estimate, 0)))
        return estimates

    # -- internals -----------------------------------------------------------------------------

    def _payout_retrieve(self, organization: Organization, gateway_payout_id: str) -> dict:
        account = account_of(organization)
        with stripe_call("reading the payout"):
            return as_dict(
                stripe_client().v1.payouts.retrieve(
                    gateway_payout_id, {"expand": ["destination"]}, {"stripe_account": account}
                )
            )

    def _payout_bank(self, organization: Organization, payout: dict) -> tuple[str, str]:
        """The bank name and last four of a payout whose event names its destination by id only:
        read from the payout at Stripe (destination expanded). A payout Stripe will not show is
        recorded without them; Stripe not answering is raised (the event is tried again)."""
        bank = bank_of(payout.get("destination"))
        if bank != ("", "") or not payout.get("destination"):
            return bank
        try:
            return bank_of(self._payout_retrieve(organization, payout["id"]).get("destination"))
        except GatewayUnavailable:
            raise
        except GatewayError as error:
            logger.info("stripe payout %s: its bank account is not readable (%s)", payout["id"], error.message)
            return "", ""


def _account_zone(connected: dict):
    name = ((connected.get("settings") or {}).get("dashboard") or {}).get("timezone") or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _weekday_rolled(day: date) -> date:
    return day + timedelta(days=(7 - day.weekday()) % 7 if day.weekday() >= 5 else 0)


def _month_day(year: int, month: int, day_of_month: int) -> date:
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day_of_month, last))


def next_payout_day(schedule: dict, today: date) -> date | None:
    """The first day after ``today`` that ``schedule`` (Stripe's ``settings.payouts.schedule``) pays
    out on, moved off a weekend (see ``StripePayouts.next_payouts``); None for a manual schedule."""
    interval = schedule.get("interval")
    if interval == "daily":
        return _weekday_rolled(today + timedelta(days=1))
    if interval == "weekly":
        days = schedule.get("weekly_payout_days") or [schedule.get("weekly_anchor") or "monday"]
        wanted = {WEEKDAYS.index(name) for name in days if name in WEEKDAYS} or {0}
        candidates = [today + timedelta(days=offset) for offset in range(1, 8)]
        return _weekday_rolled(next(day for day in candidates if day.weekday() in wanted))
    if interval == "monthly":
        days = schedule.get("monthly_payout_days") or [schedule.get("monthly_anchor") or 1]
        candidates = []
        for months_ahead in (0, 1):
            month_index = today.month - 1 + months_ahead
            year, month = today.year + month_index // 12, month_index % 12 + 1
            candidates += [_month_day(year, month, int(day)) for day in days]
        upcoming = sorted(day for day in candidates if day > today)
        return _weekday_rolled(upcoming[0]) if upcoming else None
    return None
