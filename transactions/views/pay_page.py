"""The patient's pay page: open the link, confirm the date of birth, see the request, pay on the
gateway's hosted page, come back to the confirmation.

No account: a passed date-of-birth check is remembered in the session, per link, for
``VERIFICATION_LIFETIME_SECONDS`` since the last page the patient opened. Pages are in the
patient's language (their preferred language, or the one they chose with the switch for this link).
"""

from __future__ import annotations

import ipaddress
import math
import time
import uuid
from functools import wraps

from django.conf import settings
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _, gettext_noop
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from lumapay.audit import client_ip
from lumapay.errors import ApplicationError
from lumapay.tenant_rls import all_organizations, organization_scope
from org_profile.access import found_or_404
from org_profile.models import Organization

from ..enums import PaymentRequestStatus as State, SavedCardStatus
from ..forms.pay_page import DateOfBirthForm
from ..gateways.base import GatewayError
from ..links import payment_request_from_token
from ..pay_page_panels import pay_page_panel_context, pay_page_panel_templates
from ..selectors.saved_cards import card_on_file_offered, saved_card_of_patient, saved_card_of_setup, saved_cards_active
from ..services.payments import (
    DateOfBirthMismatch,
    PaymentLinkLocked,
    PaymentLinkUnavailable,
    VerificationRateLimited,
    checkout_begin,
    checkout_outcome_record,
    payment_link_open,
    payment_link_verify,
    payment_request_lock_remaining,
    payment_request_state,
)
from ..services.payment_plans import payment_plan_card_change, plan_link_purpose
from ..services.receipts import receipt_context
from ..services.saved_cards import (
    card_on_file_consent_text,
    saved_card_remove,
    saved_card_setup_begin,
    saved_card_setup_complete,
)

SESSION_KEY = "pay_links"
VERIFICATION_LIFETIME_SECONDS = 30 * 60
LANGUAGE_CODES = [code for code, _name in settings.LANGUAGES]
LANGUAGE_NAMES = {"en": "English", "es": "Español"}

# What gateways say about a declined card, listed so the catalogue carries their translations:
# the pages show a gateway's message with {% translate %}, and one not listed here as written.
GATEWAY_MESSAGES = [
    gettext_noop("Your card was declined."),
    gettext_noop("Your card has insufficient funds."),
    gettext_noop("We could not authenticate your payment method. Choose another payment method and try again."),
]


# -- per-link session state -----------------------------------------------------------------------


def _link_state(request, payment_request) -> dict:
    return request.session.get(SESSION_KEY, {}).get(payment_request.public_id.hex, {})


def _link_state_update(request, payment_request, **values) -> None:
    links = request.session.get(SESSION_KEY, {})
    links.setdefault(payment_request.public_id.hex, {}).update(values)
    request.session[SESSION_KEY] = links


def _is_verified(request, payment_request) -> bool:
    """Whether this session passed the date-of-birth check for this link lately (and keep it so)."""
    if _link_state(request, payment_request).get("verified_until", 0) <= time.time():
        return False
    _link_state_update(request, payment_request, verified_until=time.time() + VERIFICATION_LIFETIME_SECONDS)
    return True


def _verified_remember(request, payment_request) -> None:
    # A new session key once the patient proves who they are, as a sign-in would (no fixation).
    request.session.cycle_key()
    _link_state_update(request, payment_request, verified_until=time.time() + VERIFICATION_LIFETIME_SECONDS)


def _language_for(request, payment_request) -> str:
    requested = request.GET.get("lang")
    if requested in LANGUAGE_CODES:
        _link_state_update(request, payment_request, lang=requested)
        return requested
    chosen = _link_state(request, payment_request).get("lang")
    if chosen in LANGUAGE_CODES:
        return chosen
    preferred = payment_request.patient.preferred_language
    return preferred if preferred in LANGUAGE_CODES else settings.LANGUAGE_CODE


def patient_ip(request) -> str | None:
    """The patient's address as recorded on their page's audit events (None when unusable)."""
    address = client_ip(request)
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None


# -- rendering ------------------------------------------------------------------------------------


def patient_page_finish(response, language: str):
    """What every page a patient opens from a link answers with (the pay page's, a form's)."""
    response.headers["Content-Language"] = language
    # The link's token is in the address: never send it to another site.
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _pay_page(view):
    """Resolve the token (an invalid one gets the 404 page), pick the language, render in it."""

    @never_cache
    @wraps(view)
    def wrapper(request, token):
        # The link names its request, and the request its clinic: the one lookup a patient's
        # page makes across clinics (reviewed); the page then runs in that clinic's scope.
        with all_organizations():
            payment_request = payment_request_from_token(token)
        if payment_request is None:
            return _invalid_link(request, token)
        with organization_scope(payment_request.organization_id):
            language = _language_for(request, payment_request)
            with translation.override(language):
                response = view(request, payment_request, token)
        return patient_page_finish(response, language)

    return wrapper


def clinic_context(organization, location=None) -> dict:
    """The clinic's name, contact and logo that a patient's page shows."""
    return {
        "clinic": organization,
        "clinic_name": organization.display_name if organization else "",
        "clinic_phone": (organization.support_phone if organization else "") or (location.phone if location else ""),
        "clinic_email": organization.support_email if organization else "",
        "clinic_website": organization.website if organization else "",
        "clinic_logo": organization.logo_data_uri if organization else "",
    }


def language_links_for(request) -> list[dict]:
    """The page in each language the patient may choose."""
    current = translation.get_language()
    return [
        {"code": code, "name": LANGUAGE_NAMES.get(code, code), "url": f"{request.path}?lang={code}", "current": code == current}
        for code in LANGUAGE_CODES
    ]


def _render(request, payment_request, token, template: str, context: dict | None = None, status: int = 200):
    page = {
        "payment_request": payment_request,
        "token": token,
        "language_links": language_links_for(request),
        **clinic_context(payment_request.organization, payment_request.location),
        **(context or {}),
    }
    return render(request, f"transactions/pay/{template}", page, status=status)


def _organization_named_by(token: str) -> Organization | None:
    """The clinic behind a link whose signature was cut short or altered but whose first part
    (the request's random public id) is intact: its public name and phone help the patient ask for
    a new link. Nothing about the request itself is shown."""
    head = token.partition(":")[0]
    try:
        public_id = uuid.UUID(hex=head)
    except ValueError:
        return None
    with all_organizations():  # which clinic a link belongs to (reviewed): its public name only
        return Organization.objects.filter(payment_requests__public_id=public_id).first()


@never_cache
def _invalid_link(request, token):
    language = request.GET.get("lang")
    if language not in LANGUAGE_CODES:
        language = translation.get_language()
    organization = _organization_named_by(token)
    with translation.override(language):
        response = render(
            request,
            "transactions/pay/invalid.html",
            {"language_links": language_links_for(request), **clinic_context(organization)},
            status=404,
        )
    return patient_page_finish(response, language)


def _locked_minutes(payment_request) -> int:
    remaining = payment_request_lock_remaining(payment_request)
    return max(1, math.ceil(remaining.total_seconds() / 60)) if remaining else 0


def _closed(request, payment_request, token, state: str):
    """Expired or cancelled: say so and who to ask. The request stays on record, unpaid."""
    return _render(request, payment_request, token, "closed.html", {"state": state}, status=410)


# -- the pages ------------------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
@_pay_page
def verify(request, payment_request, token):
    """The clinic's name and the date-of-birth question; nothing else before it is answered."""
    ip_address = patient_ip(request)
    state = payment_request_state(payment_request)
    if request.method != "POST":
        payment_link_open(payment_request=payment_request, ip_address=ip_address)
    if state in (State.CANCELLED, State.EXPIRED):
        return _closed(request, payment_request, token, state)
    verified = _is_verified(request, payment_request)
    if verified:
        return redirect("pay:done" if state == State.PAID else "pay:details", token=token)

    form = DateOfBirthForm(request.POST if request.method == "POST" else None)
    locked_minutes = _locked_minutes(payment_request)
    rate_limited = False
    if request.method == "POST" and form.is_valid():
        try:
            payment_link_verify(
                payment_request=payment_request,
                date_of_birth=form.cleaned_data["date_of_birth"],
                ip_address=ip_address,
            )
        except DateOfBirthMismatch as error:
            form.add_error(None, error.message)
        except PaymentLinkLocked:
            payment_request.refresh_from_db(fields=["verification_locked_until", "failed_verification_count"])
            locked_minutes = _locked_minutes(payment_request)
        except VerificationRateLimited:
            rate_limited = True
        except PaymentLinkUnavailable as error:
            return _closed(request, payment_request, token, error.state)
        else:
            _verified_remember(request, payment_request)
            return redirect("pay:done" if state == State.PAID else "pay:details", token=token)
    return _render(
        request,
        payment_request,
        token,
        "verify.html",
        {
            "form": form,
            "state": state,
            "locked_minutes": locked_minutes,
            "rate_limited": rate_limited,
        },
        status=429 if (rate_limited or locked_minutes) and request.method == "POST" else 200,
    )


@require_http_methods(["GET", "HEAD"])
@_pay_page
def details(request, payment_request, token):
    """Amount, reason and where it is from, with the "Pay" button."""
    if payment_request_state(payment_request) != State.OPEN or not _is_verified(request, payment_request):
        return redirect("pay:verify", token=token)
    last_attempt = payment_request.transactions.order_by("-created_at", "-id").first()
    last_failure = last_attempt.last_error if last_attempt and last_attempt.charged_cents == 0 else ""
    return _render(
        request,
        payment_request,
        token,
        "details.html",
        {
            "last_failure": last_failure,
            "plan_purpose": plan_link_purpose(payment_request),
            "plan_instalment": payment_request.plan_instalments.select_related("plan", "plan__saved_card").first(),
            "card_consent_text": card_on_file_consent_text(payment_request.organization),
            "pay_page_panels": pay_page_panel_templates(),
            **pay_page_panel_context(payment_request),
            **_cards_context(payment_request),
        },
    )


@require_POST
@_pay_page
def checkout(request, payment_request, token):
    """Start (or resume) the gateway's hosted checkout and send the patient there."""
    if not _is_verified(request, payment_request):
        return redirect("pay:verify", token=token)
    try:
        # The hosted checkout speaks the language the patient reads this page in.
        start = checkout_begin(payment_request=payment_request, ip_address=patient_ip(request), locale=translation.get_language())
    except PaymentLinkUnavailable as error:
        return redirect("pay:done" if error.state == State.PAID else "pay:verify", token=token)
    except GatewayError:
        return _render(
            request,
            payment_request,
            token,
            "details.html",
            {"checkout_error": _("We could not reach the payment service. Nothing was charged. Please try again in a minute.")},
            status=502,
        )
    return redirect(start.redirect_url)


@require_http_methods(["GET", "HEAD"])
@_pay_page
def done(request, payment_request, token):
    """The confirmation. When the gateway's event has not arrived yet, ask the gateway and record
    what it says through the same ledger path (one ledger event whichever comes first)."""
    if not _is_verified(request, payment_request):
        return redirect("pay:verify", token=token)
    transactions = payment_request.transactions.exclude(gateway_checkout_id="")
    transaction = (
        transactions.filter(charged_cents__gt=0).first() or transactions.order_by("-created_at", "-id").first()
    )
    if transaction is None:
        return redirect("pay:verify", token=token)
    if transaction.charged_cents == 0:
        try:
            checkout_outcome_record(transaction=transaction)
        except GatewayError:
            pass  # shown as "still confirming"; the gateway's event will settle it
    if transaction.charged_cents > 0:
        return _paid_page(request, payment_request, token, transaction)
    outcome = "failed" if transaction.last_error or transaction.status == "failed" else "pending"
    return _render(
        request,
        payment_request,
        token,
        "done.html",
        {"outcome": outcome, "transaction": transaction, "failure_message": transaction.last_error},
    )


def _cards_context(payment_request, **extra) -> dict:
    """The patient's cards on file, and the offer to save one, for clinics that keep cards."""
    if not card_on_file_offered(payment_request.organization):
        return {"card_on_file_offered": False}
    return {
        "card_on_file_offered": True,
        "saved_cards": saved_cards_active(organization=payment_request.organization, patient=payment_request.patient),
        "consent_text": card_on_file_consent_text(payment_request.organization),
        **extra,
    }


def _paid_page(request, payment_request, token, transaction, *, card_error: str = "", status: int = 200):
    context = receipt_context(transaction=transaction)
    email = transaction.patient.email
    context["receipt_email"] = _masked_email(email) if email else ""
    return _render(
        request,
        payment_request,
        token,
        "done.html",
        {"outcome": "succeeded", **context, **_cards_context(payment_request, card_error=card_error)},
        status=status,
    )


# -- cards on file (clinics on Stripe) -------------------------------------------------------------


@require_POST
@_pay_page
def card_save(request, payment_request, token):
    """The patient ticked the box to keep their card on file: record the consent and send them to
    the payment processor's page to enter the card. Offered after a successful payment."""
    if not card_on_file_offered(payment_request.organization):
        raise Http404("This clinic does not keep cards on file.")
    if not _is_verified(request, payment_request):
        return redirect("pay:verify", token=token)
    # After paying, for future visits; or before paying, for a payment plan (a new card for a plan
    # whose instalment was declined, or the card a plan set up from this link is charged to).
    for_plan = request.POST.get("for") == "plan" and plan_link_purpose(payment_request) is not None
    state = payment_request_state(payment_request)
    if state != State.PAID and not (for_plan and state == State.OPEN):
        return redirect("pay:verify", token=token)
    try:
        start = saved_card_setup_begin(
            payment_request=payment_request,
            consent_given=request.POST.get("consent") == "yes",
            consent_text=request.POST.get("consent_text", ""),
            ip_address=patient_ip(request),
            success_url=request.build_absolute_uri(reverse("pay:card_saved", kwargs={"token": token})),
            cancel_url=request.build_absolute_uri(reverse("pay:done", kwargs={"token": token})),
            locale=translation.get_language(),
        )
    except GatewayError:
        error, status = _("We could not reach the payment service. Your card was not saved. Please try again in a minute."), 502
    except ApplicationError:
        error, status = _("Tick the box to agree before your card is kept on file."), 400
    else:
        _link_state_update(request, payment_request, card_setup=start.checkout_id, card_for="plan" if for_plan else "")
        return redirect(start.redirect_url)
    if for_plan:
        return redirect("pay:plan", token=token)
    transaction = payment_request.transactions.filter(charged_cents__gt=0).first()
    return _paid_page(request, payment_request, token, transaction, card_error=error, status=status)


@require_http_methods(["GET", "HEAD"])
@_pay_page
def card_saved(request, payment_request, token):
    """Back from the payment processor's page: keep the card once the processor has it."""
    if not _is_verified(request, payment_request):
        return redirect("pay:verify", token=token)
    saved_card = saved_card_of_setup(
        payment_request=payment_request, setup_id=_link_state(request, payment_request).get("card_setup", "")
    )
    if saved_card is None:
        return redirect("pay:done" if payment_request_state(payment_request) == State.PAID else "pay:verify", token=token)
    try:
        saved_card = saved_card_setup_complete(saved_card=saved_card)
    except GatewayError:
        pass  # shown as "still confirming"; the next visit asks again
    for_plan = _link_state(request, payment_request).get("card_for") == "plan"
    plan = None
    if for_plan and saved_card.status == SavedCardStatus.ACTIVE:
        purpose = plan_link_purpose(payment_request)
        if purpose == "instalment":
            plan = payment_plan_card_change(
                plan=payment_request.plan_instalments.first().plan, saved_card=saved_card, ip_address=patient_ip(request)
            )
        elif purpose == "offer":
            return redirect("pay:plan", token=token)
    return _render(request, payment_request, token, "card_saved.html", {"saved_card": saved_card, "plan": plan})


@require_POST
@_pay_page
def card_remove(request, payment_request, token):
    """The patient removes one of their cards on file through their link."""
    if not _is_verified(request, payment_request):
        return redirect("pay:verify", token=token)
    card_id = request.POST.get("card", "")
    if not card_id.isdigit():
        raise Http404
    saved_card = found_or_404(saved_card_of_patient(payment_request=payment_request, pk=int(card_id)))
    try:
        saved_card = saved_card_remove(saved_card=saved_card, actor=None, ip_address=patient_ip(request))
    except GatewayError:
        return _render(
            request,
            payment_request,
            token,
            "card_removed.html",
            {"saved_card": saved_card, "remove_error": _("We could not reach the payment service. Your card was not removed. Please try again in a minute.")},
            status=502,
        )
    return _render(request, payment_request, token, "card_removed.html", {"saved_card": saved_card})


@require_http_methods(["GET", "HEAD"])
@_pay_page
def cancelled(request, payment_request, token):
    """Back from the hosted page without paying."""
    state = payment_request_state(payment_request)
    if state == State.PAID:
        return redirect("pay:verify", token=token)
    if state != State.OPEN:
        return _closed(request, payment_request, token, state)
    return _render(request, payment_request, token, "cancelled.html")


def _masked_email(email: str) -> str:
    local, _at, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}" if domain else "•••"


@require_http_methods(["GET", "HEAD"])
@_pay_page
def receipt(request, payment_request, token):
    """The receipt PDF of a paid request, in the page's language, for a patient who confirmed their
    date of birth in this session (anyone else goes to the date-of-birth question first)."""
    from ..services.receipt_documents import ReceiptUnavailable, receipt_download, receipt_filename
    from .transaction_detail import pdf_response

    if not _is_verified(request, payment_request):
        return redirect("pay:verify", token=token)
    if payment_request_state(payment_request) != State.PAID:
        raise Http404
    transaction = payment_request.transactions.filter(charged_cents__gt=0).select_related("organization").first()
    if transaction is None:
        raise Http404
    try:
        pdf = receipt_download(
            organization=payment_request.organization,
            actor=None,
            transaction=transaction,
            ip_address=patient_ip(request),
            language=translation.get_language(),
        )
    except ReceiptUnavailable:
        raise Http404
    return pdf_response(pdf, filename=receipt_filename(transaction=transaction))
