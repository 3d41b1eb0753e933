import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from ehr_sync.models import Patient
from lumapay.models import AuditEvent
from org_profile.enums import Role
from transactions.services.transaction_open import transaction_open

from ..factories import (
    AppointmentFactory,
    BalanceFactory,
    LocationFactory,
    MembershipFactory,
    PatientFactory,
    PaymentRequestDeliveryFactory,
    PaymentRequestFactory,
    UserFactory,
)

NEW_PATIENT = {
    "first_name": "Ana",
    "last_name": "Ruiz",
    "date_of_birth": "1990-07-14",
    "email": "ana@mail.example",
    "mobile_phone": "(217) 555-0142",
    "preferred_language": "es",
    "sms_consent": "on",
    "external_ehr_id": "MRN-5001",
}


def _transaction(payment_request):
    return transaction_open(organization=payment_request.organization, payment_request=payment_request, vendor="sandbox")


# The Hub


def test_the_hub_lists_the_organizations_patients_25_to_a_page(client_for, organization, administrator, other_organization):
    # given 30 patients here and one in another organization
    for number in range(30):
        PatientFactory(organization=organization, last_name=f"Patient{number:02d}")
    PatientFactory(organization=other_organization, last_name="Elsewhere")
    client = client_for(administrator)

    # when the Hub is opened, then its second page
    first = client.get(reverse("patients:hub"))
    second = client.get(reverse("patients:hub"), {"page": 2})

    # then 25 patients, then 5, sorted by name, never the other organization's
    assert first.status_code == 200
    assert [p.last_name for p in first.context["page"]] == [f"Patient{n:02d}" for n in range(25)]
    assert [p.last_name for p in second.context["page"]] == [f"Patient{n:02d}" for n in range(25, 30)]
    assert b"Elsewhere" not in first.content + second.content
    assert b"Page 1 of 2" in first.content


def test_the_hub_search_works_without_javascript_and_each_row_offers_a_request(client_for, organization, administrator):
    # given two patients
    maria = PatientFactory(organization=organization, first_name="Maria", last_name="Lopez")
    PatientFactory(organization=organization, first_name="Bo", last_name="Chen")

    # when staff submit the search form (a plain GET)
    response = client_for(administrator).get(reverse("patients:hub"), {"q": "maria lop"})

    # then the whole page comes back with only the match, a link to the profile and a request action
    assert response.status_code == 200
    content = response.content.decode()
    assert "<html" in content
    assert [p.pk for p in response.context["page"]] == [maria.pk]
    assert f'href="{reverse("patients:profile", args=[maria.pk])}"' in content
    assert f'href="{reverse("transactions:payment_request_new", args=[maria.pk])}"' in content
    assert 'hx-push-url="true"' in content
    assert "Chen" not in content


def test_the_hub_search_answers_htmx_with_the_results_only(client_for, organization, administrator):
    # given a patient
    PatientFactory(organization=organization, first_name="Maria", last_name="Lopez")

    # when htmx asks for the results as staff type
    response = client_for(administrator).get(
        reverse("patients:hub"), {"q": "lopez"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="patient-results"
    )

    # then only the results section comes back, and caches keep the two answers apart
    content = response.content.decode()
    assert response.status_code == 200
    assert content.lstrip().startswith('<section id="patient-results"')
    assert "<html" not in content
    assert "Lopez, Maria" in content
    assert "HX-Request" in response["Vary"]


def test_the_hub_answers_an_htmx_history_restore_with_the_whole_page(client_for, organization, administrator):
    # given htmx restoring a page it no longer has in its cache (back button)
    # when it asks
    response = client_for(administrator).get(
        reverse("patients:hub"),
        {"q": "lopez"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="patient-results",
        HTTP_HX_HISTORY_RESTORE_REQUEST="true",
    )

    # then the whole page comes back
    assert "<html" in response.content.decode()


def test_the_hub_finds_garcia_without_the_accent_and_as_it_shows_her(client_for, organization, administrator):
    # given Jorge García, shown in the Hub as "García, Jorge"
    PatientFactory(organization=organization, first_name="Jorge", last_name="García")
    PatientFactory(organization=organization, first_name="Ann", last_name="Lee")
    client = client_for(administrator)

    # when staff search for "garcia", and for the name as the Hub shows it
    # then he is the one found
    for query in ("garcia", "Garcia, Jorge", "García, Jorge"):
        response = client.get(reverse("patients:hub"), {"q": query})
        assert [f"{p.last_name}, {p.first_name}" for p in response.context["page"].object_list] == ["García, Jorge"]
        assert "García, Jorge" in response.content.decode()


def test_the_hub_says_when_nothing_matches(client_for, organization, administrator):
    response = client_for(administrator).get(reverse("patients:hub"), {"q": "zzz"})
    assert "No patient matches “zzz”." in response.content.decode()


# The profile


def test_the_profile_shows_the_patient_and_records_the_phi_access(client_for, organization, location, administrator):
    # given a patient with appointments, a balance, a payment request with a delivery, and a transaction
    patient = PatientFactory(organization=organization, first_name="Maria", last_name="Lopez", mobile_phone="+12175550100")
    older = AppointmentFactory(
        patient=patient, organization=organization, location=location,
        starts_at=timezone.now() - datetime.timedelta(days=30), provider_name="Dr. Older",
    )
    newer = AppointmentFactory(
        patient=patient, organization=organization, location=location,
        starts_at=timezone.now() + datetime.timedelta(days=3), provider_name="Dr. Newer", copay_cents=3000,
    )
    BalanceFactory(patient=patient, organization=organization, amount_due_cents=12345)
    delivery = PaymentRequestDeliveryFactory(
        payment_request=PaymentRequestFactory(patient=patient, organization=organization, location=location)
    )
    transaction = _transaction(delivery.payment_request)

    # when an administrator opens the profile
    response = client_for(administrator).get(reverse("patients:profile", args=[patient.pk]))

    # then everything is there, appointments newest first
    assert response.status_code == 200
    content = response.content.decode()
    assert [a.pk for a in response.context["appointments"]] == [newer.pk, older.pk]
    assert "(217) 555-0100" in content
    assert "$123.45" in content
    assert "$30.00" in content
    assert f"{reverse('transactions:payment_request_new', args=[patient.pk])}?appointment={newer.pk}" in content
    assert [r.pk for r in response.context["payment_requests"]] == [delivery.payment_request_id]
    assert reverse("transactions:payment_request_resend", args=[delivery.payment_request_id]) in content
    assert reverse("transactions:payment_request_cancel", args=[delivery.payment_request_id]) in content
    assert reverse("transactions:transaction_detail", args=[transaction.pk]) in content

    # and the PHI access is on record: who, which patient, from where
    event = AuditEvent.objects.get()
    assert (event.organization, event.action, event.actor_type, event.actor_user, event.patient, event.ip_address) == (
        organization, "patient.viewed", "staff", administrator, patient, "127.0.0.1"
    )


def test_a_sub_account_user_sees_only_the_requests_and_transactions_of_their_locations(
    client_for, organization, location, other_location, staff_user, patient
):
    # given a request and transaction at the user's Downtown Clinic, and others at Northside
    mine = PaymentRequestFactory(patient=patient, organization=organization, location=location)
    theirs = PaymentRequestFactory(patient=patient, organization=organization, location=other_location)
    my_transaction = _transaction(mine)
    their_transaction = _transaction(theirs)

    # when the sub-account user opens the patient's profile
    response = client_for(staff_user).get(reverse("patients:profile", args=[patient.pk]))

    # then only their location's request and transaction are listed
    assert response.status_code == 200
    assert [r.pk for r in response.context["payment_requests"]] == [mine.pk]
    assert [t.pk for t in response.context["transactions"]] == [my_transaction.pk]
    assert reverse("transactions:transaction_detail", args=[their_transaction.pk]) not in response.content.decode()


# Adding and editing


def test_staff_add_a_patient_by_hand(client_for, organization, staff_user):
    # given a sub-account user
    # when they fill in the form
    response = client_for(staff_user).post(reverse("patients:new"), NEW_PATIENT)

    # then the patient exists, normalised, and they land on the profile
    patient = Patient.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("patients:profile", args=[patient.pk])
    assert (patient.organization, patient.mobile_phone, patient.sms_consent, patient.preferred_language) == (
        organization, "+12175550142", True, "es"
    )
    assert patient.sms_consent_at is not None
    assert AuditEvent.objects.get().action == "patient.created"


@pytest.mark.parametrize(
    "changes, field, message",
    [
        (
            {"mobile_phone": "555-0142"},
            "mobile_phone",
            "“555-0142” has 7 digits; a US number has 10, such as (217) 555-0100. "
            "Write other countries' numbers starting with +.",
        ),
        ({"email": "ana@"}, "email", "This is not an e-mail address. Check it, or leave it empty."),
        ({"date_of_birth": "14/07/90"}, "date_of_birth", "Enter the date of birth as a date, such as 1984-03-09."),
        (
            {"mobile_phone": "", "sms_consent": "on"},
            "mobile_phone",
            "SMS consent needs a mobile phone number: enter the number the patient agreed to receive texts on.",
        ),
    ],
)
def test_the_patient_form_says_what_is_wrong_and_writes_nothing(
    client_for, organization, administrator, changes, field, message
):
    # given a form with one wrong detail
    # when it is submitted
    response = client_for(administrator).post(reverse("patients:new"), {**NEW_PATIENT, **changes})

    # then the form comes back with the message beside that field, and nothing was written
    assert response.status_code == 200
    assert response.context["form"].errors[field] == [message]
    assert Patient.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_an_ehr_id_already_in_use_is_a_form_error(client_for, organization, administrator):
    # given a patient with MRN-5001
    PatientFactory(organization=organization, external_ehr_id="MRN-5001")

    # when another patient is added with MRN-5001
    response = client_for(administrator).post(reverse("patients:new"), NEW_PATIENT)

    # then the EHR id field says so and nothing was written
    assert response.status_code == 200
    assert response.context["form"].errors["external_ehr_id"] == [
        "Another patient in this organization already has the EHR id “MRN-5001”. "
        "Check the id, or open that patient's record instead."
    ]
    assert Patient.objects.count() == 1


def test_staff_edit_a_patient_and_withdraw_sms_consent(client_for, organization, manager):
    # given a patient who agreed to texts
    patient = PatientFactory(organization=organization, first_name="Ana", last_name="Ruiz", external_ehr_id="MRN-5001")
    client = client_for(manager)

    # when the edit form opens, then is saved without the consent box
    form_page = client.get(reverse("patients:edit", args=[patient.pk]))
    response = client.post(
        reverse("patients:edit", args=[patient.pk]),
        {**NEW_PATIENT, "sms_consent": "", "last_name": "Ruiz Diaz"},
    )

    # then the form was filled in, and the consent and its time are gone
    assert form_page.status_code == 200
    assert form_page.context["form"].initial["external_ehr_id"] == "MRN-5001"
    assert response.status_code == 302
    patient.refresh_from_db()
    assert (patient.last_name, patient.sms_consent, patient.sms_consent_at) == ("Ruiz Diaz", False, None)
    event = AuditEvent.objects.get(action="patient.updated")
    assert event.changes["sms_consent"] == [True, False]
    assert event.actor_user == manager


# Roles and tenancy


@pytest.mark.parametrize("role", [Role.ADMINISTRATOR, Role.MANAGER, Role.STAFF])
def test_every_role_may_use_the_patient_pages(client_for, organization, location, patient, role):
    # given a member of each role (sub-account users with a location)
    user = MembershipFactory(organization=organization, role=role, locations=[location]).user
    client = client_for(user)

    # when they open each page
    # then each answers
    for url in (
        reverse("patients:hub"),
        reverse("patients:new"),
        reverse("patients:profile", args=[patient.pk]),
        reverse("patients:edit", args=[patient.pk]),
    ):
        assert client.get(url).status_code == 200, url


def test_a_sub_account_user_without_locations_still_finds_patients(client_for, organization, patient):
    # given a sub-account user of none of the locations (patients are organization-wide)
    user = MembershipFactory(organization=organization, role=Role.STAFF).user

    # when they open the Hub and the profile
    client = client_for(user)

    # then they see the patient, and no requests
    assert [p.pk for p in client.get(reverse("patients:hub")).context["page"]] == [patient.pk]
    assert client.get(reverse("patients:profile", args=[patient.pk])).status_code == 200


def test_signed_out_visitors_are_sent_to_sign_in(client, patient):
    for url in (reverse("patients:hub"), reverse("patients:profile", args=[patient.pk])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert AuditEvent.objects.count() == 0


def test_a_user_without_an_organization_is_told_so(client_for, patient):
    response = client_for(UserFactory()).get(reverse("patients:profile", args=[patient.pk]))
    assert response.status_code == 403
    assert b"You are not a member of any organization" in response.content
    assert AuditEvent.objects.count() == 0


@pytest.mark.parametrize("role", [Role.ADMINISTRATOR, Role.MANAGER, Role.STAFF])
def test_another_organizations_patient_pages_are_not_found(client_for, patient, other_organization, role):
    # given a member of another organization
    elsewhere = LocationFactory(organization=other_organization)
    user = MembershipFactory(organization=other_organization, role=role, locations=[elsewhere]).user
    client = client_for(user)

    # when they ask for this organization's patient, by every page and method
    # then every answer is 404, nothing is recorded or changed, and the Hub does not list them
    for url in (reverse("patients:profile", args=[patient.pk]), reverse("patients:edit", args=[patient.pk])):
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("patients:edit", args=[patient.pk]), NEW_PATIENT).status_code == 404
    assert client.get(reverse("patients:hub"), {"q": patient.last_name}).context["page"].paginator.count == 0
    assert AuditEvent.objects.count() == 0
    assert Patient.objects.get().last_name == patient.last_name
