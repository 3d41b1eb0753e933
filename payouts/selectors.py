"""Reads for the payouts pages: the balance, the payouts on their way, one keyset page of the
filtered payouts with the set's totals, one payout and its lines (keyset paged, totalled by the
database), and the payouts that carried a transaction's money.

Every read names its organization; a payout of another organization is "not found" (None).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db.models import Count, F, Q, QuerySet, Sum

from org_profile.models import Organization
from transactions.models import Transaction
from transactions.selectors.dashboard import Cursor, KeysetPage, transactions_page

from .enums import PayoutLineKind, PayoutStatus
from .models import GatewayBalance, Payout, PayoutLine

PAGE_SIZE = 25
LINES_PAGE_SIZE = 100

# What a page row of the list shows (the rest of the payout is the detail page's).
LIST_FIELDS = (
    "id", "created_at", "arrival_date", "amount_cents", "currency", "status", "method", "bank_last4",
    "failure_message", "reconciliation", "lines_count", "lines_net_cents",
)
ON_THE_WAY = (PayoutStatus.PENDING, PayoutStatus.IN_TRANSIT)


def payouts_of(*, organization: Organization) -> QuerySet[Payout]:
    return Payout.objects.filter(organization=organization)


def balances_of(*, organization: Organization) -> list[GatewayBalance]:
    """The balance at the gateway in each currency, with the next scheduled payout."""
    return list(GatewayBalance.objects.filter(organization=organization).order_by("currency"))


def payouts_on_the_way(*, organization: Organization, limit: int = 10) -> list[Payout]:
    """Payouts pending or in transit, the soonest to arrive first."""
    return list(
        payouts_of(organization=organization)
        .filter(status__in=ON_THE_WAY)
        .only(*LIST_FIELDS)
        .order_by("arrival_date", "created_at", "id")[:limit]
    )


def payouts_page(
    payouts: QuerySet[Payout], *, older_than: Cursor | None = None, newer_than: Cursor | None = None,
    size: int = PAGE_SIZE,
) -> KeysetPage:
    """``size`` payouts newest first, keyset paged on (created_at, id): the dashboard's paging
    (``transactions_page`` reads any queryset with those two columns), along the
    (organization, -created_at, -id) index."""
    return transactions_page(payouts.only(*LIST_FIELDS), older_than=older_than, newer_than=newer_than, size=size)


@dataclass(frozen=True)
class CurrencyTotal:
    """The filtered payouts of one currency: how many, what they send to the bank (every status
    but failed and cancelled), and what failed or was cancelled (that money went back to the
    balance and out again in a later payout: counting it too would count it twice)."""

    currency: str
    count: int
    amount_cents: int
    returned_cents: int = 0
    returned_count: int = 0


# Payouts whose money never reached the bank (it went back to the balance).
RETURNED_STATUSES = (PayoutStatus.FAILED, PayoutStatus.CANCELED)


@dataclass(frozen=True)
class PayoutTotals:
    count: int
    by_currency: list[CurrencyTotal]


def payouts_totals(payouts: QuerySet[Payout]) -> PayoutTotals:
    """Count and sum of the filtered set, one row per currency (one grouped query)."""
    returned = Q(status__in=RETURNED_STATUSES)
    rows = (
        payouts.order_by()
        .values("currency")
        .annotate(
            count=Count("id"),
            amount=Sum("amount_cents", filter=~returned),
            returned=Sum("amount_cents", filter=returned),
            returned_count=Count("id", filter=returned),
        )
        .order_by("currency")
    )
    by_currency = [
        CurrencyTotal(row["currency"], row["count"], row["amount"] or 0, row["returned"] or 0, row["returned_count"])
        for row in rows
    ]
    return PayoutTotals(count=sum(total.count for total in by_currency), by_currency=by_currency)


def payout_get(*, organization: Organization, pk: int) -> Payout | None:
    return payouts_of(organization=organization).filter(pk=pk).first()


# -- one payout's lines ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KindTotal:
    kind: str
    label: str
    count: int
    amount_cents: int
    fee_cents: int
    net_cents: int

    @property
    def fee_taken_cents(self) -> int:
        """The fees as what they take off (a refunded fee adds back)."""
        return -self.fee_cents


@dataclass(frozen=True)
class LineTotals:
    """The payout's lines added up by the database, by kind and in all."""

    by_kind: list[KindTotal]
    count: int
    gross_cents: int
    fee_cents: int
    net_cents: int

    @property
    def fee_taken_cents(self) -> int:
        return -self.fee_cents


def payout_line_totals(*, payout: Payout) -> LineTotals:
    rows = (
        PayoutLine.objects.filter(organization_id=payout.organization_id, payout=payout)
        .order_by()
        .values("kind")
        .annotate(count=Count("id"), amount=Sum("amount_cents"), fee=Sum("fee_cents"), net=Sum("net_cents"))
    )
    labels = dict(PayoutLineKind.choices)
    order = {kind: index for index, kind in enumerate(PayoutLineKind.values)}
    by_kind = sorted(
        (
            KindTotal(row["kind"], str(labels.get(row["kind"], row["kind"])), row["count"], row["amount"], row["fee"], row["net"])
            for row in rows
        ),
        key=lambda total: order.get(total.kind, len(order)),
    )
    return LineTotals(
        by_kind=by_kind,
        count=sum(total.count for total in by_kind),
        gross_cents=sum(total.amount_cents for total in by_kind),
        fee_cents=sum(total.fee_cents for total in by_kind),
        net_cents=sum(total.net_cents for total in by_kind),
    )


@dataclass(frozen=True)
class LinesPage:
    lines: list[PayoutLine]
    next_cursor: str  # "" on the last page
    is_first: bool


def payout_lines_page(*, payout: Payout, after: Cursor | None = None, size: int = LINES_PAGE_SIZE) -> LinesPage:
    """``size`` lines of the payout in the order the gateway made them, keyset paged along the
    (payout, created_at, id) index: the 100th page of a 10,000-line payout reads 101 rows."""
    lines = PayoutLine.objects.filter(organization_id=payout.organization_id, payout=payout)
    if after is not None:
        lines = lines.filter(created_at__gte=after.created_at).filter(
            Q(created_at__gt=after.created_at) | Q(id__gt=after.pk)
        )
    rows = list(
        # fee_taken_cents: the fee as what it takes off the line (negative; a refunded fee positive).
        lines.annotate(fee_taken_cents=-F("fee_cents")).order_by("created_at", "id").only(
            "id", "kind", "amount_cents", "fee_cents", "net_cents", "currency", "created_at", "available_on",
            "source_id", "transaction_id",
        )[: size + 1]
    )
    has_more = len(rows) > size
    rows = rows[:size]
    return LinesPage(lines=rows, next_cursor=Cursor.of(rows[-1]).encode() if has_more else "", is_first=after is None)


# -- a transaction's payouts ----------------------------------------------------------------------


@dataclass(frozen=True)
class CarriedBy:
    payout_id: int
    status: str
    arrival_date: date
    kind: str
    net_cents: int
    currency: str

    @property
    def kind_label(self) -> str:
        return str(dict(PayoutLineKind.choices).get(self.kind, self.kind))


def payouts_carrying(*, transaction: Transaction) -> list[CarriedBy]:
    """The payouts whose lines concern ``transaction`` (its payment, and any refund or dispute
    later), oldest first."""
    rows = (
        PayoutLine.objects.filter(organization_id=transaction.organization_id, transaction=transaction)
        .order_by("created_at", "id")
        .values_list("payout_id", "payout__status", "payout__arrival_date", "kind", "net_cents", "currency")
    )
    return [CarriedBy(*row) for row in rows]
