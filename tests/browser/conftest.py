"""Browser tests: Debian's Chromium driven by Playwright against the app served in-process.

One Chromium for all of them (started on first use), a fresh context (cookies, storage) for
each test, and pytest-django's ``live_server`` on a transactional database, so the browser and the
test read and write the same rows. Chromium is the system's (``/usr/bin/chromium``, or the path in
``CHROMIUM``); nothing downloads a browser. Without it the tests are skipped, except under CI,
where they fail.

When a browser test fails, each of its open pages is saved as a screenshot at 390 px and at
1366 px wide into ``.local/browser-screenshots/``; the paths are printed with the failure.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from .support import DESKTOP, PHONE, PageChecks

BASE_DIR = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = BASE_DIR / ".local" / "browser-screenshots"
CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
# We run as root in CI, where Chromium's sandbox cannot start; the rest keeps a headless Chromium
# from reaching out to Google's services or doing work no test needs.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Waits for the page (clicks, fills, expectations) allow for a machine busy with other work.
TIMEOUT_MS = 10_000


def _chromium_or_skip() -> str:
    path = shutil.which(CHROMIUM)
    if path is None:
        reason = f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}. CI must install it before the tests (see .ci/run).", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="package")
def browser():
    """One Chromium for all the browser tests, closed after the last of them.

    Playwright's synchronous API keeps its event loop running in this thread while it is open, so
    Django would take the tests' ORM calls for calls from async code and refuse them. They are
    plain synchronous calls made between browser steps, so Django is told to allow them, for as
    long as Playwright runs and no longer: the tests after this package keep Django's check.
    """
    executable = _chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)

    allowed_before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if allowed_before is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = allowed_before


@pytest.fixture
def site(live_server, settings):
    """The app at ``live_server.url``, with links in e-mails and SMS pointing at it."""
    settings.SITE_URL = live_server.url
    settings.CSRF_TRUSTED_ORIGINS = [live_server.url]
    # The live server speaks plain HTTP, whatever DEBUG says.
    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    return live_server.url


# Every page reports what its Content-Security-Policy refused, as Chromium's console does.
_CSP_LISTENER = """
document.addEventListener('securitypolicyviolation', (event) => {
  console.error('CSP violation: ' + event.violatedDirective + ' blocked ' + (event.blockedURI || 'inline')
    + ' at ' + document.location.pathname);
});
"""


@pytest.fixture
def new_page(browser, site, request):
    """new_page() → a page in a fresh browser context (its own cookies): one per person.

    A page whose Content-Security-Policy refused anything (an inline script or style, an on*
    attribute, a resource from elsewhere) fails the test when it ends."""
    contexts = []
    pages = []
    violations = []
    request.node.browser_pages = pages

    def listen(message):
        if message.text.startswith("CSP violation") or "Content Security Policy" in message.text or "Refused to" in message.text:
            violations.append(message.text)

    def open_page(*, viewport: dict = DESKTOP, locale: str = "en-US"):
        context = browser.new_context(base_url=site, viewport=viewport, locale=locale, accept_downloads=True)
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(_CSP_LISTENER)
        contexts.append(context)
        page = context.new_page()
        page.on("console", listen)
        pages.append(page)
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert violations == [], "The Content-Security-Policy refused:\n" + "\n".join(violations)


@pytest.fixture
def page(new_page):
    return new_page()


@pytest.fixture
def checks(request):
    """Axe-core and the 390 px width check on each page a test visits (see ``PageChecks``)."""
    page_checks = PageChecks()
    request.node.page_checks = page_checks
    return page_checks


def _screenshot_name(nodeid: str, index: int, width: int) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", nodeid.split("::")[-1]).strip("-")
    return f"{name}-page{index + 1}-{width}px.png"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    lines = []
    page_checks = getattr(item, "page_checks", None)
    if page_checks is not None and page_checks.problems:
        lines.append("Page checks that failed before this point:")
        lines.extend(f"  {problem}" for problem in page_checks.problems)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    for index, page in enumerate(getattr(item, "browser_pages", [])):
        if page.is_closed():
            continue
        for viewport in (PHONE, DESKTOP):
            path = SCREENSHOT_DIR / _screenshot_name(item.nodeid, index, viewport["width"])
            try:
                page.set_viewport_size(viewport)
                page.screenshot(path=str(path), full_page=True)
            except Exception as error:  # noqa: BLE001 — a screenshot must never hide the failure itself
                lines.append(f"Screenshot of {page.url} at {viewport['width']} px failed: {error}")
            else:
                lines.append(f"Screenshot of {page.url} at {viewport['width']} px: {path}")
    if lines:
        report.sections.append(("browser", "\n".join(lines)))
