"""The payouts pages, for managers and administrators: the balance and the payouts on their way,
the payouts list (filtered in the URL, applied with htmx like the dashboard's, and without
JavaScript by the same GET form), its CSV export, and one payout with its lines.

Sub-account users get 403 on every one of them (``membership_required(MANAGERS)``), and a payout
of another organization is "not found" (404).

No page here shows a patient's name. A payout is bookkeeping: a clinic matches it to its bank
deposit by amount, date and trace id, and each line links to its transaction, whose page shows
(and records in the PHI access log) the patient. Naming patients beside up to 10,000 lines would
make every look at a payout a look at hundreds of patients' records, for no bookkeeping need.
"""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST, require_safe

from lumapay.audit import client_ip
from lumapay.money import format_cents
from org_profile.access import MANAGERS, found_or_404, membership_required
from transactions.selectors.dashboard import Cursor

from .enums import PayoutMethod, PayoutStatus, Reconciliation
from .exports import export_filename, payouts_export_csv
from .filters import PayoutFilter
from .selectors import (
    balances_of,
    payout_get,
    payout_line_totals,
    payout_lines_page,
    payouts_on_the_way,
    payouts_page,
    payouts_totals,
)

# The element the filter form and the page links swap (templates/payouts/_results.html).
RESULTS_TARGET = "payout-results"


@membership_required(roles=MANAGERS)
@require_safe
def payout_list(request):
    organization = request.organization
    filterset = PayoutFilter(request.GET or None, organization=organization)
    payouts = filterset.qs
    page = payouts_page(
        payouts,
        older_than=Cursor.decode(request.GET.get("older_than")),
        newer_than=Cursor.decode(request.GET.get("newer_than")),
    )
    params = filterset.used_params()
    data = filterset.form.data
    chosen = set(data.getlist("status")) if hasattr(data, "getlist") else set()
    context = {
        "nav": "payouts",
        "organization": organization,
        "filterset": filterset,
        "data": data,
        "status_choices": [(value, label, value in chosen) for value, label in PayoutStatus.choices],
        "status_chosen": len(chosen),
        "method_choices": PayoutMethod.choices,
        "page": page,
        "totals": payouts_totals(payouts),
        "chips": filterset.chips(),
        "filter_query": params.urlencode(),
        "filter_params": [(name, value) for name, values in params.lists() for value in values],
        "is_filtered": bool(params),
        "filter_errors": [
            (filterset.form.fields[name].label, message)
            for name, messages in filterset.form.errors.items()
            for message in messages
        ],
    }
    htmx = request.htmx
    if htmx and htmx.target == RESULTS_TARGET and not htmx.history_restore_request:
        response = render(request, "payouts/_results.html", context)
    else:
        context.update(
            balances=balances_of(organization=organization),
            on_the_way=payouts_on_the_way(organization=organization),
        )
        response = render(request, "payouts/list.html", context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@membership_required(roles=MANAGERS)
@require_POST
def payout_export(request):
    """The filtered payouts as CSV (the filters come as the form's hidden fields)."""
    organization = request.organization
    filterset = PayoutFilter(request.POST, organization=organization)
    _, lines = payouts_export_csv(
        organization=organization,
        actor=request.user,
        payouts=filterset.qs,
        filters=filterset.valid_params(),
        ip_address=client_ip(request),
    )
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{export_filename(organization)}"'
    response["Cache-Control"] = "private, no-store"
    return response


@membership_required(roles=MANAGERS)
@require_safe
def payout_detail(request, pk):
    payout = found_or_404(payout_get(organization=request.organization, pk=pk), "No such payout.")
    after = Cursor.decode(request.GET.get("after"))
    lines = payout_lines_page(payout=payout, after=after)
    totals = payout_line_totals(payout=payout)
    context = {
        "nav": "payouts",
        "payout": payout,
        "lines": lines,
        "totals": totals,
        "reconciliation": _reconciliation(payout, totals),
    }
    return render(request, "payouts/detail.html", context)


def _reconciliation(payout, totals) -> dict:
    """Whether the lines add up to the payout, in words: "waiting" (not fetched yet), "matched",
    or "difference" with what is missing or extra; "not_itemized" for a payout the processor keeps
    no list of lines for (one asked for by hand at Stripe)."""
    if payout.reconciliation == Reconciliation.NOT_ITEMIZED:
        return {
            "state": "waiting",
            "text": "This payout was asked for by hand (an instant or manual payout), and Stripe lists the payments "
            "a payout carries for scheduled payouts only: the payments it paid out are the balance that was available "
            "when it was made. Its amount is checked against the bank deposit by its trace ID.",
        }
    if totals.count == 0 and payout.reconciliation != Reconciliation.MATCHED:
        if payout.reconcile_error:
            text = f"The payout's lines could not be fetched from the payment processor yet: {payout.reconcile_error}"
        else:
            text = "The payout's lines have not been fetched from the payment processor yet. They appear here once they are."
        return {"state": "waiting", "text": text}
    difference = payout.amount_cents - totals.net_cents
    if difference == 0:
        lines = "Its one line adds" if totals.count == 1 else f"The {totals.count:,} lines add"
        return {"state": "matched", "text": f"{lines} up to the payout to the cent."}
    amount = format_cents(payout.amount_cents, payout.currency)
    net = format_cents(totals.net_cents, payout.currency)
    gap = format_cents(abs(difference), payout.currency)
    if difference > 0:
        words = f"The lines add up to {net}, {gap} less than the payout of {amount}: {gap} of the payout is not explained by its lines."
    else:
        words = f"The lines add up to {net}, {gap} more than the payout of {amount}: the lines carry {gap} the payout does not."
    return {"state": "difference", "text": f"This payout does not reconcile. {words}", "difference_cents": difference}
