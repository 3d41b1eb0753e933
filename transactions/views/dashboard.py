"""The dashboard: the member's transactions, filtered, with totals and a chart of collections.

The filters live in the query string. With htmx the form and the page links swap only the
results (``#transaction-results``) and push the URL, so back and forward work; without
JavaScript the same GET form reloads the page.
"""

from dataclasses import dataclass
from urllib.parse import quote
from zoneinfo import ZoneInfo

from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.http import require_safe

from lumapay.dates import format_date, format_datetime
from lumapay.money import format_cents
from org_profile.access import MANAGERS, membership_required
from org_profile.enums import PaymentGateway

from ..enums import PaymentRequestKind, TransactionStatus
from ..filters import TransactionFilter
from ..selectors.dashboard import Cursor, dashboard_summary, transactions_page

# The element the filter form and the page links swap (templates/transactions/dashboard/_results.html).
RESULTS_TARGET = "transaction-results"


@membership_required()
@require_safe
def transaction_list(request):
    membership = request.membership
    filterset = TransactionFilter(request.GET or None, membership=membership)
    transactions = filterset.qs
    page = transactions_page(
        transactions,
        older_than=Cursor.decode(request.GET.get("older_than")),
        newer_than=Cursor.decode(request.GET.get("newer_than")),
    )
    chart_from, chart_to = filterset.date_range("paid")
    if chart_from is None and chart_to is None:
        chart_from, chart_to = filterset.date_range("created")
    summary = dashboard_summary(
        transactions, organization=request.organization, chart_from=chart_from, chart_to=chart_to,
        daily_totals=filterset.daily_totals(),
    )
    params = filterset.used_params()
    choices, chosen = filterset.form_choices()
    context = {
        "nav": "dashboard",
        "organization": request.organization,
        "filterset": filterset,
        "choices": choices,
        "chosen": chosen,
        "page": page,
        "rows": _rows(page.object_list, zone=ZoneInfo(request.organization.timezone)),
        "summary": summary,
        "chart_marks": _chart_marks(summary.chart, summary.currency, filter_params=params),
        "chips": filterset.chips(),
        "more_filters_in_use": filterset.more_filters_in_use(),
        "filter_query": params.urlencode(),
        "filter_params": [(name, value) for name, values in params.lists() for value in values],
        "is_filtered": bool(params),
        # Shown above the results too: with htmx only the results are swapped, not the form.
        "filter_errors": [
            (filterset.form.fields[name].label, message)
            for name, messages in filterset.form.errors.items()
            for message in messages
        ],
        "can_export": membership.role in MANAGERS,
    }
    # htmx swaps only the results; a normal visit, or htmx restoring history it no longer has
    # cached, gets the whole page.
    htmx = request.htmx
    if htmx and htmx.target == RESULTS_TARGET and not htmx.history_restore_request:
        response = render(request, "transactions/dashboard/_results.html", context)
    else:
        response = render(request, "transactions/dashboard/list.html", context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@dataclass(frozen=True)
class Row:
    """One line of the table, its text made here: formatting 25 rows in Python costs a fraction of
    what the same filters and ``get_*_display`` calls cost in the template language."""

    detail_url: str
    created: str
    patient_url: str
    patient: str
    what: str
    location: str
    amount: str
    status: str
    status_label: str
    last_error: str
    card: str
    vendor: str


def _rows(transactions, *, zone: ZoneInfo) -> list[Row]:
    detail_url = _url_pattern("transactions:transaction_detail")
    patient_url = _url_pattern("patients:profile")
    status_labels = {value: str(label) for value, label in TransactionStatus.choices}
    kind_labels = {value: str(label) for value, label in PaymentRequestKind.choices}
    vendor_labels = {value: str(label) for value, label in PaymentGateway.choices}
    return [
        Row(
            detail_url=detail_url(t.pk),
            created=format_datetime(t.created_at, zone),
            patient_url=patient_url(t.patient_id),
            patient=t.patient.full_name,
            what=f"{kind_labels.get(t.kind, t.kind)} · {t.billing_item}",
            location=t.location.name,
            amount=format_cents(t.amount_cents, t.currency),
            status=t.status,
            status_label=status_labels.get(t.status, t.status),
            last_error=t.last_error,
            card=f"{t.card_brand.title()} ···· {t.card_last4}" if t.card_last4 else "",
            vendor=vendor_labels.get(t.vendor, t.vendor),
        )
        for t in transactions
    ]


def _url_pattern(name: str):
    """``reverse`` once, then the id put in its place for each row (the pattern is ``<int:pk>``)."""
    marker = 918273645
    template = reverse(name, args=[marker])
    return lambda pk: template.replace(str(marker), str(pk))


def _chart_marks(chart, currency: str, *, filter_params) -> dict[str, SafeString]:
    """The chart's bars, its date ticks and its figures (table rows), escaped by
    ``format_html_join``: up to a hundred bars cost a fraction of a millisecond here, several in
    template loops.

    A bar with collections is a link to the same view narrowed to its days (paid in them), whose
    text (the days, the amount, the payments) shows on hover and on keyboard focus."""
    last = len(chart.bars) - 1
    # The filters' query string encoded once, with markers where each bar puts its days (a hundred
    # QueryDict copies and encodings took ~4 ms with every filter in use).
    query = filter_params.copy()
    query["paid_from"], query["paid_to"] = _PAID_FROM_MARK, _PAID_TO_MARK
    bar_url = f"{reverse('transactions:dashboard')}?{query.urlencode()}"
    bars = format_html_join(
        "",
        '<span class="chart-slot">{}</span>',
        (
            (_bar_link(bar, chart.max_cents, currency, bar_url, end=index > last / 2)
             if bar.collected_cents else "",)
            for index, bar in enumerate(chart.bars)
        ),
    )
    tick_indexes = _tick_indexes(last)
    ticks = format_html_join(
        "",
        '<span class="chart-tick{}" style="left:{}%">{}</span>',
        (
            # The first and last dates always show; the ones between only where there is room.
            (" chart-tick-minor" if 0 < position < len(tick_indexes) - 1 else "",
             _css_number((index + 0.5) / (last + 1) * 100), format_date(chart.bars[index].start))
            for position, index in enumerate(tick_indexes)
        ),
    )
    rows = format_html_join(
        "",
        '<tr><td>{}</td><td class="num">{}</td><td class="num">{}</td></tr>',
        (
            (bar.label, bar.payments, format_cents(bar.collected_cents, currency))
            for bar in chart.bars
            if bar.collected_cents
        ),
    )
    return {"bars": bars, "ticks": ticks, "rows": rows}


# Encoded as %00paid_from%00: a value typed into a filter comes out encoded differently.
_PAID_FROM_MARK, _PAID_TO_MARK = "\x00paid_from\x00", "\x00paid_to\x00"


def _bar_link(bar, max_cents: int, currency: str, bar_url: str, *, end: bool) -> SafeString:
    url = bar_url.replace(quote(_PAID_FROM_MARK), bar.start.isoformat()).replace(
        quote(_PAID_TO_MARK), bar.end.isoformat()
    )
    payments = f"{bar.payments} payment{'' if bar.payments == 1 else 's'}"
    # The label is the link's name and, through CSS (attr()), its tooltip. At least 2% tall, so a
    # small day stays visible and can be pointed at; bars in the right half open their tip leftwards.
    return format_html(
        '<a class="chart-bar{}" href="{}" hx-get="{}" hx-target="#main" hx-select="#main" hx-swap="outerHTML" '
        'hx-push-url="true" style="height:{}%" aria-label="{}: {}, {}"></a>',
        " chart-tip-end" if end else "", url, url, _css_number(max(bar.collected_cents / max_cents * 100, 2)),
        bar.label, format_cents(bar.collected_cents, currency), payments,
    )


def _tick_indexes(last: int) -> list[int]:
    """The bars that get a date under them: the first, the last and up to three evenly between."""
    if last < 0:
        return []
    return sorted({round(last * step / 4) for step in range(5)})


def _css_number(value: float) -> str:
    """CSS wants a dot for decimals whatever the language of the page."""
    return f"{value:.2f}".rstrip("0").rstrip(".")
