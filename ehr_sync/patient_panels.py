"""The slots of the patient pages (the Hub and the profile), where apps above ``ehr_sync`` add their
parts: a patient's payment requests, transactions, cards on file, plans and forms, which ehr_sync
cannot ask for (see ``lumapay.page_panels``). With nothing registered the pages show the patient's
own records only. The profile's panels' ``context`` is called with (request, patient).
"""

from __future__ import annotations

from django.http import HttpRequest

from lumapay.page_panels import PageSlots, Panels

from .models import Patient

# Where partials may go, in page order. Each partial renders with the page's context (``patient``;
# ``appointment`` in an appointment's row; on the profile, what the panels' ``context`` returned).
PATIENT_PAGES = PageSlots(
    "patient page",
    (
        "hub_row_actions",  # beside each patient in the Hub's results
        "profile_actions",  # beside "Edit details" at the top of the profile
        "balance_actions",  # under the patient's balance
        "before_appointments",  # sections above the appointments
        "appointment_actions",  # in each appointment's row
        "after_appointments",  # sections below the appointments
    ),
)
PatientPanels = Panels


def patient_panels_register(panels: Panels) -> None:
    PATIENT_PAGES.register(panels)


def patient_panel_templates() -> dict[str, list[str]]:
    return PATIENT_PAGES.templates()


def patient_profile_context(request: HttpRequest, patient: Patient) -> dict:
    return PATIENT_PAGES.context(request, patient)
