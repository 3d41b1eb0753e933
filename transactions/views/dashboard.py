"""The dashboard: the member's transactions, filtered, with totals and a chart of collections.

The filters live in the query string. With htmx the form and the page links swap only the
results (``#transaction-results``) and push the URL, so back and forward work; without
JavaScript the same GET form reloads the page.
"""

from dataclasses import dataclass
from html import escape
from urllib.parse import quote
from zoneinfo import ZoneInfo

from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.safestring import SafeString
from django.views.decorators.http import require_safe

from lumapay.dates import date_formatter, format_datetime
from lumapay.money import format_cents
from lumapay.phi_access import phi_access_record
from org_profile.access import MANAGERS, membership_required
from org_profile.enums import PaymentGateway

from ..enums import PaymentRequestKind, TransactionStatus
from ..filters import TransactionFilter
from ..selectors.dashboard import Cursor, dashboard_summary, transactions_page

# The filters whose page is read as a prepared statement (``transactions_page``).
PREPARED_PAGE_FILTERS = frozenset({"created_from", "created_to"})

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
        row_fields=ROW_FIELDS,
        # With no filter or the created dates alone, the page is a range of the (organization,
        # created) index whatever the dates: a prepared statement's generic plan is that one.
        prepared=filterset.used_filters() <= PREPARED_PAGE_FILTERS,
    )
    chart_from, chart_to = filterset.date_range("paid")
    if chart_from is None and chart_to is None:
        chart_from, chart_to = filterset.date_range("created")
    summary = dashboard_summary(
        transactions, organization=request.organization, chart_from=chart_from, chart_to=chart_to,
        daily_totals=filterset.daily_totals(),
    )
    # Each row names its patient.
    phi_access_record(
        request=request, organization=request.organization, patients=[t.patient_id for t in page.object_list]
    )
    params = filterset.used_params()
    choices, chosen = filterset.form_choices()
    errors = filterset.form.errors
    data = filterset.form.data
    context = {
        "nav": "dashboard",
        "organization": request.organization,
        "filterset": filterset,
        "choices": choices,
        "chosen": chosen,
        "checks": {
            name: _checks_html(name, choices[name], chosen[name], errors.get(name))
            for name in ("status", "kind", "location", "billing_item")
        },
        "selects": {
            name: _select_html(name, label, choices[name], data.get(name) or "", errors.get(name))
            for name, label in (("vendor", "Vendor"), ("card_brand", "Card brand"), ("has_errors", "Errors"))
        },
        "page": page,
        "rows": _rows_html(_rows(page.object_list, zone=ZoneInfo(request.organization.timezone))),
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


# What a row shows, read from the page's transactions, patients and locations (not their every
# column), as named tuples: 25 rows need no Transaction, Patient and Location objects.
ROW_FIELDS = (
    "pk", "created_at", "patient_id", "patient__first_name", "patient__last_name", "kind", "billing_item",
    "location__name", "amount_cents", "currency", "status", "last_error", "card_brand", "card_last4", "vendor",
)


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
            patient=f"{t.patient__first_name} {t.patient__last_name}",  # Patient.full_name
            what=f"{kind_labels.get(t.kind, t.kind)} · {t.billing_item}",
            location=t.location__name,
            amount=format_cents(t.amount_cents, t.currency),
            status=t.status,
            status_label=status_labels.get(t.status, t.status),
            last_error=t.last_error,
            card=f"{t.card_brand.title()} ···· {t.card_last4}" if t.card_last4 else "",
            vendor=vendor_labels.get(t.vendor, t.vendor),
        )
        for t in transactions
    ]


# The filter's inputs and the table's rows are written here with plain string formatting and
# ``html.escape``, not by template loops and includes: the same HTML for about a third of the time
# (the dashboard's share of a bare view's throughput is measured by ``make bench``).


def _checks_html(name: str, choices, chosen: set[str], errors) -> SafeString:
    """A filter's checkboxes (status, kind, location, billing item), its chosen values checked."""
    boxes = "".join(
        f'\n<label for="id_{name}_{index}"><input type="checkbox" name="{name}" value="{escape(str(value))}" '
        f'id="id_{name}_{index}"{" checked" if str(value) in chosen else ""}> {escape(str(label))}</label>'
        for index, (value, label) in enumerate(choices)
    )
    return SafeString(f'<div class="checks-list" id="id_{name}">{boxes}\n</div>{errors or ""}')


def _select_html(name: str, label: str, choices, chosen: str, errors) -> SafeString:
    """A filter with one value (vendor, card brand, errors), with its label."""
    options = "".join(
        f'<option value="{escape(str(value))}"{" selected" if str(value) == chosen else ""}>{escape(str(text))}</option>'
        for value, text in choices
    )
    return SafeString(
        f'<label for="id_{name}">{escape(label)}</label>\n<select name="{name}" id="id_{name}">{options}</select>'
        f'{errors or ""}'
    )


def _rows_html(rows: list[Row]) -> SafeString:
    """The table's body: one line per transaction, each cell labelled for the phone layout, where
    the table becomes a stack of cards."""
    return SafeString("".join(
        f"""
        <tr>
          <td data-label="Date"><a href="{row.detail_url}">{escape(row.created)}</a></td>
          <td data-label="Patient"><a href="{row.patient_url}">{escape(row.patient)}</a></td>
          <td data-label="Kind · billing item">{escape(row.what)}</td>
          <td data-label="Location">{escape(row.location)}</td>
          <td data-label="Amount" class="num">{escape(row.amount)}</td>
          <td data-label="Status"><span class="status status-{escape(row.status)}">{escape(row.status_label)}</span>"""
        + (f' <span class="flag-error" title="{escape(row.last_error)}">!<span class="visually-hidden"> '
           f"{escape(row.last_error)}</span></span>" if row.last_error else "")
        + f"""</td>
          <td data-label="Card">{escape(row.card) if row.card else '<span class="hint">—</span>'}</td>
          <td data-label="Vendor">{escape(row.vendor)}</td>
        </tr>"""
        for row in rows
    ))


def _url_pattern(name: str):
    """``reverse`` once, then the id put in its place for each row (the pattern is ``<int:pk>``)."""
    marker = 918273645
    template = reverse(name, args=[marker])
    return lambda pk: template.replace(str(marker), str(pk))


def _chart_marks(chart, currency: str, *, filter_params) -> dict[str, SafeString]:
    """The chart's bars, its date ticks and its figures (table rows) as HTML.

    Written with plain string formatting and ``html.escape`` on every text that is not a number
    (a hundred bars through ``format_html`` took ~3 ms of a ~20 ms page).

    A bar with collections is a link to the same view narrowed to its days (paid in them), whose
    text (the days, the amount, the payments) shows on hover and on keyboard focus."""
    last = len(chart.bars) - 1
    # The filters' query string encoded and escaped once, with markers where each bar puts its
    # days (a hundred QueryDict copies and encodings took ~4 ms with every filter in use), then
    # cut at the markers, so a bar's link is three pieces and its two days.
    query = filter_params.copy()
    query["paid_from"], query["paid_to"] = _PAID_FROM_MARK, _PAID_TO_MARK
    bar_url = escape(f"{reverse('transactions:dashboard')}?{query.urlencode()}")
    head, found_from, rest = bar_url.partition(_PAID_FROM_QUOTED)
    middle, found_to, tail = rest.partition(_PAID_TO_QUOTED)
    if found_from and found_to:
        def url_of(bar) -> str:
            return f"{head}{bar.start.isoformat()}{middle}{bar.end.isoformat()}{tail}"
    else:  # paid_to before paid_from: never from used_params, whose order is the filters'
        def url_of(bar) -> str:
            return bar_url.replace(_PAID_FROM_QUOTED, bar.start.isoformat()).replace(_PAID_TO_QUOTED, bar.end.isoformat())
    money = {}  # cents → text: the same amounts show in a bar's label and in the figures

    def cents_text(cents: int) -> str:
        text = money.get(cents)
        if text is None:
            text = money[cents] = format_cents(cents, currency)
        return text

    half = last / 2
    bars = "".join(
        f'<span class="chart-slot">'
        f'{_bar_link(bar, chart.max_cents, cents_text, url_of(bar), end=index > half) if bar.collected_cents else ""}'
        f"</span>"
        for index, bar in enumerate(chart.bars)
    )
    tick_indexes = _tick_indexes(last)
    day_text = date_formatter()
    ticks = "".join(
        # The first and last dates always show; the ones between only where there is room.
        f'<span class="chart-tick{" chart-tick-minor" if 0 < position < len(tick_indexes) - 1 else ""} '
        f'chart-x-{round((index + 0.5) / (last + 1) * 100)}">{escape(day_text(chart.bars[index].start))}</span>'
        for position, index in enumerate(tick_indexes)
    )
    rows = "".join(
        f'<tr><td>{escape(bar.label)}</td><td class="num">{bar.payments:d}</td>'
        f'<td class="num">{escape(cents_text(bar.collected_cents))}</td></tr>'
        for bar in chart.bars
        if bar.collected_cents
    )
    return {"bars": SafeString(bars), "ticks": SafeString(ticks), "rows": SafeString(rows)}


# Encoded as %00paid_from%00: a value typed into a filter comes out encoded differently.
_PAID_FROM_MARK, _PAID_TO_MARK = "\x00paid_from\x00", "\x00paid_to\x00"
_PAID_FROM_QUOTED, _PAID_TO_QUOTED = quote(_PAID_FROM_MARK), quote(_PAID_TO_MARK)


def _bar_link(bar, max_cents: int, cents_text, url: str, *, end: bool) -> str:
    """``url`` is already escaped for an attribute (its days hold no character to escape)."""
    payments = f"{bar.payments} payment{'' if bar.payments == 1 else 's'}"
    label = escape(f"{bar.label}: {cents_text(bar.collected_cents)}, {payments}")
    # The label is the link's name and, through CSS (attr()), its tooltip. At least 2% tall, so a
    # small day stays visible and can be pointed at; bars in the right half open their tip leftwards.
    # Heights (and the ticks' places) are classes, one per percent (static/css/lumapay.css): the
    # Content-Security-Policy refuses style="" attributes. 1% of the 96px chart is under a pixel.
    return (
        # Plain links: the bars' container boosts them with htmx (_chart.html), which keeps a
        # hundred bars from each repeating the same five hx- attributes and their URL twice.
        f'<a class="chart-bar chart-h-{max(round(bar.collected_cents / max_cents * 100), 2)}{" chart-tip-end" if end else ""}" '
        f'href="{url}" aria-label="{label}"></a>'
    )


def _tick_indexes(last: int) -> list[int]:
    """The bars that get a date under them: the first, the last and up to three evenly between."""
    if last < 0:
        return []
    return sorted({round(last * step / 4) for step in range(5)})
