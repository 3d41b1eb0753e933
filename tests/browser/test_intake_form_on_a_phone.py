"""A Spanish-speaking patient fills in the intake form that came with their copay request, on a
phone: from the pay page's link to the form, a question shown by a condition, a consent signed by
typing their name, the copay paid on the Sandbox's checkout and back to the form, then sent. Every
page passes axe-core and fits 390 px."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from ehr_sync.enums import PreferredLanguage
from intake_forms.models import FormSubmission, SubmissionStatus
from transactions.enums import CollectionRule, PaymentRequestKind, PaymentRequestStatus
from transactions.models import PaymentRequest

from ..factories import AppointmentFactory, LocationFactory, MembershipFactory, PatientFactory
from ..intake_forms.support import form_make
from ..transactions.pay_support import pay_url
from .support import PHONE, SUCCEEDS, card_enter, date_of_birth_enter, sandbox_pay_button

pytestmark = pytest.mark.browser

BIRTH_DATE = datetime.date(1984, 3, 9)  # tests/factories.py's PatientFactory


def test_a_spanish_speaking_patient_fills_in_the_form_and_pays_the_copay_on_a_phone(new_page, checks, organization):
    # Given a form sent with the copay request before a visit, with a copay payment question
    manager = MembershipFactory(organization=organization, role="manager").user
    location = LocationFactory(organization=organization, name="Downtown Clinic")
    form = form_make(organization=organization, actor=manager, title="Antes de su visita", questions=[
        {"kind": "single_choice", "label": "¿Tiene alergias?", "choices": "Sí\nNo", "required": "yes"},
        {"kind": "short_text", "label": "¿Cuáles?", "required": "yes", "condition_on": "¿Tiene alergias?", "condition_value": "Sí"},
        {"kind": "consent", "label": "Doy mi consentimiento para el tratamiento", "required": "yes"},
        {"kind": "payment", "label": "Su copago", "payment_mode": "copay"},
    ])
    form.with_copay_request = True
    form.save()
    patient = PatientFactory(organization=organization, preferred_language=PreferredLanguage.SPANISH)
    appointment = AppointmentFactory(organization=organization, patient=patient, location=location, copay_cents=3000)
    copay_request = PaymentRequest.objects.create(
        organization=organization, patient=patient, location=location, appointment=appointment,
        kind=PaymentRequestKind.COPAY, billing_item="Copago", amount_cents=3000,
        automation_rule=CollectionRule.COPAY_BEFORE_VISIT, expires_at=timezone.now() + datetime.timedelta(days=2),
    )
    page = new_page(viewport=PHONE, locale="en-US")

    # When the patient opens the copay request's link and confirms their date of birth
    page.goto(pay_url("verify", copay_request))
    date_of_birth_enter(page, BIRTH_DATE)
    page.get_by_role("button", name="Continuar").click()

    # Then the pay page links to the form, in Spanish
    expect(page.get_by_text("Su clínica le pide que complete «Antes de su visita» antes de su visita.")).to_be_visible()
    checks.check(page, "pay: details with a form (es)")
    page.get_by_role("link", name="Completar el formulario").click()

    # The form, in Spanish; "¿Cuáles?" appears once "Sí" is saved
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.get_by_role("heading", name="Antes de su visita", level=1)).to_be_visible()
    expect(page.get_by_label("¿Cuáles?")).to_have_count(0)
    checks.check(page, "form: fill (es)")
    page.get_by_label("Sí").check()
    page.get_by_role("button", name="Guardar y terminar más tarde").click()
    expect(page.get_by_text("Sus respuestas están guardadas.")).to_be_visible()
    page.get_by_label("¿Cuáles?").fill("Penicilina")
    page.get_by_label("Acepto").check()
    page.get_by_label("Escriba su nombre completo como firma").fill("Ana Pérez")
    checks.check(page, "form: fill, condition shown (es)")

    # Sending before paying is refused; paying opens the Sandbox's checkout in Spanish
    page.get_by_role("button", name="Enviar el formulario").click()
    expect(page.get_by_text("Pague, o decline el pago, antes de enviar el formulario.")).to_be_visible()
    checks.check(page, "form: payment missing (es)")
    page.get_by_role("button", name="Pagar", exact=True).click()
    card_enter(page, SUCCEEDS, language="es")
    checks.check(page, "sandbox: checkout from the form (es)")
    sandbox_pay_button(page, "$30.00", language="es").click()

    # Back on the form: paid, then sent
    expect(page.get_by_text("Pagado: $30.00. Gracias.")).to_be_visible()
    expect(page.get_by_label("¿Cuáles?")).to_have_value("Penicilina")
    checks.check(page, "form: paid (es)")
    page.get_by_role("button", name="Enviar el formulario").click()
    expect(page.get_by_role("heading", name="Gracias")).to_be_visible()
    checks.check(page, "form: complete (es)")

    submission = FormSubmission.objects.get()
    copay_request.refresh_from_db()
    assert submission.status == SubmissionStatus.COMPLETE
    assert copay_request.status == PaymentRequestStatus.PAID
    assert submission.payment_transaction.charged_cents == 3000
    checks.assert_clean()
