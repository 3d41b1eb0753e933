"""The e-mailed receipt: once per paid transaction, in the patient's language, in the clinic's time."""

import re

import pytest
from django.core import mail
from django.utils import translation

from lumapay.dates import format_datetime
from lumapay.models import AuditEvent
from transactions.models import PaymentRequestDelivery, Transaction
from transactions.sandbox import processor as sandbox_processor
from transactions.services.patient_messages import delivery_send
from transactions.services.payments import checkout_begin, checkout_outcome_record

from ..factories import PatientFactory
from .pay_support import payment_request_make

pytestmark = pytest.mark.django_db


def _paid(organization, django_capture_on_commit_callbacks, *, patient=None, card="4242424242424242") -> Transaction:
    """A transaction paid at the Sandbox and recorded, with its receipt owed and not yet sent."""
    payment_request = payment_request_make(organization=organization, patient=patient, amount_cents=4500)
    start = checkout_begin(payment_request=payment_request, ip_address=None)
    with django_capture_on_commit_callbacks(execute=False):
        sandbox_processor.card_submit(
            session_id=start.checkout_id, card_number=card, expiry_month="12", expiry_year="2040", cvc="123"
        )
        transaction = Transaction.objects.get(gateway_checkout_id=start.checkout_id)
        checkout_outcome_record(transaction=transaction)
    transaction.refresh_from_db()
    return transaction


def receipt_send(transaction) -> str | None:
    """Run the owed receipt's send; its status afterwards (None: no receipt is owed)."""
    delivery = PaymentRequestDelivery.objects.filter(transaction=transaction, purpose="receipt").first()
    return delivery_send(delivery_id=delivery.pk).status if delivery else None


def _when(transaction, zone: str, language: str) -> str:
    with translation.override(language):
        return format_datetime(transaction.paid_at, zone)


def test_the_receipt_is_sent_once_with_everything_the_patient_needs(organization, django_capture_on_commit_callbacks):
    organization.timezone = "America/Los_Angeles"
    organization.save()
    transaction = _paid(organization, django_capture_on_commit_callbacks)
    patient = transaction.patient

    assert receipt_send(transaction) == "sent"
    assert receipt_send(transaction) == "sent"

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [patient.email]
    assert message.reply_to == ["billing@riverside.example"]
    assert message.subject == "Your receipt from Riverside Family Medicine: $45.00"
    body = message.body
    for line in (
        f"Hello {patient.first_name},",
        "Thank you for your payment to Riverside Family Medicine. This is your receipt.",
        "Amount: $45.00",
        f"Date: {_when(transaction, 'America/Los_Angeles', 'en')}",
        "For: Copay: Office visit copay",
        "Location: Downtown Clinic",
        "Status: Succeeded",
        "Processed by: Sandbox (test payments only)",
        "Card: Visa •••• 4242",
        f"Authorization code: {transaction.authorization_code}",
        f"Reference: {transaction.gateway_charge_id}",
        "120 Main Street",
        "Springfield, IL 62701",
        "+12175550100",
    ):
        assert line in body.splitlines(), line
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert '<html lang="en">' in html and "$45.00" in html and transaction.authorization_code in html
    assert patient.date_of_birth.isoformat() not in body + html
    audit = AuditEvent.objects.filter(transaction=transaction, action="receipt.sent")
    assert list(audit.values_list("actor_type", "patient_id", "payment_request_id", "changes")) == [
        ("system", patient.pk, transaction.payment_request_id, {"channel": "email", "language": "en"})
    ]


def test_a_spanish_speaking_patient_gets_the_receipt_in_spanish(organization, django_capture_on_commit_callbacks):
    patient = PatientFactory(organization=organization, preferred_language="es", first_name="Lucía")
    transaction = _paid(organization, django_capture_on_commit_callbacks, patient=patient)

    receipt_send(transaction)

    message = mail.outbox[0]
    assert message.subject == "Su recibo de Riverside Family Medicine: $45.00"
    lines = message.body.splitlines()
    for line in (
        "Hola, Lucía:",
        "Gracias por su pago a Riverside Family Medicine. Este es su recibo.",
        "Monto: $45.00",
        f"Fecha: {_when(transaction, 'America/New_York', 'es')}",
        "Concepto: Copago: Office visit copay",
        "Estado: Completado",
        "Procesado por: Sandbox (solo pagos de prueba)",
        "Tarjeta: Visa •••• 4242",
        f"Código de autorización: {transaction.authorization_code}",
    ):
        assert line in lines, line
    assert re.fullmatch(r"\d{1,2} [a-z]{3} \d{4}, \d\d:\d\d E[SD]T", _when(transaction, "America/New_York", "es"))
    assert '<html lang="es">' in message.alternatives[0][0]
    assert AuditEvent.objects.get(action="receipt.sent").changes == {"channel": "email", "language": "es"}


def test_a_patient_without_email_gets_an_audit_note_instead(organization, django_capture_on_commit_callbacks):
    patient = PatientFactory(organization=organization, email="")
    transaction = _paid(organization, django_capture_on_commit_callbacks, patient=patient)

    assert receipt_send(transaction) is None

    assert mail.outbox == []
    assert list(AuditEvent.objects.filter(action__startswith="receipt.").values_list("action", "changes")) == [
        ("receipt.skipped", {"reason": "no_email"})
    ]


def test_an_unpaid_transaction_gets_no_receipt(organization, django_capture_on_commit_callbacks):
    transaction = _paid(organization, django_capture_on_commit_callbacks, card="4000000000000002")
    assert transaction.status == "failed"

    assert receipt_send(transaction) is None

    assert mail.outbox == []
    assert not AuditEvent.objects.filter(action__startswith="receipt.").exists()


def test_the_task_after_a_charge_sends_it(organization, django_capture_on_commit_callbacks):
    payment_request = payment_request_make(organization=organization)
    start = checkout_begin(payment_request=payment_request, ip_address=None)
    with django_capture_on_commit_callbacks(execute=True):
        sandbox_processor.card_submit(
            session_id=start.checkout_id, card_number="4242424242424242", expiry_month="12", expiry_year="2040", cvc="123"
        )

    assert [m.subject for m in mail.outbox] == ["Your receipt from Riverside Family Medicine: $45.00"]
    assert AuditEvent.objects.filter(action="receipt.sent").count() == 1
