"""Administrators say which of the EHR's places each location is (the Locations page)."""

from lumapay.enums import AuditAction
from lumapay.models import AuditEvent
from org_profile.models import Location
from tests.factories import LocationFactory


def test_an_administrator_sets_a_locations_ehr_id_and_it_is_audited(client_for, administrator, organization, location):
    client = client_for(administrator)
    page = client.get("/accounts/locations/")
    assert page.status_code == 200 and b"Downtown Clinic" in page.content
    response = client.post("/accounts/locations/", {"location": location.pk, "ehr_location_id": " loc-17 "}, follow=True)
    assert "Saved the EHR location id of Downtown Clinic." in response.content.decode()
    location.refresh_from_db()
    assert location.ehr_location_id == "loc-17"
    event = AuditEvent.objects.get(action=AuditAction.ORGANIZATION_UPDATED)
    assert event.changes["ehr_location_id"] == ["", "loc-17"] and event.actor_user == administrator


def test_the_same_ehr_id_twice_is_refused(client_for, administrator, organization, location, other_location):
    Location.objects.filter(pk=location.pk).update(ehr_location_id="loc-17")
    response = client_for(administrator).post(
        "/accounts/locations/", {"location": other_location.pk, "ehr_location_id": "loc-17"}, follow=True
    )
    assert "Another location already has the EHR location id “loc-17”." in response.content.decode()
    other_location.refresh_from_db()
    assert other_location.ehr_location_id == ""


def test_only_administrators_and_only_their_own_locations(client_for, manager, administrator, other_organization):
    assert client_for(manager).get("/accounts/locations/").status_code == 403
    elsewhere = LocationFactory(organization=other_organization, name="Elsewhere")
    response = client_for(administrator).post(
        "/accounts/locations/", {"location": elsewhere.pk, "ehr_location_id": "x"}, follow=True
    )
    assert "No such location." in response.content.decode()
    elsewhere.refresh_from_db()
    assert elsewhere.ehr_location_id == ""
