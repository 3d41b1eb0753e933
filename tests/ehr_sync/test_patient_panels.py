"""The patient pages' slots: apps above ehr_sync fill them; ehr_sync renders whatever is registered."""

import pytest
from django.urls import reverse

from ehr_sync import patient_panels
from ehr_sync.patient_panels import PatientPanels, patient_panels_register, patient_profile_context

pytestmark = pytest.mark.django_db


@pytest.fixture
def nothing_registered(monkeypatch):
    monkeypatch.setattr(patient_panels.PATIENT_PAGES, "registered", [])


def test_with_no_app_registered_the_profile_shows_the_patients_own_records_only(
    nothing_registered, client_for, administrator, patient
):
    # given no app above ehr_sync has registered panels
    # when the profile is opened
    response = client_for(administrator).get(reverse("patients:profile", args=[patient.pk]))

    # then it renders, with the patient's records and no payment panels
    content = response.content.decode()
    assert response.status_code == 200
    assert "Appointments" in content and "Contact details" in content
    assert "Payment requests" not in content and "Request payment" not in content


def test_a_slot_that_does_not_exist_is_refused(nothing_registered):
    with pytest.raises(ValueError, match="No such patient page slot: sidebar"):
        patient_panels_register(PatientPanels(templates={"sidebar": "x.html"}))
    assert patient_panels.PATIENT_PAGES.registered == []


def test_two_apps_may_not_supply_the_same_name_to_the_profile(nothing_registered, rf, patient):
    # given two apps whose profile context both supply "forms"
    patient_panels_register(PatientPanels(templates={}, context=lambda request, patient: {"forms": 1}))
    patient_panels_register(PatientPanels(templates={}, context=lambda request, patient: {"forms": 2}))

    # when the profile asks for its context, then the clash is named
    with pytest.raises(ValueError, match="Patient page context supplied twice: forms"):
        patient_profile_context(rf.get("/"), patient)
