"""Administrators' pages for the clinic's EHR connections: the list with each one's health, adding
and changing one, "Sync now", its runs, and one run's rejected records.

Administrators only. PRODUCT.md gives administrators the organization's settings and users, and
managers refunds, exports, payouts, uploads and reports: a connection is a setting of the first
kind (where patient data comes from, and the secrets LumaPay signs in to the EHR with), so
managers and sub-account users get 403 here, as on the organization's settings. Another
organization's connection or run is "not found".
"""

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from lumapay.audit import client_ip
from lumapay.errors import ApplicationError
from lumapay.phi_access import phi_access_record
from org_profile.access import ADMINISTRATORS, found_or_404, membership_required, reauthentication_required

from . import connection_selectors as selectors
from .connection_forms import SECRET_LABELS, EhrConnectionForm, secret_fields_typed
from .connection_services import POLLED_KINDS, ehr_connection_create, ehr_connection_sync_request, ehr_connection_update
from .enums import BalanceAdapter, ConnectionOption, EhrConnectionKind, PostingAdapter

# The element a connection's page polls while a sync runs (templates/ehr_sync/connections/_activity.html).
ACTIVITY_TARGET = "connection-activity"


def _asks_password_again(request) -> bool:
    """The form is opened, or sent with a secret set or removed: ask for the password first when
    it was typed too long ago. Opening asks first so that sending rarely has to (a refused POST is
    not kept: it would put the secrets in the session)."""
    return request.method in ("GET", "HEAD") or secret_fields_typed(request.POST)


@membership_required(roles=ADMINISTRATORS)
@require_safe
def connection_list(request):
    connections = selectors.connections_of(organization=request.organization)
    return render(
        request,
        "ehr_sync/connections/list.html",
        {"nav": "ehr_connections", "connections": connections, "kinds": EhrConnectionKind.choices},
    )


@membership_required(roles=ADMINISTRATORS)
@require_http_methods(["GET", "HEAD", "POST"])
@reauthentication_required(when=_asks_password_again)
def connection_new(request, kind):
    if kind not in EhrConnectionKind.values:
        raise Http404("No such kind of connection.")
    form = EhrConnectionForm(request.POST or None, kind=kind)
    if request.method == "POST" and form.is_valid():
        try:
            connection = ehr_connection_create(
                organization=request.organization, actor=request.user, data=form.settings(), ip_address=client_ip(request)
            )
        except ApplicationError as error:
            form.add_application_error(error)
        else:
            messages.success(request, f"The connection “{connection.name}” was added.")
            return redirect("ehr_connections:detail", pk=connection.pk)
    return _form_page(request, form, connection=None, kind=kind)


@membership_required(roles=ADMINISTRATORS)
@require_http_methods(["GET", "HEAD", "POST"])
@reauthentication_required(when=_asks_password_again)
def connection_edit(request, pk):
    connection = found_or_404(selectors.connection_get(organization=request.organization, connection_id=pk))
    hints = selectors.connection_secret_hints(connection)
    form = EhrConnectionForm(
        request.POST or None,
        kind=connection.kind,
        connection=connection,
        hints=hints,
        initial=EhrConnectionForm.initial_for(connection),
    )
    if request.method == "POST" and form.is_valid():
        try:
            connection = ehr_connection_update(
                organization=request.organization,
                actor=request.user,
                connection=connection,
                data=form.settings(),
                ip_address=client_ip(request),
            )
        except ApplicationError as error:
            form.add_application_error(error)
        else:
            messages.success(request, f"The connection “{connection.name}” was saved.")
            return redirect("ehr_connections:detail", pk=connection.pk)
    return _form_page(request, form, connection=connection, kind=connection.kind)


def _form_page(request, form, *, connection, kind):
    response = render(
        request,
        "ehr_sync/connections/form.html",
        {
            "nav": "ehr_connections",
            "form": form,
            "connection": connection,
            "kind": kind,
            "kind_label": EhrConnectionKind(kind).label,
            "unreadable_secrets": form.hints.get("__unreadable__", ""),
            "hl7_listener_address": settings.EHR_HL7_LISTENER_ADDRESS,
        },
        status=400 if form.is_bound and form.errors else 200,
    )
    response["Cache-Control"] = "private, no-store"
    return response


def _label(choices, value) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return str(value or "")


@membership_required(roles=ADMINISTRATORS)
@require_safe
def connection_detail(request, pk):
    """Its health, its settings (never its secrets' values), "Sync now" and its runs, newest first.
    While a sync runs, htmx polls the activity (the badge and the runs) every two seconds."""
    connection = found_or_404(selectors.connection_get(organization=request.organization, connection_id=pk))
    page = Paginator(selectors.connection_runs(connection=connection), selectors.RUNS_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {
        "nav": "ehr_connections",
        "connection": connection,
        "state": connection.state,
        "page": page,
        "can_sync": connection.kind in POLLED_KINDS and connection.is_active,
        "secret_names": [
            SECRET_LABELS[name] for name in selectors.connection_secret_hints(connection) if name in SECRET_LABELS
        ],
        "hl7_listener_address": settings.EHR_HL7_LISTENER_ADDRESS,
        "balance_adapter_label": _label(BalanceAdapter, connection.options.get(ConnectionOption.BALANCE_ADAPTER)),
        "posting_adapter_label": _label(
            PostingAdapter, connection.options.get(ConnectionOption.POSTING_ADAPTER) or PostingAdapter.PAYMENT_RECONCILIATION
        ),
    }
    htmx = request.htmx
    if htmx and htmx.target == ACTIVITY_TARGET and not htmx.history_restore_request:
        response = render(request, "ehr_sync/connections/_activity.html", context)
    else:
        response = render(request, "ehr_sync/connections/detail.html", context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@membership_required(roles=ADMINISTRATORS)
@require_POST
def connection_sync_now(request, pk):
    connection = found_or_404(selectors.connection_get(organization=request.organization, connection_id=pk))
    try:
        ehr_connection_sync_request(
            organization=request.organization, actor=request.user, connection=connection, ip_address=client_ip(request)
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"A sync of “{connection.name}” was started.")
    return redirect("ehr_connections:detail", pk=connection.pk)


@membership_required(roles=ADMINISTRATORS)
@require_safe
def run_detail(request, pk):
    """One run: its counts and error, and each record it rejected with the value the EHR sent.
    Those values can be patient data (a name, a birth date, a phone): the look is recorded in the
    PHI access log, and the page is never cached."""
    run = found_or_404(selectors.run_get(organization=request.organization, run_id=pk), "No such run.")
    page = Paginator(selectors.run_rejections(run=run), selectors.REJECTIONS_PAGE_SIZE).get_page(request.GET.get("page"))
    if page.object_list:
        phi_access_record(
            request=request,
            organization=request.organization,
            patients=selectors.rejection_patient_ids(organization=request.organization, rejections=page.object_list),
            shows_unlisted_records=True,
        )
    response = render(
        request,
        "ehr_sync/connections/run_detail.html",
        {
            "nav": "ehr_connections",
            "run": run,
            "connection": run.connection,
            "page": page,
        },
    )
    response["Cache-Control"] = "private, no-store"
    return response
