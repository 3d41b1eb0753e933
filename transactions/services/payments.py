"""The patient's side of a payment request: opening the link, proving who they are, starting (or
resuming) the gateway's hosted checkout, and reading its outcome when the patient comes back.

Patients have no account, so the actor of every audit event here is ``patient`` with the caller's
address. Only opaque ids go to a gateway: the transaction id, never a name, birth date, e-mail,
phone or visit reason.
"""

from __future__ import annotations

import datetime
import logging

from django.conf import settings
from django.db import transaction as db_transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _, ngettext

from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import ActorType
from lumapay.rate_limits import rate_limit_increment, rate_limit_reached

from ..enums import PaymentRequestStatus, TransactionEventKind
from ..gateways import gateway_for, gateway_named
from ..gateways.base import ChargeFact, CheckoutStart
from ..links import payment_link_token
from ..locks import payment_request_lock
from ..models import PaymentRequest, Transaction
from .ledger import transaction_event_append
from .ledger_facts import charge_fact_record
from .transaction_open import transaction_open

logger = logging.getLogger(__name__)

# A double submit or a second tab lands on the same hosted checkout while it stays open at the
# gateway for at least this long; a checkout closer to its end is closed and replaced.
CHECKOUT_RESUME_MARGIN = datetime.timedelta(minutes=5)

# Failed date-of-birth answers per client address are counted for this long from the first one.
ADDRESS_WINDOW_SECONDS = 3600


class PaymentLinkUnavailable(ApplicationError):
    """The request cannot be paid through its link any more: ``state`` says why."""

    def __init__(self, message: str, *, state: str) -> None:
        super().__init__(message, extra={"state": state})
        self.state = state


class PaymentLinkLocked(ApplicationError):
    """Too many wrong dates of birth on this link: it is locked until ``locked_until``."""

    def __init__(self, message: str, *, locked_until: datetime.datetime) -> None:
        super().__init__(message, extra={"locked_until": locked_until.isoformat()})
        self.locked_until = locked_until


class VerificationRateLimited(ApplicationError):
    """Too many wrong dates of birth from this address, across all links, in the last hour."""


class DateOfBirthMismatch(ApplicationError):
    def __init__(self, message: str, *, attempts_left: int) -> None:
        super().__init__(message, extra={"attempts_left": attempts_left})
        self.attempts_left = attempts_left


# -- reading a request's state -----------------------------------------------------------------


def payment_request_state(payment_request: PaymentRequest, *, now: datetime.datetime | None = None) -> str:
    """``open``, ``paid``, ``cancelled`` or ``expired``: an open request past its expiry is expired
    for the patient even before the beat task marks it so (the row stays unpaid on record)."""
    status = payment_request.status
    if status == PaymentRequestStatus.OPEN and payment_request.expires_at <= (now or timezone.now()):
        return PaymentRequestStatus.EXPIRED
    return status


def payment_request_lock_remaining(payment_request: PaymentRequest, *, now: datetime.datetime | None = None):
    """How long the link stays locked after too many wrong dates of birth (None: not locked)."""
    locked_until = payment_request.verification_locked_until
    now = now or timezone.now()
    if locked_until is None or locked_until <= now:
        return None
    return locked_until - now


def _unavailable(state: str) -> PaymentLinkUnavailable:
    messages = {
        PaymentRequestStatus.PAID: _("This request is already paid."),
        PaymentRequestStatus.CANCELLED: _("This payment request was cancelled."),
        PaymentRequestStatus.EXPIRED: _("This link has expired."),
    }
    return PaymentLinkUnavailable(messages[state], state=state)


# -- opening the link and the date-of-birth check -------------------------------------------------


def payment_link_open(*, payment_request: PaymentRequest, ip_address: str | None) -> None:
    """Record that someone opened the link (before any check: the clinic sees every visit)."""
    audit_event_record(
        organization=payment_request.organization,
        action=AuditAction.PAY_LINK_OPENED,
        actor_type=ActorType.PATIENT,
        patient=payment_request.patient,
        payment_request=payment_request,
        changes={"state": payment_request_state(payment_request)},
        ip_address=ip_address,
    )


def _address_key(ip_address: str) -> str:
    return f"pay:dob-failures:{ip_address}"


def _address_limit_reached(ip_address: str | None) -> bool:
    """Too many wrong dates of birth from this address within the hour, across all links: counted
    in the cache every process shares (lumapay.rate_limits), so the limit holds across workers."""
    if not ip_address:
        return False
    return rate_limit_reached(_address_key(ip_address), limit=settings.PAY_PAGE_MAX_FAILED_DOB_ATTEMPTS_PER_ADDRESS)


def _address_failure_count(ip_address: str | None) -> None:
    """Count one failure for the address; the hour starts at its first failure."""
    if ip_address:
        rate_limit_increment(_address_key(ip_address), window_seconds=ADDRESS_WINDOW_SECONDS)


def payment_link_verify(
    *, payment_request: PaymentRequest, date_of_birth: datetime.date, ip_address: str | None
) -> PaymentRequest:
    """Check the patient's date of birth for this link.

    Raises ``DateOfBirthMismatch`` (with the attempts left on this link), ``PaymentLinkLocked``
    (after ``PAY_LINK_MAX_FAILED_DOB_ATTEMPTS`` failures, for ``PAY_LINK_LOCKOUT_MINUTES``),
    ``VerificationRateLimited`` (after ``PAY_PAGE_MAX_FAILED_DOB_ATTEMPTS_PER_ADDRESS`` failures
    from the address in an hour, across all links) or ``PaymentLinkUnavailable`` (cancelled or
    expired). Failures are committed before the error is raised. Returns the request as stored
    (the row it locked).
    """
    outcome: ApplicationError | None = None
    answered_wrong = False
    with db_transaction.atomic():
        locked = payment_request_lock(payment_request_id=payment_request.pk)
        now = timezone.now()
        state = payment_request_state(locked, now=now)
        if state in (PaymentRequestStatus.CANCELLED, PaymentRequestStatus.EXPIRED):
            raise _unavailable(state)

        def record(action: AuditAction, changes: dict) -> None:
            audit_event_record(
                organization=locked.organization,
                action=action,
                actor_type=ActorType.PATIENT,
                patient=locked.patient,
                payment_request=locked,
                changes=changes,
                ip_address=ip_address,
            )

        remaining = payment_request_lock_remaining(locked, now=now)
        if remaining is not None:
            record(AuditAction.PAY_LINK_VERIFICATION_REFUSED, {"reason": "link_locked"})
            outcome = PaymentLinkLocked(_("This link is locked."), locked_until=locked.verification_locked_until)
        elif _address_limit_reached(ip_address):
            record(AuditAction.PAY_LINK_VERIFICATION_REFUSED, {"reason": "address_limit"})
            outcome = VerificationRateLimited(_("Too many attempts from this address."))
        elif locked.patient.date_of_birth == date_of_birth:
            changes = {}
            if locked.failed_verification_count or locked.verification_locked_until:
                changes = {
                    "failed_verification_count": [locked.failed_verification_count, 0],
                    "verification_locked_until": [_iso(locked.verification_locked_until), None],
                }
                locked.failed_verification_count = 0
                locked.verification_locked_until = None
                locked.save(update_fields=["failed_verification_count", "verification_locked_until"])
            record(AuditAction.PAY_LINK_VERIFICATION_PASSED, changes)
        else:
            answered_wrong = True
            old_count = locked.failed_verification_count
            new_count = old_count + 1
            limit = settings.PAY_LINK_MAX_FAILED_DOB_ATTEMPTS
            record(AuditAction.PAY_LINK_VERIFICATION_FAILED, {"failed_verification_count": [old_count, new_count]})
            if new_count >= limit:
                # The count starts again once the lock ends, so the patient then has a full set of tries.
                locked.failed_verification_count = 0
                locked.verification_locked_until = now + datetime.timedelta(minutes=settings.PAY_LINK_LOCKOUT_MINUTES)
                record(
                    AuditAction.PAY_LINK_LOCKED,
                    {
                        "verification_locked_until": [None, _iso(locked.verification_locked_until)],
                        "failed_verification_count": [new_count, 0],
                    },
                )
                outcome = PaymentLinkLocked(_("This link is locked."), locked_until=locked.verification_locked_until)
                logger.info("payment request %s locked after %s failed date-of-birth checks", locked.pk, new_count)
            else:
                locked.failed_verification_count = new_count
                attempts_left = limit - new_count
                outcome = DateOfBirthMismatch(
                    ngettext(
                        "That date of birth does not match our records. You have %(count)d attempt left.",
                        "That date of birth does not match our records. You have %(count)d attempts left.",
                        attempts_left,
                    )
                    % {"count": attempts_left},
                    attempts_left=attempts_left,
                )
            locked.save(update_fields=["failed_verification_count", "verification_locked_until"])
    if answered_wrong:
        _address_failure_count(ip_address)
    if outcome is not None:
        raise outcome
    return locked


def _iso(value: datetime.datetime | None) -> str | None:
    return value.isoformat() if value else None


# -- the checkout ---------------------------------------------------------------------------------


def _absolute(name: str, payment_request: PaymentRequest) -> str:
    return settings.SITE_URL + reverse(name, kwargs={"token": payment_link_token(payment_request)})


def _latest_unpaid_checkout(payment_request: PaymentRequest, *, vendor: str) -> Transaction | None:
    return (
        Transaction.objects.filter(payment_request=payment_request, vendor=vendor, charged_cents=0)
        .exclude(gateway_checkout_id="")
        .order_by("-created_at", "-id")
        .first()
    )


def _is_resumable(transaction: Transaction) -> bool:
    """Still open at the gateway for long enough that the patient can finish paying on it."""
    expires_at = transaction.gateway_checkout_expires_at
    return bool(transaction.gateway_checkout_url) and (
        expires_at is None or expires_at > timezone.now() + CHECKOUT_RESUME_MARGIN
    )


def payment_request_checkout_close(*, payment_request: PaymentRequest) -> None:
    """Close the link's checkout still open at the gateway before something else settles the
    request (a payment plan takes its place), so the patient can never pay both. Committed on its
    own. Raises ``PaymentLinkUnavailable`` when the gateway says that checkout was paid (now
    recorded): then nothing else should settle it."""
    with db_transaction.atomic():
        locked = payment_request_lock(payment_request_id=payment_request.pk)
        previous = _latest_unpaid_checkout(locked, vendor=locked.organization.payment_gateway)
        now = timezone.now()
        if previous is None or (previous.gateway_checkout_expires_at is not None and previous.gateway_checkout_expires_at <= now):
            return
        fact = gateway_for(locked.organization).checkout_expire(transaction=previous)
        charge_fact_record(transaction=previous, fact=fact)
        # Not resumable any more: the next "Pay" on the link (if it is still open) starts afresh.
        Transaction.objects.filter(pk=previous.pk).update(gateway_checkout_expires_at=now, updated_at=now)
    if fact.status == "succeeded":
        raise _unavailable(PaymentRequestStatus.PAID)


def payment_request_checkout_open(payment_request: PaymentRequest) -> bool:
    """Whether a checkout of the request is open at the gateway now (the caller holds its lock)."""
    previous = _latest_unpaid_checkout(payment_request, vendor=payment_request.organization.payment_gateway)
    return previous is not None and (
        previous.gateway_checkout_expires_at is None or previous.gateway_checkout_expires_at > timezone.now()
    )


def checkout_begin(
    *,
    payment_request: PaymentRequest,
    ip_address: str | None,
    locale: str = "auto",
    success_url: str = "",
    cancel_url: str = "",
) -> CheckoutStart:
    """Start the gateway's hosted checkout for an open request, or resume the one already started.

    ``locale`` is the language the checkout's pages speak: the pay page passes the one the patient
    reads it in ("auto" leaves it to the gateway, which follows the browser). A resumed checkout
    keeps the language it was opened in, as Stripe's do.

    Under the payment request's lock, so a double submit or a second tab gets the same checkout
    and never a second charge. Raises ``PaymentLinkUnavailable`` when the request is paid (also when
    the gateway says its checkout was paid and we had not heard yet), cancelled or expired, and
    ``GatewayError`` when the gateway refuses (then nothing is written).

    ``success_url`` and ``cancel_url`` are where the gateway sends the patient back (the pay
    link's confirmation and "cancelled" pages unless given: an intake form's payment question
    brings the patient back to the form).
    """
    returns = {"success_url": success_url, "cancel_url": cancel_url}
    with db_transaction.atomic():
        locked = payment_request_lock(payment_request_id=payment_request.pk)
        state = payment_request_state(locked)
        if state != PaymentRequestStatus.OPEN:
            raise _unavailable(state)
        organization = locked.organization
        gateway = gateway_for(organization)

        previous = _latest_unpaid_checkout(locked, vendor=organization.payment_gateway)
        if previous is None:
            return _checkout_start(payment_request=locked, gateway=gateway, ip_address=ip_address, locale=locale, **returns)

        if _is_resumable(previous):
            fact = gateway.checkout_outcome(transaction=previous)
        else:
            # Close the old checkout before a new one replaces it, so the patient can never pay both.
            fact = gateway.checkout_expire(transaction=previous)
        charge_fact_record(transaction=previous, fact=fact)
        if fact.status != "succeeded":
            if not _is_resumable(previous):
                return _checkout_start(payment_request=locked, gateway=gateway, ip_address=ip_address, locale=locale, **returns)
            audit_event_record(
                organization=organization,
                action=AuditAction.CHECKOUT_RESUMED,
                actor_type=ActorType.PATIENT,
                patient=locked.patient,
                payment_request=locked,
                transaction=previous,
                changes={"checkout_id": previous.gateway_checkout_id},
                ip_address=ip_address,
            )
            return CheckoutStart(
                checkout_id=previous.gateway_checkout_id,
                redirect_url=previous.gateway_checkout_url,
                expires_at=previous.gateway_checkout_expires_at,
            )
    # The gateway had taken the payment before its event reached us: now recorded (and committed).
    raise _unavailable(PaymentRequestStatus.PAID)


def _checkout_start(
    *, payment_request: PaymentRequest, gateway, ip_address: str | None, locale: str, success_url: str = "", cancel_url: str = ""
) -> CheckoutStart:
    """A new transaction, its "charge requested" event and the gateway's checkout, all or nothing.
    The caller holds the payment request's lock."""
    organization = payment_request.organization
    transaction = transaction_open(
        organization=organization, payment_request=payment_request, vendor=organization.payment_gateway
    )
    start = gateway.checkout_start(
        transaction=transaction,
        success_url=success_url or _absolute("pay:done", payment_request),
        cancel_url=cancel_url or _absolute("pay:cancelled", payment_request),
        locale=locale,
    )
    transaction.gateway_checkout_id = start.checkout_id
    transaction.gateway_checkout_url = start.redirect_url
    transaction.gateway_checkout_expires_at = start.expires_at
    transaction.save(
        update_fields=["gateway_checkout_id", "gateway_checkout_url", "gateway_checkout_expires_at", "updated_at"]
    )
    transaction_event_append(
        transaction=transaction,
        kind=TransactionEventKind.CHARGE_REQUESTED,
        amount_cents=transaction.amount_cents,
        idempotency_key=f"checkout:{start.checkout_id}",
        actor_type=ActorType.PATIENT,
        gateway_reference=start.checkout_id,
    )
    audit_event_record(
        organization=organization,
        action=AuditAction.CHECKOUT_STARTED,
        actor_type=ActorType.PATIENT,
        patient=payment_request.patient,
        payment_request=payment_request,
        transaction=transaction,
        changes={
            "vendor": transaction.vendor,
            "amount_cents": transaction.amount_cents,
            "checkout_id": start.checkout_id,
        },
        ip_address=ip_address,
    )
    logger.info("transaction %s: checkout %s started", transaction.pk, start.checkout_id)
    return start


def checkout_outcome_record(*, transaction: Transaction) -> ChargeFact:
    """Ask the gateway what became of the transaction's checkout and record it in the ledger.

    The confirmation page calls this when the gateway's event may not have arrived yet; the
    event path records the same fact under the same idempotency key, so the ledger gets it once.
    """
    fact = gateway_named(transaction.vendor).checkout_outcome(transaction=transaction)
    charge_fact_record(transaction=transaction, fact=fact)
    return fact
