"""Staff pages about patients: the Hub (search), the patient profile, adding and editing.

Patients are organization-wide; what was asked of and paid by them is limited to a sub-account
user's locations. Another organization's patient is "not found".
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_safe

from lumapay.audit import client_ip
from lumapay.errors import ApplicationError
from org_profile.access import membership_required
from org_profile.selectors import scope_to_locations
from transactions.enums import PaymentRequestStatus
from transactions.forms.saved_cards import SavedCardChargeForm, SavedCardHoldForm
from transactions.selectors.payment_requests import payment_requests_of_patient
from transactions.selectors.saved_cards import card_on_file_offered, saved_cards_active

from . import services
from .forms import PatientForm, PatientSearchForm
from .selectors import (
    HUB_PAGE_SIZE,
    patient_appointments,
    patient_balance,
    patient_get,
    patient_transactions,
    patients_search,
)

# The element the Hub's search form and page links swap (see templates/ehr_sync/patient_hub.html).
HUB_RESULTS_TARGET = "patient-results"


@membership_required()
@require_safe
def patient_hub(request):
    search = PatientSearchForm(request.GET)
    query = search.cleaned_data["q"].strip() if search.is_valid() else ""
    page = Paginator(patients_search(organization=request.organization, query=query), HUB_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {"nav": "hub", "search": search, "query": query, "page": page}
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
    patient = patient_get(organization=request.organization, patient_id=pk)
    if patient is None:
        raise Http404("No such patient.")
    initial = {field: getattr(patient, field) for field in services.PATIENT_EDITABLE_FIELDS}
    form = PatientForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.patient_update(
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
    patient = patient_get(organization=request.organization, patient_id=pk)
    if patient is None:
        raise Http404("No such patient.")
    services.patient_view_record(
        organization=request.organization, actor=request.user, patient=patient, ip_address=client_ip(request)
    )
    membership = request.membership
    cards_offered = card_on_file_offered(request.organization)
    return render(
        request,
        "ehr_sync/patient_profile.html",
        {
            "card_on_file_offered": cards_offered,
            "saved_cards": saved_cards_active(organization=request.organization, patient=patient) if cards_offered else [],
            "card_charge_form": SavedCardChargeForm(membership=membership) if cards_offered else None,
            "card_hold_form": SavedCardHoldForm(membership=membership, patient=patient) if cards_offered else None,
            "nav": "hub",
            "patient": patient,
            "appointments": patient_appointments(patient=patient),
            "requestable_appointment_ids": set(
                scope_to_locations(patient_appointments(patient=patient), membership=membership).values_list(
                    "id", flat=True
                )
            ),
            "balance": patient_balance(patient=patient),
            "payment_requests": payment_requests_of_patient(membership=membership, patient=patient),
            "transactions": patient_transactions(membership=membership, patient=patient),
            "open_status": PaymentRequestStatus.OPEN,
        },
    )
