"""The organization profile in Debian's Chromium, at 390 px and at 1366 px: an administrator reads
what Stripe still needs, changes the public name, and adds the controller; the pages pass axe-core,
nothing scrolls sideways on a phone, and no date of birth or SSN digits come back on any page.

The administrator is signed in through a session cookie: the sign-in has its own journey."""

from __future__ import annotations

import datetime

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from org_profile.enums import Role
from org_profile.models import Organization, OrganizationPerson
from org_profile.demo import demo_logo_png
from tests.factories import MembershipFactory, OrganizationFactory
from tests.two_step import VerifiedClient

from .support import DESKTOP, PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def administrator():
    organization = OrganizationFactory(
        name="Riverside Family Medicine and Specialty Care",
        logo_png=demo_logo_png(),
        stripe_account_id="acct_1RiversideDemo01",
        stripe_requirements={
            "currently_due": ["company.tax_id", "representative.dob.day"],
            "past_due": ["external_account"],
            "eventually_due": ["business_profile.url"],
        },
        stripe_current_deadline=timezone.now() + datetime.timedelta(days=9),
        stripe_account_updated_at=timezone.now(),
    )
    return MembershipFactory(organization=organization, role=Role.ADMINISTRATOR).user


@pytest.fixture
def signed_in(new_page, live_server, administrator):
    client = VerifiedClient()
    client.force_login(administrator)
    session = client.cookies[django_settings.SESSION_COOKIE_NAME].value

    def open_page(viewport):
        page = new_page(viewport=viewport)
        page.context.add_cookies([{"name": django_settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}])
        return page

    return open_page


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1366px"])
def test_an_administrator_keeps_the_profile_up_to_date(live_server, administrator, signed_in, checks, viewport):
    organization = Organization.objects.get(memberships__user=administrator)
    page = signed_in(viewport)

    page.goto(live_server.url + reverse("organization_profile"))
    expect(page.get_by_role("heading", name="Organization profile", level=1)).to_be_visible()
    expect(page.get_by_text("Stripe needs more information by")).to_be_visible()
    expect(page.locator("#stripe-past-due")).to_contain_text("A bank account for payouts")
    expect(page.locator("#stripe-currently-due")).to_contain_text("The clinic's tax ID (EIN)")
    expect(page.get_by_role("link", name="Stripe settings")).to_be_visible()
    expect(page.get_by_role("img", name="Riverside Family Medicine and Specialty Care's logo")).to_be_visible()
    checks.check(page, "profile")

    page.get_by_label("Public name").fill("Riverside Family Care")
    page.get_by_label("Statement descriptor").fill("RIVERSIDE*CARE")
    page.get_by_role("button", name="Save what patients see").click()
    expect(page.get_by_text("Leave out *: card statements cannot show")).to_be_visible()
    checks.check(page, "profile with an error")
    page.get_by_label("Statement descriptor").fill("Riverside Care")
    page.get_by_role("button", name="Save what patients see").click()
    expect(page.get_by_text("Saved what patients see.")).to_be_visible()

    page.get_by_role("link", name="Add an owner or the controller").click()
    checks.check(page, "add a person")
    page.get_by_label("First name").fill("Priya")
    page.get_by_label("Last name").fill("Natarajan")
    page.get_by_label("Title").fill("Medical Director")
    page.get_by_label("E-mail address").fill("priya@riverside.example")
    page.get_by_label("Phone").fill("(312) 555-0131")
    page.get_by_label("Date of birth").fill("1974-03-18")
    page.get_by_label("Last 4 digits of the SSN").fill("0418")
    page.get_by_label("Home address").fill("2101 Monument Avenue")
    page.get_by_label("City").fill("Chicago")
    page.get_by_label("State").select_option("IL")
    page.get_by_label("ZIP code").fill("60601")
    page.get_by_label("Controller (representative)").check()
    page.get_by_role("button", name="Add", exact=True).click()

    expect(page.get_by_text("Added Priya Natarajan.")).to_be_visible()
    expect(page.get_by_text("Date of birth on file · SSN last 4 on file")).to_be_visible()
    html = page.content()
    assert "1974" not in html and "0418" not in html
    page.get_by_role("link", name="Edit Priya Natarajan").click()
    expect(page.get_by_text("Date of birth: on file.")).to_be_visible()
    assert page.get_by_label("Date of birth").input_value() == ""
    checks.check(page, "edit a person")

    page.goto(live_server.url + reverse("organization_legal"))
    checks.check(page, "legal information")
    checks.assert_clean()
    organization.refresh_from_db()
    assert (organization.public_name, organization.statement_descriptor) == ("Riverside Family Care", "RIVERSIDE CARE")
    assert OrganizationPerson.objects.get(organization=organization).is_controller
