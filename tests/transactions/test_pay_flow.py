"""The patient's whole way, through Django's test client and the Sandbox: link, date of birth,
details, checkout, the Sandbox's hosted page, the confirmation, the receipt."""

import datetime
import json
import logging
import re

import pytest
from django.core import mail

from lumapay.models import AuditEvent
from transactions.enums import (
    GatewayEventStatus,
    PaymentRequestStatus,
    TransactionEventKind as Kind,
    TransactionStatus,
)
from transactions.models import GatewayEvent, SandboxCharge, SandboxCheckoutSession, Transaction, TransactionEvent
from transactions.sandbox.enums import SandboxSessionStatus

from .pay_support import (
    AUTHENTICATE,
    DECLINED,
    INSUFFICIENT_FUNDS,
    SUCCEEDS,
    card_fields,
    checkout_path,
    dob_submit,
    pay_url,
    path_of,
    payment_request_make,
    text,
    verified,
)

pytestmark = pytest.mark.django_db


def _ledger(transaction):
    return list(TransactionEvent.objects.filter(transaction=transaction).order_by("id").values_list("kind", "amount_cents"))


def _actions(payment_request):
    return list(AuditEvent.objects.filter(payment_request=payment_request).order_by("id").values_list("action", flat=True))


def test_whole_flow_pays_once_although_the_event_and_the_done_page_both_report_it(
    client, organization, django_capture_on_commit_callbacks
):
    payment_request = payment_request_make(organization=organization, amount_cents=4500, note="Thank you!")
    patient = payment_request.patient

    # The link shows the clinic and asks only for the date of birth.
    response = client.get(pay_url("verify", payment_request))
    assert response.status_code == 200
    page = text(response)
    assert "Riverside Family Medicine" in page
    assert 'autocomplete="bday-month"' in page and 'for="dob-year"' in page
    for private in ("$45.00", "Office visit copay", patient.first_name, patient.last_name, "Thank you!"):
        assert private not in page

    response = verified(client, payment_request).get(pay_url("details", payment_request))
    page = text(response)
    assert response.status_code == 200
    assert "$45.00" in page and "Pay $45.00" in page
    assert "Copay: Office visit copay" in page and "Thank you!" in page and "Downtown Clinic" in page

    sandbox_path = checkout_path(client, payment_request)
    transaction = Transaction.objects.get(payment_request=payment_request)
    assert sandbox_path == f"/sandbox/checkout/{transaction.gateway_checkout_id}/"
    assert (transaction.status, transaction.amount_cents, transaction.vendor) == ("pending", 4500, "sandbox")
    assert (transaction.patient_id, transaction.location_id, transaction.billing_item) == (
        patient.pk,
        payment_request.location_id,
        "Office visit copay",
    )

    page = text(client.get(sandbox_path))
    assert "SANDBOX — test payments only" in page and "$45.00" in page and "4242 4242 4242 4242" in page

    # The card is charged; the Sandbox's event waits (as if the webhook were slow).
    with django_capture_on_commit_callbacks(execute=False) as sandbox_deliveries:
        response = client.post(sandbox_path, card_fields(SUCCEEDS))
    assert response.status_code == 302
    assert path_of(response["Location"]) == pay_url("done", payment_request)
    assert len(sandbox_deliveries) == 1

    # The done page asks the Sandbox and records the charge itself.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(pay_url("done", payment_request))
    transaction.refresh_from_db()
    charge = SandboxCharge.objects.get(session_id=transaction.gateway_checkout_id)
    page = text(response)
    assert response.status_code == 200
    assert "Payment received" in page and "$45.00" in page
    assert "Visa •••• 4242" in page
    assert charge.authorization_code and charge.authorization_code in page
    assert charge.id in page
    assert f"A receipt was e-mailed to {patient.email[0]}•••@mail.example." in page
    assert len(mail.outbox) == 1

    # Then the Sandbox's event arrives: stored, processed, and it writes nothing new.
    with django_capture_on_commit_callbacks(execute=True):
        for deliver in sandbox_deliveries:
            deliver()
    event = GatewayEvent.objects.get()
    assert (event.event_type, event.status, event.attempts, event.organization_id) == (
        "charge.succeeded",
        GatewayEventStatus.PROCESSED,
        1,
        organization.pk,
    )

    transaction.refresh_from_db()
    payment_request.refresh_from_db()
    assert _ledger(transaction) == [(Kind.CHARGE_REQUESTED, 4500), (Kind.CHARGE_SUCCEEDED, 4500)]
    assert (transaction.status, transaction.charged_cents) == (TransactionStatus.SUCCEEDED, 4500)
    assert (transaction.card_brand, transaction.card_last4, transaction.gateway_charge_id) == ("visa", "4242", charge.id)
    assert payment_request.status == PaymentRequestStatus.PAID
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [patient.email]
    assert _actions(payment_request) == [
        "pay_link.opened",
        "pay_link.verification_passed",
        "checkout.started",
        "payment_request.paid",
        "receipt.sent",
    ]
    opened = AuditEvent.objects.get(payment_request=payment_request, action="pay_link.opened")
    assert (opened.actor_type, opened.ip_address, opened.patient_id) == ("patient", "127.0.0.1", patient.pk)

    # Reloading the confirmation writes nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        assert client.get(pay_url("done", payment_request)).status_code == 200
    assert TransactionEvent.objects.filter(transaction=transaction).count() == 2
    assert len(mail.outbox) == 1


def test_when_the_event_comes_first_the_done_page_only_reads(client, organization, django_capture_on_commit_callbacks):
    payment_request = payment_request_make(organization=organization)
    verified(client, payment_request)
    sandbox_path = checkout_path(client, payment_request)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(sandbox_path, card_fields(SUCCEEDS))
    transaction = Transaction.objects.get()
    assert transaction.status == TransactionStatus.SUCCEEDED
    assert GatewayEvent.objects.get().status == GatewayEventStatus.PROCESSED

    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(pay_url("done", payment_request))
    assert "Payment received" in text(response)
    assert _ledger(transaction) == [(Kind.CHARGE_REQUESTED, 4500), (Kind.CHARGE_SUCCEEDED, 4500)]
    assert len(mail.outbox) == 1


def test_declines_show_their_messages_and_a_retry_succeeds(client, organization, django_capture_on_commit_callbacks):
    payment_request = payment_request_make(organization=organization, amount_cents=2000)
    verified(client, payment_request)
    sandbox_path = checkout_path(client, payment_request)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(sandbox_path, card_fields(DECLINED))
    assert response.status_code == 402
    assert "Your card was declined." in text(response) and "Try another card." in text(response)
    assert 'value="4000' not in text(response)  # the form starts empty, the number is not echoed
    transaction = Transaction.objects.get()
    assert transaction.status == TransactionStatus.FAILED
    assert transaction.last_error == "Your card was declined."
    assert SandboxCheckoutSession.objects.get().status == SandboxSessionStatus.OPEN

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(sandbox_path, card_fields(INSUFFICIENT_FUNDS))
    assert response.status_code == 402
    assert "Your card has insufficient funds." in text(response)

    # Back on the pay page, the patient sees why and "Pay" resumes the same checkout.
    page = text(client.get(pay_url("details", payment_request)))
    assert "Your last payment attempt did not go through: Your card has insufficient funds." in page
    assert checkout_path(client, payment_request) == sandbox_path
    assert Transaction.objects.count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(sandbox_path, card_fields(SUCCEEDS))
    assert path_of(response["Location"]) == pay_url("done", payment_request)
    transaction.refresh_from_db()
    payment_request.refresh_from_db()
    assert _ledger(transaction) == [
        (Kind.CHARGE_REQUESTED, 2000),
        (Kind.CHARGE_FAILED, 0),
        (Kind.CHARGE_FAILED, 0),
        (Kind.CHARGE_SUCCEEDED, 2000),
    ]
    # the declined cards are history now that the payment went through: no error is left on it
    assert (transaction.status, transaction.charged_cents, transaction.last_error, transaction.has_unresolved_problems) == (
        TransactionStatus.SUCCEEDED,
        2000,
        "",
        False,
    )
    assert payment_request.status == PaymentRequestStatus.PAID
    assert list(GatewayEvent.objects.order_by("id").values_list("event_type", "status")) == [
        ("charge.failed", "processed"),
        ("charge.failed", "processed"),
        ("charge.succeeded", "processed"),
    ]
    assert len(mail.outbox) == 1


def test_the_authentication_step_failed_then_passed(client, organization, django_capture_on_commit_callbacks):
    payment_request = payment_request_make(organization=organization, amount_cents=3000)
    verified(client, payment_request)
    sandbox_path = checkout_path(client, payment_request)
    authenticate_path = f"{sandbox_path}authenticate/"

    response = client.post(sandbox_path, card_fields(AUTHENTICATE))
    assert (response.status_code, response["Location"]) == (302, authenticate_path)
    page = text(client.get(authenticate_path))
    assert "Complete authentication" in page and "Fail authentication" in page and "•••• 3155" in page
    assert client.get(sandbox_path)["Location"] == authenticate_path  # the card form waits for the answer

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(authenticate_path, {"result": "fail"})
    assert response.status_code == 402
    assert "We could not authenticate your payment method. Choose another payment method and try again." in text(response)
    transaction = Transaction.objects.get()
    assert transaction.status == TransactionStatus.FAILED
    assert SandboxCheckoutSession.objects.get().status == SandboxSessionStatus.OPEN

    client.post(sandbox_path, card_fields(AUTHENTICATE))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(authenticate_path, {"result": "pass"})
    assert path_of(response["Location"]) == pay_url("done", payment_request)
    transaction.refresh_from_db()
    assert _ledger(transaction) == [(Kind.CHARGE_REQUESTED, 3000), (Kind.CHARGE_FAILED, 0), (Kind.CHARGE_SUCCEEDED, 3000)]
    assert (transaction.status, transaction.card_last4) == (TransactionStatus.SUCCEEDED, "3155")
    assert "Payment received" in text(client.get(pay_url("done", payment_request)))


def test_double_submit_and_a_second_tab_get_one_transaction_and_one_charge(
    client, organization, django_capture_on_commit_callbacks
):
    payment_request = payment_request_make(organization=organization)
    verified(client, payment_request)

    first = checkout_path(client, payment_request)
    second = checkout_path(client, payment_request)

    assert first == second
    assert Transaction.objects.count() == 1
    assert SandboxCheckoutSession.objects.count() == 1
    transaction = Transaction.objects.get()
    assert _ledger(transaction) == [(Kind.CHARGE_REQUESTED, 4500)]
    assert _actions(payment_request).count("checkout.started") == 1
    assert _actions(payment_request).count("checkout.resumed") == 1

    with django_capture_on_commit_callbacks(execute=True):
        client.post(first, card_fields(SUCCEEDS))
    # Pressing "Pay" again after paying sends the patient to the confirmation, not to a new charge.
    response = client.post(pay_url("checkout", payment_request))
    assert response["Location"] == pay_url("done", payment_request)
    assert Transaction.objects.count() == 1
    assert SandboxCharge.objects.filter(is_paid=True).count() == 1
    assert _ledger(transaction) == [(Kind.CHARGE_REQUESTED, 4500), (Kind.CHARGE_SUCCEEDED, 4500)]


def test_a_checkout_paid_before_its_event_arrived_is_recorded_when_pay_is_pressed_again(
    client, organization, django_capture_on_commit_callbacks
):
    payment_request = payment_request_make(organization=organization)
    verified(client, payment_request)
    sandbox_path = checkout_path(client, payment_request)
    with django_capture_on_commit_callbacks(execute=False):
        client.post(sandbox_path, card_fields(SUCCEEDS))  # the event is lost for now

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(pay_url("checkout", payment_request))

    assert response["Location"] == pay_url("done", payment_request)
    transaction = Transaction.objects.get()
    payment_request.refresh_from_db()
    assert _ledger(transaction) == [(Kind.CHARGE_REQUESTED, 4500), (Kind.CHARGE_SUCCEEDED, 4500)]
    assert payment_request.status == PaymentRequestStatus.PAID
    assert SandboxCheckoutSession.objects.count() == 1


def test_a_checkout_about_to_close_is_closed_at_the_gateway_and_replaced(client, organization):
    from datetime import timedelta

    from django.utils import timezone

    from transactions.sandbox.enums import SandboxSessionStatus

    payment_request = payment_request_make(organization=organization)
    verified(client, payment_request)
    first = checkout_path(client, payment_request)
    Transaction.objects.update(gateway_checkout_expires_at=timezone.now() + timedelta(minutes=2))

    second = checkout_path(client, payment_request)

    assert first != second
    assert Transaction.objects.count() == 2
    old_session, new_session = SandboxCheckoutSession.objects.order_by("created_at")
    assert old_session.status == SandboxSessionStatus.EXPIRED
    assert new_session.status == SandboxSessionStatus.OPEN
    # The closed checkout can no longer be paid, so the patient can never pay twice.
    response = client.post(first, card_fields(SUCCEEDS))
    assert "This checkout has expired." in response.content.decode()


def test_nothing_about_the_patient_is_handed_to_the_gateway_or_logged(
    client, organization, django_capture_on_commit_callbacks, caplog
):
    payment_request = payment_request_make(organization=organization, note="Follow-up for knee pain")
    patient = payment_request.patient
    with caplog.at_level(logging.DEBUG):
        client.get(pay_url("verify", payment_request))
        dob_submit(client, payment_request, datetime.date(1990, 1, 1))
        verified(client, payment_request)
        sandbox_path = checkout_path(client, payment_request)
        with django_capture_on_commit_callbacks(execute=True):
            client.post(sandbox_path, card_fields(DECLINED))
            client.post(sandbox_path, card_fields(SUCCEEDS))
        client.get(pay_url("done", payment_request))

    assert f"transaction {Transaction.objects.get().pk}: checkout" in caplog.text  # the log was captured
    session = SandboxCheckoutSession.objects.values().get()
    charges = list(SandboxCharge.objects.values())
    payloads = list(GatewayEvent.objects.values_list("payload", flat=True))
    handed_over = json.dumps([session, charges, payloads], default=str)
    dob = patient.date_of_birth
    for private in (
        patient.first_name,
        patient.last_name,
        patient.email,
        patient.mobile_phone,
        patient.mobile_phone[-10:],
        dob.isoformat(),
        f"{dob.month:02d}/{dob.day:02d}/{dob.year}",
        patient.external_ehr_id,
        "knee pain",
    ):
        assert private not in handed_over, private
        assert private not in caplog.text, private
    transaction = Transaction.objects.get()
    assert session["client_reference"] == str(transaction.pk)
    assert session["merchant_name"] == "Riverside Family Medicine"
    assert len(payloads) == 2
    # The only thing tying the checkout to us is the link token in the return addresses, which is
    # the request's random id, signed.
    assert re.fullmatch(r"http://testserver/pay/[0-9a-f]{32}:[\w-]+/done/", session["success_url"])
