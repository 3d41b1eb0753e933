"""The dashboard: the member's transactions, filtered, with totals and a chart of collections.

The filters live in the query string. With htmx the form and the page links swap only the
results (``#transaction-results``) and push the URL, so back and forward work; without
JavaScript the same GET form reloads the page.
"""

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.dates import MONTHS_3
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext
from django.views.decorators.http import require_safe

from lumapay import html
from lumapay.money import format_cents
from org_profile.access import MANAGERS, membership_required
from org_profile.enums import PaymentGateway

from ..enums import PaymentRequestKind, TransactionStatus
from ..filters import TransactionFilter
from ..selectors.dashboard import Cursor, dashboard_summary, transactions_page

# The element the filter form and the page links swap (templates/transactions/dashboard/_results.html).
RESULTS_TARGET = "transaction-results"
# The columns a row of the table shows (``_rows``) and the page's cursor (created_at, id): the page
# loads these, not every column of the transactions, patients and locations.
ROW_FIELDS = (
    "id", "created_at", "kind", "billing_item", "amount_cents", "currency", "status", "last_error", "card_brand",
    "card_last4", "vendor", "patient__first_name", "patient__last_name", "location__name",
)


@membership_required()
@require_safe
def transaction_list(request):
    membership = request.membership
    filterset = TransactionFilter(request.GET or None, membership=membership)
    transactions = filterset.qs
    page = transactions_page(
        transactions.only(*ROW_FIELDS),
        older_than=Cursor.decode(request.GET.get("older_than")),
        newer_than=Cursor.decode(request.GET.get("newer_than")),
    )
    chart_from, chart_to = filterset.date_range("paid")
    if chart_from is None and chart_to is None:
        chart_from, chart_to = filterset.date_range("created")
    summary = dashboard_summary(
        transactions, organization=request.organization, chart_from=chart_from, chart_to=chart_to
    )
    params = filterset.used_params()
    choices, chosen = filterset.form_choices()
    rows = _rows(page.object_list, zone=ZoneInfo(request.organization.timezone))
    context = {
        "nav": "dashboard",
        "organization": request.organization,
        "filterset": filterset,
        # What the form shows, as dicts the template reads a missing key of as "": a failed lookup
        # costs the template language three exceptions, and the form has some thirty of them.
        "filter_form": {"errors": _Blank(filterset.form.errors)},
        "filter_values": _Blank({name: filterset.form.data[name] for name in filterset.form.data}),
        "choices": choices,
        "chosen": chosen,
        "page": page,
        "rows": rows,
        "rows_html": _rows_html(rows),
        "summary": summary,
        "chart_marks": _chart_marks(summary.chart, summary.currency),
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


class _Blank(dict):
    """A dict whose missing keys read as "" (what the template language shows for them)."""

    def __missing__(self, key):
        return ""


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
    created_text = _datetime_text()
    return [
        Row(
            detail_url=detail_url(t.pk),
            created=created_text(t.created_at.astimezone(zone)),
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


def _datetime_text():
    """What ``dateformat.format(moment, "M j, Y g:i A")`` writes, in the active language, with the
    month names and AM/PM translated once instead of the format parsed again for every row."""
    months = ["", *(str(MONTHS_3[number]).title() for number in range(1, 13))]
    am, pm = gettext("AM"), gettext("PM")
    return lambda moment: (
        f"{months[moment.month]} {moment.day}, {moment.year:04d} {moment.hour % 12 or 12}:{moment.minute:02d} "
        f"{pm if moment.hour > 11 else am}"
    )


def _rows_html(rows: list[Row]) -> SafeString:
    """The table's rows, each value escaped: several times cheaper than a template loop over them."""
    e = html.text
    return mark_safe("".join(
        f'\n<tr><td><a href="{e(row.detail_url)}">{e(row.created)}</a></td>'
        f'<td><a href="{e(row.patient_url)}">{e(row.patient)}</a></td>'
        f"<td>{e(row.what)}</td>"
        f"<td>{e(row.location)}</td>"
        f'<td class="num">{e(row.amount)}</td>'
        f'<td><span class="status status-{e(row.status)}">{e(row.status_label)}</span>'
        + (
            f' <span class="flag-error" title="{e(row.last_error)}">!<span class="visually-hidden"> '
            f"{e(row.last_error)}</span></span>" if row.last_error else ""
        )
        + "</td>"
        f"<td>{e(row.card) if row.card else _NO_CARD}</td>"
        f"<td>{e(row.vendor)}</td></tr>"
        for row in rows
    ))


_NO_CARD = '<span class="hint">—</span>'


def _url_pattern(name: str):
    """``reverse`` once, then the id put in its place for each row (the pattern is ``<int:pk>``)."""
    marker = 918273645
    template = reverse(name, args=[marker])
    return lambda pk: template.replace(str(marker), str(pk))


def _chart_marks(chart, currency: str) -> dict[str, SafeString]:
    """The chart's bars (SVG) and its figures (table rows), each value escaped: up to a hundred
    bars cost a fraction of a millisecond here, several in template loops."""
    e = html.text
    bars = "".join(
        f'<rect x="{_svg_number(bar.x)}" y="{_svg_number(bar.y)}" width="{_svg_number(bar.width)}" '
        f'height="{_svg_number(bar.height)}"><title>{e(bar.label)}: {e(format_cents(bar.collected_cents, currency))}'
        "</title></rect>"
        for bar in chart.bars
        if bar.height
    )
    rows = "".join(
        f'<tr><td>{e(bar.label)}</td><td class="num">{e(bar.payments)}</td>'
        f'<td class="num">{e(format_cents(bar.collected_cents, currency))}</td></tr>'
        for bar in chart.bars
        if bar.collected_cents
    )
    return {"bars": mark_safe(bars), "rows": mark_safe(rows)}


def _svg_number(value: float) -> str:
    """SVG wants a dot for decimals whatever the language of the page."""
    return f"{value:.2f}".rstrip("0").rstrip(".")
