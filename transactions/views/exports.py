"""Excel exports of the dashboard's filtered transactions: ask, watch the progress, download.

Only managers and administrators export (the product's roles). An export is visible to the member
who asked for it alone; anyone else gets 404. Files are never served from a public URL: the
download view streams them after those checks.
"""

from django.contrib import messages
from django.http import FileResponse, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST, require_safe

from lumapay.audit import client_ip
from lumapay.errors import ApplicationError
from lumapay.phi_access import phi_access_record
from org_profile.access import MANAGERS, found_or_404, membership_required, reauthentication_required

from ..enums import ExportStatus
from ..filters import TransactionFilter, query_from_params
from ..selectors.exports import (
    EXPORT_IN_PROGRESS,
    export_is_downloadable,
    export_of_requester,
    export_patient_ids,
    export_percent,
    exports_of_requester,
)
from ..services.exports import (
    XLSX_CONTENT_TYPE,
    export_filename,
    transaction_export_download_record,
    transaction_export_request,
)

# The element the export page polls (templates/transactions/exports/_status.html).
STATUS_TARGET = "export-status"


def _dashboard_with_filters(request) -> str:
    """The dashboard showing the filters an export was asked for."""
    params = TransactionFilter(request.POST, membership=request.membership).used_params().urlencode()
    return f"{reverse('transactions:dashboard')}{'?' + params if params else ''}"


@require_POST
@membership_required(roles=MANAGERS)
@reauthentication_required(return_to=_dashboard_with_filters)
def transaction_export_create(request):
    try:
        result = transaction_export_request(
            organization=request.organization,
            actor=request.user,
            data=request.POST,
            ip_address=client_ip(request),
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect(_dashboard_with_filters(request))
    if result.export is None:
        phi_access_record(request=request, organization=request.organization, patients=result.patient_ids)
        response = HttpResponse(result.content, content_type=XLSX_CONTENT_TYPE)
        response["Content-Disposition"] = f'attachment; filename="{result.filename}"'
        response["Cache-Control"] = "no-store"
        return response
    return redirect("transactions:export_detail", pk=result.export.pk)


@membership_required(roles=MANAGERS)
@require_safe
def transaction_export_list(request):
    exports = list(exports_of_requester(membership=request.membership))
    return render(request, "transactions/exports/list.html", {"nav": "dashboard", "exports": exports})


@membership_required(roles=MANAGERS)
@require_safe
def transaction_export_detail(request, pk):
    export = found_or_404(export_of_requester(membership=request.membership, pk=pk))
    context = {
        "nav": "dashboard",
        "export": export,
        "in_progress": export.status in EXPORT_IN_PROGRESS,
        "downloadable": export_is_downloadable(export),
        "percent": export_percent(export),
        "filters_query": query_from_params(export.filters).urlencode(),
    }
    htmx = request.htmx
    if htmx and htmx.target == STATUS_TARGET and not htmx.history_restore_request:
        response = render(request, "transactions/exports/_status.html", context)
    else:
        response = render(request, "transactions/exports/detail.html", context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@membership_required(roles=MANAGERS)
@require_safe
def transaction_export_download(request, pk):
    export = found_or_404(export_of_requester(membership=request.membership, pk=pk))
    if not export_is_downloadable(export):
        if export.status in (*EXPORT_IN_PROGRESS, ExportStatus.FAILED):
            return redirect("transactions:export_detail", pk=export.pk)
        # Expired: the requester learns why; the file is gone.
        context = {
            "nav": "dashboard",
            "export": export,
            "in_progress": False,
            "downloadable": False,
            "percent": 0,
            "filters_query": query_from_params(export.filters).urlencode(),
        }
        return render(request, "transactions/exports/detail.html", context, status=410)
    transaction_export_download_record(export=export, actor=request.user, ip_address=client_ip(request))
    phi_access_record(request=request, organization=request.organization, patients=export_patient_ids(export))
    response = FileResponse(
        export.file.open("rb"),
        as_attachment=True,
        filename=export_filename(export.organization, export.created_at),
        content_type=XLSX_CONTENT_TYPE,
    )
    response["Cache-Control"] = "no-store"
    return response
