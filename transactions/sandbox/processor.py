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
4000 0000 0000 0341    kept on file, then declined whenever it is charged
=====================  =============================================

Cards on file (as Stripe's Customers, SetupIntents and off-session PaymentIntents): a merchant
makes a customer (``customer_create``), sends the patient to the Sandbox's own "save your card"
page (``setup_session_create``; the same test cards: a declined card is not kept, the
authentication card asks first), then charges the card while the patient is away
(``payment_intent_create``), or only holds the amount (``capture=False``) and later captures or
releases it. A hold lapses ``HOLD_LIFETIME`` (7 days) after it was made, as a card network lets
it: the Sandbox then releases it (event ``charge.released`` with reason "expired") and a capture
is refused with the reason. ``hold_age`` moves a hold back in time, for tests and the demo.

Payouts (``transactions.sandbox.payouts``): the Sandbox keeps each merchant's balance (a balance
transaction per paid charge, less its fees, and per refund) and pays what became available out
every business day; payouts go pending, in transit, paid, or (one in twenty) come back from the
bank, and post ``payout.*`` and ``balance.available`` events like the charges' ones.
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

from django.db.models import Q

from .enums import SandboxCancellation, SandboxIntentStatus, SandboxSessionStatus
from .models import (
    SandboxCharge,
    SandboxCheckoutSession,
    SandboxCustomer,
    SandboxPaymentIntent,
    SandboxPaymentMethod,
    SandboxRefund,
    SandboxSetupSession,
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Sandbox-Signature"
CHECKOUT_EXPIRED = gettext_noop("This checkout has expired. Go back to the payment link to start again.")
SESSION_LIFETIME = timedelta(hours=1)
HOLD_LIFETIME = timedelta(days=7)


@dataclass(frozen=True)
class TestCard:
    brand: str
    # "succeeds" | "declined" | "insufficient_funds" | "authenticate" | "refund_fails" |
    # "declined_when_charged" (kept on file, then declined whenever it is charged)
    outcome: str


TEST_CARDS = {
    "4242424242424242": TestCard("visa", "succeeds"),
    "5555555555554444": TestCard("mastercard", "succeeds"),
    "378282246310005": TestCard("amex", "succeeds"),
    "6011111111111117": TestCard("discover", "succeeds"),
    "4000000000000002": TestCard("visa", "declined"),
    "4000000000009995": TestCard("visa", "insufficient_funds"),
    "4000002500003155": TestCard("visa", "authenticate"),
    "4000000000005126": TestCard("visa", "refund_fails"),
    "4000000000000341": TestCard("visa", "declined_when_charged"),
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
    """Refund part or all of a paid charge (``charge_id``: the charge's id, or the card-on-file
    payment's), once per idempotency key (a retry returns the same refund). A refund of a card
    that refuses refunds (…5126) is made, and fails."""
    with db_transaction.atomic():
        existing = SandboxRefund.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
        charge = (
            SandboxCharge.objects.select_for_update(of=("self",))
            .filter(Q(id=charge_id) | Q(payment_intent_id=charge_id), is_paid=True)
            .first()
        )
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
            "refund.failed" if fails else "refund.succeeded", _refund_payload(refund), charge.source.organization_id
        )
    return refund


def charge_refunds(charge_id: str) -> list[SandboxRefund]:
    """A charge's refunds (by the charge's id or its card-on-file payment's), oldest first, as the
    processor's API lists them."""
    return list(
        SandboxRefund.objects.filter(Q(charge_id=charge_id) | Q(charge__payment_intent_id=charge_id)).order_by("created_at", "id")
    )


# -- the processor's hosted checkout page: what the patient does -----------------------------------


def _card_read(*, card_number: str, expiry_month: str, expiry_year: str, cvc: str) -> tuple[str, TestCard, int, int]:
    """The test card typed on one of the Sandbox's pages: (number, card, month, year), or
    ``CardEntryError`` saying what is wrong with it."""
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
    return number, card, month, year


def card_submit(*, session_id: str, card_number: str, expiry_month: str, expiry_year: str, cvc: str) -> CardAttempt:
    number, card, _month, _year = _card_read(card_number=card_number, expiry_month=expiry_month, expiry_year=expiry_year, cvc=cvc)

    with db_transaction.atomic():
        session = _open_session_for_update(session_id)
        if card.outcome == "authenticate":
            session.status = SandboxSessionStatus.AWAITING_AUTHENTICATION
            session.pending_card_brand, session.pending_card_last4 = card.brand, number[-4:]
            session.save(update_fields=["status", "pending_card_brand", "pending_card_last4"])
            return CardAttempt(outcome="authenticate")
        decline = DECLINES.get("declined" if card.outcome == "declined_when_charged" else card.outcome)
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


# -- cards on file: the processor's API and its "save your card" page --------------------------------


def customer_create(*, organization_id: int) -> SandboxCustomer:
    """A customer to keep one patient's cards under (it carries nothing about them)."""
    return SandboxCustomer.objects.create(id=_new_id("cus"), organization_id=organization_id)


def setup_session_create(
    *,
    organization_id: int,
    customer_id: str,
    client_reference: str,
    merchant_name: str,
    success_url: str,
    cancel_url: str,
    locale: str = AUTO_LOCALE,
) -> SandboxSetupSession:
    """Open the hosted page where the patient enters a card to keep on file (nothing is charged)."""
    if not SandboxCustomer.objects.filter(id=customer_id, organization_id=organization_id).exists():
        raise SandboxError("The Sandbox has no such customer for this merchant.")
    if locale != AUTO_LOCALE and locale not in session_locales():
        raise SandboxError(f"The Sandbox has no page in the locale {locale!r}.")
    return SandboxSetupSession.objects.create(
        id=_new_id("seti"),
        organization_id=organization_id,
        customer_id=customer_id,
        client_reference=client_reference,
        merchant_name=merchant_name,
        locale=locale,
        success_url=success_url,
        cancel_url=cancel_url,
        expires_at=timezone.now() + SESSION_LIFETIME,
    )


def setup_url(session: SandboxSetupSession) -> str:
    return settings.SITE_URL + reverse("sandbox:card_setup", kwargs={"session_id": session.id})


def setup_session_get(session_id: str) -> SandboxSetupSession | None:
    return SandboxSetupSession.objects.select_related("payment_method").filter(id=session_id).first()


def setup_card_submit(*, session_id: str, card_number: str, expiry_month: str, expiry_year: str, cvc: str) -> CardAttempt:
    """The patient typed a card on the "save your card" page: kept (succeeded), refused (failed:
    the declining test cards are not kept), or asked to authenticate first."""
    number, card, month, year = _card_read(card_number=card_number, expiry_month=expiry_month, expiry_year=expiry_year, cvc=cvc)
    with db_transaction.atomic():
        session = _open_setup_for_update(session_id)
        session.pending_card_brand, session.pending_card_last4 = card.brand, number[-4:]
        session.pending_exp_month, session.pending_exp_year = month, year
        if card.outcome == "authenticate":
            session.status = SandboxSessionStatus.AWAITING_AUTHENTICATION
            session.save(update_fields=["status", "pending_card_brand", "pending_card_last4", "pending_exp_month", "pending_exp_year"])
            return CardAttempt(outcome="authenticate")
        decline = DECLINES.get(card.outcome)
        if decline is not None:
            return CardAttempt(outcome="failed", message=decline[1])
        # Saved after authenticating, the authentication card is then charged off-session freely.
        return _setup_complete(session, outcome=card.outcome)


def setup_authentication_complete(*, session_id: str, passed: bool) -> CardAttempt:
    with db_transaction.atomic():
        session = _open_setup_for_update(session_id)
        if session.status != SandboxSessionStatus.AWAITING_AUTHENTICATION:
            raise CardEntryError(gettext_noop("There is no payment waiting for authentication."))
        session.status = SandboxSessionStatus.OPEN
        if not passed:
            session.save(update_fields=["status"])
            return CardAttempt(outcome="failed", message=DECLINES["authentication_failed"][1])
        return _setup_complete(session, outcome="succeeds")


def _open_setup_for_update(session_id: str) -> SandboxSetupSession:
    session = SandboxSetupSession.objects.select_for_update(of=("self",)).filter(id=session_id).first()
    if session is None:
        raise CardEntryError(gettext_noop("This checkout does not exist."))
    if session.status == SandboxSessionStatus.COMPLETE:
        raise CardEntryError(gettext_noop("This card is already saved."))
    if session.expires_at <= timezone.now() or session.status == SandboxSessionStatus.EXPIRED:
        raise CardEntryError(CHECKOUT_EXPIRED)
    return session


def _setup_complete(session: SandboxSetupSession, *, outcome: str) -> CardAttempt:
    session.payment_method = SandboxPaymentMethod.objects.create(
        id=_new_id("pm"),
        customer_id=session.customer_id,
        card_brand=session.pending_card_brand,
        card_last4=session.pending_card_last4,
        exp_month=session.pending_exp_month,
        exp_year=session.pending_exp_year,
        test_outcome=outcome,
    )
    session.status = SandboxSessionStatus.COMPLETE
    session.save(update_fields=["payment_method", "status"])
    return CardAttempt(outcome="succeeded", redirect_url=session.success_url)


def payment_method_detach(payment_method_id: str) -> None:
    """Forget a card: it can never be charged again (detaching twice is harmless)."""
    SandboxPaymentMethod.objects.filter(id=payment_method_id, detached_at__isnull=True).update(detached_at=timezone.now())


def payment_intent_create(
    *,
    organization_id: int,
    customer_id: str,
    payment_method_id: str,
    amount_cents: int,
    currency: str,
    capture: bool,
    client_reference: str,
    idempotency_key: str,
    application_fee_cents: int = 0,
) -> SandboxPaymentIntent:
    """Charge a card on file while the customer is away, or with ``capture`` False only hold the
    amount (until captured, released, or lapsed after ``HOLD_LIFETIME``). Once per idempotency
    key: a retry returns the first payment, whatever it became. A decline is an outcome (status
    "failed", with the bank's message), not an error."""
    if not 0 <= application_fee_cents <= amount_cents:
        raise SandboxError("The application fee must be between zero and the amount.")
    with db_transaction.atomic():
        existing = SandboxPaymentIntent.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
        payment_method = (
            SandboxPaymentMethod.objects.filter(
                id=payment_method_id, customer_id=customer_id, customer__organization_id=organization_id
            )
            .first()
        )
        if payment_method is None or payment_method.detached_at is not None:
            raise SandboxError("The Sandbox has no such card for this customer (it was removed, or never saved).")
        decline = DECLINES.get("declined" if payment_method.test_outcome == "declined_when_charged" else payment_method.test_outcome)
        now = timezone.now()
        intent = SandboxPaymentIntent(
            id=_new_id("pi"),
            organization_id=organization_id,
            customer_id=customer_id,
            payment_method=payment_method,
            amount_cents=amount_cents,
            currency=currency,
            capture_method="automatic" if capture else "manual",
            client_reference=client_reference,
            idempotency_key=idempotency_key,
            application_fee_cents=application_fee_cents,
        )
        if decline is not None:
            intent.status = SandboxIntentStatus.FAILED
            intent.failure_code, intent.failure_message = decline
            intent.save()
            _intent_charge(intent, paid=False)
            event_type = "charge.failed"
        else:
            intent.authorization_code = "".join(secrets.choice(string.digits) for _ in range(6))
            intent.authorized_at = now
            if capture:
                intent.status, intent.captured_at = SandboxIntentStatus.SUCCEEDED, now
                intent.save()
                _intent_charge(intent, paid=True)
                event_type = "charge.succeeded"
            else:
                intent.status, intent.capture_before = SandboxIntentStatus.REQUIRES_CAPTURE, now + HOLD_LIFETIME
                intent.save()
                event_type = "charge.authorized"
        _event_send_on_commit(event_type, payment_intent_payload(intent), organization_id)
    return intent


def payment_intent_get(payment_intent_id: str) -> SandboxPaymentIntent | None:
    """A card-on-file payment as the processor has it now (a hold past its time has lapsed)."""
    _lapse_if_due(payment_intent_id)
    return SandboxPaymentIntent.objects.select_related("payment_method").filter(id=payment_intent_id).first()


def payment_intent_capture(payment_intent_id: str) -> SandboxPaymentIntent:
    """Charge the held amount. Capturing a payment already captured returns it (a retry); a hold
    released or lapsed cannot be captured: ``SandboxError`` says why."""
    _lapse_if_due(payment_intent_id)
    with db_transaction.atomic():
        intent = _intent_for_update(payment_intent_id)
        if intent.status == SandboxIntentStatus.SUCCEEDED:
            return intent
        if intent.status == SandboxIntentStatus.CANCELED and intent.cancellation_reason == SandboxCancellation.EXPIRED:
            raise SandboxError(
                f"The hold lapsed on {intent.canceled_at:%Y-%m-%d %H:%M} UTC, {HOLD_LIFETIME.days} days after it was made, "
                "and can no longer be captured: nothing was charged."
            )
        if intent.status != SandboxIntentStatus.REQUIRES_CAPTURE:
            raise SandboxError(f"This payment is {intent.get_status_display().lower()}: there is no held amount to capture.")
        intent.status, intent.captured_at = SandboxIntentStatus.SUCCEEDED, timezone.now()
        intent.save(update_fields=["status", "captured_at"])
        _intent_charge(intent, paid=True)
        _event_send_on_commit("charge.captured", payment_intent_payload(intent), intent.organization_id)
    return intent


def payment_intent_cancel(payment_intent_id: str) -> SandboxPaymentIntent:
    """Release the held amount without charging it (releasing twice returns the released hold)."""
    _lapse_if_due(payment_intent_id)
    with db_transaction.atomic():
        intent = _intent_for_update(payment_intent_id)
        if intent.status == SandboxIntentStatus.CANCELED:
            return intent
        if intent.status != SandboxIntentStatus.REQUIRES_CAPTURE:
            raise SandboxError(f"This payment is {intent.get_status_display().lower()}: there is no held amount to release.")
        _cancel(intent, reason=SandboxCancellation.REQUESTED)
    return intent


def holds_lapse(*, now=None) -> int:
    """Release every hold past its ``capture_before`` (the Sandbox's own clock; beat runs it, and
    every read, capture or release of a hold checks it first). Returns how many lapsed."""
    now = now or timezone.now()
    due = SandboxPaymentIntent.objects.filter(status=SandboxIntentStatus.REQUIRES_CAPTURE, capture_before__lte=now)
    return sum(_lapse_if_due(intent_id, now=now) for intent_id in due.values_list("id", flat=True))


def hold_age(payment_intent_id: str, *, by: timedelta) -> SandboxPaymentIntent:
    """Move a hold back in time by ``by`` (tests and the demo: "this hold was made 6 days ago").
    It lapses when next looked at if that takes it past ``HOLD_LIFETIME``."""
    with db_transaction.atomic():
        intent = _intent_for_update(payment_intent_id)
        if intent.authorized_at is not None:
            intent.authorized_at -= by
        if intent.capture_before is not None:
            intent.capture_before -= by
        intent.save(update_fields=["authorized_at", "capture_before"])
        SandboxPaymentIntent.objects.filter(pk=intent.pk).update(created_at=intent.created_at - by)
    return intent


def _intent_for_update(payment_intent_id: str) -> SandboxPaymentIntent:
    intent = SandboxPaymentIntent.objects.select_for_update(of=("self",)).filter(id=payment_intent_id).first()
    if intent is None:
        raise SandboxError("The Sandbox has no such payment.")
    return intent


def _lapse_if_due(payment_intent_id: str, *, now=None) -> bool:
    now = now or timezone.now()
    with db_transaction.atomic():
        intent = (
            SandboxPaymentIntent.objects.select_for_update(of=("self",))
            .filter(id=payment_intent_id, status=SandboxIntentStatus.REQUIRES_CAPTURE, capture_before__lte=now)
            .first()
        )
        if intent is None:
            return False
        _cancel(intent, reason=SandboxCancellation.EXPIRED, at=intent.capture_before)
    logger.info("sandbox hold %s lapsed", payment_intent_id)
    return True


def _cancel(intent: SandboxPaymentIntent, *, reason: str, at=None) -> None:
    intent.status, intent.cancellation_reason = SandboxIntentStatus.CANCELED, reason
    intent.canceled_at = at or timezone.now()
    intent.save(update_fields=["status", "cancellation_reason", "canceled_at"])
    _event_send_on_commit("charge.released", payment_intent_payload(intent), intent.organization_id)


def _intent_charge(intent: SandboxPaymentIntent, *, paid: bool) -> SandboxCharge:
    return SandboxCharge.objects.create(
        id=_new_id("ch"),
        payment_intent=intent,
        amount_cents=intent.amount_cents,
        currency=intent.currency,
        is_paid=paid,
        failure_code=intent.failure_code,
        failure_message=intent.failure_message,
        card_brand=intent.payment_method.card_brand,
        card_last4=intent.payment_method.card_last4,
        authorization_code=intent.authorization_code,
    )


def payment_intent_payload(intent: SandboxPaymentIntent) -> dict:
    paid = intent.status == SandboxIntentStatus.SUCCEEDED
    return {
        "object": "payment_intent",
        "id": intent.id,
        "client_reference": intent.client_reference,
        "amount": intent.amount_cents,
        "currency": intent.currency,
        "status": intent.status,
        "capture_method": intent.capture_method,
        "cancellation_reason": intent.cancellation_reason,
        "canceled_at": int(intent.canceled_at.timestamp()) if intent.canceled_at else None,
        "failure_code": intent.failure_code,
        "failure_message": intent.failure_message,
        "authorization_code": intent.authorization_code,
        "fee": sandbox_fee_cents(intent.amount_cents) if paid else 0,
        "application_fee_amount": intent.application_fee_cents if paid else 0,
        "card": {"brand": intent.payment_method.card_brand, "last4": intent.payment_method.card_last4},
    }


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
    _event_send_on_commit("charge.failed" if decline else "charge.succeeded", _charge_payload(charge), session.organization_id)
    if decline:
        return CardAttempt(outcome="failed", message=decline[1])
    return CardAttempt(outcome="succeeded", redirect_url=session.success_url)


def _event_send_on_commit(event_type: str, obj: dict, organization_id: int) -> None:
    event = {
        "id": _new_id("evt"),
        "type": event_type,
        "account": organization_id,
        "data": {"object": obj},
    }
    # Stamped when it is sent, after the commit: what it says is true from then on (stamped
    # earlier, a listing of the processor's state read just before the commit would look newer
    # than the event and win over it).
    # robust: the merchant's webhook failing must not fail the processor's side (a real
    # processor's delivery is a separate HTTP call); the merchant's ledger still converges through
    # its confirmation page and its refund call, which read the outcome from the processor.
    db_transaction.on_commit(lambda: event_post({**event, "created": int(time.time())}), robust=True)


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
        "checkout_session": charge.checkout_id,
        "client_reference": charge.source.client_reference,
        "amount": charge.amount_cents,
        "currency": charge.currency,
        "paid": charge.is_paid,
        "failure_code": charge.failure_code,
        "failure_message": charge.failure_message,
        "authorization_code": charge.authorization_code,
        "fee": sandbox_fee_cents(charge.amount_cents) if charge.is_paid else 0,
        "application_fee_amount": charge.source.application_fee_cents if charge.is_paid else 0,
        "card": {"brand": charge.card_brand, "last4": charge.card_last4},
    }


def _refund_payload(refund: SandboxRefund) -> dict:
    return {
        "object": "refund",
        "id": refund.id,
        "charge": refund.charge_id,
        "checkout_session": refund.charge.checkout_id,
        "amount": refund.amount_cents,
        "status": refund.status,
        "idempotency_key": refund.idempotency_key,
        "failure_message": refund.failure_message,
    }
