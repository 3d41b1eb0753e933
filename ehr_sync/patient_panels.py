"""Places on the patient pages (the Hub and the profile) where apps above ``ehr_sync`` add their parts.

Imports between apps run one way (org_profile ← ehr_sync ← transactions ← …), so ehr_sync cannot ask
for a patient's payment requests, transactions or saved cards. An app that has something to show
about a patient registers a ``PatientPanels`` from its ``AppConfig.ready()``: partial templates for
named slots, and a function that returns the context those partials read. The patient pages render
whatever is registered without knowing who registered it; with nothing registered they show the
patient's own records only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.http import HttpRequest

from .models import Patient

# Where partials may go, in page order. Each partial renders with the page's context (``patient``;
# ``appointment`` in an appointment's row; on the profile, what ``profile_context`` returned).
SLOTS = (
    "hub_row_actions",  # beside each patient in the Hub's results
    "profile_actions",  # beside "Edit details" at the top of the profile
    "balance_actions",  # under the patient's balance
    "before_appointments",  # sections above the appointments
    "appointment_actions",  # in each appointment's row
    "after_appointments",  # sections below the appointments
)


@dataclass(frozen=True)
class PatientPanels:
    """One app's parts of the patient pages."""

    templates: Mapping[str, str]
    # (request, patient) -> the context the profile partials read; called once per profile view.
    profile_context: Callable[[HttpRequest, Patient], dict] | None = None


_registered: list[PatientPanels] = []


def patient_panels_register(panels: PatientPanels) -> None:
    """Add an app's parts to the patient pages (call from ``AppConfig.ready``; a repeat is ignored)."""
    unknown = set(panels.templates) - set(SLOTS)
    if unknown:
        raise ValueError(f"No such patient page slot: {', '.join(sorted(unknown))}")
    if panels not in _registered:
        _registered.append(panels)


def patient_panel_templates() -> dict[str, list[str]]:
    """Each slot's partial templates, in registration order."""
    return {slot: [panels.templates[slot] for panels in _registered if slot in panels.templates] for slot in SLOTS}


def patient_profile_context(request: HttpRequest, patient: Patient) -> dict:
    """What the registered apps' profile partials read; two apps may not supply the same name."""
    context: dict = {}
    for panels in _registered:
        if panels.profile_context is None:
            continue
        supplied = panels.profile_context(request, patient)
        clashing = set(supplied) & set(context)
        if clashing:
            raise ValueError(f"Patient profile context supplied twice: {', '.join(sorted(clashing))}")
        context.update(supplied)
    return context
