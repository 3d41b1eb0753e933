import datetime

import pytest
from django.utils import timezone

from ehr_sync.models import Patient
from ehr_sync.services import patient_create
from lumapay.errors import ApplicationError
from lumapay.models import AuditEvent

from ..factories import PatientFactory


def _create(organization, actor, **overrides):
    arguments = {
        "organization": organization,
        "actor": actor,
        "first_name": " Maria ",
        "last_name": "Lopez",
        "date_of_birth": datetime.date(1984, 3, 9),
        "email": "maria@mail.example",
        "mobile_phone": "(217) 555-0100",
        "preferred_language": "es",
        "sms_consent": True,
        "external_ehr_id": "MRN-1001",
    }
    arguments.update(overrides)
    return patient_create(**arguments)


def test_patient_create_stores_the_patient_and_records_consent_and_the_audit_event(organization, staff_user):
    # given a sub-account user adding a patient by hand
    before = timezone.now()

    # when they add Maria Lopez with a US phone number typed as people write it, and SMS consent
    patient = _create(organization, staff_user)

    # then the patient is stored normalised, with the moment consent was recorded
    stored = Patient.objects.get()
    assert stored == patient
    assert (
        stored.organization, stored.first_name, stored.last_name, stored.date_of_birth, stored.email,
        stored.mobile_phone, stored.preferred_language, stored.sms_consent, stored.external_ehr_id,
    ) == (
        organization, "Maria", "Lopez", datetime.date(1984, 3, 9), "maria@mail.example",
        "+12175550100", "es", True, "MRN-1001",
    )
    assert before <= stored.sms_consent_at <= timezone.now()
    event = AuditEvent.objects.get()
    assert (event.organization, event.action, event.actor_type, event.actor_user, event.patient) == (
        organization, "patient.created", "staff", staff_user, stored
    )
    assert event.changes == {
        "first_name": [None, "Maria"],
        "last_name": [None, "Lopez"],
        "date_of_birth": [None, "1984-03-09"],
        "email": [None, "maria@mail.example"],
        "mobile_phone": [None, "+12175550100"],
        "preferred_language": [None, "es"],
        "sms_consent": [None, True],
        "external_ehr_id": [None, "MRN-1001"],
        "sms_consent_at": [None, stored.sms_consent_at.isoformat()],
    }


def test_a_patient_without_consent_has_no_consent_time(organization, administrator):
    # given no SMS consent
    # when the patient is added
    patient = _create(organization, administrator, sms_consent=False, mobile_phone="", external_ehr_id="")

    # then there is no consent time, no phone and no EHR id
    stored = Patient.objects.get(pk=patient.pk)
    assert (stored.sms_consent, stored.sms_consent_at, stored.mobile_phone, stored.external_ehr_id) == (
        False, None, "", ""
    )


def test_two_patients_without_an_ehr_id_can_coexist(organization, administrator):
    # given a patient with no EHR id
    _create(organization, administrator, external_ehr_id="")

    # when another patient with no EHR id is added
    _create(organization, administrator, first_name="Ana", external_ehr_id="")

    # then both exist (the id is unique only when present)
    assert Patient.objects.filter(external_ehr_id="").count() == 2


def test_the_same_ehr_id_in_another_organization_is_fine(organization, administrator, other_organization):
    # given a patient with MRN-1001 in another organization
    PatientFactory(organization=other_organization, external_ehr_id="MRN-1001")

    # when a patient with MRN-1001 is added here
    _create(organization, administrator)

    # then both exist
    assert Patient.objects.filter(external_ehr_id="MRN-1001").count() == 2


def test_an_ehr_id_already_used_in_the_organization_is_refused(organization, administrator):
    # given a patient with MRN-1001 in this organization
    PatientFactory(organization=organization, external_ehr_id="MRN-1001")

    # when another patient with MRN-1001 is added
    with pytest.raises(ApplicationError) as error:
        _create(organization, administrator)

    # then it is refused with a message for that field, and nothing was written
    assert error.value.message == (
        "Another patient in this organization already has the EHR id “MRN-1001”. "
        "Check the id, or open that patient's record instead."
    )
    assert error.value.extra == {"field": "external_ehr_id"}
    assert Patient.objects.count() == 1
    assert AuditEvent.objects.count() == 0


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"first_name": "  "}, "first_name", "Enter the patient's first name."),
        ({"last_name": ""}, "last_name", "Enter the patient's last name."),
        ({"first_name": "x" * 101}, "first_name", "Names can be at most 100 characters long."),
        ({"date_of_birth": None}, "date_of_birth", "Enter the date of birth."),
        (
            {"date_of_birth": datetime.date.today() + datetime.timedelta(days=2)},
            "date_of_birth",
            "The date of birth cannot be in the future.",
        ),
        ({"date_of_birth": datetime.date(1890, 1, 1)}, "date_of_birth", "Check the date of birth: it is before 1900."),
        (
            {"email": "maria@"},
            "email",
            "“maria@” is not an e-mail address. Check it, or leave it empty.",
        ),
        (
            {"mobile_phone": "555-0100"},
            "mobile_phone",
            "“555-0100” has 7 digits; a US number has 10, such as (217) 555-0100. "
            "Write other countries' numbers starting with +.",
        ),
        (
            {"mobile_phone": "", "sms_consent": True},
            "mobile_phone",
            "SMS consent needs a mobile phone number: enter the number the patient agreed to receive texts on.",
        ),
        ({"preferred_language": "fr"}, "preferred_language", "Choose English or Spanish as the preferred language."),
        ({"external_ehr_id": "x" * 101}, "external_ehr_id", "The EHR id can be at most 100 characters long."),
    ],
)
def test_bad_patient_details_are_refused_and_nothing_is_written(organization, administrator, overrides, field, message):
    # given a detail that is missing or wrong
    # when the patient is added
    with pytest.raises(ApplicationError) as error:
        _create(organization, administrator, **overrides)

    # then it is refused for that field, and nothing was written
    assert error.value.message == message
    assert error.value.extra == {"field": field}
    assert Patient.objects.count() == 0
    assert AuditEvent.objects.count() == 0
