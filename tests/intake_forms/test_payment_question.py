"""The payment question through the Sandbox's hosted checkout, in each amount mode; a double
submit makes one payment; declining where allowed; the form attached to the copay request."""

import datetime

import pytest
from django.utils import timezone

from intake_forms.models import FormSubmission, SubmissionStatus
from intake_forms.services import submission_start
from lumapay.models import AuditEvent
from transactions.enums import CollectionRule, PaymentRequestKind, PaymentRequestStatus
from transactions.models import PaymentRequest, SandboxCharge, Transaction

from ..factories import AppointmentFactory, BalanceFactory
from ..transactions.pay_support import card_fields, payment_request_make, pay_url, verified
from .support import answers, form_make, form_url, open_form, pay_on_sandbox

pytestmark = pytest.mark.django_db


def _payment(mode, **extra):
    return {"kind": "payment", "label": "Your payment", "payment_mode": mode, **extra}


def _form_with_the_copay_request(organization, location, manager, patient):
    """A form with a copay question, sent with each automatic copay request; a visit's copay
    request of $35.00 (which starts the form's submission)."""
    form = form_make(organization=organization, actor=manager, questions=[
        {"kind": "short_text", "label": "Reason for the visit", "required": "yes"}, _payment("copay"),
    ])
    form.with_copay_request = True
    form.save()
    appointment = AppointmentFactory(organization=organization, patient=patient, location=location, copay_cents=3500)
    copay_request = PaymentRequest.objects.create(
        organization=organization, patient=patient, location=location, appointment=appointment,
        kind=PaymentRequestKind.COPAY, billing_item="Copay", amount_cents=3500,
        automation_rule=CollectionRule.COPAY_BEFORE_VISIT, expires_at=timezone.now() + datetime.timedelta(days=2),
    )
    return form, appointment, copay_request


def _pay_and_finish(client, submission, capture, data=None):
    response = client.post(form_url("fill", submission), {"action": "pay", **(data or {})})
    back = pay_on_sandbox(client, response, capture)
    assert back == form_url("payment_return", submission)
    response = client.get(back)
    assert response.status_code == 302
    page = client.get(form_url("fill", submission)).content.decode()
    assert "Paid:" in page
    response = client.post(form_url("fill", submission), {"action": "finish", **(data or {})})
    assert response.status_code == 302
    submission.refresh_from_db()
    return submission


@pytest.mark.parametrize(
    "mode, question, setup, expected_cents",
    [
        ("fixed", {"amount": "25.50"}, None, 2550),
        ("copay", {}, "appointment", 3000),
        ("balance", {}, "balance", 12000),
        ("chosen", {"min": "10", "max": "100"}, None, 4000),
    ],
)
def test_each_amount_mode_pays_through_the_sandbox_and_completes_the_form(
    client, organization, location, manager, patient, django_capture_on_commit_callbacks, mode, question, setup, expected_cents
):
    form = form_make(organization=organization, actor=manager, questions=[_payment(mode, **question)])
    appointment = None
    if setup == "appointment":
        appointment = AppointmentFactory(organization=organization, patient=patient, location=location, copay_cents=3000)
    if setup == "balance":
        BalanceFactory(organization=organization, patient=patient, amount_due_cents=12000)
    submission = submission_start(form=form, patient=patient, appointment=appointment)
    open_form(client, submission)
    data = answers(submission, {"Your payment": "40.00"}) if mode == "chosen" else {}

    # Not complete before the payment.
    response = client.post(form_url("fill", submission), {"action": "finish", **data})
    assert response.status_code == 400
    submission.refresh_from_db()
    assert submission.status == SubmissionStatus.IN_PROGRESS

    submission = _pay_and_finish(client, submission, django_capture_on_commit_callbacks, data)
    assert submission.status == SubmissionStatus.COMPLETE
    transaction = Transaction.objects.get()
    assert submission.payment_transaction == transaction
    assert (transaction.charged_cents, transaction.patient_id, transaction.vendor) == (expected_cents, patient.pk, "sandbox")
    assert submission.payment_request.status == PaymentRequestStatus.PAID
    # Only opaque things go to the gateway: the form's title as the item, no patient detail.
    assert transaction.billing_item == form.title


def test_a_chosen_amount_outside_the_bounds_is_refused(client, organization, manager, patient):
    form = form_make(organization=organization, actor=manager, questions=[_payment("chosen", min="10", max="100")])
    submission = submission_start(form=form, patient=patient)
    open_form(client, submission)
    response = client.post(form_url("fill", submission), {"action": "pay", **answers(submission, {"Your payment": "500"})})
    assert response.status_code == 400
    assert not Transaction.objects.exists() and not PaymentRequest.objects.exists()


def test_a_double_submitted_payment_question_makes_one_payment(client, organization, location, manager, patient, django_capture_on_commit_callbacks):
    form = form_make(organization=organization, actor=manager, questions=[_payment("fixed", amount="60")])
    submission = submission_start(form=form, patient=patient)
    open_form(client, submission)

    first = client.post(form_url("fill", submission), {"action": "pay"})
    second = client.post(form_url("fill", submission), {"action": "pay"})
    assert first["Location"] == second["Location"]
    assert PaymentRequest.objects.count() == 1 and Transaction.objects.count() == 1

    pay_on_sandbox(client, first, django_capture_on_commit_callbacks)
    client.get(form_url("payment_return", submission))
    # Pressing "Pay" again after paying charges nothing more.
    client.post(form_url("fill", submission), {"action": "pay"})
    assert SandboxCharge.objects.count() == 1
    assert Transaction.objects.filter(charged_cents__gt=0).count() == 1


def test_declining_where_allowed_completes_the_form_without_a_payment(client, organization, location, manager, patient):
    form = form_make(organization=organization, actor=manager, questions=[_payment("fixed", amount="60", declining_allowed="yes")])
    submission = submission_start(form=form, patient=patient)
    open_form(client, submission)
    client.post(form_url("fill", submission), {"action": "decline"})
    response = client.post(form_url("fill", submission), {"action": "finish"})
    assert response.status_code == 302
    submission.refresh_from_db()
    assert submission.status == SubmissionStatus.COMPLETE and submission.payment_declined
    assert not Transaction.objects.exists()


def test_declining_is_refused_where_not_allowed(client, organization, location, manager, patient):
    form = form_make(organization=organization, actor=manager, questions=[_payment("fixed", amount="60")])
    submission = submission_start(form=form, patient=patient)
    open_form(client, submission)
    assert client.post(form_url("fill", submission), {"action": "decline"}).status_code == 400
    client.post(form_url("fill", submission), {"action": "finish"})
    submission.refresh_from_db()
    assert submission.status == SubmissionStatus.IN_PROGRESS and not submission.payment_declined


def test_a_form_with_the_copay_request_is_linked_from_its_pay_page_and_pays_that_request(
    client, organization, location, manager, patient, django_capture_on_commit_callbacks
):
    form, appointment, copay_request = _form_with_the_copay_request(organization, location, manager, patient)
    submission = FormSubmission.objects.get()
    assert submission.sent_with == copay_request and submission.appointment == appointment

    # The pay page links to the form; the date of birth confirmed there opens the form too.
    page = verified(client, copay_request).get(pay_url("details", copay_request)).content.decode()
    assert form_url("fill", submission) in page
    assert client.get(form_url("fill", submission)).status_code == 200

    data = answers(submission, {"Reason for the visit": "Check-up"})
    response = client.post(form_url("fill", submission), {"action": "pay", **data})
    pay_on_sandbox(client, response, django_capture_on_commit_callbacks)
    client.get(form_url("payment_return", submission))
    client.post(form_url("fill", submission), {"action": "finish", **data})

    submission.refresh_from_db()
    copay_request.refresh_from_db()
    assert submission.status == SubmissionStatus.COMPLETE
    # The copay request itself is paid: one request, one payment.
    assert submission.payment_request == copay_request and copay_request.status == PaymentRequestStatus.PAID
    assert PaymentRequest.objects.count() == 1 and Transaction.objects.get().charged_cents == 3500


def test_a_staff_made_request_starts_no_form(organization, manager, patient):
    form = form_make(organization=organization, actor=manager, questions=[_payment("copay")])
    form.with_copay_request = True
    form.save()
    payment_request_make(organization=organization, patient=patient)
    assert not FormSubmission.objects.exists()


def test_tomorrows_automatic_copay_request_brings_the_form(organization, location, manager, django_capture_on_commit_callbacks):
    from django.core import mail

    from transactions.services.collection_schedule import collection_schedule_run

    from ..factories import PatientFactory
    from ..transactions.collection_support import hours_from_now, rules_on

    form = form_make(organization=organization, actor=manager, questions=[_payment("copay")])
    form.with_copay_request = True
    form.save()
    rules_on(organization)
    patient = PatientFactory(organization=organization, email="maria@mail.example")
    appointment = AppointmentFactory(patient=patient, location=location, starts_at=hours_from_now(30), copay_cents=3500)

    with django_capture_on_commit_callbacks(execute=True):
        assert collection_schedule_run().copay_sent == 1

    submission = FormSubmission.objects.get()
    copay_request = PaymentRequest.objects.get(appointment=appointment)
    assert (submission.sent_with, submission.appointment, submission.patient) == (copay_request, appointment, patient)
    assert len(mail.outbox) == 1
    # The request's own e-mail says the same link opens the form.
    assert f"Please also fill in the form “{form.title}” before your visit" in mail.outbox[0].body


def test_staff_see_the_paid_submission_and_its_transaction(
    client, client_for, organization, location, manager, patient, django_capture_on_commit_callbacks
):
    from django.urls import reverse

    form = form_make(organization=organization, actor=manager, questions=[_payment("fixed", amount="25")])
    submission = submission_start(form=form, patient=patient)
    open_form(client, submission)
    submission = _pay_and_finish(client, submission, django_capture_on_commit_callbacks)
    transaction = submission.payment_transaction

    staff = client_for(manager)
    page = staff.get(reverse("intake_forms:submission_detail", args=[submission.pk])).content.decode()
    assert "Paid $25.00" in page and reverse("transactions:transaction_detail", args=[transaction.pk]) in page
    page = staff.get(reverse("transactions:transaction_detail", args=[transaction.pk])).content.decode()
    assert reverse("intake_forms:submission_detail", args=[submission.pk]) in page


def test_a_patient_who_left_the_checkout_and_chose_another_amount_pays_the_new_one_once(
    client, organization, location, manager, patient, django_capture_on_commit_callbacks
):
    form = form_make(organization=organization, actor=manager, questions=[_payment("chosen", min="10", max="100")])
    submission = submission_start(form=form, patient=patient)
    open_form(client, submission)
    first = client.post(form_url("fill", submission), {"action": "pay", **answers(submission, {"Your payment": "40"})})
    assert first.status_code == 302

    # Back without paying; now 60.
    second = client.post(form_url("fill", submission), {"action": "pay", **answers(submission, {"Your payment": "60"})})
    assert second["Location"] != first["Location"]
    pay_on_sandbox(client, second, django_capture_on_commit_callbacks)
    client.get(form_url("payment_return", submission))

    submission.refresh_from_db()
    assert submission.payment_transaction.charged_cents == 6000
    assert PaymentRequest.objects.get().amount_cents == 6000
    assert Transaction.objects.filter(charged_cents__gt=0).count() == 1
    # The first checkout was closed at the Sandbox: it can no longer be paid.
    from urllib.parse import urlsplit

    stale = client.post(urlsplit(first["Location"]).path, {"number": "4242 4242 4242 4242", "expiry_month": "12", "expiry_year": "2031", "cvc": "123"})
    assert Transaction.objects.filter(charged_cents__gt=0).count() == 1, stale.status_code


def test_the_language_chosen_on_the_pay_page_carries_to_the_form(client, organization, location, manager, patient):
    form = form_make(organization=organization, actor=manager, questions=[_payment("copay")])
    form.with_copay_request = True
    form.save()
    copay_request = PaymentRequest.objects.create(
        organization=organization, patient=patient, location=location, kind=PaymentRequestKind.COPAY,
        billing_item="Copay", amount_cents=2000, automation_rule=CollectionRule.COPAY_BEFORE_VISIT,
        expires_at=timezone.now() + datetime.timedelta(days=2),
    )
    submission = FormSubmission.objects.get()
    verified(client, copay_request).get(pay_url("details", copay_request) + "?lang=es")
    response = client.get(form_url("fill", submission))
    assert response["Content-Language"] == "es" and "Enviar el formulario" in response.content.decode()


def test_a_copay_question_with_no_copay_to_pay_does_not_keep_the_form_from_being_sent(client, organization, manager, patient):
    # Sent by itself (no visit, no copay request): there is nothing to pay, nothing to decline.
    form = form_make(organization=organization, actor=manager, questions=[_payment("copay")])
    submission = submission_start(form=form, patient=patient)
    open_form(client, submission)

    assert client.post(form_url("fill", submission), {"action": "finish"}).status_code == 302
    submission.refresh_from_db()
    assert submission.status == SubmissionStatus.COMPLETE and submission.payment_request is None


def test_a_balance_question_pays_the_balance_request_already_open(
    client, organization, location, manager, patient, django_capture_on_commit_callbacks
):
    BalanceFactory(organization=organization, patient=patient, amount_due_cents=12000)
    asked = payment_request_make(organization=organization, patient=patient, location=location, amount_cents=12000)
    PaymentRequest.objects.filter(pk=asked.pk).update(kind=PaymentRequestKind.BALANCE)
    form = form_make(organization=organization, actor=manager, questions=[_payment("balance")])
    submission = submission_start(form=form, patient=patient)
    open_form(client, submission)

    submission = _pay_and_finish(client, submission, django_capture_on_commit_callbacks)

    assert submission.payment_request_id == asked.pk
    assert PaymentRequest.objects.filter(patient=patient, kind=PaymentRequestKind.BALANCE).count() == 1
    assert Transaction.objects.get().payment_request_id == asked.pk


def test_an_amount_above_what_one_payment_may_take_is_refused(organization, manager):
    from intake_forms.services import FormError

    with pytest.raises(FormError, match="the most one payment may take"):
        form_make(organization=organization, actor=manager, questions=[_payment("chosen", min="10", max="9000000")])


def test_a_copay_paid_on_the_pay_page_is_the_forms_payment_when_the_patient_finishes_the_form(
    client, organization, location, manager, patient, django_capture_on_commit_callbacks
):
    from ..transactions.pay_support import checkout_path

    form, appointment, copay_request = _form_with_the_copay_request(organization, location, manager, patient)
    submission = FormSubmission.objects.get()

    # The patient pays on the pay page itself, never pressing the form's "Pay".
    verified(client, copay_request)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(checkout_path(client, copay_request), card_fields()).status_code == 302
    copay_request.refresh_from_db()
    assert copay_request.status == PaymentRequestStatus.PAID
    paid = Transaction.objects.get()

    # The form sees the copay paid: no second payment asked, and finishing links the payment.
    data = answers(submission, {"Reason for the visit": "Check-up"})
    page = client.get(form_url("fill", submission)).content.decode()
    assert "Paid:" in page and 'value="pay"' not in page
    assert client.post(form_url("fill", submission), {"action": "finish", **data}).status_code == 302
    submission.refresh_from_db()
    assert (submission.status, submission.payment_request, submission.payment_transaction) == (
        SubmissionStatus.COMPLETE, copay_request, paid,
    )
    assert Transaction.objects.count() == 1
    assert AuditEvent.objects.get(action="form.completed").transaction == paid
