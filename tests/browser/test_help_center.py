"""The Help Center in Debian's Chromium: a staff member follows "Help for this page", searches
"how do I refund", opens a ticket with a screenshot; every page passes axe-core with 0 violations
and does not scroll sideways at 390 px."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from helpcenter.articles import help_articles_sync
from helpcenter.help_models import SupportTicket
from org_profile.enums import Role
from tests.factories import LocationFactory, MembershipFactory, OrganizationFactory
from tests.two_step import VerifiedClient

from .support import PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def member_page(new_page, live_server):
    help_articles_sync()
    organization = OrganizationFactory(name="Riverside Family Medicine and Specialty Care")
    location = LocationFactory(organization=organization, name="Downtown Clinic")
    member = MembershipFactory(organization=organization, role=Role.STAFF, locations=[location]).user
    client = VerifiedClient()
    client.force_login(member)
    page = new_page(viewport=PHONE)
    page.context.add_cookies(
        [{"name": django_settings.SESSION_COOKIE_NAME, "value": client.cookies[django_settings.SESSION_COOKIE_NAME].value, "url": live_server.url}]
    )
    return page


def test_a_member_finds_how_to_refund_and_opens_a_ticket_on_a_phone(member_page, live_server, checks, tmp_path):
    page = member_page
    page.goto(live_server.url + reverse("patients:hub"))
    page.get_by_role("link", name="Help for this page").click()
    page.wait_for_url("**/help/articles/patients-hub/**")
    checks.check(page, "article")

    page.goto(live_server.url + reverse("helpcenter:index"))
    checks.check(page, "Help Center")
    page.get_by_label("Search the Help Center").fill("how do I refund")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/help/?q=*")
    first = page.locator(".help-results li").first
    assert "Refunds" in first.inner_text()
    checks.check(page, "search results")

    first.get_by_role("link").click()
    page.wait_for_url("**/help/articles/refunds/")
    checks.check(page, "refunds article")
    page.goto(live_server.url + reverse("helpcenter:article", args=["collection-rules"]))  # holds a table
    checks.check(page, "an article with a table")

    page.goto(live_server.url + reverse("helpcenter:ticket_new") + "?from=/patients/")
    checks.check(page, "ticket form")
    screenshot = tmp_path / "screen.png"
    screenshot.write_bytes(page.screenshot())
    page.get_by_label("Subject").fill("The Hub's search is slow")
    page.get_by_label("Your message").fill("Searching takes ten seconds this morning.")
    page.get_by_label("Attachments").set_input_files(str(screenshot))
    page.get_by_role("button", name="Send the ticket").click()
    page.wait_for_url("**/help/tickets/*/")
    checks.check(page, "ticket")
    page.goto(live_server.url + reverse("helpcenter:ticket_list"))
    checks.check(page, "tickets")

    checks.assert_clean()
    ticket = SupportTicket.objects.get()
    assert ticket.page_path == "/patients/" and ticket.messages.get().attachments.get().content_type == "image/png"
