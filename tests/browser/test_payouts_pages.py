"""The payouts page and a payout's page in Debian's Chromium, at 390 px and 1366 px: nothing
scrolls sideways, axe-core finds nothing, the filters apply with htmx (the address keeps them),
and the payout's totals and lines are on the page. Screenshots of each page at both widths go to
.local/browser-screenshots/ to be looked at.

The manager is signed in through a session cookie: these tests look at the pages, and the sign-in
page has its own journey (test_end_to_end.py).
"""

from __future__ import annotations

import datetime

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from org_profile.enums import Role
from payouts.enums import PayoutLineKind, PayoutMethod, PayoutStatus, Reconciliation
from tests.factories import LocationFactory, MembershipFactory, OrganizationFactory, PatientFactory
from tests.payouts.factories import GatewayBalanceFactory, PayoutFactory, PayoutLineFactory
from tests.transactions.dashboard_support import ledger_transaction
from tests.two_step import VerifiedClient

from .conftest import SCREENSHOT_DIR
from .support import DESKTOP, PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def clinic():
    organization = OrganizationFactory(name="Riverside Family Medicine and Specialty Care")
    location = LocationFactory(organization=organization, name="Downtown Clinic")
    manager = MembershipFactory(organization=organization, role=Role.MANAGER).user
    patient = PatientFactory(organization=organization, first_name="Maximiliano", last_name="Hernández-Villanueva")
    GatewayBalanceFactory(organization=organization, available_cents=1_248_210, pending_cents=312_055)
    now = timezone.now()
    for day in range(40):
        status = PayoutStatus.FAILED if day % 9 == 4 else PayoutStatus.PAID
        PayoutFactory(organization=organization, amount_cents=180_000 + day * 1_337, status=status,
                      method=PayoutMethod.INSTANT if day % 7 == 3 else PayoutMethod.STANDARD,
                      created_at=now - datetime.timedelta(days=day + 3), trace_id=f"TRACE{day:012d}",
                      failure_message="The bank account has been closed." if status == PayoutStatus.FAILED else "",
                      reconciliation=Reconciliation.MATCHED)
    in_transit = PayoutFactory(organization=organization, amount_cents=2_345_678, status=PayoutStatus.IN_TRANSIT,
                               created_at=now - datetime.timedelta(days=1), reconciliation=Reconciliation.DIFFERENCE)
    transaction = ledger_transaction(organization=organization, location=location, patient=patient,
                                     created_at=now - datetime.timedelta(days=4), amount_cents=2_345_000)
    for n, (kind, amount, fee) in enumerate([
        (PayoutLineKind.CHARGE, 2_345_000, 68_035), (PayoutLineKind.REFUND, -12_500, 0),
        (PayoutLineKind.DISPUTE, -4_500, 1_500), (PayoutLineKind.ADJUSTMENT, 85_000, 0),
    ]):
        PayoutLineFactory(payout=in_transit, kind=kind, amount_cents=amount, fee_cents=fee,
                          transaction=transaction if kind != PayoutLineKind.ADJUSTMENT else None,
                          source_id="adj_a_very_long_reference_from_the_processor_00000000" if n == 3 else f"ch_{n}",
                          created_at=now - datetime.timedelta(days=2, minutes=10 - n))
    return manager, in_transit


@pytest.fixture
def manager_page(new_page, live_server, clinic):
    client = VerifiedClient()
    client.force_login(clinic[0])
    session = client.cookies[django_settings.SESSION_COOKIE_NAME].value

    def open_page(viewport):
        page = new_page(viewport=viewport)
        page.context.add_cookies([{"name": django_settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}])
        return page

    return open_page


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1366px"])
def test_the_payouts_pages_fit_the_screen_and_filter_with_htmx(live_server, clinic, manager_page, checks, viewport):
    _, in_transit = clinic
    page = manager_page(viewport)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    width = viewport["width"]

    page.goto(live_server.url + reverse("payouts:list"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Payouts")
    expect(page.get_by_text("$12,482.10")).to_be_visible()
    expect(page.get_by_text("$23,456.78").first).to_be_visible()
    checks.check(page, "payouts list")
    page.screenshot(path=str(SCREENSHOT_DIR / f"payouts-list-{width}px.png"), full_page=True)

    # Filter to failed payouts: htmx swaps the results and the address keeps the filter.
    status = page.locator("details.dropdown")
    status.locator("summary").click()
    page.get_by_label("Failed").check()
    expect(page.locator("#payout-results tbody tr")).to_have_count(4)
    assert "status=failed" in page.url
    expect(page.get_by_role("button", name="Export 4 payouts to CSV")).to_be_visible()
    checks.check(page, "payouts list, failed")

    page.goto(live_server.url + reverse("payouts:detail", args=[in_transit.pk]))
    expect(page.get_by_text("This payout does not reconcile.")).to_be_visible()
    expect(page.get_by_role("link", name=f"Transaction #{in_transit.lines.first().transaction_id}").first).to_be_visible()
    checks.check(page, "payout detail")
    page.screenshot(path=str(SCREENSHOT_DIR / f"payout-detail-{width}px.png"), full_page=True)

    assert page.evaluate("document.scrollingElement.scrollWidth") <= width
    checks.assert_clean()
