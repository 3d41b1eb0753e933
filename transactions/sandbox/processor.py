"""The Sandbox: a payment processor built into LumaPay for trying the product, never for money.

It stands where Stripe's servers stand, and knows nothing of LumaPay's ledger: it keeps its own
books (``SandboxCheckoutSession``, ``SandboxCharge``, ``SandboxRefund``), hosts its own checkout
page (``transactions.sandbox.views``), answers to test cards, and posts its events, signed, to the
webhook path (``/webhooks/sandbox/``) as any outside processor does. LumaPay talks to it through
its gateway (``transactions.gateways.sandbox``), as it talks to Stripe through Stripe's.

Test cards (any future expiry, any 3-digit CVC):

=====================  =============================================
4242 4242 4242 4242    succeeds (Visa)
5555 5555 5555 4444    succeeds (Mastercard)
3782 822463 10005      succeeds (American Express, 4-digit CVC)
6011 1111 1111 1117    succeeds (Discover)
4000 0000 0000 0002    declined
4000 0000 0000 9995    declined: insufficient funds
4000 0025 0000 3155    asks the patient to authenticate; passes or fails as they choose
4000 0000 0000 5126    succeeds, but any refund of it fails
=====================  =============================================
"""
from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import secrets
import string
import time
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.db import transaction as db_transaction
from django.urls import resolve, reverse
from django.utils import timezone
from django.utils.translation import gettext_noop

from lumapay.errors import ApplicationError
from lumapay.models import Installation

from .enums import SandboxSessionStatus
from .models import SandboxCharge, SandboxCheckoutSession, SandboxRefund

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Sandbox-Signature"
CHECKOUT_EXPIRED = gettext_noop("This checkout has expired. Go back to the payment link to start again.")
SESSION_LIFETIME = timedelta(hours=1)


@dataclass(frozen=True)
class TestCard:
    brand: str
    outcome: str  # "succeeds" | "declined" | "insufficient_funds" | "authenticate" | "refund_fails"


TEST_CARDS = {
    "4242424242424242": TestCard("visa", "succeeds"),
    "5555555555554444": TestCard("mastercard", "succeeds"),
    "378282246310005": TestCard("amex", "succeeds"),
    "6011111111111117": TestCard("discover", "succeeds"),
    "4000000000000002": TestCard("visa", "declined"),
    "4000000000009995": TestCard("visa", "insufficient_funds"),
    "4000002500003155": TestCard("visa", "authenticate"),
    "4000000000005126": TestCard("visa", "refund_fails"),
}

# The processor's API speaks English (a charge's failure_message, as Stripe's): its checkout page
# translates these messages into the session's locale when it shows them, so each is marked for
# the catalogue here (gettext_noop) and translated where it is shown.
DECLINES = {
    "declined": ("card_declined", gettext_noop("Your card was declined.")),
    "insufficient_funds": ("insufficient_funds", gettext_noop("Your card has insufficient funds.")),
    "authentication_failed": (
        "authentication_failed",
        gettext_noop("We could not authenticate your payment method. Choose another payment method and try again."),
    ),
}

AUTO_LOCALE = "auto"


class SandboxError(ApplicationError):
    """The Sandbox refused a request (as a processor's API answers 4xx); the message says why."""


class CardEntryError(SandboxError):
    """What the patient typed is not a usable card (nothing was charged). The message is English,
    marked for the catalogue: the checkout page shows it in the session's language."""


@dataclass(frozen=True)
class CardAttempt:
    """The result of submitting a card on the Sandbox checkout page."""

    outcome: str  # "succeeded" | "failed" | "authenticate"
    redirect_url: str = ""
    message: str = ""


def sandbox_fee_cents(amount_cents: int) -> int:
    """The Sandbox charges what a typical US card processor does: 2.9% + 30¢, rounded half up."""
    return (amount_cents * 29 + 500) // 1000 + 30


def webhook_secret() -> str:
    """The secret the Sandbox signs its events with, and its webhook checks them with:
    ``SANDBOX_WEBHOOK_SECRET`` when set, otherwise the random one this installation's database was
    given (``lumapay.models.Installation``). Never made from anything public (such as the
    development ``SECRET_KEY``), so nobody outside can sign a Sandbox event."""
    if settings.SANDBOX_WEBHOOK_SECRET:
        return settings.SANDBOX_WEBHOOK_SECRET
    installation, _created = Installation.objects.get_or_create(pk=1)
    return installation.sandbox_webhook_secret


def event_signature(body: bytes, timestamp: int) -> str:
    """The ``Sandbox-Signature`` header for an event body: HMAC-SHA256 of "<timestamp>.<body>"."""
    mac = hmac.new(webhook_secret().encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


# -- the processor's API: what a merchant's server calls -------------------------------------------


def session_create(
    *,
    organization_id: int,
    amount_cents: int,
    currency: str,
    client_reference: str,
    merchant_name: str,
    success_url: str,
    cancel_url: str,
    application_fee_cents: int = 0,
    locale: str = AUTO_LOCALE,
) -> SandboxCheckoutSession:
    """Open a hosted checkout for an amount; ``client_reference`` is the merchant's opaque id,
    ``application_fee_cents`` what the platform takes of the payment (as Stripe's
    ``application_fee_amount``): never more than the amount; ``locale`` the language of the
    checkout's pages and messages (as Stripe's ``locale``): one the Sandbox speaks, or ``"auto"``
    for the patient's browser's."""
    if not 0 <= application_fee_cents <= amount_cents:
        raise SandboxError("The application fee must be between zero and the amount.")
    if locale != AUTO_LOCALE and locale not in session_locales():
        raise SandboxError(f"The Sandbox has no checkout in the locale {locale!r}.")
    return SandboxCheckoutSession.objects.create(
        id=_new_id("cs"),
        organization_id=organization_id,
        amount_cents=amount_cents,
        currency=currency,
        client_reference=client_reference,
        merchant_name=merchant_name,
        application_fee_cents=application_fee_cents,
        locale=locale,
        success_url=success_url,
        cancel_url=cancel_url,
        expires_at=timezone.now() + SESSION_LIFETIME,
    )


def session_locales() -> list[str]:
    """The languages the Sandbox's checkout is written in: LumaPay's."""
    return [code for code, _name in settings.LANGUAGES]


def checkout_url(session: SandboxCheckoutSession) -> str:
    return settings.SITE_URL + reverse("sandbox:checkout", kwargs={"session_id": session.id})


def session_get(session_id: str) -> SandboxCheckoutSession | None:
    return SandboxCheckoutSession.objects.filter(id=session_id).first()


def session_charges(session_id: str) -> list[SandboxCharge]:
    """The session's charge attempts, oldest first."""
    return list(SandboxCharge.objects.filter(session_id=session_id).order_by("created_at"))


def session_expire(session_id: str) -> None:
    """Close a checkout that is not paid, so it can no longer be paid."""
    with db_transaction.atomic():
        session = SandboxCheckoutSession.objects.select_for_update().filter(id=session_id).first()
        if session is not None and session.status != SandboxSessionStatus.COMPLETE:
            session.status = SandboxSessionStatus.EXPIRED
            session.save(update_fields=["status"])


def refund_create(*, charge_id: str, amount_cents: int, idempotency_key: str) -> SandboxRefund:
    """Refund part or all of a paid charge, once per idempotency key (a retry returns the same
    refund). A refund of a card that refuses refunds (…5126) is made, and fails."""
    with db_transaction.atomic():
        existing = SandboxRefund.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
        charge = SandboxCharge.objects.select_for_update().filter(id=charge_id, is_paid=True).first()
        if charge is None:
            raise SandboxError("The Sandbox has no paid charge for this transaction.")
        remaining = charge.amount_cents - charge.amount_refunded_cents
        if amount_cents > remaining:
            raise SandboxError(
                f"The Sandbox refused the refund: only {remaining} cents of this charge remain refundable."
            )
        fails = TEST_CARDS.get(_card_key(charge), TestCard("", "")).outcome == "refund_fails"
        refund = SandboxRefund.objects.create(
            id=_new_id("re"),
            charge=charge,
            amount_cents=amount_cents,
            idempotency_key=idempotency_key,
            status="failed" if fails else "succeeded",
            failure_message="The card issuer declined the refund. Refund the patient another way." if fails else "",
        )
        if not fails:
            charge.amount_refunded_cents += amount_cents
            charge.save(update_fields=["amount_refunded_cents"])
        _event_send_on_commit(
            "refund.failed" if fails else "refund.succeeded", _refund_payload(refund), charge.session
        )
    return refund


def charge_refunds(charge_id: str) -> list[SandboxRefund]:
    """A charge's refunds, oldest first, as the processor's API lists them."""
    return list(SandboxRefund.objects.filter(charge_id=charge_id).order_by("created_at", "id"))


# -- the processor's hosted checkout page: what the patient does -----------------------------------


def card_submit(*, session_id: str, card_number: str, expiry_month: str, expiry_year: str, cvc: str) -> CardAttempt:
    number = "".join(ch for ch in card_number if ch.isdigit())
    if len(number) < 13 or not _luhn_valid(number):
        raise CardEntryError(gettext_noop("Your card number is incorrect."))
    try:
        month, year = int(expiry_month), int(expiry_year)
        if year < 100:
            year += 2000
        if not 1 <= month <= 12:
            raise ValueError
    except ValueError:
        raise CardEntryError(gettext_noop("Your card's expiration date is incomplete."))
    today = date.today()
    if (year, month) < (today.year, today.month):
        raise CardEntryError(gettext_noop("Your card's expiration date is in the past."))
    card = TEST_CARDS.get(number)
    if card is None:
        raise CardEntryError(gettext_noop("This is the Sandbox: use a test card such as 4242 4242 4242 4242."))
    cvc_length = 4 if card.brand == "amex" else 3
    if not (cvc.isdigit() and len(cvc) == cvc_length):
        raise CardEntryError(gettext_noop("Your card's security code is incomplete."))

    with db_transaction.atomic():
        session = _open_session_for_update(session_id)
        if card.outcome == "authenticate":
            session.status = SandboxSessionStatus.AWAITING_AUTHENTICATION
            session.pending_card_brand, session.pending_card_last4 = card.brand, number[-4:]
            session.save(update_fields=["status", "pending_card_brand", "pending_card_last4"])
            return CardAttempt(outcome="authenticate")
        decline = DECLINES.get(card.outcome)
        return _charge(session, brand=card.brand, last4=number[-4:], decline=decline)


def authentication_complete(*, session_id: str, passed: bool) -> CardAttempt:
    with db_transaction.atomic():
        session = _open_session_for_update(session_id)
        if session.status != SandboxSessionStatus.AWAITING_AUTHENTICATION:
            raise CardEntryError(gettext_noop("There is no payment waiting for authentication."))
        brand, last4 = session.pending_card_brand, session.pending_card_last4
        session.status = SandboxSessionStatus.OPEN
        session.pending_card_brand = session.pending_card_last4 = ""
        session.save(update_fields=["status", "pending_card_brand", "pending_card_last4"])
        return _charge(session, brand=brand, last4=last4, decline=None if passed else DECLINES["authentication_failed"])


# -- internals -------------------------------------------------------------------------------------


def _new_id(prefix: str) -> str:
    return f"{prefix}_sbx_{secrets.token_hex(12)}"


def _luhn_valid(number: str) -> bool:
    total = 0
    for index, digit in enumerate(reversed(number)):
        value = int(digit)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _open_session_for_update(session_id: str) -> SandboxCheckoutSession:
    session = SandboxCheckoutSession.objects.select_for_update().filter(id=session_id).first()
    if session is None:
        raise CardEntryError(gettext_noop("This checkout does not exist."))
    if session.status == SandboxSessionStatus.COMPLETE:
        raise CardEntryError(gettext_noop("This checkout is already paid."))
    if session.expires_at <= timezone.now() or session.status == SandboxSessionStatus.EXPIRED:
        raise CardEntryError(CHECKOUT_EXPIRED)
    return session


def _charge(session: SandboxCheckoutSession, *, brand: str, last4: str, decline) -> CardAttempt:
    charge = SandboxCharge.objects.create(
        id=_new_id("ch"),
        session=session,
        amount_cents=session.amount_cents,
        currency=session.currency,
        is_paid=decline is None,
        failure_code=decline[0] if decline else "",
        failure_message=decline[1] if decline else "",
        card_brand=brand,
        card_last4=last4,
        authorization_code="" if decline else "".join(secrets.choice(string.digits) for _ in range(6)),
    )
    if decline is None:
        session.status = SandboxSessionStatus.COMPLETE
        session.save(update_fields=["status"])
    _event_send_on_commit("charge.failed" if decline else "charge.succeeded", _charge_payload(charge), session)
    if decline:
        return CardAttempt(outcome="failed", message=decline[1])
    return CardAttempt(outcome="succeeded", redirect_url=session.success_url)


def _event_send_on_commit(event_type: str, obj: dict, session: SandboxCheckoutSession) -> None:
    event = {
        "id": _new_id("evt"),
        "type": event_type,
        "created": int(time.time()),
        "account": session.organization_id,
        "data": {"object": obj},
    }
    # robust: the merchant's webhook failing must not fail the processor's side (a real
    # processor's delivery is a separate HTTP call); the merchant's ledger still converges through
    # its confirmation page and its refund call, which read the outcome from the processor.
    db_transaction.on_commit(lambda: event_post(event), robust=True)


def event_post(event: dict) -> int:
    """Sign an event and POST it to the webhook path, as the processor's servers would.

    The POST is made in process: the request goes to the view the webhook path resolves to (the
    same entry point an outside processor's HTTP request reaches), not through a network hop the
    development server and the tests do not have. Returns the HTTP status the webhook answered.
    """
    body = json.dumps(event, separators=(",", ":")).encode()
    path = reverse("webhooks:sandbox")
    site = urlsplit(settings.SITE_URL)
    request = WSGIRequest(
        {
            "REQUEST_METHOD": "POST",
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "SERVER_NAME": site.hostname or "localhost",
            "SERVER_PORT": str(site.port or (443 if site.scheme == "https" else 80)),
            "wsgi.url_scheme": site.scheme or "http",
            "wsgi.input": io.BytesIO(body),
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_SANDBOX_SIGNATURE": event_signature(body, int(time.time())),
        }
    )
    match = resolve(path)
    response = match.func(request, *match.args, **match.kwargs)
    if response.status_code >= 300:
        logger.warning("sandbox event %s (%s): the webhook answered %s", event["id"], event["type"], response.status_code)
    return response.status_code


def _card_key(charge: SandboxCharge) -> str:
    for number, card in TEST_CARDS.items():
        if number.endswith(charge.card_last4) and card.brand == charge.card_brand:
            return number
    return ""


def _charge_payload(charge: SandboxCharge) -> dict:
    return {
        "object": "charge",
        "id": charge.id,
        "checkout_session": charge.session_id,
        "client_reference": charge.session.client_reference,
        "amount": charge.amount_cents,
        "currency": charge.currency,
        "paid": charge.is_paid,
        "failure_code": charge.failure_code,
        "failure_message": charge.failure_message,
        "authorization_code": charge.authorization_code,
        "fee": sandbox_fee_cents(charge.amount_cents) if charge.is_paid else 0,
        "application_fee_amount": charge.session.application_fee_cents if charge.is_paid else 0,
        "card": {"brand": charge.card_brand, "last4": charge.card_last4},
    }


def _refund_payload(refund: SandboxRefund) -> dict:
    return {
        "object": "refund",
        "id": refund.id,
        "charge": refund.charge_id,
        "checkout_session": refund.charge.session_id,
        "amount": refund.amount_cents,
        "status": refund.status,
        "idempotency_key": refund.idempotency_key,
        "failure_message": refund.failure_message,
    }
