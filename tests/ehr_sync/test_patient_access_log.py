"""Administrators see who looked at a patient and export the organization's access log."""

import csv
import datetime
import io
from zoneinfo import ZoneInfo

import pytest

from lumapay.tenant_rls import no_organization
from django.urls import reverse

from lumapay.enums import AuditAction
from lumapay.models import AuditEvent, PhiAccess, PhiAccessPatient
from org_profile.enums import Role

from ..factories import MembershipFactory, OrganizationFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db


def _csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_profile_shows_administrators_who_looked_newest_first(client_for, organization, administrator, patient):
    manager = MembershipFactory(organization=organization, role=Role.MANAGER, user__first_name="Mona", user__last_name="Reyes").user
    client_for(manager).get(reverse("patients:profile", args=[patient.pk]), REMOTE_ADDR="198.51.100.4")

    response = client_for(administrator).get(reverse("patients:profile", args=[patient.pk]))

    accesses = response.context["recent_accesses"]
    assert [seen.access.actor_user_id for seen in accesses] == [administrator.pk, manager.pk]
    assert [seen.access.ip_address for seen in accesses][1] == "198.51.100.4"
    html = response.content.decode()
    assert "Who looked at this patient" in html and "Mona Reyes" in html
    assert reverse("patients:access_log", args=[patient.pk]) in html


def test_managers_and_staff_do_not_see_who_looked_nor_the_full_list(client_for, organization, manager, patient):
    response = client_for(manager).get(reverse("patients:profile", args=[patient.pk]))

    assert response.context["recent_accesses"] is None
    assert "Who looked at this patient" not in response.content.decode()
    assert client_for(manager).get(reverse("patients:access_log", args=[patient.pk])).status_code == 403
    assert client_for(manager).get(reverse("patients:access_log_export"), {"date_from": "2026-01-01", "date_to": "2026-12-31"}).status_code == 403


def test_the_full_list_is_another_organizations_patient_not_found(client_for, administrator, other_organization):
    stranger = PatientFactory(organization=other_organization)

    assert client_for(administrator).get(reverse("patients:access_log", args=[stranger.pk])).status_code == 404


def test_the_export_is_the_range_in_the_organizations_time_zone_formula_safe_and_audited(
    client_for, organization, administrator
):
    organization.timezone = "America/Los_Angeles"
    organization.save(update_fields=["timezone"])
    patient = PatientFactory(organization=organization, first_name="=HYPERLINK(\"http://x\")", last_name="Doe")
    staff = MembershipFactory(organization=organization, role=Role.STAFF, user__first_name="@Sam", user__last_name="Lee").user
    zone = ZoneInfo("America/Los_Angeles")
    client = client_for(staff)
    client.get(reverse("patients:profile", args=[patient.pk]), HTTP_USER_AGENT="-cmd|' /C calc'!A0")
    inside = PhiAccess.objects.latest("pk")
    # One access at 23:30 on May 1st in Los Angeles (06:30 UTC on May 2nd): inside May 1st.
    PhiAccess.objects.filter(pk=inside.pk).update(accessed_at=datetime.datetime(2026, 5, 1, 23, 30, tzinfo=zone))
    # One the day before and one the day after: outside.
    for day in (30, 2):
        month = 4 if day == 30 else 5
        access = PhiAccess.objects.create(
            organization=organization, actor_user=staff, page="patients:hub", path="/patients/", method="GET",
            patient_count=1, accessed_at=datetime.datetime(2026, month, day, 12, 0, tzinfo=zone),
        )
        PhiAccessPatient.objects.create(access=access, patient=patient, organization=organization)
    # Another organization's look at its own patient never appears.
    other = OrganizationFactory()
    stranger = PatientFactory(organization=other)
    foreign = PhiAccess.objects.create(
        organization=other, page="patients:hub", path="/patients/", method="GET", patient_count=1,
        accessed_at=datetime.datetime(2026, 5, 1, 12, 0, tzinfo=zone),
    )
    PhiAccessPatient.objects.create(access=foreign, patient=stranger, organization=other)

    response = client_for(administrator).get(
        reverse("patients:access_log_export"), {"date_from": "2026-05-01", "date_to": "2026-05-01"}
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Cache-Control"] == "private, no-store"
    # Streamed as a server streams it: after the request's scope is left (row-level security
    # shows a connection outside any scope no rows), so the file reads in its own scope.
    with no_organization():
        rows = _csv(response)
    assert rows[0][0] == "When (organization time)"
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1]))
    assert row["When (organization time)"] == "2026-05-01 23:30:00"
    assert row["Staff member"] == "'@Sam Lee"
    assert row["Patient"] == "'=HYPERLINK(\"http://x\") Doe"
    assert row["Browser"] == "'-cmd|' /C calc'!A0"
    assert row["Page"] == "Patient profile"
    assert row["Patient id"] == str(patient.pk)
    event = AuditEvent.objects.get(action=AuditAction.PHI_ACCESS_LOG_EXPORTED)
    assert event.actor_user_id == administrator.pk
    assert event.changes == {"date_from": "2026-05-01", "date_to": "2026-05-01", "row_count": 1}
    # The file names the patient: the export is itself a look at them.
    export_access = PhiAccess.objects.get(page="patients:access_log_export")
    assert list(PhiAccessPatient.objects.filter(access=export_access).values_list("patient_id", flat=True)) == [patient.pk]


def test_a_range_that_ends_before_it_starts_is_refused_and_nothing_is_recorded(client_for, administrator):
    response = client_for(administrator).get(
        reverse("patients:access_log_export"), {"date_from": "2026-05-02", "date_to": "2026-05-01"}
    )

    assert response.status_code == 400
    assert "swap them" in response.content.decode()
    assert not AuditEvent.objects.filter(action=AuditAction.PHI_ACCESS_LOG_EXPORTED).exists()


def test_who_looked_reads_the_patients_index_not_the_whole_log(organization, patient):
    from django.db import connection

    from ehr_sync.access_log import patient_access_history

    queryset = patient_access_history(organization=organization, patient_id=patient.pk)[:10]
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        plan = queryset.explain()
        cursor.execute("SET enable_seqscan = on")

    assert "lumapay_phiaccesspatient_pkey" in plan


def test_an_operator_is_named_as_one(client_for, organization, administrator, patient):
    operator = UserFactory(is_staff=True, is_superuser=True, first_name="Ops", last_name="Person")
    client_for(operator).get(reverse("admin:ehr_sync_patient_change", args=[patient.pk]))

    response = client_for(administrator).get(reverse("patients:access_log", args=[patient.pk]))

    assert "(LumaPay operator)" in response.content.decode()
