"""Staff pages about patients: the Hub (search), the patient profile, adding and editing.

Patients are organization-wide; what was asked of and paid by them is limited to a sub-account
user's locations. Another organization's patient is "not found".
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_safe

from lumapay.audit import client_ip
from lumapay.errors import ApplicationError
from lumapay.models import SmsOptOut
from lumapay.phi_access import phi_access_record
from org_profile.access import ADMINISTRATORS, found_or_404, membership_required
from org_profile.enums import Role

from . import access_log, services
from .forms import AccessLogExportForm, PatientForm, PatientSearchForm
from .patient_panels import patient_panel_templates, patient_profile_context
from .selectors import (
    HUB_PAGE_SIZE,
    HUB_SEARCH_IDS_MAX,
    patient_appointments,
    patient_balance,
    patient_get,
    patient_ids_search,
    patients_by_ids,
    patients_search,
)

# The element the Hub's search form and page links swap (see templates/ehr_sync/patient_hub.html).
HUB_RESULTS_TARGET = "patient-results"


def _hub_page(*, organization, query: str, number):
    """One page of the Hub's list. A search finds the ids of its patients first, with the trigram
    indexes (``patient_ids_search``: row-level security would not use them), then reads that
    page's patients by id under row-level security."""
    if query:
        ids = patient_ids_search(organization=organization, query=query, limit=HUB_SEARCH_IDS_MAX + 1, ordered=True)
        if len(ids) <= HUB_SEARCH_IDS_MAX:
            page = Paginator(ids, HUB_PAGE_SIZE).get_page(number)
            page.object_list = patients_by_ids(organization=organization, ids=list(page.object_list))
            return page
    return Paginator(patients_search(organization=organization, query=query), HUB_PAGE_SIZE).get_page(number)


@membership_required()
@require_safe
def patient_hub(request):
    search = PatientSearchForm(request.GET)
    query = search.cleaned_data["q"].strip() if search.is_valid() else ""
    page = _hub_page(organization=request.organization, query=query, number=request.GET.get("page"))
    # The page shows each patient's date of birth, e-mail and phone.
    phi_access_record(
        request=request, organization=request.organization, patients=[patient.pk for patient in page.object_list]
    )
    context = {
        "nav": "hub",
        "search": search,
        "query": query,
        "page": page,
        "patient_panels": patient_panel_templates(),
    }
    # htmx swaps only the results; a normal visit, or htmx restoring history it no longer has
    # cached, gets the whole page.
    htmx = request.htmx
    if htmx and htmx.target == HUB_RESULTS_TARGET and not htmx.history_restore_request:
        response = render(request, "ehr_sync/_patient_results.html", context)
    else:
        response = render(request, "ehr_sync/patient_hub.html", context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@membership_required()
@require_http_methods(["GET", "POST"])
def patient_new(request):
    form = PatientForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            patient = services.patient_create(
                organization=request.organization, actor=request.user, **form.cleaned_data
            )
        except ApplicationError as error:
            form.add_application_error(error)
        else:
            messages.success(request, f"{patient.full_name} was added.")
            return redirect("patients:profile", pk=patient.pk)
    return render(request, "ehr_sync/patient_form.html", {"nav": "hub", "form": form, "patient": None})


@membership_required()
@require_http_methods(["GET", "POST"])
def patient_edit(request, pk):
    patient = found_or_404(patient_get(organization=request.organization, patient_id=pk), "No such patient.")
    phi_access_record(request=request, patients=[patient])
    initial = {field: getattr(patient, field) for field in services.PATIENT_EDITABLE_FIELDS}
    form = PatientForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            patient = services.patient_update(
                organization=request.organization, actor=request.user, patient=patient, data=form.cleaned_data
            )
        except ApplicationError as error:
            form.add_application_error(error)
        else:
            messages.success(request, f"{patient.full_name}'s details were saved.")
            return redirect("patients:profile", pk=patient.pk)
    return render(request, "ehr_sync/patient_form.html", {"nav": "hub", "form": form, "patient": patient})


@membership_required()
@require_safe
def patient_profile(request, pk):
    patient = found_or_404(patient_get(organization=request.organization, patient_id=pk), "No such patient.")
    services.patient_view_record(
        organization=request.organization, actor=request.user, patient=patient, ip_address=client_ip(request)
    )
    phi_access_record(request=request, patients=[patient])
    # What apps above ehr_sync show about the patient (payments: see transactions/views/patient_panels.py).
    panels_context = patient_profile_context(request, patient)
    return render(
        request,
        "ehr_sync/patient_profile.html",
        {
            **panels_context,
            "nav": "hub",
            "patient": patient,
            "appointments": patient_appointments(patient=patient),
            "balance": patient_balance(patient=patient),
            # A STOP from this number (to any clinic's texts: they share LumaPay's sender).
            "sms_opt_out": SmsOptOut.objects.filter(phone_number=patient.mobile_phone).first()
            if patient.mobile_phone
            else None,
            "patient_panels": patient_panel_templates(),
            # Administrators see who looked at the record (this look included).
            "recent_accesses": list(
                access_log.patient_access_history(organization=request.organization, patient_id=patient.pk)[
                    : access_log.PROFILE_RECENT_ACCESSES
                ]
            )
            if request.membership.role == Role.ADMINISTRATOR
            else None,
        },
    )


@membership_required(roles=ADMINISTRATORS)
@require_safe
def patient_access_log(request, pk):
    """Every look at one patient's record, newest first, for administrators."""
    patient = found_or_404(patient_get(organization=request.organization, patient_id=pk), "No such patient.")
    phi_access_record(request=request, patients=[patient])
    page = Paginator(
        access_log.patient_access_history(organization=request.organization, patient_id=patient.pk), 50
    ).get_page(request.GET.get("page"))
    return render(request, "ehr_sync/patient_access_log.html", {"nav": "hub", "patient": patient, "page": page})


@membership_required(roles=ADMINISTRATORS)
@require_safe
def access_log_export(request):
    """The organization's access log for a range of days, as CSV; the form when none is asked."""
    form = AccessLogExportForm(request.GET or None)
    if not form.is_valid():
        return render(
            request, "ehr_sync/access_log_export.html", {"nav": "organization_settings", "form": form}, status=400 if form.is_bound else 200
        )
    organization = request.organization
    date_from, date_to = form.cleaned_data["date_from"], form.cleaned_data["date_to"]
    lines = access_log.phi_access_log_export(
        organization=organization, actor=request.user, date_from=date_from, date_to=date_to,
        ip_address=client_ip(request),
    )
    # The file names patients: it is itself a look at each of them.
    phi_access_record(
        request=request,
        organization=organization,
        patients=access_log.access_log_patient_ids(organization=organization, date_from=date_from, date_to=date_to),
    )
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    filename = access_log.access_log_filename(organization, date_from, date_to)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response
