"""Helpers for the hold-rule tests on the Sandbox: a card saved with the patient's consent (through
the service and the Sandbox's own page logic), and an organization with the hold rule on."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from transactions.models import CollectionRules, SavedCard
from transactions.sandbox import processor
from transactions.services.saved_cards import card_on_file_consent_text, saved_card_setup_begin, saved_card_setup_complete

from ..factories import AppointmentFactory
from .pay_support import CARD_YEAR, payment_request_make

SUCCEEDS = "4242424242424242"
DECLINED_WHEN_CHARGED = "4000000000000341"


def hold_rule_on(organization, *, hours_before: int = 24) -> CollectionRules:
    rules, _created = CollectionRules.objects.update_or_create(
        organization=organization, defaults={"hold_enabled": True, "hold_hours_before": hours_before}
    )
    return rules


def sandbox_card(organization, patient, number: str = SUCCEEDS) -> SavedCard:
    """The patient agreed on the pay page and typed ``number`` on the Sandbox's card page."""
    start = saved_card_setup_begin(
        payment_request=payment_request_make(organization=organization, patient=patient),
        consent_given=True,
        consent_text=card_on_file_consent_text(organization),
        ip_address="203.0.113.9",
        success_url="http://testserver/pay/t/card-saved/",
        cancel_url="http://testserver/pay/t/details/",
    )
    attempt = processor.setup_card_submit(
        session_id=start.checkout_id, card_number=number, expiry_month="12", expiry_year=CARD_YEAR, cvc="123"
    )
    assert attempt.outcome == "succeeded", attempt
    return saved_card_setup_complete(saved_card=SavedCard.objects.get(gateway_setup_id=start.checkout_id))


def visit(card: SavedCard, location, *, in_hours: float = 10, copay_cents: int = 3000, **fields):
    return AppointmentFactory(
        organization=card.organization,
        patient=card.patient,
        location=location,
        starts_at=timezone.now() + timedelta(hours=in_hours),
        copay_cents=copay_cents,
        **fields,
    )
