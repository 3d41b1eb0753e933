import datetime

import pytest
from django.urls import reverse

from ehr_sync.templatetags.phone_numbers import phone
from lumapay import sms
from lumapay.models import AuditEvent, DevOutboxMessage
from org_profile.enums import Role
from transactions.enums import PaymentRequestStatus
from transactions.links import payment_link_url
from transactions.models import PaymentRequest, PaymentRequestDelivery

from ..factories import (
    AppointmentFactory,
    LocationFactory,
    MembershipFactory,
    PatientFactory,
    PaymentRequestFactory,
)

REQUEST_FORM = {"amount": "$45", "kind": "copay", "billing_item": "Office visit copay", "note": ""}


def _nothing_written():
    return (PaymentRequest.objects.count(), PaymentRequestDelivery.objects.count()) == (0, 0) and not AuditEvent.objects.filter(
        action__startswith="payment_request."
    ).exists()


# Sending


def test_staff_send_a_request_from_the_form(
    client_for, organization, location, patient, staff_user, mailoutbox, django_capture_on_commit_callbacks
):
    # given a sub-account user of the Downtown Clinic on the request form
    client = client_for(staff_user)
    form_page = client.get(reverse("transactions:payment_request_new", args=[patient.pk]))

    # when they send "$45"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("transactions:payment_request_new", args=[patient.pk]), {**REQUEST_FORM, "location": location.pk}
        )

    # then the form offered only their location (preselected), the request is written and sent,
    # and they land on it with a message saying how it went
    assert list(form_page.context["form"].fields["location"].queryset) == [location]
    assert form_page.context["form"].initial["location"] == location.pk
    payment_request = PaymentRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("transactions:payment_request_detail", args=[payment_request.pk])
    assert (payment_request.amount_cents, payment_request.location, payment_request.created_by) == (
        4500, location, staff_user
    )
    assert len(mailoutbox) == 1 and len(sms.outbox) == 1
    detail = client.get(response["Location"])
    assert f"Payment request for $45.00 sent to {patient.full_name} by e-mail and text message." in detail.content.decode()


def test_the_form_can_start_from_an_appointments_copay(client_for, organization, location, patient, administrator):
    # given an appointment with a $30 copay
    appointment = AppointmentFactory(patient=patient, organization=organization, location=location, copay_cents=3000)

    # when the form is opened from the appointment's "Request copay" link
    response = client_for(administrator).get(
        reverse("transactions:payment_request_new", args=[patient.pk]), {"appointment": appointment.pk}
    )

    # then it is filled in for that copay
    initial = response.context["form"].initial
    assert (initial["appointment"], initial["location"], initial["kind"], initial["amount"]) == (
        appointment.pk, location.pk, "copay", "$30.00"
    )


@pytest.mark.parametrize(
    "amount, message",
    [
        ("0", "The amount must be more than $0.00."),
        ("-5", "The amount must be more than $0.00."),
        ("100000.01", "The amount cannot be more than $100,000.00."),
        ("ten dollars", "“ten dollars” is not an amount. Enter dollars and cents, such as 45.00."),
        ("", "Enter an amount."),
    ],
)
def test_a_bad_amount_is_a_form_error_and_nothing_is_written(
    client_for, location, patient, administrator, django_capture_on_commit_callbacks, amount, message
):
    # given an amount that is zero, negative, over $100,000, not a number or missing
    # when the form is sent
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client_for(administrator).post(
            reverse("transactions:payment_request_new", args=[patient.pk]),
            {**REQUEST_FORM, "amount": amount, "location": location.pk},
        )

    # then the amount field says what is wrong and nothing was written or sent
    assert response.status_code == 200
    assert response.context["form"].errors["amount"] == [message]
    assert _nothing_written()
    assert callbacks == []


def test_a_patient_who_cannot_be_reached_is_a_form_error(client_for, organization, location, administrator):
    # given a patient with no e-mail address and no SMS consent
    patient = PatientFactory(
        organization=organization, first_name="Ana", last_name="Ruiz", email="", sms_consent=False, sms_consent_at=None
    )
    client = client_for(administrator)

    # when the form is opened and sent
    form_page = client.get(reverse("transactions:payment_request_new", args=[patient.pk]))
    response = client.post(
        reverse("transactions:payment_request_new", args=[patient.pk]), {**REQUEST_FORM, "location": location.pk}
    )

    # then the page warns before, the form says what to do after, and nothing was written
    assert "Add an e-mail address or record SMS consent" in form_page.content.decode()
    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "Ana Ruiz has no e-mail address and has not agreed to text messages: "
        "add an e-mail address or record SMS consent first."
    ]
    assert _nothing_written()


def test_a_sub_account_user_cannot_pick_another_location(client_for, other_location, patient, staff_user):
    # given a sub-account user of the Downtown Clinic
    # when they post the Northside Clinic's id
    response = client_for(staff_user).post(
        reverse("transactions:payment_request_new", args=[patient.pk]), {**REQUEST_FORM, "location": other_location.pk}
    )

    # then the location field refuses it and nothing was written
    assert response.context["form"].errors["location"] == ["Choose one of your locations."]
    assert _nothing_written()


def test_another_organizations_location_cannot_be_picked(client_for, patient, administrator, other_organization):
    # given a location of another organization
    foreign_location = LocationFactory(organization=other_organization)

    # when its id is posted
    response = client_for(administrator).post(
        reverse("transactions:payment_request_new", args=[patient.pk]),
        {**REQUEST_FORM, "location": foreign_location.pk},
    )

    # then the location field refuses it and nothing was written
    assert response.context["form"].errors["location"] == ["Choose one of your locations."]
    assert _nothing_written()


def test_another_patients_appointment_cannot_be_picked(client_for, organization, location, patient, administrator):
    # given an appointment of another patient
    appointment = AppointmentFactory(organization=organization, location=location)

    # when its id is posted
    response = client_for(administrator).post(
        reverse("transactions:payment_request_new", args=[patient.pk]),
        {**REQUEST_FORM, "location": location.pk, "appointment": appointment.pk},
    )

    # then the appointment field refuses it and nothing was written
    assert response.context["form"].errors["appointment"] == ["Choose one of this patient's appointments."]
    assert _nothing_written()


# The request's page, re-send and cancel


def test_the_request_page_shows_the_request_its_deliveries_and_its_history(
    client_for, organization, location, patient, administrator, settings, django_capture_on_commit_callbacks
):
    # given a request sent through the form, with the dev outbox off
    settings.DEV_OUTBOX_ENABLED = False
    client = client_for(administrator)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("transactions:payment_request_new", args=[patient.pk]), {**REQUEST_FORM, "location": location.pk}
        )
    payment_request = PaymentRequest.objects.get()

    # when its page is opened
    response = client.get(reverse("transactions:payment_request_detail", args=[payment_request.pk]))

    # then it shows the deliveries and the history in words, and no dev outbox link
    content = response.content.decode()
    assert response.status_code == 200
    assert [d.channel for d in response.context["deliveries"]] == ["sms", "email"]
    assert [entry.label for entry in response.context["history"]] == [
        "Payment request sent",
        "Message with the link handed to the provider",
        "Message with the link handed to the provider",
    ]
    assert response.context["history"][0].details == ["By e-mail and text message"]
    # and names who did what as the transaction's timeline does
    assert response.context["history"][0].actor == f"{administrator.get_full_name()} ({administrator.email})"
    assert {entry.actor for entry in response.context["history"][1:]} == {"LumaPay"}
    assert sorted(entry.details for entry in response.context["history"][1:]) == [["By e-mail"], ["By text message"]]
    # (the mobile number written as staff read it: "+12175550100" is "(217) 555-0100")
    assert patient.email in content and phone(patient.mobile_phone) in content
    assert patient.mobile_phone not in content
    assert reverse("dev_outbox") not in content
    assert reverse("transactions:payment_request_resend", args=[payment_request.pk]) in content


def test_the_request_page_points_to_the_dev_outbox_only_in_development(client_for, settings, administrator, location, patient):
    # given the dev outbox is on
    settings.DEV_OUTBOX_ENABLED = True
    payment_request = PaymentRequestFactory(organization=location.organization, location=location, patient=patient)

    # when the request's page is opened
    response = client_for(administrator).get(reverse("transactions:payment_request_detail", args=[payment_request.pk]))

    # then it links to the dev outbox
    assert f'href="{reverse("dev_outbox")}"' in response.content.decode()


def test_resend_from_the_profile_returns_to_the_profile(
    client_for, organization, location, patient, administrator, mailoutbox, django_capture_on_commit_callbacks
):
    # given an open request
    payment_request = PaymentRequestFactory(organization=organization, location=location, patient=patient)
    profile_url = reverse("patients:profile", args=[patient.pk])

    # when it is re-sent from the patient's profile
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(administrator).post(
            reverse("transactions:payment_request_resend", args=[payment_request.pk]), {"next": profile_url}
        )

    # then the messages went out and staff are back on the profile
    assert response.status_code == 302
    assert response["Location"] == profile_url
    assert payment_request.deliveries.count() == 2
    assert len(mailoutbox) == 1
    assert AuditEvent.objects.filter(action="payment_request.resent").count() == 1


def test_cancel_with_a_reason_and_an_unsafe_next_goes_to_the_request(
    client_for, organization, location, patient, manager
):
    # given an open request
    payment_request = PaymentRequestFactory(organization=organization, location=location, patient=patient)

    # when a manager cancels it, with a "next" pointing off-site
    response = client_for(manager).post(
        reverse("transactions:payment_request_cancel", args=[payment_request.pk]),
        {"reason": "Paid at the desk", "next": "https://evil.example/", "confirmed": "1"},
    )

    # then it is cancelled and staff land on the request, not off-site
    assert response["Location"] == reverse("transactions:payment_request_detail", args=[payment_request.pk])
    payment_request.refresh_from_db()
    assert (payment_request.status, payment_request.cancelled_by) == (PaymentRequestStatus.CANCELLED, manager)
    assert AuditEvent.objects.get().changes["reason"] == "Paid at the desk"


def test_a_refused_resend_is_a_message_and_changes_nothing(client_for, organization, location, patient, administrator):
    # given a cancelled request
    payment_request = PaymentRequestFactory(
        organization=organization, location=location, patient=patient, status=PaymentRequestStatus.CANCELLED
    )
    client = client_for(administrator)

    # when someone re-sends it
    response = client.post(reverse("transactions:payment_request_resend", args=[payment_request.pk]), follow=True)

    # then the page says why and nothing changed
    assert "This request was cancelled, so it cannot be re-sent: send a new request instead." in response.content.decode()
    assert payment_request.deliveries.count() == 0
    assert AuditEvent.objects.count() == 0


def test_resend_takes_only_post_and_cancel_asks_first(client_for, organization, location, patient, administrator):
    payment_request = PaymentRequestFactory(organization=organization, location=location, patient=patient)
    client = client_for(administrator)
    assert client.get(reverse("transactions:payment_request_resend", args=[payment_request.pk])).status_code == 405
    assert client.get(reverse("transactions:payment_request_cancel", args=[payment_request.pk])).status_code == 200
    payment_request.refresh_from_db()
    assert payment_request.status == PaymentRequestStatus.OPEN


def test_resend_and_cancel_need_the_csrf_token(organization, location, patient, administrator):
    # given a browser session that does not send the CSRF token
    from tests.two_step import VerifiedClient

    client = VerifiedClient(enforce_csrf_checks=True)
    client.force_login(administrator)
    payment_request = PaymentRequestFactory(organization=organization, location=location, patient=patient)

    # when it posts a cancel
    response = client.post(reverse("transactions:payment_request_cancel", args=[payment_request.pk]))

    # then it is refused and nothing changed
    assert response.status_code == 403
    payment_request.refresh_from_db()
    assert payment_request.status == PaymentRequestStatus.OPEN


# Roles and tenancy


@pytest.mark.parametrize("role", [Role.ADMINISTRATOR, Role.MANAGER, Role.STAFF])
def test_every_role_may_use_the_payment_request_pages_of_their_locations(client_for, organization, location, patient, role):
    # given a member of each role (sub-account users of the request's location)
    user = MembershipFactory(organization=organization, role=role, locations=[location]).user
    payment_request = PaymentRequestFactory(organization=organization, location=location, patient=patient)
    client = client_for(user)

    # when they open the form and the request, and cancel it
    # then each works
    assert client.get(reverse("transactions:payment_request_new", args=[patient.pk])).status_code == 200
    assert client.get(reverse("transactions:payment_request_detail", args=[payment_request.pk])).status_code == 200
    response = client.post(reverse("transactions:payment_request_cancel", args=[payment_request.pk]), {"confirmed": "1"})
    assert response.status_code == 302
    payment_request.refresh_from_db()
    assert payment_request.status == PaymentRequestStatus.CANCELLED


def test_a_sub_account_user_of_another_location_finds_no_such_request(
    client_for, organization, other_location, patient, staff_user
):
    # given a request of the Northside Clinic and a sub-account user of the Downtown Clinic
    payment_request = PaymentRequestFactory(organization=organization, location=other_location, patient=patient)
    client = client_for(staff_user)

    # when they ask for it, re-send it or cancel it
    # then each is "not found" and nothing changed
    assert client.get(reverse("transactions:payment_request_detail", args=[payment_request.pk])).status_code == 404
    assert client.post(reverse("transactions:payment_request_resend", args=[payment_request.pk])).status_code == 404
    assert client.post(reverse("transactions:payment_request_cancel", args=[payment_request.pk])).status_code == 404
    payment_request.refresh_from_db()
    assert payment_request.status == PaymentRequestStatus.OPEN
    assert AuditEvent.objects.count() == 0


def test_signed_out_visitors_are_sent_to_sign_in(client, organization, location, patient):
    payment_request = PaymentRequestFactory(organization=organization, location=location, patient=patient)
    for url in (
        reverse("transactions:payment_request_new", args=[patient.pk]),
        reverse("transactions:payment_request_detail", args=[payment_request.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    response = client.post(reverse("transactions:payment_request_cancel", args=[payment_request.pk]))
    assert response["Location"].startswith(reverse("login"))
    payment_request.refresh_from_db()
    assert payment_request.status == PaymentRequestStatus.OPEN


@pytest.mark.parametrize("role", [Role.ADMINISTRATOR, Role.MANAGER, Role.STAFF])
def test_another_organizations_payment_request_pages_are_not_found(
    client_for, organization, location, patient, other_organization, role
):
    # given this organization's patient and open request, and a member of another organization
    payment_request = PaymentRequestFactory(organization=organization, location=location, patient=patient)
    elsewhere = LocationFactory(organization=other_organization)
    client = client_for(MembershipFactory(organization=other_organization, role=role, locations=[elsewhere]).user)

    # when they use every payment request page with this organization's ids
    answers = [
        client.get(reverse("transactions:payment_request_new", args=[patient.pk])).status_code,
        client.post(
            reverse("transactions:payment_request_new", args=[patient.pk]), {**REQUEST_FORM, "location": elsewhere.pk}
        ).status_code,
        client.get(reverse("transactions:payment_request_detail", args=[payment_request.pk])).status_code,
        client.post(reverse("transactions:payment_request_resend", args=[payment_request.pk])).status_code,
        client.post(reverse("transactions:payment_request_cancel", args=[payment_request.pk])).status_code,
    ]

    # then every answer is 404 and nothing changed
    assert answers == [404, 404, 404, 404, 404]
    assert PaymentRequest.objects.get().status == PaymentRequestStatus.OPEN
    assert PaymentRequestDelivery.objects.count() == 0
    assert AuditEvent.objects.count() == 0


# The dev outbox


def test_the_dev_outbox_lists_what_was_sent_with_the_link_clickable(
    client_for, settings, organization, location, patient, administrator, django_capture_on_commit_callbacks
):
    # given development settings: messages go to the dev outbox
    settings.DEV_OUTBOX_ENABLED = True
    settings.EMAIL_BACKEND = "lumapay.dev_outbox.EmailBackend"
    settings.SMS_BACKEND = "dev_outbox"
    client = client_for(administrator)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("transactions:payment_request_new", args=[patient.pk]), {**REQUEST_FORM, "location": location.pk}
        )
    link = payment_link_url(PaymentRequest.objects.get())

    # when the dev outbox page is opened
    response = client.get(reverse("dev_outbox"))

    # then both messages are listed, newest first, each with the payment link as a link
    content = response.content.decode()
    assert response.status_code == 200
    assert [m.channel for m in response.context["outbox_messages"]] == ["sms", "email"]
    assert DevOutboxMessage.objects.count() == 2
    assert content.count(f'<a href="{link}"') == 2
    assert "Riverside Family Medicine: payment request for $45.00" in content
    assert "This page exists only in development" in content


def test_the_dev_outbox_does_not_exist_outside_development(client, settings, db):
    settings.DEV_OUTBOX_ENABLED = False
    assert client.get(reverse("dev_outbox")).status_code == 404


def test_the_request_page_gives_its_times_in_the_organizations_zone(client_for, organization, location, patient, administrator):
    # given a clinic in Tokyo and a request whose link works until 23:30 UTC on Dec 29
    organization.timezone = "Asia/Tokyo"
    organization.save()
    payment_request = PaymentRequestFactory(
        patient=patient, location=location, expires_at=datetime.datetime(2026, 12, 29, 23, 30, tzinfo=datetime.UTC)
    )

    # when an administrator opens the request
    body = client_for(administrator).get(
        reverse("transactions:payment_request_detail", args=[payment_request.pk])
    ).content.decode()

    # then the link's end is Tokyo's date and time, in the one date-time format
    assert "<dt>Link works until</dt><dd>Dec 30, 2026, 8:30 AM JST</dd>" in body
