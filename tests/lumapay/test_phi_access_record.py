"""``phi_access_record`` writes a clinic page's access and its patients in one statement."""

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from lumapay.models import PhiAccess, PhiAccessPatient
from lumapay.phi_access import phi_access_record
from lumapay.tenant_rls import organization_scope

from ..factories import PatientFactory

pytestmark = pytest.mark.django_db


def _request(user, path="/"):
    request = RequestFactory().get(path, HTTP_USER_AGENT="Firefox", REMOTE_ADDR="198.51.100.7")
    request.user = user
    return request


def test_a_clinic_pages_patients_are_recorded_with_their_access_in_one_statement(organization, manager):
    patients = [PatientFactory(organization=organization) for _ in range(3)]

    # when a page of the clinic shows three patients (one of them twice), under row-level security
    with organization_scope(organization.pk), CaptureQueriesContext(connection) as captured:
        [access] = phi_access_record(
            request=_request(manager, "/patients/"), organization=organization,
            patients=[patients[2].pk, patients[0].pk, patients[1].pk, patients[0].pk], page="patients:hub",
        )

    # then one statement wrote the access and each patient once
    assert len(captured.captured_queries) == 1
    stored = PhiAccess.objects.get()
    assert access.pk == stored.pk and not access._state.adding
    assert (stored.organization_id, stored.actor_user_id, stored.page, stored.path, stored.method, stored.ip_address,
            stored.user_agent, stored.patient_count, stored.is_operator) == (
        organization.pk, manager.pk, "patients:hub", "/patients/", "GET", "198.51.100.7", "Firefox", 3, False
    )
    assert stored.accessed_at == access.accessed_at
    assert sorted(PhiAccessPatient.objects.filter(access=stored).values_list("patient_id", "organization_id")) == sorted(
        (patient.pk, organization.pk) for patient in patients
    )


def test_records_without_listed_patients_are_an_access_with_none(organization, manager):
    with organization_scope(organization.pk):
        [access] = phi_access_record(
            request=_request(manager), organization=organization, patients=[], shows_unlisted_records=True
        )

    assert PhiAccess.objects.get().pk == access.pk
    assert access.patient_count == 0
    assert not PhiAccessPatient.objects.exists()


def test_another_organizations_patient_is_refused_and_nothing_is_written(organization, other_organization, manager):
    stranger = PatientFactory(organization=other_organization)

    # when the scope is one clinic and the access claims another (row-level security's WITH CHECK)
    with pytest.raises(DatabaseError), transaction.atomic(), organization_scope(organization.pk):
        phi_access_record(request=_request(manager), patients=[(other_organization.pk, stranger.pk)])

    # then neither the access nor its patient was written
    assert not PhiAccess.objects.exists()
    assert not PhiAccessPatient.objects.exists()


def test_no_patients_records_nothing(organization, manager):
    assert phi_access_record(request=_request(manager), organization=organization, patients=[]) == []
    assert not PhiAccess.objects.exists()
