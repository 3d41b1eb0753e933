"""The Sandbox's hosted checkout speaks the patient's language, as Stripe Checkout does with the
``locale`` the merchant passes: the pay page opens the checkout in the language the patient reads
it in, and the Sandbox's pages, its messages and its <html lang> follow the checkout's locale."""

import re
from html.parser import HTMLParser

import pytest

from ehr_sync.enums import PreferredLanguage
from transactions.gateways.base import GatewayError
from transactions.models import SandboxCheckoutSession, Transaction
from transactions.sandbox import processor as sandbox_processor
from transactions.services.payments import checkout_begin

from ..factories import PatientFactory
from .pay_support import (
    AUTHENTICATE,
    DECLINED,
    INSUFFICIENT_FUNDS,
    SUCCEEDS,
    card_fields,
    checkout_path,
    pay_url,
    payment_request_make,
    text,
    verified,
)

pytestmark = pytest.mark.django_db


def _spanish_checkout(client, organization) -> str:
    patient = PatientFactory(organization=organization, preferred_language=PreferredLanguage.SPANISH)
    payment_request = payment_request_make(organization=organization, patient=patient, amount_cents=4500)
    verified(client, payment_request)
    return checkout_path(client, payment_request)


class _VisibleText(HTMLParser):
    """The words a patient reads or hears on a page: text outside <script>/<style>, the <title>,
    and the placeholder and aria-label attributes."""

    def __init__(self):
        super().__init__()
        self.skip, self.words = 0, []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        self.words += [value for name, value in attrs if name in ("placeholder", "aria-label") and value]

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip and data.strip():
            self.words.append(" ".join(data.split()))


def _visible_text(response) -> list[str]:
    parser = _VisibleText()
    parser.feed(text(response))
    return parser.words


# What reads the same in both languages: names, amounts, card numbers and brands, the Sandbox's name.
SAME_IN_BOTH = re.compile(
    r"^(Riverside Family Medicine|\$[\d.,]+|[\d ]+|Visa|Mastercard|Amex|Discover|•••• \d{4}|MM|CVC|"
    r"SANDBOX|Sandbox|·)$"
)


def test_a_spanish_speaking_patients_checkout_is_in_spanish(client, organization):
    # Given a patient who prefers Spanish, on a phone set to English
    path = _spanish_checkout(client, organization)

    response = client.get(path, HTTP_ACCEPT_LANGUAGE="en-US")

    page = text(response)
    assert SandboxCheckoutSession.objects.get().locale == "es"
    assert response["Content-Language"] == "es"
    assert '<html lang="es">' in page
    assert "<title>Pagar a Riverside Family Medicine · Pago en el Sandbox</title>" in page
    assert "SANDBOX: solo pagos de prueba. No se cobra ninguna tarjeta real." in page
    assert "Pagar a <strong>Riverside Family Medicine</strong>" in page
    for label in (
        '<label for="card-number">Número de tarjeta</label>',
        '<label for="card-exp-month">Mes de vencimiento</label>',
        '<label for="card-exp-year">Año de vencimiento</label>',
        '<label for="card-cvc">CVC</label>',
    ):
        assert label in page
    assert 'placeholder="AA"' in page
    assert '<button type="submit">Pagar $45.00</button>' in page
    assert "Cancelar y volver a Riverside Family Medicine" in page
    assert "Se rechaza: fondos insuficientes" in page


def test_no_english_is_left_on_the_spanish_checkout(client, organization):
    # Every word of the checkout, the declined checkout and the authentication page differs from
    # the English page's, but for names, amounts and card numbers: nothing was left unmarked.
    path = _spanish_checkout(client, organization)
    english_patient = payment_request_make(organization=organization, amount_cents=4500)
    english_client = client.__class__()
    verified(english_client, english_patient)
    english_path = checkout_path(english_client, english_patient)

    pages = []
    for each_client, each_path in ((client, path), (english_client, english_path)):
        checkout = each_client.get(each_path)
        declined = each_client.post(each_path, card_fields(DECLINED))
        each_client.post(each_path, card_fields(AUTHENTICATE))
        authenticate = each_client.get(f"{each_path}authenticate/")
        pages.append([_visible_text(page) for page in (checkout, declined, authenticate)])

    spanish, english = pages
    for spanish_page, english_page in zip(spanish, english):
        left_in_english = [
            words for words in set(spanish_page) & set(english_page) if not SAME_IN_BOTH.match(words)
        ]
        assert left_in_english == []


def test_a_declined_card_is_said_in_spanish_and_recorded_in_the_processors_words(
    client, organization, django_capture_on_commit_callbacks
):
    path = _spanish_checkout(client, organization)

    with django_capture_on_commit_callbacks(execute=True):
        declined = client.post(path, card_fields(DECLINED))
    with django_capture_on_commit_callbacks(execute=True):
        insufficient = client.post(path, card_fields(INSUFFICIENT_FUNDS))

    assert (declined.status_code, declined["Content-Language"]) == (402, "es")
    assert "<strong>Su tarjeta fue rechazada.</strong>" in text(declined)
    assert "No se realizó ningún cargo. Pruebe con otra tarjeta." in text(declined)
    assert "<strong>Su tarjeta no tiene fondos suficientes.</strong>" in text(insufficient)
    # The processor's API (and so the staff's timeline) keeps its own English message, as Stripe's
    # failure_message does; the patient's pages translate it.
    assert Transaction.objects.get().last_error == "Your card has insufficient funds."


def test_a_failed_authentication_and_card_entry_errors_are_said_in_spanish(
    client, organization, django_capture_on_commit_callbacks
):
    path = _spanish_checkout(client, organization)

    wrong_number = client.post(path, card_fields("4242 4242 4242 4241"))
    short_cvc = client.post(path, card_fields(SUCCEEDS, cvc="12"))
    missing = client.post(path, {"number": "", "expiry_month": "", "expiry_year": "", "cvc": ""})
    client.post(path, card_fields(AUTHENTICATE))
    authenticate = client.get(f"{path}authenticate/")
    with django_capture_on_commit_callbacks(execute=True):
        failed = client.post(f"{path}authenticate/", {"result": "fail"})

    assert "El número de su tarjeta no es correcto." in text(wrong_number)
    assert "El código de seguridad de su tarjeta está incompleto." in text(short_cvc)
    for message in ("Ingrese un número de tarjeta.", "Ingrese el mes.", "Ingrese el año.", "Ingrese el CVC."):
        assert message in text(missing)
    assert authenticate["Content-Language"] == "es" and '<html lang="es">' in text(authenticate)
    assert "<h1>Autentique su pago</h1>" in text(authenticate)
    assert "Tarjeta: Visa •••• 3155" in text(authenticate)
    assert "Completar la autenticación" in text(authenticate)
    assert "No pudimos autenticar su método de pago. Elija otro método de pago e inténtelo de nuevo." in text(failed)


def test_an_english_speaking_patients_checkout_is_in_english_whatever_the_browser(client, organization):
    payment_request = payment_request_make(organization=organization)  # preferred language: English
    verified(client, payment_request)
    path = checkout_path(client, payment_request)

    response = client.get(path, HTTP_ACCEPT_LANGUAGE="es-MX,es;q=0.9")
    declined = client.post(path, card_fields(DECLINED), HTTP_ACCEPT_LANGUAGE="es-MX,es;q=0.9")

    assert SandboxCheckoutSession.objects.get().locale == "en"
    assert response["Content-Language"] == "en" and '<html lang="en">' in text(response)
    assert "Pay <strong>Riverside Family Medicine</strong>" in text(response)
    assert '<label for="card-number">Card number</label>' in text(response)
    assert "Your card was declined." in text(declined)


def test_the_checkout_speaks_the_language_the_patient_switched_the_pay_page_to(client, organization):
    payment_request = payment_request_make(organization=organization)  # preferred language: English
    verified(client, payment_request)
    client.get(pay_url("details", payment_request) + "?lang=es")

    path = checkout_path(client, payment_request)

    assert SandboxCheckoutSession.objects.get().locale == "es"
    assert '<html lang="es">' in text(client.get(path))


def test_a_checkout_opened_with_locale_auto_follows_the_browser(client, organization):
    # As Stripe's "auto": a checkout opened without a language (the processor's API called
    # directly) speaks the browser's language when the Sandbox has it, else English.
    session = sandbox_processor.session_create(
        organization_id=organization.pk,
        amount_cents=1000,
        currency="usd",
        client_reference="1",
        merchant_name="Riverside Family Medicine",
        success_url="http://testserver/done",
        cancel_url="http://testserver/cancel",
    )
    path = sandbox_processor.checkout_url(session).removeprefix("http://testserver")

    spanish = client.get(path, HTTP_ACCEPT_LANGUAGE="es-ES,es;q=0.9")
    french = client.get(path, HTTP_ACCEPT_LANGUAGE="fr-FR")

    assert session.locale == "auto"
    assert spanish["Content-Language"] == "es" and "Pagar a <strong>" in text(spanish)
    assert french["Content-Language"] == "en" and "Pay <strong>" in text(french)


def test_a_locale_the_sandbox_does_not_speak_is_refused_and_nothing_is_written(organization):
    payment_request = payment_request_make(organization=organization)

    with pytest.raises(GatewayError, match="The Sandbox has no checkout in the locale 'fr'."):
        checkout_begin(payment_request=payment_request, ip_address=None, locale="fr")

    assert (Transaction.objects.count(), SandboxCheckoutSession.objects.count()) == (0, 0)
