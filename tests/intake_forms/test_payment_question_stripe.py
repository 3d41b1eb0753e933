"""The payment question on a clinic that takes payments through Stripe (localstripe, through the
recording client that fails the test if anything about the patient reached Stripe)."""

import pytest

from intake_forms.models import SubmissionStatus
from intake_forms.services import submission_start
from transactions.enums import PaymentRequestStatus
from transactions.models import Transaction

from ..factories import AppointmentFactory, BalanceFactory, PatientFactory
from .support import answers, form_make, form_url, open_form

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "mode, question, expected_cents",
    [
        ("fixed", {"amount": "75"}, 7500),
        ("copay", {}, 3500),
        ("balance", {}, 18250),
        ("chosen", {"min": "5", "max": "50"}, 2000),
    ],
)
def test_the_payment_question_pays_on_stripe_checkout_once(
    client, stripe_world, stripe_organization, location, manager, mode, question, expected_cents
):
    patient = PatientFactory(organization=stripe_organization)
    appointment = None
    if mode == "copay":
        appointment = AppointmentFactory(organization=stripe_organization, patient=patient, location=location, copay_cents=3500)
    if mode == "balance":
        BalanceFactory(organization=stripe_organization, patient=patient, amount_due_cents=18250)
    form = form_make(organization=stripe_organization, actor=manager, questions=[
        {"kind": "payment", "label": "Your payment", "payment_mode": mode, **question},
    ])
    submission = submission_start(form=form, patient=patient, appointment=appointment)
    open_form(client, submission)
    data = answers(submission, {"Your payment": "20"}) if mode == "chosen" else {}

    first = client.post(form_url("fill", submission), {"action": "pay", **data})
    second = client.post(form_url("fill", submission), {"action": "pay", **data})
    assert first.status_code == 302 and first["Location"].startswith("https://checkout.stripe.com/")
    assert second["Location"] == first["Location"]
    transaction = Transaction.objects.get()
    assert transaction.vendor == "stripe"

    stripe_world.checkout.pay(transaction.gateway_checkout_id)
    client.get(form_url("payment_return", submission))
    assert client.post(form_url("fill", submission), {"action": "finish", **data}).status_code == 302

    submission.refresh_from_db()
    transaction.refresh_from_db()
    assert submission.status == SubmissionStatus.COMPLETE
    assert submission.payment_transaction == transaction and transaction.charged_cents == expected_cents
    assert submission.payment_request.status == PaymentRequestStatus.PAID
    assert Transaction.objects.count() == 1
