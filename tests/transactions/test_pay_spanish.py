"""The pay page in Spanish: for a patient who prefers it, and through the language switch."""

import datetime

import pytest

from ehr_sync.enums import PreferredLanguage

from ..factories import PatientFactory
from .pay_support import dob_submit, pay_url, payment_request_make, text, verified

pytestmark = pytest.mark.django_db


def test_a_spanish_speaking_patient_gets_the_pages_in_spanish(client, organization):
    patient = PatientFactory(organization=organization, preferred_language=PreferredLanguage.SPANISH)
    payment_request = payment_request_make(organization=organization, patient=patient)

    response = client.get(pay_url("verify", payment_request), HTTP_ACCEPT_LANGUAGE="en-US")

    page = text(response)
    assert response["Content-Language"] == "es"
    assert '<html lang="es">' in page
    assert "Confirme su fecha de nacimiento" in page
    assert "Riverside Family Medicine le envió este enlace de pago." in page
    assert '<label for="dob-month">Mes</label>' in page and '<label for="dob-year">Año</label>' in page
    assert 'href="?lang=en"' not in page and f'href="{pay_url("verify", payment_request)}?lang=en"' in page

    wrong = dob_submit(client, payment_request, datetime.date(1990, 1, 1))
    assert "Esa fecha de nacimiento no coincide con nuestros registros. Le quedan 4 intentos." in text(wrong)

    verified(client, payment_request)
    details = text(client.get(pay_url("details", payment_request)))
    assert "Pagar $45.00" in details and "Copago: Office visit copay" in details


def test_the_switch_changes_the_language_for_this_link(client, organization):
    payment_request = payment_request_make(organization=organization)
    assert "Confirm your date of birth" in text(client.get(pay_url("verify", payment_request)))

    switched = client.get(pay_url("verify", payment_request) + "?lang=es")
    later = client.get(pay_url("verify", payment_request))
    back = client.get(pay_url("verify", payment_request) + "?lang=en")

    assert switched["Content-Language"] == "es" and "Confirme su fecha de nacimiento" in text(switched)
    assert later["Content-Language"] == "es" and "Confirme su fecha de nacimiento" in text(later)
    assert back["Content-Language"] == "en" and "Confirm your date of birth" in text(back)


def test_an_unknown_language_is_ignored(client, organization):
    payment_request = payment_request_make(organization=organization)

    response = client.get(pay_url("verify", payment_request) + "?lang=xx")

    assert response["Content-Language"] == "en"


def test_refusals_are_in_spanish_too(client, organization):
    from django.utils import timezone

    patient = PatientFactory(organization=organization, preferred_language=PreferredLanguage.SPANISH)
    expired = payment_request_make(
        organization=organization, patient=patient, expires_at=timezone.now() - datetime.timedelta(days=1)
    )

    page = text(client.get(pay_url("verify", expired)))
    invalid = text(client.get("/pay/nope/?lang=es"))

    assert "Este enlace ha vencido. Pida uno nuevo a Riverside Family Medicine llamando al +12175550100." in page
    assert (
        "Este enlace de pago no es válido. Compruebe que copió el enlace completo o comuníquese con la clínica "
        "que se lo envió." in invalid
    )
