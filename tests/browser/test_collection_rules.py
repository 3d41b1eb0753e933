"""A manager turns on "copay 48 h before" on the Collection rules page, is told clearly what is
wrong with a bad value, and reads on the Automation page what LumaPay did and will do. Every page
passes axe-core and fits 390 px."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from transactions.models import CollectionRules, PaymentRequest
from transactions.services.collection_schedule import collection_schedule_run

from ..factories import AppointmentFactory, PatientFactory
from ..transactions.collection_support import hours_from_now
from .support import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_manager_turns_the_copay_rule_on_and_sees_the_automation(page, checks, organization, location, manager):
    patient = PatientFactory(organization=organization, first_name="Lucía", last_name="Ramos")
    AppointmentFactory(patient=patient, location=location, starts_at=hours_from_now(20))
    sign_in(page, manager)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Collection rules").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Collection rules")
    checks.check(page, "collection rules")

    page.get_by_label("Send a copay request before each visit with a copay").check()
    page.get_by_label("How many hours before the visit to place the hold").fill("200")
    page.get_by_role("button", name="Save the rules").click()
    expect(page.get_by_text("Some rules need fixing: nothing was saved.")).to_be_visible()
    expect(page.get_by_text("placed this early it would lapse before the visit")).to_be_visible()
    checks.check(page, "collection rules (refused)")
    assert not CollectionRules.objects.filter(organization=organization).exists()

    page.get_by_label("How many hours before the visit to place the hold").fill("24")
    page.get_by_label("How many hours before the visit", exact=True).fill("48")
    # No quiet hours (the same start and end), so the beat's pass below sends whatever the hour:
    # the default ones (21:00 to 08:00 in the clinic's zone) hold everything at night.
    page.get_by_label("Quiet hours start").fill("00:00")
    page.get_by_label("Quiet hours end").fill("00:00")
    page.get_by_role("button", name="Save the rules").click()
    expect(page.get_by_text("Saved the collection rules. Nothing was sent now")).to_be_visible()
    assert CollectionRules.objects.get(organization=organization).copay_request_enabled is True
    assert PaymentRequest.objects.count() == 0

    collection_schedule_run()  # the beat's next pass

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Automation").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Automation")
    expect(page.get_by_role("link", name="Payment request sent")).to_be_visible()
    expect(page.get_by_text("Lucía Ramos")).to_be_visible()
    checks.check(page, "automation")
    page.get_by_role("link", name="Payment request sent").click()
    expect(page.get_by_text("By the rule: Copay request before the visit").first).to_be_visible()
    checks.assert_clean()
