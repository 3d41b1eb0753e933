"""A patient pays from the link on a phone: declines, the authentication step, Spanish, the keyboard
alone, and links that no longer work. Every page passes axe-core and fits 390 px."""

from __future__ import annotations

import datetime
import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from ehr_sync.enums import PreferredLanguage
from transactions.enums import PaymentRequestStatus, TransactionEventKind as Kind, TransactionStatus
from transactions.models import Transaction, TransactionEvent

from ..factories import PatientFactory
from ..transactions.pay_support import pay_url, payment_request_make
from .support import (
    PHONE,
    AUTHENTICATE,
    CARD_YEAR,
    DECLINED,
    SUCCEEDS,
    card_enter,
    date_of_birth_enter,
    sandbox_pay_button,
)

pytestmark = pytest.mark.browser

BIRTH_DATE = datetime.date(1984, 3, 9)  # tests/factories.py's PatientFactory


@pytest.fixture
def patient_page(new_page):
    return new_page(viewport=PHONE)


def _ledger(transaction: Transaction) -> list[tuple[str, int]]:
    return list(TransactionEvent.objects.filter(transaction=transaction).order_by("id").values_list("kind", "amount_cents"))


def _to_checkout(page: Page, payment_request, checks) -> None:
    """Open the link, confirm the date of birth, press Pay: the Sandbox's checkout opens."""
    page.goto(pay_url("verify", payment_request))
    date_of_birth_enter(page, BIRTH_DATE)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Your payment")).to_be_visible()
    page.get_by_role("button", name=re.compile(r"^Pay \$")).click()
    expect(page.get_by_label("Card number")).to_be_visible()
    checks.check(page, "sandbox: checkout")


def test_a_declined_card_then_one_that_succeeds(patient_page, checks, organization):
    # Given a $20.00 request, on the Sandbox's checkout
    payment_request = payment_request_make(organization=organization, amount_cents=2000)
    _to_checkout(patient_page, payment_request, checks)

    # When the patient pays with the card that is declined
    card_enter(patient_page, DECLINED)
    sandbox_pay_button(patient_page, "$20.00").click()

    # Then the checkout says so, keeps nothing of the card, and stays open for another card
    alert = patient_page.get_by_role("alert")
    expect(alert).to_contain_text("Your card was declined.")
    expect(alert).to_contain_text("Nothing was charged. Try another card.")
    expect(patient_page.get_by_label("Card number")).to_have_value("")
    checks.check(patient_page, "sandbox: checkout (declined)")
    transaction = Transaction.objects.get(payment_request=payment_request)
    assert (transaction.status, transaction.charged_cents) == (TransactionStatus.FAILED, 0)

    # When the patient leaves the checkout, comes back to the payment from the clinic's page, and
    # pays again with 4242
    patient_page.get_by_role("link", name="Cancel and return to Riverside Family Medicine").click()
    expect(patient_page.get_by_role("heading", name="Payment not made")).to_be_visible()
    checks.check(patient_page, "pay: cancelled")
    patient_page.get_by_role("link", name="Return to the payment").click()
    expect(patient_page.get_by_role("status")).to_contain_text(
        "Your last payment attempt did not go through: Your card was declined."
    )
    checks.check(patient_page, "pay: details (after a decline)")
    patient_page.get_by_role("button", name="Pay $20.00").click()
    card_enter(patient_page, SUCCEEDS)
    sandbox_pay_button(patient_page, "$20.00").click()

    # Then the receipt shows, and the one transaction is paid after one failed attempt
    expect(patient_page.get_by_role("heading", name="Payment received")).to_be_visible()
    expect(patient_page.get_by_text("Visa •••• 4242")).to_be_visible()
    checks.check(patient_page, "pay: done (receipt)")
    transaction.refresh_from_db()
    payment_request.refresh_from_db()
    assert _ledger(transaction) == [(Kind.CHARGE_REQUESTED, 2000), (Kind.CHARGE_FAILED, 0), (Kind.CHARGE_SUCCEEDED, 2000)]
    assert (transaction.status, transaction.charged_cents, payment_request.status) == (
        TransactionStatus.SUCCEEDED,
        2000,
        PaymentRequestStatus.PAID,
    )
    checks.assert_clean()


def test_the_authentication_step_passed(patient_page, checks, organization):
    # Given a $30.00 request, on the Sandbox's checkout
    payment_request = payment_request_make(organization=organization, amount_cents=3000)
    _to_checkout(patient_page, payment_request, checks)

    # When the patient pays with the card that asks for authentication, and completes it
    card_enter(patient_page, AUTHENTICATE)
    sandbox_pay_button(patient_page, "$30.00").click()
    expect(patient_page.get_by_role("heading", name="Authenticate your payment")).to_be_visible()
    expect(patient_page.get_by_text("•••• 3155")).to_be_visible()
    checks.check(patient_page, "sandbox: authenticate")
    patient_page.get_by_role("button", name="Complete authentication").click()

    # Then the receipt shows the card, and the payment is recorded once
    expect(patient_page.get_by_role("heading", name="Payment received")).to_be_visible()
    expect(patient_page.get_by_text("Visa •••• 3155")).to_be_visible()
    checks.check(patient_page, "pay: done (receipt)")
    transaction = Transaction.objects.get(payment_request=payment_request)
    assert _ledger(transaction) == [(Kind.CHARGE_REQUESTED, 3000), (Kind.CHARGE_SUCCEEDED, 3000)]
    assert (transaction.status, transaction.card_last4) == (TransactionStatus.SUCCEEDED, "3155")
    checks.assert_clean()


def test_the_authentication_step_failed_then_another_card_succeeds(patient_page, checks, organization):
    # Given a $30.00 request, on the Sandbox's checkout
    payment_request = payment_request_make(organization=organization, amount_cents=3000)
    _to_checkout(patient_page, payment_request, checks)

    # When the patient pays with the card that asks for authentication, and fails it
    card_enter(patient_page, AUTHENTICATE)
    sandbox_pay_button(patient_page, "$30.00").click()
    patient_page.get_by_role("button", name="Fail authentication").click()

    # Then the checkout says the authentication failed and asks for another card
    expect(patient_page.get_by_role("alert")).to_contain_text("We could not authenticate your payment method.")
    checks.check(patient_page, "sandbox: checkout (authentication failed)")

    # When the patient enters 4242 on that page
    card_enter(patient_page, SUCCEEDS)
    sandbox_pay_button(patient_page, "$30.00").click()

    # Then the card is charged and the receipt shows it
    expect(patient_page.get_by_role("heading", name="Payment received")).to_be_visible()
    expect(patient_page.get_by_text("Visa •••• 4242")).to_be_visible()
    transaction = Transaction.objects.get(payment_request=payment_request)
    assert _ledger(transaction) == [(Kind.CHARGE_REQUESTED, 3000), (Kind.CHARGE_FAILED, 0), (Kind.CHARGE_SUCCEEDED, 3000)]
    assert (transaction.status, transaction.card_last4) == (TransactionStatus.SUCCEEDED, "4242")
    checks.assert_clean()


def test_a_spanish_speaking_patient_pays_in_spanish(new_page, checks, organization):
    # Given a patient whose preferred language is Spanish, on a phone set to English
    patient = PatientFactory(organization=organization, preferred_language=PreferredLanguage.SPANISH)
    payment_request = payment_request_make(organization=organization, patient=patient)
    page = new_page(viewport=PHONE, locale="en-US")

    # When they open the link
    page.goto(pay_url("verify", payment_request))

    # Then every page of LumaPay's is in Spanish, marked as such, through to the receipt
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.get_by_role("heading", name="Confirme su fecha de nacimiento")).to_be_visible()
    expect(page.get_by_text("Riverside Family Medicine le envió este enlace de pago.")).to_be_visible()
    checks.check(page, "pay: verify (es)")
    date_of_birth_enter(page, datetime.date(1990, 1, 1))
    page.get_by_role("button", name="Continuar").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Esa fecha de nacimiento no coincide con nuestros registros. Le quedan 4 intentos."
    )
    expect(page.get_by_role("textbox", name="Mes")).to_have_attribute("aria-invalid", "true")
    checks.check(page, "pay: verify, wrong date (es)")
    date_of_birth_enter(page, BIRTH_DATE)
    page.get_by_role("button", name="Continuar").click()
    expect(page.get_by_role("heading", name="Su pago")).to_be_visible()
    expect(page.get_by_text("Copago: Office visit copay")).to_be_visible()
    checks.check(page, "pay: details (es)")
    page.get_by_role("button", name="Pagar $45.00").click()

    # And the Sandbox's checkout, the processor's own page, is in Spanish too (as Stripe Checkout
    # is with the locale the clinic passes), its decline included
    expect(page.get_by_role("heading", name="Pagar a Riverside Family Medicine")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.get_by_role("note")).to_have_text("SANDBOX: solo pagos de prueba. No se cobra ninguna tarjeta real.")
    checks.check(page, "sandbox: checkout (es)")
    card_enter(page, DECLINED, language="es")
    sandbox_pay_button(page, "$45.00", language="es").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Su tarjeta fue rechazada.")
    expect(alert).to_contain_text("No se realizó ningún cargo. Pruebe con otra tarjeta.")
    checks.check(page, "sandbox: checkout, declined (es)")
    card_enter(page, SUCCEEDS, language="es")
    sandbox_pay_button(page, "$45.00", language="es").click()
    expect(page.get_by_role("heading", name="Pago recibido")).to_be_visible()
    expect(page.get_by_text("Gracias. Riverside Family Medicine recibió su pago.")).to_be_visible()
    expect(page.get_by_role("link", name="Descargar su recibo (PDF)")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "es")
    checks.check(page, "pay: done (es)")
    checks.assert_clean()


def _tab_to(page: Page, target, *, limit: int = 40) -> None:
    """Press Tab until ``target`` has the focus, which it must show."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            break
    else:
        raise AssertionError(f"Tab never reached {target} in {limit} presses on {page.url}")
    indicator = target.evaluate(
        """element => { const style = getComputedStyle(element);
             return style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0
                    || style.boxShadow !== 'none'; }"""
    )
    assert indicator, f"{target} has the focus on {page.url} but shows no focus indicator"


def test_a_patient_pays_with_the_keyboard_alone(patient_page, checks, organization):
    # Given a $45.00 request, and a patient who uses no mouse
    payment_request = payment_request_make(organization=organization)
    page = patient_page

    # When they open the link and use only Tab, typing and Enter
    page.goto(pay_url("verify", payment_request))
    _tab_to(page, page.get_by_role("textbox", name="Month"))
    page.keyboard.type("03")
    _tab_to(page, page.get_by_role("textbox", name="Day"))
    page.keyboard.type("09")
    _tab_to(page, page.get_by_role("textbox", name="Year"))
    page.keyboard.type("1984")
    _tab_to(page, page.get_by_role("button", name="Continue"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Your payment")).to_be_visible()
    _tab_to(page, page.get_by_role("button", name="Pay $45.00"))
    page.keyboard.press("Enter")
    _tab_to(page, page.get_by_label("Card number"))
    page.keyboard.type(SUCCEEDS)
    _tab_to(page, page.get_by_label("Expiry month"))
    page.keyboard.type("12")
    _tab_to(page, page.get_by_label("Expiry year"))
    page.keyboard.type(CARD_YEAR)
    _tab_to(page, page.get_by_label("CVC"))
    page.keyboard.type("123")
    page.keyboard.press("Enter")

    # Then they reach the receipt, and its download link is reachable by keyboard too
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible()
    _tab_to(page, page.get_by_role("link", name="Download your receipt (PDF)"))
    transaction = Transaction.objects.get(payment_request=payment_request)
    assert (transaction.status, transaction.charged_cents) == (TransactionStatus.SUCCEEDED, 4500)
    checks.assert_clean()


def test_links_that_no_longer_work_say_why(patient_page, checks, organization):
    # Given a cancelled request, an expired one, and a link with a broken token
    cancelled = payment_request_make(organization=organization, status=PaymentRequestStatus.CANCELLED)
    expired = payment_request_make(organization=organization, expires_at=timezone.now() - datetime.timedelta(days=1))
    broken = pay_url("verify", payment_request_make(organization=organization))[:-6] + "xxxxx/"
    page = patient_page

    # When the patient opens each, then each page says what happened and what to do
    page.goto(pay_url("verify", cancelled))
    expect(page.get_by_role("heading", name="Payment request cancelled")).to_be_visible()
    expect(page.get_by_text("If you have questions, call Riverside Family Medicine at")).to_be_visible()
    checks.check(page, "pay: closed (cancelled)")

    page.goto(pay_url("verify", expired))
    expect(page.get_by_role("heading", name="Link expired")).to_be_visible()
    expect(page.get_by_text("Nothing was charged with this link.")).to_be_visible()
    checks.check(page, "pay: closed (expired)")

    response = page.goto(broken)
    assert response.status == 404
    expect(page.get_by_role("heading", name="Payment link not valid")).to_be_visible()
    checks.check(page, "pay: invalid")
    checks.assert_clean()
