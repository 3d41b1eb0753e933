"""Two-step sign-in in Chromium: a manager sets up an authenticator app at their first sign-in (the
key read off the page, as a person types it into the app), keeps the backup codes, signs in again
with a code, then with a backup code; an administrator sees who set it up. axe-core checks each page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from org_profile.enums import Role
from tests.two_step import fresh_totp_code, totp_code

from ..factories import MembershipFactory, OrganizationFactory, UserFactory
from .support import PASSWORD, sign_in, sign_out

pytestmark = pytest.mark.browser


def _password(page, email):
    page.goto("/accounts/login/")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_a_manager_sets_up_two_step_sign_in_then_signs_in_with_a_code_and_a_backup_code(page, checks, settings):
    import base64

    from django_otp.plugins.otp_totp.models import TOTPDevice

    # After a wrong code django-otp makes the next try wait a second; this journey tries again at once.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    organization = OrganizationFactory(name="Riverside Family Medicine")
    manager = MembershipFactory(
        organization=organization, role=Role.MANAGER, user=UserFactory(email="manager@riverside.example")
    ).user
    administrator = MembershipFactory(organization=organization, role=Role.ADMINISTRATOR).user

    # The first sign-in: the password, then setting up an app before anything else
    _password(page, manager.email)
    expect(page.get_by_role("heading", name="Set up two-step sign-in", level=1)).to_be_visible()
    expect(page.get_by_role("img", name="QR code that adds LumaPay to an authenticator app")).to_be_visible()
    checks.check(page, "set up two-step sign-in")
    page.get_by_role("link", name="Hub").click()
    expect(page.get_by_role("heading", name="Set up two-step sign-in", level=1)).to_be_visible()
    key_typed = page.locator("#setup-key").inner_text()
    key = base64.b32decode(key_typed.replace(" ", "") + "=" * (-len(key_typed.replace(" ", "")) % 8)).hex()
    page.get_by_label("6-digit code").fill(totp_code(key))
    page.get_by_role("button", name="Turn on two-step sign-in").click()

    # The backup codes, shown once
    expect(page.get_by_role("heading", name="Your backup codes", level=1)).to_be_visible()
    checks.check(page, "backup codes")
    codes = page.locator(".backup-codes code").all_inner_texts()
    assert len(codes) == 10
    expect(page.get_by_role("link", name="Download the codes")).to_have_attribute("download", "lumapay-backup-codes.txt")
    page.get_by_role("link", name="I have saved my codes: continue").click()
    expect(page.get_by_role("heading", name="Hub", level=1)).to_be_visible()
    page.get_by_role("link", name="Security").click()
    expect(page.get_by_text("Backup codes left: 10")).to_be_visible()
    checks.check(page, "sign-in security")
    sign_out(page)

    # Signing in again: the password, then the code the app shows
    device = TOTPDevice.objects.get(user=manager)
    _password(page, manager.email)
    expect(page.get_by_role("heading", name="Enter your sign-in code", level=1)).to_be_visible()
    page.get_by_label("Sign-in code").fill("000000" if fresh_totp_code(device) != "000000" else "111111")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("That code did not work.")
    checks.check(page, "sign-in code, wrong code")
    page.get_by_label("Sign-in code").fill(fresh_totp_code(device))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Transactions", level=1)).to_be_visible()
    sign_out(page)

    # A lost phone: a backup code, once
    _password(page, manager.email)
    page.get_by_label("Sign-in code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text("You signed in with a backup code; 9 left.")).to_be_visible()
    sign_out(page)

    # The administrator sees who has set it up
    sign_in(page, administrator, checks)
    page.goto("/accounts/members/")
    expect(page.get_by_role("heading", name="Members", level=1)).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("manager@riverside.example"))).to_contain_text("Set up")
    checks.check(page, "members")
    checks.assert_clean()
