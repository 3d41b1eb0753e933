import datetime

import pytest
from django.utils import timezone

from ehr_sync.models import Patient
from ehr_sync.services import patient_update
from lumapay.errors import ApplicationError
from lumapay.models import AuditEvent

from ..factories import PatientFactory


@pytest.fixture
def unconsented_patient(organization):
    return PatientFactory(
        organization=organization,
        first_name="Maria",
        last_name="Lopez",
        email="maria@mail.example",
        mobile_phone="+12175550100",
        sms_consent=False,
        sms_consent_at=None,
        external_ehr_id="MRN-1001",
    )


def test_patient_update_changes_only_what_is_given_and_audits_old_and_new_values(
    organization, manager, unconsented_patient
):
    # given a patient
    # when a manager changes the last name and e-mail address
    updated = patient_update(
        organization=organization,
        actor=manager,
        patient=unconsented_patient,
        data={"last_name": "Lopez Garcia", "email": "maria.lg@mail.example", "first_name": "Maria"},
    )

    # then those change (the unchanged first name is not recorded) and the audit holds old and new
    stored = Patient.objects.get()
    assert (stored.first_name, stored.last_name, stored.email, stored.mobile_phone) == (
        "Maria", "Lopez Garcia", "maria.lg@mail.example", "+12175550100"
    )
    assert (updated.pk, updated.last_name) == (unconsented_patient.pk, "Lopez Garcia")
    event = AuditEvent.objects.get()
    assert (event.action, event.actor_type, event.actor_user, event.patient) == (
        "patient.updated", "staff", manager, stored
    )
    assert event.changes == {
        "last_name": ["Lopez", "Lopez Garcia"],
        "email": ["maria@mail.example", "maria.lg@mail.example"],
    }


def test_giving_sms_consent_records_when(organization, administrator, unconsented_patient):
    # given a patient who had not agreed to texts
    before = timezone.now()

    # when consent is recorded
    patient_update(organization=organization, actor=administrator, patient=unconsented_patient, data={"sms_consent": True})

    # then the consent time is now, and the audit says so
    stored = Patient.objects.get()
    assert stored.sms_consent is True
    assert before <= stored.sms_consent_at <= timezone.now()
    assert AuditEvent.objects.get().changes == {
        "sms_consent": [False, True],
        "sms_consent_at": [None, stored.sms_consent_at.isoformat()],
    }


def test_withdrawing_sms_consent_clears_its_time(organization, administrator):
    # given a patient who agreed to texts
    consented_at = timezone.now() - datetime.timedelta(days=40)
    patient = PatientFactory(organization=organization, sms_consent=True, sms_consent_at=consented_at)

    # when consent is withdrawn
    patient_update(organization=organization, actor=administrator, patient=patient, data={"sms_consent": False})

    # then the consent and its time are gone, and the audit holds the old time
    stored = Patient.objects.get()
    assert (stored.sms_consent, stored.sms_consent_at) == (False, None)
    assert AuditEvent.objects.get().changes == {
        "sms_consent": [True, False],
        "sms_consent_at": [consented_at.isoformat(), None],
    }


def test_a_new_mobile_number_with_consent_records_the_consent_again(organization, administrator):
    # given a patient who agreed to texts on one number
    consented_at = timezone.now() - datetime.timedelta(days=40)
    patient = PatientFactory(
        organization=organization, mobile_phone="+12175550100", sms_consent=True, sms_consent_at=consented_at
    )

    # when the number changes and consent stands
    patient_update(
        organization=organization,
        actor=administrator,
        patient=patient,
        data={"mobile_phone": "(217) 555-0177", "sms_consent": True},
    )

    # then the consent is recorded for the new number, now
    stored = Patient.objects.get()
    assert stored.mobile_phone == "+12175550177"
    assert stored.sms_consent_at > consented_at
    assert set(AuditEvent.objects.get().changes) == {"mobile_phone", "sms_consent_at"}


def test_nothing_changed_writes_nothing(organization, administrator, unconsented_patient):
    # given a patient
    updated_at = unconsented_patient.updated_at

    # when the same details are saved again (the phone typed differently)
    patient_update(
        organization=organization,
        actor=administrator,
        patient=unconsented_patient,
        data={"mobile_phone": "(217) 555-0100", "first_name": "Maria"},
    )

    # then no write and no audit event
    assert Patient.objects.get().updated_at == updated_at
    assert AuditEvent.objects.count() == 0


def test_an_ehr_id_taken_by_another_patient_is_refused(organization, administrator, unconsented_patient):
    # given another patient with MRN-2002
    PatientFactory(organization=organization, external_ehr_id="MRN-2002")

    # when this patient's EHR id is changed to MRN-2002
    with pytest.raises(ApplicationError) as error:
        patient_update(
            organization=organization,
            actor=administrator,
            patient=unconsented_patient,
            data={"external_ehr_id": "MRN-2002", "last_name": "Lopez Garcia"},
        )

    # then it is refused for that field, and nothing changed
    assert error.value.extra == {"field": "external_ehr_id"}
    assert error.value.message.startswith("Another patient in this organization already has the EHR id “MRN-2002”.")
    stored = Patient.objects.get(pk=unconsented_patient.pk)
    assert (stored.external_ehr_id, stored.last_name) == ("MRN-1001", "Lopez")
    assert AuditEvent.objects.count() == 0


def test_consent_without_a_phone_is_refused(organization, administrator, unconsented_patient):
    # given a patient
    # when the phone is removed while consent is given
    with pytest.raises(ApplicationError) as error:
        patient_update(
            organization=organization,
            actor=administrator,
            patient=unconsented_patient,
            data={"mobile_phone": "", "sms_consent": True},
        )

    # then it is refused and nothing changed
    assert error.value.extra == {"field": "mobile_phone"}
    stored = Patient.objects.get()
    assert (stored.mobile_phone, stored.sms_consent) == ("+12175550100", False)
    assert AuditEvent.objects.count() == 0


def test_a_patient_of_another_organization_is_refused(administrator, other_organization, unconsented_patient):
    # given a patient of the administrator's organization
    # when it is updated in the name of another organization
    with pytest.raises(ApplicationError) as error:
        patient_update(
            organization=other_organization, actor=administrator, patient=unconsented_patient, data={"last_name": "X"}
        )

    # then it is refused and nothing changed
    assert error.value.message == "This patient belongs to another organization."
    assert Patient.objects.get().last_name == "Lopez"
    assert AuditEvent.objects.count() == 0


def test_an_unknown_field_is_a_programming_error(organization, administrator, unconsented_patient):
    with pytest.raises(TypeError):
        patient_update(
            organization=organization, actor=administrator, patient=unconsented_patient, data={"organization": None}
        )
    assert AuditEvent.objects.count() == 0
