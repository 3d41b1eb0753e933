"""Luma U in Debian's Chromium at 390 px and 1366 px: an administrator (the fullest header) finds
Luma U beside Security, opens a lesson, fails its quiz with an explanation, passes it on a retry,
and opens the team's progress; axe-core finds nothing on any page and nothing scrolls sideways.

The administrator is signed in through a session cookie: the sign-in page has its own journey.
"""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from playwright.sync_api import expect

from helpcenter.luma_u.content import MANAGERS_TRACK
from org_profile.enums import Role
from tests.factories import MembershipFactory, OrganizationFactory
from tests.two_step import VerifiedClient

from .conftest import SCREENSHOT_DIR
from .support import DESKTOP, PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def administrator_page(new_page, live_server):
    organization = OrganizationFactory(name="Riverside Family Medicine and Specialty Care")
    administrator = MembershipFactory(organization=organization, role=Role.ADMINISTRATOR).user
    MembershipFactory(organization=organization, role=Role.STAFF)
    client = VerifiedClient()
    client.force_login(administrator)
    session = client.cookies[django_settings.SESSION_COOKIE_NAME].value

    def open_page(viewport):
        page = new_page(viewport=viewport)
        page.context.add_cookies([{"name": django_settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}])
        return page

    return open_page


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1366px"])
def test_a_lesson_its_quiz_and_the_team_fit_the_screen(live_server, administrator_page, checks, viewport):
    page = administrator_page(viewport)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    width = viewport["width"]
    lesson = MANAGERS_TRACK.lessons[1]

    page.goto(live_server.url + reverse("transactions:dashboard"))
    # The header keeps every link inside the window, Luma U included.
    luma_u = page.get_by_role("link", name="Luma U", exact=True)
    expect(luma_u).to_be_visible()
    box = luma_u.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    assert page.evaluate("document.querySelector('.topbar').scrollWidth") <= width
    luma_u.click()

    expect(page.get_by_role("heading", level=1)).to_have_text(f"Luma U: {MANAGERS_TRACK.title}")
    expect(page.get_by_text(f"0 of {len(MANAGERS_TRACK.lessons)} lessons passed")).to_be_visible()
    checks.check(page, "Luma U track")
    page.screenshot(path=str(SCREENSHOT_DIR / f"luma-u-track-{width}px.png"), full_page=True)

    page.get_by_role("link", name=f"2. {lesson.title}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(lesson.title)
    checks.check(page, "Luma U lesson")

    # First try: the first question wrong.
    for number, question in enumerate(lesson.questions):
        group = page.get_by_role("group", name=question.text, exact=False)
        choice = question.correct if number else next(o for o, _t in question.options if o != question.correct)
        group.get_by_label(question.option_text(choice), exact=True).check()
    page.get_by_role("button", name="Check my answers").click()
    total = len(lesson.questions)
    expect(page.get_by_text(f"{total - 1} of {total} right.")).to_be_visible()
    expect(page.get_by_text(lesson.questions[0].explanation, exact=False)).to_be_visible()
    checks.check(page, "Luma U quiz, one wrong")

    for question in lesson.questions:
        page.get_by_role("group", name=question.text, exact=False).get_by_label(
            question.option_text(question.correct), exact=True
        ).check()
    page.get_by_role("button", name="Check my answers").click()
    expect(page.get_by_text(f"All {total} answers right: quiz passed.")).to_be_visible()
    checks.check(page, "Luma U quiz, passed")
    page.screenshot(path=str(SCREENSHOT_DIR / f"luma-u-lesson-{width}px.png"), full_page=True)

    page.goto(live_server.url + reverse("helpcenter:luma_u:team"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your team's Luma U progress")
    expect(page.get_by_text(f"1 of {len(MANAGERS_TRACK.lessons)}")).to_be_visible()
    checks.check(page, "Luma U team")
    page.screenshot(path=str(SCREENSHOT_DIR / f"luma-u-team-{width}px.png"), full_page=True)

    assert page.evaluate("document.scrollingElement.scrollWidth") <= width
    checks.assert_clean()
