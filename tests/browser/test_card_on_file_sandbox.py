"""A card on file on the Sandbox, in the browser: the patient saves the card on the Sandbox's own
page after paying, LumaPay holds the next visit's copay by rule, and staff check the patient in
from the profile, which captures it. Every page passes axe-core and fits 390 px."""

from __future__ import annotations

import datetime
import re

import pytest
from playwright.sync_api import expect

from transactions.enums import CollectionRule, SavedCardStatus, TransactionStatus
from transactions.models import SavedCard, Transaction
from transactions.services.holds import holds_place_before_visits

from ..transactions.holds_support import hold_rule_on, visit
from ..transactions.pay_support import pay_url, payment_request_make
from .support import PHONE, SUCCEEDS, card_enter, date_of_birth_enter, sandbox_pay_button, sign_in

pytestmark = pytest.mark.browser

BIRTH_DATE = datetime.date(1984, 3, 9)  # tests/factories.py's PatientFactory


def test_a_card_saved_on_the_sandbox_is_held_by_rule_and_captured_at_check_in(new_page, checks, organization, location, manager):
    # Given a patient who paid a $20.00 request on the Sandbox's checkout
    page = new_page(viewport=PHONE)
    payment_request = payment_request_make(organization=organization, amount_cents=2000, location=location)
    page.goto(pay_url("verify", payment_request))
    date_of_birth_enter(page, BIRTH_DATE)
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name=re.compile(r"^Pay \$")).click()
    card_enter(page, SUCCEEDS)
    sandbox_pay_button(page, "$20.00").click()
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible()

    # When they agree to keep the card and save it on the Sandbox's page
    page.get_by_label("I agree to keep my card on file.").check()
    page.get_by_role("button", name="Save a card").click()
    expect(page.get_by_role("heading", name="Save a card for Riverside Family Medicine")).to_be_visible()
    checks.check(page, "sandbox: save your card")
    card_enter(page, SUCCEEDS)
    page.get_by_role("button", name="Save card", exact=True).click()

    # Then the clinic's page says the card is saved, and it is kept on file
    expect(page.get_by_role("heading", name="Your card is saved")).to_be_visible()
    checks.check(page, "pay: card saved")
    card = SavedCard.objects.get(patient=payment_request.patient)
    assert (card.status, card.vendor, card.card_last4) == (SavedCardStatus.ACTIVE, "sandbox", "4242")

    # When the hold rule is on and the patient's visit is tomorrow morning
    hold_rule_on(organization)
    appointment = visit(card, location, in_hours=12, copay_cents=3500)
    assert holds_place_before_visits() == 1
    held = Transaction.objects.get(appointment=appointment)
    assert (held.status, held.automation_rule) == (TransactionStatus.AUTHORIZED, CollectionRule.HOLD_BEFORE_VISIT)

    # and staff check the patient in from the profile
    staff = new_page()
    sign_in(staff, manager)
    staff.goto(f"/patients/{card.patient_id}/")
    checks.check(staff, "patient profile (copay held)")
    staff.get_by_role("button", name=re.compile(r"^Check in")).click()

    # Then the copay is captured, and the transaction's history says who did what
    expect(staff.get_by_text("Checked in. Captured $35.00 held on the card.")).to_be_visible()
    expect(staff.get_by_text("By the rule: Copay held on the card on file before the visit.")).to_be_visible()
    checks.check(staff, "transaction (captured at check-in)")
    held.refresh_from_db()
    assert (held.status, held.charged_cents) == (TransactionStatus.SUCCEEDED, 3500)
    checks.assert_clean()
