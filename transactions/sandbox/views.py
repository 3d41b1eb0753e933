"""The Sandbox processor's hosted checkout page.

It stands for the processor's own site (where Stripe Checkout would be): not one of our tenant
pages, it shows only what the processor knows (merchant name, amount) and no patient data. Test
cards only. Card numbers typed here are never shown back or logged.

Its pages and messages are in the checkout's ``locale``, which the merchant chose when it opened
the checkout (LumaPay passes the language the patient read the pay page in), as Stripe Checkout's
are; ``"auto"`` follows the browser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext as _, gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from lumapay.tenant_rls import all_organizations, organization_scope

from . import processor
from .enums import SandboxSessionStatus
from .forms import SandboxCardForm
from .processor import TEST_CARDS, CardEntryError

OUTCOME_LABELS = {
    "succeeds": gettext_lazy("Succeeds"),
    "declined": gettext_lazy("Declined"),
    "insufficient_funds": gettext_lazy("Declined: insufficient funds"),
    "authenticate": gettext_lazy("Asks for authentication: you choose to pass or fail it"),
    "refund_fails": gettext_lazy("Succeeds; any refund of it fails"),
    "declined_when_charged": gettext_lazy("Kept on file, then declined whenever it is charged"),
}


def _grouped(number: str) -> str:
    if len(number) == 15:  # American Express: 4-6-5
        return f"{number[:4]} {number[4:10]} {number[10:]}"
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))


def _test_cards() -> list[dict]:
    return [
        {"number": _grouped(number), "brand": card.brand.title(), "outcome": OUTCOME_LABELS.get(card.outcome, card.outcome)}
        for number, card in TEST_CARDS.items()
    ]


def _language(request, session) -> str:
    """The checkout's locale; for ``"auto"``, the browser's language if the Sandbox speaks it."""
    if session.locale in processor.session_locales():
        return session.locale
    return translation.get_language_from_request(request)


def _checkout_page(view):
    """Find the checkout (or 404) and run the page in its language, said in Content-Language."""

    @never_cache
    @wraps(view)
    def wrapper(request, session_id: str):
        # The checkout's id names its merchant: found across clinics (reviewed), then the page
        # runs in that clinic's database scope, like a pay page.
        with all_organizations():
            session = processor.session_get(session_id)
        if session is None:
            raise Http404("No such Sandbox checkout.")
        language = _language(request, session)
        with organization_scope(session.organization_id), translation.override(language):
            response = view(request, session)
        response.headers["Content-Language"] = language
        return response

    return wrapper


def _closed_message(session) -> str:
    if session.status == SandboxSessionStatus.EXPIRED or session.expires_at <= timezone.now():
        return _(processor.CHECKOUT_EXPIRED)
    return ""


def _render_card_page(request, template: str, session, *, form=None, error: str = "", decline: str = "", status: int = 200):
    """A page where the patient types a card (the checkout, or saving a card). ``error`` and
    ``decline`` are the processor's English messages: shown in the page's language."""
    return render(
        request,
        template,
        {
            "session": session,
            "form": form or SandboxCardForm(),
            "error": _(error) if error else "",
            "decline": _(decline) if decline else "",
            "closed_message": _closed_message(session),
            "test_cards": _test_cards(),
        },
        status=status,
    )


@dataclass(frozen=True)
class _CardFlow:
    """One of the Sandbox's pages where a card is typed (the checkout, or saving a card), with
    its authentication step: the same steps, other templates and processor calls."""

    template: str
    authenticate_template: str
    page: str  # the URL name of the card page…
    authenticate_page: str  # …and of its authentication step
    submit: Callable[..., processor.CardAttempt]
    authentication_complete: Callable[..., processor.CardAttempt]


def _card_entry(request, session, flow: _CardFlow):
    if session.status == SandboxSessionStatus.COMPLETE:
        # A second tap (or Back to this page) after it went through: back to the clinic's
        # confirmation, as a processor's hosted page does, never a charge or an error.
        return redirect(session.success_url)
    if session.status == SandboxSessionStatus.AWAITING_AUTHENTICATION:
        return redirect(flow.authenticate_page, session_id=session.id)
    if request.method != "POST" or _closed_message(session):
        return _render_card_page(request, flow.template, session)

    form = SandboxCardForm(request.POST)
    if not form.is_valid():
        return _render_card_page(request, flow.template, session, form=form, status=400)
    data = form.cleaned_data
    try:
        attempt = flow.submit(
            session_id=session.id,
            card_number=data["number"],
            expiry_month=data["expiry_month"],
            expiry_year=data["expiry_year"],
            cvc=data["cvc"],
        )
    except CardEntryError as error:
        session.refresh_from_db()
        if session.status == SandboxSessionStatus.COMPLETE:  # the other tap went through meanwhile
            return redirect(session.success_url)
        return _render_card_page(request, flow.template, session, form=form, error=error.message, status=400)
    if attempt.outcome == "succeeded":
        return redirect(attempt.redirect_url)
    if attempt.outcome == "authenticate":
        return redirect(flow.authenticate_page, session_id=session.id)
    # Declined: the page stays open for another card; the form starts empty.
    return _render_card_page(request, flow.template, session, decline=attempt.message, status=402)


def _card_authenticate(request, session, flow: _CardFlow):
    if session.status != SandboxSessionStatus.AWAITING_AUTHENTICATION:
        return redirect(flow.page, session_id=session.id)
    if request.method == "POST":
        passed = request.POST.get("result") == "pass"
        try:
            attempt = flow.authentication_complete(session_id=session.id, passed=passed)
        except CardEntryError as error:
            session.refresh_from_db()
            return _render_card_page(request, flow.template, session, error=error.message, status=400)
        if attempt.outcome == "succeeded":
            return redirect(attempt.redirect_url)
        session.refresh_from_db()
        return _render_card_page(request, flow.template, session, decline=attempt.message, status=402)
    return render(request, flow.authenticate_template, {"session": session})


_CHECKOUT = _CardFlow(
    template="sandbox/checkout.html",
    authenticate_template="sandbox/authenticate.html",
    page="sandbox:checkout",
    authenticate_page="sandbox:authenticate",
    submit=processor.card_submit,
    authentication_complete=processor.authentication_complete,
)
_CARD_SETUP = _CardFlow(
    template="sandbox/card_setup.html",
    authenticate_template="sandbox/card_setup_authenticate.html",
    page="sandbox:card_setup",
    authenticate_page="sandbox:card_setup_authenticate",
    submit=processor.setup_card_submit,
    authentication_complete=processor.setup_authentication_complete,
)


@require_http_methods(["GET", "HEAD", "POST"])
@_checkout_page
def checkout(request, session):
    return _card_entry(request, session, _CHECKOUT)


@require_http_methods(["GET", "HEAD", "POST"])
@_checkout_page
def authenticate(request, session):
    return _card_authenticate(request, session, _CHECKOUT)


# -- the "save your card" page (cards on file) --------------------------------------------------------


def _setup_page(view):
    """Find the card page (or 404) and run it in its language, as ``_checkout_page`` does."""

    @never_cache
    @wraps(view)
    def wrapper(request, session_id: str):
        with all_organizations():
            session = processor.setup_session_get(session_id)
        if session is None:
            raise Http404("No such Sandbox card page.")
        language = _language(request, session)
        with organization_scope(session.organization_id), translation.override(language):
            response = view(request, session)
        response.headers["Content-Language"] = language
        return response

    return wrapper


@require_http_methods(["GET", "HEAD", "POST"])
@_setup_page
def card_setup(request, session):
    """The Sandbox's page where the patient enters a card to keep on file: nothing is charged."""
    return _card_entry(request, session, _CARD_SETUP)


@require_http_methods(["GET", "HEAD", "POST"])
@_setup_page
def card_setup_authenticate(request, session):
    return _card_authenticate(request, session, _CARD_SETUP)
