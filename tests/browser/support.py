"""What the browser tests share: page checks (axe-core, phone width), signing in, paying.

Steps find things as people do, by role, label and visible text, not by CSS classes.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

PASSWORD = "correct horse battery"  # tests/factories.py's UserFactory
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
PHONE_WIDTH = PHONE["width"]
CARD_YEAR = str(datetime.date.today().year + 3)
SUCCEEDS = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0002"
AUTHENTICATE = "4000 0025 0000 3155"

_axe = Axe()

# Lists, per element, what sticks out past the right edge of a 390 px window.
_OVERFLOW_SCRIPT = """() => {
  const width = window.innerWidth;
  const scroll = document.scrollingElement.scrollWidth;
  // Does a scrolling or clipping ancestor hide the element's overflow? An absolutely positioned
  // element escapes every such ancestor below its containing block (its nearest positioned one).
  const clipped = (element) => {
    let position = getComputedStyle(element).position;
    if (position === 'fixed') return false;
    for (let up = element.parentElement; up && up !== document.documentElement; up = up.parentElement) {
      const style = getComputedStyle(up);
      if (position === 'absolute') {
        if (style.position === 'static') continue;
        position = style.position;
      }
      if (style.overflowX !== 'visible') return true;
    }
    return false;
  };
  const sticksOut = (element) => {
    const box = element.getBoundingClientRect();
    return box.width > 0 && box.right > width + 1 && !clipped(element);
  };
  const wide = [];
  if (scroll > width) {
    for (const element of document.body.querySelectorAll('*')) {
      if (!sticksOut(element) || (element.parentElement !== document.body && sticksOut(element.parentElement))) continue;
      const name = element.id ? '#' + element.id : element.tagName.toLowerCase()
        + (typeof element.className === 'string' && element.className.trim()
           ? '.' + element.className.trim().split(/\\s+/).join('.') : '');
      const text = element.textContent.trim().slice(0, 40);
      const right = Math.round(element.getBoundingClientRect().right);
      wide.push(name + (text ? ' "' + text + '"' : '') + ' (right edge ' + right + ' px)');
      if (wide.length >= 5) break;
    }
  }
  return {width, scroll, wide};
}"""


@dataclass
class PageChecks:
    """Checks each page a journey visits; a journey ends with ``assert_clean()``.

    A problem is recorded, not raised, so one journey reports every page that fails (and a
    journey that breaks half-way still lists what it found, with its screenshots).
    """

    problems: list[str] = field(default_factory=list)

    def check(self, page: Page, name: str) -> None:
        """axe-core on the page as shown (0 violations of any impact), then no sideways scroll at 390 px."""
        page.wait_for_load_state()
        results = _axe.run(page).response
        for violation in results["violations"]:
            targets = "; ".join(", ".join(node["target"]) for node in violation["nodes"][:5])
            self.problems.append(
                f"{name} ({_path(page)}): axe {violation['id']} ({violation['impact']}): {violation['help']} — {targets}"
            )
        self._check_phone_width(page, name)

    def _check_phone_width(self, page: Page, name: str) -> None:
        viewport = page.viewport_size
        if viewport["width"] != PHONE_WIDTH:
            page.set_viewport_size(PHONE)
        try:
            measured = page.evaluate(_OVERFLOW_SCRIPT)
        finally:
            if viewport["width"] != PHONE_WIDTH:
                page.set_viewport_size(viewport)
        if measured["scroll"] > measured["width"]:
            self.problems.append(
                f"{name} ({_path(page)}): scrolls sideways at {PHONE_WIDTH} px "
                f"(content {measured['scroll']} px wide): {', '.join(measured['wide']) or 'no single element found'}"
            )

    def assert_clean(self) -> None:
        assert self.problems == [], "Pages failed their checks:\n" + "\n".join(self.problems)


def _path(page: Page) -> str:
    return re.sub(r"^https?://[^/]+", "", page.url)


# -- staff ------------------------------------------------------------------------------------------


def _authenticator_needed(user):
    """The user's authenticator app when they sign in in two steps: the one they have, or one set up
    now (as if they had set it up before) when their role or organization requires it."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from org_profile.selectors import memberships_of, mfa_required
    from tests.two_step import authenticator_for

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None and mfa_required(user=user, memberships=list(memberships_of(user=user))):
        device = authenticator_for(user)
    return device


def sign_in(page: Page, user, checks: PageChecks | None = None) -> None:
    """Sign in from the sign-in page with the factories' password and, for whoever signs in in two
    steps, the current code of their authenticator app; lands on the dashboard."""
    from tests.two_step import fresh_totp_code

    authenticator = _authenticator_needed(user)
    page.goto("/accounts/login/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to LumaPay")
    if checks is not None:
        checks.check(page, "sign-in")
    page.get_by_label("E-mail address").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    if authenticator is not None:
        expect(page.get_by_role("heading", name="Enter your sign-in code", level=1)).to_be_visible()
        if checks is not None:
            checks.check(page, "sign-in code")
        page.get_by_label("Sign-in code").fill(fresh_totp_code(authenticator))
        page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Transactions", level=1)).to_be_visible()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/accounts/(login|logout)/"))


# -- the patient ------------------------------------------------------------------------------------


def date_of_birth_enter(page: Page, date: datetime.date) -> None:
    page.get_by_role("textbox", name=re.compile("^(Month|Mes)$")).fill(f"{date.month:02d}")
    page.get_by_role("textbox", name=re.compile("^(Day|Día)$")).fill(f"{date.day:02d}")
    page.get_by_role("textbox", name=re.compile("^(Year|Año)$")).fill(str(date.year))


# The Sandbox's checkout speaks the language the pay page opened it in.
_CARD_LABELS = {
    "en": ("Card number", "Expiry month", "Expiry year", "CVC"),
    "es": ("Número de tarjeta", "Mes de vencimiento", "Año de vencimiento", "CVC"),
}
_PAY = {"en": "Pay", "es": "Pagar"}


def card_enter(page: Page, number: str, *, cvc: str = "123", language: str = "en") -> None:
    """Type a test card on the Sandbox's hosted checkout, labelled in ``language``."""
    card_number, month, year, security_code = _CARD_LABELS[language]
    page.get_by_label(card_number).fill(number)
    page.get_by_label(month).fill("12")
    page.get_by_label(year).fill(CARD_YEAR)
    page.get_by_label(security_code).fill(cvc)


def sandbox_pay_button(page: Page, amount: str, *, language: str = "en"):
    return page.get_by_role("button", name=f"{_PAY[language]} {amount}", exact=True)
