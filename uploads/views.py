"""The Upload Center: templates, sending a file, its preview (every problem by row), the choice
to import all or nothing or the valid rows, the progress of the import, and the history.

Managers and administrators only (the product's roles); another organization's upload is 404.
Pages that show a file's rows are PHI: they record who saw which stored patients and are never
cached. URLs carry ids only.
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST, require_safe

from lumapay.audit import client_ip
from lumapay.errors import ApplicationError
from lumapay.phi_access import phi_access_record
from org_profile.access import MANAGERS, found_or_404, membership_required

from . import services
from .enums import ImportMode, UploadStatus
from .file_reading import COLUMNS, UPLOAD_MAX_BYTES, UploadKind, upload_template
from .forms import ImportForm, UploadForm, size_in_words
from .selectors import (
    HISTORY_PAGE_SIZE,
    upload_earlier_import,
    upload_get,
    upload_patient_ids,
    upload_percent,
    uploads_history,
)
from .upload_limits import SizeLimitedUploadHandler, request_too_large

# The element the upload's page polls while it imports (templates/uploads/_progress.html).
PROGRESS_TARGET = "upload-progress"
_TOO_LARGE = f"The file is larger than {size_in_words(UPLOAD_MAX_BYTES)}: split it into smaller files and upload each."
TEMPLATE_FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _center(request, form, *, status: int = 200, refusal: str = ""):
    kind = request.GET.get("kind") if request.GET.get("kind") in UploadKind.values else UploadKind.PATIENTS
    page = Paginator(uploads_history(organization=request.organization), HISTORY_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {
        "nav": "uploads",
        "form": form,
        "kinds": [(value, label, COLUMNS[value]) for value, label in UploadKind.choices],
        "selected_kind": kind,
        "page": page,
        "max_size": size_in_words(UPLOAD_MAX_BYTES),
        "refusal": refusal,
    }
    return render(request, "uploads/center.html", context, status=status)


@membership_required(roles=MANAGERS)
@require_safe
def upload_center(request):
    kind = request.GET.get("kind")
    form = UploadForm(initial={"kind": kind if kind in UploadKind.values else UploadKind.PATIENTS})
    return _center(request, form)


@csrf_exempt
@require_POST
@membership_required(roles=MANAGERS)
def upload_send(request):
    """The size limit applies before the body is read: the request's stated length first, then
    while the file streams in (``SizeLimitedUploadHandler``); the CSRF check runs after the
    handler is in place, as Django's documentation asks for a view that changes upload handlers."""
    if request_too_large(request):
        return _center(request, UploadForm(), status=413, refusal=_TOO_LARGE)
    request.upload_handlers.insert(0, SizeLimitedUploadHandler(request))
    return csrf_protect(_upload_send)(request)


def _upload_send(request):
    request.FILES  # noqa: B018 — reads the body through the handlers, which mark a file too large
    if getattr(request, "upload_too_large", False):
        return _center(request, UploadForm(initial={"kind": request.POST.get("kind")}), status=413, refusal=_TOO_LARGE)
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _center(request, form, status=400)
    file = form.cleaned_data["file"]
    try:
        upload = services.upload_receive(
            organization=request.organization,
            actor=request.user,
            kind=form.cleaned_data["kind"],
            file_name=file.name,
            data=file.read(),
            ip_address=client_ip(request),
        )
    except ApplicationError as error:
        form.add_error("file", error.message)
        return _center(request, form, status=400)
    return redirect("uploads:detail", pk=upload.pk)


@membership_required(roles=MANAGERS)
@require_safe
def upload_template_download(request, kind, file_format):
    if kind not in UploadKind.values or file_format not in TEMPLATE_FORMATS:
        raise Http404("No such template.")
    response = HttpResponse(upload_template(kind, file_format), content_type=TEMPLATE_FORMATS[file_format])
    response["Content-Disposition"] = f'attachment; filename="lumapay-{kind}-template.{file_format}"'
    return response


@membership_required(roles=MANAGERS)
@require_safe
def upload_detail(request, pk):
    upload = found_or_404(upload_get(organization=request.organization, pk=pk), "No such upload.")
    context = {
        "nav": "uploads",
        "upload": upload,
        "percent": upload_percent(upload),
        "earlier": upload_earlier_import(upload=upload),
        "modes": ImportMode,
        "statuses": UploadStatus,
        "columns": COLUMNS.get(upload.kind, []),
    }
    htmx = request.htmx
    if htmx and htmx.target == PROGRESS_TARGET and not htmx.history_restore_request:
        response = render(request, "uploads/_progress.html", context)
        if upload.status != UploadStatus.IMPORTING:
            # Done: the whole page, with its counts and rejections, replaces the progress bar.
            response["HX-Refresh"] = "true"
    else:
        # The problems show values from the file: who saw them is logged.
        phi_access_record(request=request, organization=request.organization, patients=upload_patient_ids(upload=upload))
        response = render(request, "uploads/detail.html", context)
    response["Cache-Control"] = "private, no-store"
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@require_POST
@membership_required(roles=MANAGERS)
def upload_import(request, pk):
    upload = found_or_404(upload_get(organization=request.organization, pk=pk), "No such upload.")
    form = ImportForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose how to import the file.")
        return redirect("uploads:detail", pk=upload.pk)
    try:
        services.upload_import(
            organization=request.organization,
            actor=request.user,
            upload=upload,
            mode=form.cleaned_data["mode"],
            ip_address=client_ip(request),
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    return redirect("uploads:detail", pk=upload.pk)


@require_POST
@membership_required(roles=MANAGERS)
def upload_discard(request, pk):
    upload = found_or_404(upload_get(organization=request.organization, pk=pk), "No such upload.")
    try:
        services.upload_discard(
            organization=request.organization, actor=request.user, upload=upload, ip_address=client_ip(request)
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("uploads:detail", pk=upload.pk)
    messages.success(request, "The file was discarded: nothing was imported, and its content was erased.")
    return redirect("uploads:center")
