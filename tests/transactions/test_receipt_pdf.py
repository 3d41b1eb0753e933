"""The receipt PDF: what it says (read back from the PDF), who may download it, and the e-mail
that carries it."""

import io
import zoneinfo

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import dateformat, timezone, translation
from pypdf import PdfReader

from lumapay.dates import format_date, format_datetime
from lumapay.models import ActorType, AuditEvent
from org_profile.enums import Role
from transactions.models import PaymentRequestDelivery, Transaction
from transactions.services.patient_messages import delivery_send
from transactions.services.receipt_documents import receipt_html, receipt_pdf
from transactions.services.refunds import refund_create

from ..factories import AppointmentFactory, LocationFactory, MembershipFactory, PatientFactory
from .pay_support import SUCCEEDS, card_fields, checkout_path, pay_url, payment_request_make, verified
from .payments import DECLINED, paid_transaction

pytestmark = pytest.mark.django_db

VISIT_NOTE = "Follow-up for knee pain"
PATIENT_IP = "198.51.100.7"


def _lines(pdf: bytes) -> list[str]:
    assert pdf.startswith(b"%PDF-")
    return [line.strip() for page in PdfReader(io.BytesIO(pdf)).pages for line in page.extract_text().splitlines()]


def _local(moment, zone: str, fmt: str, language: str = "en") -> str:
    with translation.override(language):
        return format_datetime(moment, zone) if fmt == "DATETIME_FORMAT" else format_date(moment, zone)


def _abbreviation(moment, zone: str) -> str:
    return dateformat.format(timezone.localtime(moment, zoneinfo.ZoneInfo(zone)), "T")


@pytest.fixture
def clinic(organization):
    organization.public_name = "Riverside Family Care"
    organization.website = "https://riverside.example"
    organization.timezone = "America/Chicago"
    organization.save()
    return organization


@pytest.fixture
def paid_request(clinic, location, patient, django_capture_on_commit_callbacks):
    """A $45 copay request for a visit (with the visit's reason in its note), paid by the patient
    through the pay page and the Sandbox, in their own browser session."""
    appointment = AppointmentFactory(patient=patient, organization=clinic, location=location)
    payment_request = payment_request_make(organization=clinic, patient=patient, location=location, note=VISIT_NOTE)
    payment_request.appointment = appointment
    payment_request.save(update_fields=["appointment"])
    browser = Client(REMOTE_ADDR=PATIENT_IP)
    verified(browser, payment_request)
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(checkout_path(browser, payment_request), card_fields(SUCCEEDS))
    with django_capture_on_commit_callbacks(execute=True):
        assert browser.get(pay_url("done", payment_request)).status_code == 200
    payment_request.browser = browser
    return payment_request


@pytest.fixture
def payment(paid_request):
    return Transaction.objects.select_related("organization", "location", "patient").get(
        payment_request=paid_request, charged_cents__gt=0
    )


def _receipt_url(transaction):
    return reverse("transactions:transaction_receipt", args=[transaction.pk])


def test_the_receipt_says_who_was_paid_when_how_much_and_how(payment, patient):
    lines = _lines(receipt_pdf(transaction=payment))

    paid_at = payment.paid_at
    expected = [
        "Riverside Family Care",
        "120 Main Street",
        "Springfield, IL 62701",
        "+12175550100 · billing@riverside.example · https://riverside.example",
        "Payment receipt",
        "$45.00",
        "Status: Succeeded",
        f"Patient {patient.full_name}",
        f"Date {_local(paid_at, 'America/Chicago', 'DATETIME_FORMAT')}",
        "Amount $45.00",
        "For Copay: Office visit copay",
        "Location Downtown Clinic",
        "Processed by Sandbox (test payments only)",
        "Card Visa •••• 4242",
        f"Authorization code {payment.authorization_code}",
        f"Reference Transaction {payment.pk}",
        payment.gateway_charge_id,
        "Issued by Riverside Family Medicine PLLC.",
        "Questions about this payment? Contact Riverside Family Care.",
    ]
    assert lines == expected
    assert _abbreviation(paid_at, "America/Chicago") in ("CST", "CDT")
    text = "\n".join(lines)
    for private in (VISIT_NOTE, "knee", "Dr. Alex Chen", patient.date_of_birth.isoformat(), "1984", patient.email):
        assert private not in text


def test_refunds_show_on_the_receipt(payment, organization, manager):
    refund = refund_create(organization=organization, actor=manager, transaction=payment, amount_cents=1000, reason="Lab fee waived")
    payment.refresh_from_db()

    lines = _lines(receipt_pdf(transaction=payment))

    assert "Status: Partially refunded" in lines
    assert lines[lines.index("Refunds"):lines.index("Refunds") + 5] == [
        "Refunds",
        "Date Reference Amount",
        f"{_local(refund.created_at, 'America/Chicago', 'DATE_FORMAT')} {refund.gateway_refund_id} −$10.00",
        "Refunded −$10.00",
        "Net paid $35.00",
    ]
    assert "Lab fee waived" not in lines  # the clinic's reason is its own, not the patient's


def test_the_receipt_is_in_the_patients_language(clinic, location):
    patient = PatientFactory(organization=clinic, preferred_language="es")
    payment = paid_transaction(organization=clinic, patient=patient, location=location, amount_cents=4500)

    lines = _lines(receipt_pdf(transaction=payment))

    for line in (
        "Recibo de pago",
        "Estado: Completado",
        f"Paciente {patient.full_name}",
        f"Fecha {_local(payment.paid_at, 'America/Chicago', 'DATETIME_FORMAT', 'es')}",
        "Monto $45.00",
        "Tarjeta Visa •••• 4242",
        f"Referencia Transacción {payment.pk}",
        "Emitido por Riverside Family Medicine PLLC.",
    ):
        assert line in lines, line
    assert "English" not in receipt_html(transaction=payment)
    assert '<html lang="en">' in receipt_html(transaction=payment, language="en")


def test_rendering_reads_nothing_more_than_the_refunds(payment, organization, manager, django_assert_num_queries):
    with django_assert_num_queries(0):
        receipt_html(transaction=payment)

    refund_create(organization=organization, actor=manager, transaction=payment, amount_cents=500, reason="Overpaid")
    refunded = Transaction.objects.select_related("organization", "location", "patient").get(pk=payment.pk)
    with django_assert_num_queries(1):
        receipt_html(transaction=refunded)


@pytest.mark.parametrize("role", [Role.ADMINISTRATOR, Role.MANAGER, Role.STAFF])
def test_every_role_that_sees_the_payment_downloads_its_receipt(client_for, organization, location, payment, role):
    user = MembershipFactory(organization=organization, role=role, locations=[location]).user

    response = client_for(user).get(_receipt_url(payment), REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'inline; filename="receipt-{payment.pk}.pdf"'
    assert response["Cache-Control"] == "private, no-store"
    assert f"Reference Transaction {payment.pk}" in _lines(response.content)
    audit = AuditEvent.objects.get(action="receipt.downloaded")
    assert (audit.actor_type, audit.actor_user, audit.transaction, audit.patient, audit.ip_address, audit.changes) == (
        ActorType.STAFF, user, payment, payment.patient, "203.0.113.9", {"language": "en"}
    )


def test_the_detail_page_offers_download_and_print(client_for, manager, payment):
    body = client_for(manager).get(reverse("transactions:transaction_detail", args=[payment.pk])).content.decode()

    assert f'href="{_receipt_url(payment)}" download="receipt-{payment.pk}.pdf">Download receipt (PDF)</a>' in body
    assert f'href="{_receipt_url(payment)}" target="_blank" rel="noopener">Print receipt</a>' in body


def test_staff_outside_the_location_and_other_organizations_get_404(
    client_for, organization, other_organization, payment
):
    elsewhere = MembershipFactory(
        organization=organization, role=Role.STAFF, locations=[LocationFactory(organization=organization)]
    ).user
    outsider = MembershipFactory(organization=other_organization, role=Role.ADMINISTRATOR).user

    for user in (elsewhere, outsider):
        assert client_for(user).get(_receipt_url(payment)).status_code == 404
    assert not AuditEvent.objects.filter(action="receipt.downloaded").exists()


def test_an_unpaid_payment_has_no_receipt(client_for, organization, location, manager):
    declined = paid_transaction(organization=organization, location=location, card_number=DECLINED)
    client = client_for(manager)

    assert client.get(_receipt_url(declined)).status_code == 404
    assert "Download receipt" not in client.get(
        reverse("transactions:transaction_detail", args=[declined.pk])
    ).content.decode()
    assert not AuditEvent.objects.filter(action="receipt.downloaded").exists()


def test_the_staff_receipt_answers_get_only(client_for, manager, payment):
    assert client_for(manager).post(_receipt_url(payment)).status_code == 405


def test_the_patient_downloads_it_from_the_confirmation_page(paid_request, payment):
    browser = paid_request.browser
    done = browser.get(pay_url("done", paid_request)).content.decode()
    assert f'<a class="button secondary" href="{pay_url("receipt", paid_request)}" download>Download your receipt (PDF)</a>' in done

    response = browser.get(pay_url("receipt", paid_request))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'inline; filename="receipt-{payment.pk}.pdf"'
    assert response["Referrer-Policy"] == "same-origin"
    assert f"Patient {payment.patient.full_name}" in _lines(response.content)
    audit = AuditEvent.objects.get(action="receipt.downloaded")
    assert (audit.actor_type, audit.actor_user, audit.payment_request, audit.transaction, audit.ip_address) == (
        ActorType.PATIENT, None, paid_request, payment, PATIENT_IP
    )


def test_the_patient_gets_it_in_the_language_of_the_page(paid_request, payment):
    browser = paid_request.browser
    browser.get(pay_url("done", paid_request) + "?lang=es")

    response = browser.get(pay_url("receipt", paid_request))

    assert response["Content-Disposition"] == f'inline; filename="recibo-{payment.pk}.pdf"'
    assert "Recibo de pago" in _lines(response.content)


def test_the_patients_receipt_needs_the_date_of_birth_first(paid_request):
    stranger = Client()

    response = stranger.get(pay_url("receipt", paid_request))

    assert response.status_code == 302
    assert response["Location"] == pay_url("verify", paid_request)
    assert not AuditEvent.objects.filter(action="receipt.downloaded").exists()


def test_verifying_one_link_does_not_open_another_links_receipt(paid_request, clinic, location):
    other = payment_request_make(organization=clinic, location=location)
    browser = Client()
    verified(browser, other)

    response = browser.get(pay_url("receipt", paid_request))

    assert response.status_code == 302
    assert response["Location"] == pay_url("verify", paid_request)


def test_an_unpaid_request_has_no_receipt_for_the_patient(clinic, location):
    payment_request = payment_request_make(organization=clinic, location=location)
    browser = Client()
    verified(browser, payment_request)

    assert browser.get(pay_url("receipt", payment_request)).status_code == 404
    assert not AuditEvent.objects.filter(action="receipt.downloaded").exists()


def test_an_expired_verification_sends_the_patient_back_to_the_question(paid_request):
    from transactions.views import pay_page

    browser = paid_request.browser
    session = browser.session
    session[pay_page.SESSION_KEY][paid_request.public_id.hex]["verified_until"] = 0
    session.save()

    response = browser.get(pay_url("receipt", paid_request))

    assert (response.status_code, response["Location"]) == (302, pay_url("verify", paid_request))


def test_the_receipt_email_carries_the_pdf_once(payment, patient):
    # The pay flow already sent it (one "receipt.sent"); asking again sends nothing.
    delivery = PaymentRequestDelivery.objects.get(transaction=payment, purpose="receipt")
    assert (delivery_send(delivery_id=delivery.pk).status, delivery.status) == ("sent", "sent")

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [patient.email]
    [(filename, content, mimetype)] = message.attachments
    assert (filename, mimetype) == (f"receipt-{payment.pk}.pdf", "application/pdf")
    lines = _lines(content)
    assert "Riverside Family Care" in lines and "Amount $45.00" in lines and f"Patient {patient.full_name}" in lines
    assert VISIT_NOTE not in "\n".join(lines)
    assert AuditEvent.objects.filter(transaction=payment, action="receipt.sent").count() == 1


def test_a_spanish_receipt_email_carries_a_spanish_pdf(clinic, location, django_capture_on_commit_callbacks):
    patient = PatientFactory(organization=clinic, preferred_language="es")
    payment_request = payment_request_make(organization=clinic, patient=patient, location=location)
    browser = Client()
    verified(browser, payment_request)
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(checkout_path(browser, payment_request), card_fields(SUCCEEDS))

    [message] = mail.outbox
    [(filename, content, mimetype)] = message.attachments
    transaction = Transaction.objects.get(payment_request=payment_request)
    assert (filename, mimetype) == (f"recibo-{transaction.pk}.pdf", "application/pdf")
    assert "Recibo de pago" in _lines(content)


def test_the_done_page_without_an_email_still_offers_the_pdf(clinic, location, django_capture_on_commit_callbacks):
    patient = PatientFactory(organization=clinic, email="")
    payment_request = payment_request_make(organization=clinic, patient=patient, location=location)
    browser = Client()
    verified(browser, payment_request)
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(checkout_path(browser, payment_request), card_fields(SUCCEEDS))

    page = browser.get(pay_url("done", payment_request)).content.decode()

    assert "Keep this page, or download your receipt, for your records." in page
    assert pay_url("receipt", payment_request) in page
    assert browser.get(pay_url("receipt", payment_request)).status_code == 200
    assert mail.outbox == []
