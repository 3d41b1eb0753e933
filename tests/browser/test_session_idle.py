"""The idle warning in a real browser: a minute (here: a few seconds) before the idle sign-out a
dialog counts down with "Stay signed in", which keeps the member signed in and what they typed on
the page; left alone, the page goes to the sign-in page, which says why and returns afterwards.
Axe-core checks the sign-in, confirm-password and Members pages."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from ..two_step import authenticator_for, fresh_totp_code
from .support import PASSWORD, sign_in

pytestmark = pytest.mark.browser

# Waits for the countdown, longer than the page checks' default.
COUNTDOWN_MS = 30_000


@pytest.fixture
def short_idle(settings):
    # Signed out after 15 s without activity, warned 10 s before (the product: 15 min, 60 s).
    settings.SESSION_IDLE_TIMEOUT_SECONDS_OVERRIDE = 15
    settings.SESSION_IDLE_WARNING_SECONDS = 10


def test_stay_signed_in_keeps_the_work_and_idling_on_signs_out(page, checks, short_idle, organization, administrator):
    sign_in(page, administrator, checks)
    page.goto("/accounts/organization/profile/")
    page.get_by_label("Public name").fill("Riverside Family Care")

    # The warning opens by itself, counting down.
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible(timeout=COUNTDOWN_MS)
    expect(dialog.get_by_role("heading")).to_have_text(re.compile(r"^You will be signed out in ([1-9]|10) s$"))
    checks.check(page, "idle warning")

    # Stay signed in: the dialog closes, the page and what was typed stay.
    dialog.get_by_role("button", name="Stay signed in").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_label("Public name")).to_have_value("Riverside Family Care")

    # Left alone again: the warning comes back and, at zero, the sign-in page says why.
    expect(dialog).to_be_visible(timeout=COUNTDOWN_MS)
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=%2Faccounts%2Forganization%2Fprofile%2F$"), timeout=COUNTDOWN_MS)
    expect(page.get_by_role("status")).to_have_text("You were signed out after 1 minute without activity.")
    checks.check(page, "sign-in after the idle sign-out")

    # Signing in again (the password, then the authenticator's code) returns to the page.
    page.get_by_label("E-mail address").fill(administrator.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Enter your sign-in code", level=1)).to_be_visible()
    page.get_by_label("Sign-in code").fill(fresh_totp_code(authenticator_for(administrator)))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Organization profile")
    checks.assert_clean()


def test_the_confirm_password_and_members_pages_pass_axe(page, checks, organization, administrator):
    sign_in(page, administrator)
    page.goto("/accounts/confirm-password/?next=/accounts/members/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your password")
    checks.check(page, "confirm password")

    page.get_by_label("Password").fill("not my password")
    page.get_by_role("button", name="Confirm and continue").click()
    expect(page.get_by_text("That is not your password. Try again.")).to_be_visible()
    checks.check(page, "confirm password (wrong)")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Confirm and continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Members")
    checks.check(page, "members")
    checks.assert_clean()


def test_the_locked_sign_in_page_passes_axe(page, checks, organization, staff_user):
    page.goto("/accounts/login/")
    for _ in range(10):
        page.get_by_label("E-mail address").fill(staff_user.email)
        page.get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()

    expect(page.get_by_role("alert")).to_contain_text("Sign-in is paused after too many failed attempts")
    checks.check(page, "sign-in (locked)")
    checks.assert_clean()
