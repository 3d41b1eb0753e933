"""Reads for the dashboard: one page of the filtered transactions, their totals and the chart of
collections, and the organization's billing items (the filter's choices).

Paging is by keyset on (created_at, id), never OFFSET and never a separate count: the count shown
comes from the one totals query, which the page needs anyway. Why keyset rather than a Paginator
fed that count: OFFSET makes PostgreSQL walk and discard every earlier row, so page 400 of a
filtered set reads 10,000 rows to show 25; a keyset page starts at its cursor in the
(organization, …, created_at, id) index and reads 26 rows, however deep it is. What keyset paging
gives up is "page N of M" and jumping to a page number, which billing staff do not use: they narrow
the filters instead.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import BigIntegerField, Count, Q, QuerySet, Sum
from django.db.models.functions import Cast, TruncDate
from django.db.models.utils import create_namedtuple_class

from lumapay.dates import date_formatter
from lumapay.prepared import prepared_rows
from org_profile.models import Organization

from ..models import Transaction

PAGE_SIZE = 25
# The chart shows days up to this many, then weeks, then (past two years) months.
CHART_MAX_DAYS = 92
CHART_MAX_WEEKS_SPAN_DAYS = 731
CHART_WIDTH = 720
CHART_HEIGHT = 160
_EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
_ONE_DAY = timedelta(days=1)


# -- billing items ---------------------------------------------------------------------------------

_BILLING_ITEMS_SQL = """
WITH RECURSIVE items(item) AS (
    (SELECT billing_item FROM transactions_transaction
      WHERE organization_id = %(organization)s ORDER BY billing_item LIMIT 1)
    UNION ALL
    SELECT (SELECT t.billing_item FROM transactions_transaction t
             WHERE t.organization_id = %(organization)s AND t.billing_item > items.item
             ORDER BY t.billing_item LIMIT 1)
      FROM items WHERE items.item IS NOT NULL
)
SELECT item FROM items WHERE item IS NOT NULL
"""


def billing_items_of(*, organization: Organization) -> list[str]:
    """The organization's distinct billing items, alphabetically.

    A loose index scan (one probe of the (organization, billing_item) index per distinct item)
    instead of ``SELECT DISTINCT``, which would read every one of the organization's transactions.
    A prepared statement (``prepared_rows``): planning the recursive query cost more than running it.
    """
    return [row[0] for row in prepared_rows(_BILLING_ITEMS_SQL, {"organization": organization.pk})]


# -- keyset pages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    pk: int

    def encode(self) -> str:
        delta = self.created_at - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return f"{micros}_{self.pk}"

    @classmethod
    def decode(cls, text: str | None) -> Cursor | None:
        """A cursor from the URL, or None for anything that is not one (the first page then)."""
        if not text or text.count("_") != 1:
            return None
        micros, pk = text.split("_")
        if not (micros.lstrip("-").isdigit() and pk.isdigit()) or len(micros) > 20:
            return None
        try:
            return cls(_EPOCH + timedelta(microseconds=int(micros)), int(pk))
        except OverflowError:
            return None

    @classmethod
    def of(cls, transaction: Transaction) -> Cursor:
        return cls(transaction.created_at, transaction.pk)


@dataclass(frozen=True)
class KeysetPage:
    object_list: list[Transaction]
    has_newer: bool
    has_older: bool

    @property
    def newer_cursor(self) -> str:
        return Cursor.of(self.object_list[0]).encode() if self.object_list else ""

    @property
    def older_cursor(self) -> str:
        return Cursor.of(self.object_list[-1]).encode() if self.object_list else ""

    @property
    def has_other_pages(self) -> bool:
        return self.has_newer or self.has_older

    def __iter__(self):
        return iter(self.object_list)

    def __len__(self) -> int:
        return len(self.object_list)


def transactions_page(
    transactions: QuerySet[Transaction],
    *,
    older_than: Cursor | None = None,
    newer_than: Cursor | None = None,
    size: int = PAGE_SIZE,
    row_fields: tuple[str, ...] | None = None,
    prepared: bool = False,
) -> KeysetPage:
    """``size`` transactions, newest first: the newest ones, or those just older than
    ``older_than``, or just newer than ``newer_than``.

    The redundant ``created_at <= cursor`` lets PostgreSQL start the index range at the cursor;
    the OR then settles ties on the same microsecond by id. With ``row_fields`` the rows are named
    tuples of those columns (``pk`` and ``created_at`` among them, for the cursors), not models;
    ``prepared`` reads them as a prepared statement (``lumapay.prepared``: PostgreSQL planned this
    read, over the transactions' many indexes, for twice as long as it ran), only for filters whose
    best plan does not depend on their values.
    """
    if newer_than is not None:
        rows = _first_rows(
            transactions.filter(created_at__gte=newer_than.created_at).filter(
                Q(created_at__gt=newer_than.created_at) | Q(id__gt=newer_than.pk)
            ),
            ("created_at", "id"),
            size + 1,
            row_fields,
            prepared,
        )
        if len(rows) <= size:
            # Back at the newest rows: show the first page whole rather than a short one.
            return transactions_page(transactions, size=size, row_fields=row_fields, prepared=prepared)
        rows = rows[:size]
        rows.reverse()
        return KeysetPage(object_list=rows, has_newer=True, has_older=True)
    if older_than is not None:
        transactions = transactions.filter(created_at__lte=older_than.created_at).filter(
            Q(created_at__lt=older_than.created_at) | Q(id__lt=older_than.pk)
        )
    rows = _first_rows(transactions, ("-created_at", "-id"), size + 1, row_fields, prepared)
    return KeysetPage(object_list=rows[:size], has_newer=older_than is not None, has_older=len(rows) > size)


def _first_rows(
    transactions: QuerySet[Transaction],
    ordering: tuple[str, ...],
    limit: int,
    row_fields: tuple[str, ...] | None,
    prepared: bool = False,
) -> list[Transaction]:
    """The first ``limit`` rows of ``transactions`` in ``ordering``, as one query in two steps:
    the ids, filtered and ordered within a covering index (no table row read for the rows the
    filters reject), then just those rows with what ``transactions`` joins (patient, location).

    Why: with filters that reject most rows, reading each candidate's table row before filtering
    it cost the most (every filter at once: 16,000 table rows read for 26 kept, ~100 ms); the
    covering indexes hold every column the filters read."""
    ids = transactions.order_by(*ordering).values("pk")[:limit]
    rows = transactions.model._default_manager.filter(pk__in=ids).order_by(*ordering)
    if row_fields:
        # Named tuples of just those columns. Only the rows join what they show: the ids come from
        # the transactions alone (joined to patients and locations, the ids' read walked every row
        # of the date range instead of 26 index entries: 24 ms for the last 7 days).
        rows = rows.values_list(*row_fields, named=True)
        if prepared:
            # Their columns need no converter (dates, texts, integers), as values_list would apply.
            row_class = create_namedtuple_class(*row_fields)
            return [row_class(*row) for row in prepared_rows(*rows.query.sql_with_params())]
        return list(rows)
    rows.query.select_related = transactions.query.select_related
    rows.query.deferred_loading = transactions.query.deferred_loading
    return list(rows)


# -- totals and the chart --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartBar:
    start: date
    end: date
    collected_cents: int
    payments: int
    x: float
    y: float
    width: float
    height: float

    @property
    def is_single_day(self) -> bool:
        return self.start == self.end

    label: str = ""  # "Mar 3, 2026", or "Mar 2, 2026 – Mar 8, 2026" for a week or a month


@dataclass(frozen=True)
class Chart:
    unit: str  # "day" | "week" | "month"
    bars: list[ChartBar] = field(default_factory=list)
    max_cents: int = 0
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT

    @property
    def first(self) -> date | None:
        return self.bars[0].start if self.bars else None

    @property
    def last(self) -> date | None:
        return self.bars[-1].end if self.bars else None

    @property
    def busiest(self) -> ChartBar | None:
        return max(self.bars, key=lambda bar: bar.collected_cents) if self.max_cents else None


@dataclass(frozen=True)
class SummedAhead:
    """The filtered set's totals as daily-total cells (``DailyTotal``, ``DailyCardTotal`` or
    ``DailyAmountTotal``: each has ``paid_on`` and the four sums), plus, for an amount range whose
    bound cuts a band of ``DailyAmountTotal``, the transactions of the set in that part of the band
    (``rest``), read one by one. Together exactly the filtered set, each transaction once."""

    cells: QuerySet
    rest: QuerySet[Transaction] | None = None


@dataclass(frozen=True)
class DashboardSummary:
    count: int
    collected_cents: int
    refunded_cents: int
    currency: str
    chart: Chart

    @property
    def net_cents(self) -> int:
        return self.collected_cents - self.refunded_cents


def dashboard_summary(
    transactions: QuerySet[Transaction],
    *,
    organization: Organization,
    chart_from: date | None = None,
    chart_to: date | None = None,
    today: date | None = None,
    daily_totals: SummedAhead | None = None,
) -> DashboardSummary:
    """Count, collected, refunded and net of the filtered set, and collections per local day.

    One grouped query: rows by the local date they were paid (NULL for unpaid ones), each with
    its count and sums; the totals are the sums of those rows, so the page never counts the set a
    second time. When the filters allow it, ``daily_totals`` (the same set summed ahead, see
    ``DailyTotal``) is read instead of the transactions: the same figures, exactly, from a few
    hundred to a few tens of thousands of cells instead of up to every transaction of the
    organization. The chart spans ``chart_from``–``chart_to`` when given (a date filter),
    otherwise the paid days found (see ``_chart``).
    """
    tz = ZoneInfo(organization.timezone)
    if daily_totals is not None:
        sources = [_cells_by_day(daily_totals.cells)]
        if daily_totals.rest is not None:
            sources.append(_transactions_by_day(daily_totals.rest, tz))
    else:
        sources = [_transactions_by_day(transactions, tz)]
    count = collected = refunded = 0
    per_day: dict[date, tuple[int, int]] = {}
    for rows in sources:
        for paid_day, day_count, day_collected, day_refunded, payments in rows:
            count += day_count
            collected += day_collected or 0
            refunded += day_refunded or 0
            if paid_day is not None and day_collected:
                day_cents, day_payments = per_day.get(paid_day, (0, 0))
                per_day[paid_day] = (day_cents + day_collected, day_payments + payments)
    today = today or datetime.now(tz).date()
    chart = _chart(per_day, start=chart_from, end=chart_to, today=today)
    return DashboardSummary(
        count=count, collected_cents=collected, refunded_cents=refunded, currency=organization.currency, chart=chart
    )


def _cells_by_day(cells: QuerySet):
    # Prepared: a few shapes (the filters' columns), read on every page, over a few hundred to a
    # few tens of thousands of cells, where planning cost as much as summing the unfiltered page's.
    sums = (
        cells.order_by()
        .values("paid_on")
        .annotate(
            count=_whole(Sum("transactions")),
            collected=_whole(Sum("charged_cents")),
            refunded=_whole(Sum("refunded_cents")),
            payments=_whole(Sum("payments")),
        )
        .values_list("paid_on", "count", "collected", "refunded", "payments")
    )
    return _plain_rows(sums, prepared=True)


def _transactions_by_day(transactions: QuerySet[Transaction], tz: ZoneInfo):
    # No COUNT(id): the (organization, amount) index does not hold the id, and the sum stays an
    # index-only scan.
    return _plain_rows(
        transactions.order_by()
        .annotate(paid_day=TruncDate("paid_at", tzinfo=tz))
        .values("paid_day")
        .annotate(
            count=Count("*"),
            collected=_whole(Sum("charged_cents")),
            refunded=_whole(Sum("refunded_cents")),
            payments=Count("charged_cents", filter=Q(charged_cents__gt=0)),
        )
        .values_list("paid_day", "count", "collected", "refunded", "payments")
    )


def _whole(total: Sum) -> Cast:
    """A sum of cents as bigint (PostgreSQL's SUM of bigint is numeric, read as a Decimal)."""
    return Cast(total, BigIntegerField())


def _plain_rows(rows: QuerySet, *, prepared: bool = False) -> list[tuple]:
    """The rows of a ``values_list`` query as the database driver returns them: the ORM writes the
    SQL, but its per-value converters (five per row, for up to a few thousand days) are skipped;
    the columns are dates and integers, which need none. ``prepared``: as a prepared statement."""
    sql, params = rows.query.sql_with_params()
    if prepared:
        return prepared_rows(sql, params)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _chart(per_day: dict[date, tuple[int, int]], *, start: date | None, end: date | None, today: date) -> Chart:
    """Bars over the filter's dates, widened to every day with collections in the set (a payment
    made just after the created range still shows), never past today.

    Each day with collections is put in its bucket by arithmetic, and the buckets are walked once:
    two years of days (730 collecting days, 105 weekly bars) in well under a millisecond; walking
    every day of the span to map it to its bucket took several."""
    if start is None and not per_day:
        return Chart(unit="day")
    if per_day:
        start = min(start or min(per_day), min(per_day))
        end = max(end or max(per_day), max(per_day))
    end = min(end or today, today)
    if end < start:
        return Chart(unit="day")
    span = (end - start).days + 1
    if span <= CHART_MAX_DAYS:
        unit, bucket_start_of, bucket_end_of = "day", _same_day, _same_day
    elif span <= CHART_MAX_WEEKS_SPAN_DAYS:
        unit, bucket_start_of, bucket_end_of = "week", _monday, _sunday
    else:
        unit, bucket_start_of, bucket_end_of = "month", _first_of_month, _last_of_month

    sums: dict[date, list[int]] = {}  # bucket start to [cents, payments]
    for day, (cents, payments) in per_day.items():
        if start <= day <= end:
            bucket = sums.get(key := bucket_start_of(day))
            if bucket is None:
                sums[key] = [cents, payments]
            else:
                bucket[0] += cents
                bucket[1] += payments
    buckets = []  # (first day, last day, cents, payments), in order
    bucket_start = bucket_start_of(start)
    while bucket_start <= end:
        bucket_end = bucket_end_of(bucket_start)
        cents, payments = sums.get(bucket_start, (0, 0))
        buckets.append((max(bucket_start, start), min(bucket_end, end), cents, payments))
        bucket_start = bucket_end + _ONE_DAY

    max_cents = max((bucket[2] for bucket in buckets), default=0)
    slot = CHART_WIDTH / len(buckets)
    gap = min(2.0, slot * 0.2)
    day_text = date_formatter()
    bars = []
    for index, (first, last, cents, payments) in enumerate(buckets):
        height = round((cents / max_cents) * (CHART_HEIGHT - 4), 2) if max_cents else 0
        bars.append(
            ChartBar(
                start=first,
                end=last,
                collected_cents=cents,
                payments=payments,
                x=round(index * slot + gap / 2, 2),
                y=round(CHART_HEIGHT - height, 2),
                width=round(slot - gap, 2),
                height=height,
                label=day_text(first) if first == last else f"{day_text(first)} – {day_text(last)}",
            )
        )
    return Chart(unit=unit, bars=bars, max_cents=max_cents)


def _same_day(day: date) -> date:
    return day


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _sunday(monday: date) -> date:
    return monday + timedelta(days=6)


def _first_of_month(day: date) -> date:
    return day.replace(day=1)


def _last_of_month(first: date) -> date:
    return first.replace(day=calendar.monthrange(first.year, first.month)[1])
