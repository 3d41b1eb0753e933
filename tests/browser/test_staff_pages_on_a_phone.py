"""Staff pages in Debian's Chromium: nothing scrolls sideways at 390 px, the Hub's **Request
payment** is on screen, and the dashboard's totals and first rows are above the fold at 1366×900.

The administrator is signed in through a session cookie: these tests look at layout, and the
sign-in page has its own journey (test_end_to_end.py).
"""

from __future__ import annotations

import datetime

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone

from org_profile.enums import Role
from tests.factories import (
    LocationFactory,
    MembershipFactory,
    OrganizationFactory,
    PatientFactory,
    PaymentRequestFactory,
)
from tests.transactions.dashboard_support import ledger_transaction
from tests.two_step import VerifiedClient

from .support import DESKTOP, PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def clinic():
    """An administrator of a clinic with long names, 30 transactions, a patient and a request."""
    organization = OrganizationFactory(name="Riverside Family Medicine and Specialty Care")
    downtown = LocationFactory(organization=organization, name="Downtown Clinic")
    LocationFactory(organization=organization, name="Northside Pediatrics and Urgent Care")
    administrator = MembershipFactory(organization=organization, role=Role.ADMINISTRATOR).user
    patient = PatientFactory(organization=organization, first_name="Maximiliano", last_name="Hernández-Villanueva")
    for day in range(12):
        ledger_transaction(
            organization=organization, location=downtown, patient=patient, amount_cents=4500 + day * 100,
            created_at=timezone.now() - datetime.timedelta(days=day), billing_item="Specialist visit copay",
        )
    payment_request = PaymentRequestFactory(patient=patient, location=downtown)
    return administrator, patient, payment_request, organization.transactions.first()


@pytest.fixture
def chromium_page(new_page, live_server, clinic):
    """chromium_page(viewport) → a page of the clinic's administrator, signed in."""
    client = VerifiedClient()
    client.force_login(clinic[0])
    session = client.cookies[django_settings.SESSION_COOKIE_NAME].value

    def open_page(viewport):
        page = new_page(viewport=viewport)
        page.context.add_cookies([{"name": django_settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}])
        return page

    return open_page


def _staff_pages(patient, payment_request, transaction):
    return [
        reverse("transactions:dashboard"),
        reverse("patients:hub"),
        reverse("patients:profile", args=[patient.pk]),
        reverse("patients:edit", args=[patient.pk]),
        reverse("transactions:payment_request_new", args=[patient.pk]),
        reverse("transactions:payment_request_detail", args=[payment_request.pk]),
        reverse("transactions:transaction_detail", args=[transaction.pk]),
        reverse("transactions:export_list"),
        reverse("organization_settings"),
        reverse("members"),
        reverse("mfa_security"),
        reverse("transactions:stripe_connect"),
        "/no-such-page/",
    ]


def test_no_staff_page_scrolls_sideways_on_a_phone(live_server, clinic, chromium_page):
    _, patient, payment_request, transaction = clinic
    page = chromium_page(PHONE)

    too_wide = {}
    for path in _staff_pages(patient, payment_request, transaction):
        page.goto(live_server.url + path)
        width = page.evaluate("document.scrollingElement.scrollWidth")
        if width > PHONE["width"]:
            too_wide[path] = width

    assert too_wide == {}


def test_the_hubs_request_payment_is_on_screen_on_a_phone(live_server, clinic, chromium_page):
    page = chromium_page(PHONE)
    page.goto(live_server.url + reverse("patients:hub"))

    button = page.get_by_role("link", name="Request payment from Maximiliano Hernández-Villanueva")
    box = button.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]


def test_the_dashboards_totals_and_first_rows_are_above_the_fold(live_server, clinic, chromium_page):
    page = chromium_page(DESKTOP)
    page.goto(live_server.url + reverse("transactions:dashboard") + "?status=succeeded&kind=copay")

    bottoms = {
        "totals": page.locator(".totals").bounding_box(),
        "third row": page.locator("#transaction-results tbody tr").nth(2).bounding_box(),
    }
    assert {name: box["y"] + box["height"] <= DESKTOP["height"] for name, box in bottoms.items()} == {
        "totals": True, "third row": True,
    }
