"""`make dev`'s card on file: the seed, run beside the demo EHR, keeps a Sandbox card for the EHR's
patient the README's walk of automatic collection holds and plans for, and the hold rule uses it."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from ehr_sync.demo_fhir_server import demo_fhir_appointment_book
from ehr_sync.models import Appointment, EhrConnection, Patient
from transactions.demo import DEMO_CARD_PATIENT_EHR_ID
from transactions.enums import CollectionRule, SavedCardStatus, TransactionStatus
from transactions.models import CollectionRules, SavedCard, Transaction
from transactions.services.holds import holds_place_before_visits
from transactions.services.saved_cards import card_on_file_consent_text
from tests.fhir_server import fhir_test_server_start, fhir_test_server_stop

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_ehr(settings, monkeypatch):
    settings.DEBUG = True
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    server = fhir_test_server_start()
    monkeypatch.setenv("DEMO_FHIR_URL", server.base_url)
    yield server
    fhir_test_server_stop(server)


def _seed() -> str:
    out = io.StringIO()
    call_command("seed_demo_clinic", stdout=out)
    return out.getvalue()


def test_the_seed_keeps_one_card_on_file_that_the_hold_rule_uses(demo_ehr):
    first = _seed()

    patient = Patient.objects.get(external_ehr_id=DEMO_CARD_PATIENT_EHR_ID)
    card = SavedCard.objects.get(patient=patient)
    assert (card.status, card.card_brand, card.card_last4) == (SavedCardStatus.ACTIVE, "visa", "4242")
    assert patient.preferred_language == "en"
    assert card.consent_text == card_on_file_consent_text(patient.organization)
    assert f"Card on file: {card} for {patient.full_name} ({DEMO_CARD_PATIENT_EHR_ID})" in first
    # Seeding again keeps the one card.
    _seed()
    assert SavedCard.objects.filter(patient=patient).count() == 1

    # The walk: the hold rule on, a visit booked within its lead on the EHR and synced in, held.
    organization = patient.organization
    CollectionRules.objects.update_or_create(organization=organization, defaults={"hold_enabled": True, "hold_hours_before": 24})
    booked = demo_fhir_appointment_book(demo_ehr.base_url, DEMO_CARD_PATIENT_EHR_ID, starts_at=timezone.now() + timedelta(hours=20))
    from ehr_sync.connectors import connection_sync

    connection_sync(connection_id=EhrConnection.objects.get(organization=organization, kind="fhir").pk)
    visit = Appointment.objects.get(organization=organization, external_ehr_id=booked["id"])
    assert visit.copay_cents > 0

    holds_place_before_visits()

    hold = Transaction.objects.get(appointment=visit)
    assert (hold.status, hold.automation_rule, hold.saved_card_id, hold.amount_cents) == (
        TransactionStatus.AUTHORIZED, CollectionRule.HOLD_BEFORE_VISIT, card.pk, visit.copay_cents,
    )
