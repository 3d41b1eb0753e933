"""What staff are told after an action (Django's messages) is announced to screen readers and
passes axe-core: the list of messages sits inside a status region, not a list given another role."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from ..factories import PaymentRequestFactory, PatientFactory
from .support import sign_in

pytestmark = pytest.mark.browser


def test_the_message_after_re_sending_a_request_is_an_accessible_status(page, checks, organization, location, staff_user):
    # Given an open request to a patient of the staff member's location
    patient = PatientFactory(organization=organization, first_name="Lucía", last_name="Méndez")
    payment_request = PaymentRequestFactory(patient=patient, location=location)
    sign_in(page, staff_user)
    page.goto(f"/payment-requests/{payment_request.pk}/")

    # When they re-send it
    page.get_by_role("button", name="Re-send").click()

    # Then the page announces what happened in a status region, and passes axe-core at 390 px too
    expect(page.get_by_role("status").get_by_role("listitem")).to_have_text(
        ["The payment request was sent again. Its link now works for another 30 days."]
    )
    checks.check(page, "payment request detail (re-sent)")
    checks.assert_clean()
