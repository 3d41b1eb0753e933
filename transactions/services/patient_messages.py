"""Every e-mail and SMS a patient is owed, through one outbox: ``PaymentRequestDelivery`` rows.

A message is owed in the same database transaction as its cause: a request's link with the request
(``payment_link_deliveries_owe``), a receipt with the ledger event that marks the transaction paid
(``receipt_owe``), a message an app above this one registered (``patient_message_register``; an
intake form's link) with what it is about (``patient_message_owe``). A rollback of the cause owes nothing; a commit cannot lose it, whatever happens
to the task queued after it.

Sending one (``delivery_send``, the task ``patient_message_send``) takes three steps, and no lock
or database transaction is held across the slow middle one:

1. claim, in a short transaction under the row's lock: still owed, due, not claimed by another
   sender; count the attempt and take a lease (``claimed_until``);
2. render (templates, the receipt's PDF) and hand the message to the provider, with no
   transaction open;
3. mark it sent (with the audit event), in another short transaction.

A failure the provider or the database may get over (a connection refused or terminated, a
timeout) leaves the row owed, with the reason, due again after a backoff; the task retries then,
and a beat sweep (``deliveries_resend_stuck``) re-sends rows whose task was lost or whose sender
died. After ``PATIENT_MESSAGE_MAX_ATTEMPTS`` attempts the row is given up, with the reason on the
request's history or the transaction's timeline. A refusal that will not change (an address the
provider rejects, SMS not configured) fails at once.

Exactly once, as far as it can be: the lease keeps two senders off one row, and a sender that
sent but could not mark (the database went away) retries the mark alone, without sending again.
What cannot be avoided is a sender that dies between the provider's acceptance and the mark (a
killed worker, a crashed machine): its lease runs out and the message is sent again (at least
once, never lost). The re-sent e-mail carries the same Message-ID, which many mailbox providers
use to drop the duplicate; an SMS would arrive twice.
"""

from __future__ import annotations

import datetime
import logging
import random
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formataddr, parseaddr

from anymail.exceptions import AnymailError, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import DatabaseError, IntegrityError, connection, transaction as db_transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.crypto import salted_hmac

from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction
from lumapay.models import ActorType, AuditEvent, sms_opted_out
from lumapay.money import format_cents
from lumapay.sms import SmsDeliveryError, SmsOptedOut, sms_send
from lumapay.task_queue import task_enqueue_on_commit

from ..enums import DeliveryChannel, DeliveryStatus, MessagePurpose, PaymentRequestStatus
from ..links import payment_link_url
from ..locks import delivery_lock
from ..models import PaymentRequest, PaymentRequestDelivery, Transaction
from ..pay_page_panels import pay_page_message_lines
from .receipts import receipt_context

logger = logging.getLogger(__name__)

SEND_TASK = "transactions.tasks.patient_message_send"
# A sender's lease on a row it claimed is settings.PATIENT_MESSAGE_CLAIM_LEASE_SECONDS: longer than
# any send can take (the PDF, EMAIL_TIMEOUT_SECONDS for SMTP), so a live sender is never overtaken,
# and short, because a dead sender's row (a killed worker) waits it out before it is sent again.
# The first retry after a failure waits this long, then twice as long each time, up to the cap.
BACKOFF_FIRST_SECONDS = 30
BACKOFF_MAX_SECONDS = 3600
# The sweep leaves a row this long past its due time to the task queued for it (a row whose
# sender's lease ran out has no task coming: the sweep takes it at once).
SWEEP_GRACE = datetime.timedelta(minutes=1)

_LINK_TEMPLATES = "transactions/payment_requests/messages"


class DeliveryRetry(Exception):
    """The message is still owed: try again in ``countdown_seconds``, passing ``retry_kwargs``. They
    say what this sender left behind when the database went away: a message that went out and is
    not marked sent (``sent_as``, the provider's id: only the mark is left), or its claim on the
    row (``claimed_attempt``: released first, so the retry need not wait for the lease)."""

    def __init__(self, reason: str, *, countdown_seconds: int, sent_as: str = "", claimed_attempt: int = 0) -> None:
        # Celery logs the exception it retries with: the reason (a provider's answer, which can
        # name the patient's address) stays on the delivery row and in ``reason``, not in the text.
        super().__init__(f"delivery still owed; retry in {countdown_seconds} s")
        self.reason = reason
        self.countdown_seconds = countdown_seconds
        self.retry_kwargs = {"sent_as": sent_as, "claimed_attempt": claimed_attempt}


class _Refused(Exception):
    """The provider refused the message for good: retrying would change nothing."""


@dataclass(frozen=True)
class _Outcome:
    provider_message_id: str
    details: dict


@dataclass(frozen=True)
class RegisteredMessage:
    """A message of an app above ``transactions`` (imports run one way, so this module cannot read
    its models), sent through this outbox with the same claim, retries, STOP check and sweep.
    Registered from the app's ``AppConfig.ready()`` with ``patient_message_register``."""

    # (delivery) -> (subject, text, html): rendered in the patient's language; an SMS sends the
    # text alone, an e-mail the three (html may be "").
    render: Callable[[PaymentRequestDelivery], tuple[str, str, str]]
    # (delivery, sent, details) -> None: the audit event of the outcome, in the transaction that
    # marks the row; ``details`` has the provider's id when sent, the reason when not.
    outcome: Callable[[PaymentRequestDelivery, bool, dict], None]


_registered_messages: dict[str, RegisteredMessage] = {}


def patient_message_register(purpose: str, message: RegisteredMessage) -> None:
    if purpose in (MessagePurpose.PAYMENT_LINK, MessagePurpose.RECEIPT, MessagePurpose.PLAN_CHARGE_FAILED):
        raise ValueError(f"{purpose} is this outbox's own message")
    _registered_messages[MessagePurpose(purpose)] = message


# -- owing a message (inside the cause's database transaction) --------------------------------------


def patient_message_owe(*, organization_id: int, purpose: str, channel: str, destination: str) -> PaymentRequestDelivery:
    """Owe a patient a registered message (``patient_message_register``) in the caller's
    transaction; the caller keeps the row's id with its cause, which the renderer reads."""
    if purpose not in _registered_messages:
        raise ValueError(f"No message registered for {purpose}")
    delivery = PaymentRequestDelivery.objects.create(
        organization_id=organization_id, purpose=purpose, channel=channel, destination=destination
    )
    task_enqueue_on_commit(SEND_TASK, delivery.pk, robust=True)
    return delivery


def payment_link_deliveries_owe(
    *, payment_request: PaymentRequest, channels: list[tuple[str, str]]
) -> list[PaymentRequestDelivery]:
    """One owed delivery of the request's link per (channel, destination), in the caller's
    transaction; each is handed to the send task once it commits."""
    deliveries = []
    for channel, destination in channels:
        delivery = PaymentRequestDelivery.objects.create(
            organization_id=payment_request.organization_id,
            purpose=MessagePurpose.PAYMENT_LINK,
            payment_request=payment_request,
            channel=channel,
            destination=destination,
        )
        # robust: a broker that is down must not undo the request; the sweep sends it later.
        task_enqueue_on_commit(SEND_TASK, delivery.pk, robust=True)
        deliveries.append(delivery)
    return deliveries


def receipt_owe(*, transaction: Transaction, actor_type: str = ActorType.SYSTEM) -> PaymentRequestDelivery | None:
    """Owe the patient the receipt of a transaction just paid, in the caller's database transaction
    (the one that records the charge, under the transaction's lock). Once per transaction: a second
    call returns the row the first one wrote. A patient without an e-mail address gets a note on
    the timeline instead ("No receipt sent"); then None."""
    existing = PaymentRequestDelivery.objects.filter(
        transaction=transaction, purpose=MessagePurpose.RECEIPT, channel=DeliveryChannel.EMAIL
    ).first()
    if existing is not None:
        return existing
    patient = transaction.patient
    if not patient.email:
        if not AuditEvent.objects.filter(transaction=transaction, action=AuditAction.RECEIPT_SKIPPED).exists():
            audit_event_record(
                organization=transaction.organization,
                action=AuditAction.RECEIPT_SKIPPED,
                actor_type=actor_type,
                patient=patient,
                payment_request=transaction.payment_request,
                transaction=transaction,
                changes={"reason": "no_email"},
            )
        return None
    try:
        with db_transaction.atomic():
            delivery = PaymentRequestDelivery.objects.create(
                organization_id=transaction.organization_id,
                purpose=MessagePurpose.RECEIPT,
                transaction=transaction,
                channel=DeliveryChannel.EMAIL,
                destination=patient.email,
            )
    except IntegrityError:
        # Owed already by a caller that did not hold the transaction's lock (the legacy task).
        return PaymentRequestDelivery.objects.get(
            transaction=transaction, purpose=MessagePurpose.RECEIPT, channel=DeliveryChannel.EMAIL
        )
    # robust: a broker that is down must not turn the patient's confirmation into an error.
    task_enqueue_on_commit(SEND_TASK, delivery.pk, robust=True)
    return delivery


# -- sending one ----------------------------------------------------------------------------------


def delivery_send(*, delivery_id: int, sent_as: str = "", claimed_attempt: int = 0) -> PaymentRequestDelivery | None:
    """Send one owed message: claim, send, mark (see the module's docstring). Returns the row as it
    stands, or None when there is no such row. Does nothing to a row that is sent, failed, claimed
    by another sender or not due yet, so a second delivery of the task is harmless.

    Raises ``DeliveryRetry`` when the message is still owed after a failure that may pass, and
    lets a database error out when nothing was claimed (the task retries it). ``sent_as`` and
    ``claimed_attempt`` come from an earlier ``DeliveryRetry``.
    """
    _connection_recover()
    if sent_as:
        return _mark_sent_after_send(delivery_id, sent_as)
    if claimed_attempt:
        _claim_release(delivery_id, claimed_attempt)
    delivery, claimed = _claim(delivery_id)
    if not claimed:
        return delivery
    try:
        outcome = _render_and_send(delivery)
    except _Refused as refusal:
        return _failed_for_good(delivery.pk, str(refusal))
    except (DatabaseError, smtplib.SMTPException, OSError, AnymailError, SmsDeliveryError) as error:
        reason = _failure_reason(delivery, error)
        # The delivery's id and channel only: the provider's message may name the patient's address.
        logger.warning(
            "delivery %s (%s) attempt %s failed: %s", delivery.pk, delivery.channel, delivery.attempts, type(error).__name__
        )
        try:
            countdown = _attempt_failed(delivery.pk, reason)
        except DatabaseError:
            raise DeliveryRetry(
                reason, countdown_seconds=backoff_seconds(delivery.attempts), claimed_attempt=delivery.attempts
            ) from error
        raise DeliveryRetry(reason, countdown_seconds=countdown) from error
    try:
        return _mark_sent(delivery.pk, outcome)
    except DatabaseError as error:
        # Sent, but not marked: the retry marks it and sends nothing.
        logger.warning("delivery %s sent, not yet marked sent: %s", delivery.pk, type(error).__name__)
        raise DeliveryRetry(str(error), countdown_seconds=5, sent_as=outcome.provider_message_id) from error


def deliveries_resend_stuck(*, now: datetime.datetime | None = None) -> int:
    """Queue the send task again for every owed message that is due and that no live sender holds
    (its task was lost, its sender died, or the database was down when it failed). Beat runs this
    every ``PATIENT_MESSAGES_RESEND_EVERY_MINUTES``. Returns how many were queued.

    A row whose sender's lease ran out is queued at once: its sender died mid-send (a killed
    worker) and no task is coming for it. Others get ``SWEEP_GRACE`` past their due time, which
    belongs to the task queued for them."""
    now = now or timezone.now()
    stuck = (
        PaymentRequestDelivery.objects.filter(status=DeliveryStatus.QUEUED, next_attempt_at__lte=now)
        .filter(Q(claimed_until__lte=now) | Q(claimed_until__isnull=True, next_attempt_at__lte=now - SWEEP_GRACE))
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:1000]
    )
    ids = list(stuck)
    for delivery_id in ids:
        task_enqueue_on_commit(SEND_TASK, delivery_id)
    if ids:
        logger.info("re-sending %s owed messages", len(ids))
    return len(ids)


def backoff_seconds(attempts: int) -> int:
    """How long to wait after the ``attempts``-th failed attempt: doubling, capped, with jitter
    (so messages that failed together do not all come back together)."""
    base = min(BACKOFF_FIRST_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS)
    return max(1, round(base * random.uniform(0.8, 1.2)))


def receipt_email_send(*, transaction_id: int) -> PaymentRequestDelivery | None:
    """The receipt task of earlier releases, by transaction id (tasks already queued when this
    release was deployed): owe the receipt if it is not owed and was never sent, then send it."""
    with db_transaction.atomic():
        transaction = (
            Transaction.objects.select_for_update(of=("self",))
            .select_related("organization", "patient", "payment_request")
            .filter(pk=transaction_id)
            .first()
        )
        if transaction is None or transaction.charged_cents <= 0:
            return None
        already = AuditEvent.objects.filter(
            transaction=transaction, action__in=[AuditAction.RECEIPT_SENT, AuditAction.RECEIPT_SKIPPED]
        ).exists()
        delivery = None if already else receipt_owe(transaction=transaction)
    return delivery


# -- the three steps ------------------------------------------------------------------------------


def _claim(delivery_id: int) -> tuple[PaymentRequestDelivery | None, bool]:
    """Step 1, a short transaction under the row's lock. Returns the row and whether this call
    claimed it (then it is ours to send until ``claimed_until``)."""
    now = timezone.now()
    with db_transaction.atomic():
        delivery = delivery_lock(delivery_id=delivery_id, skip_locked=True)
        if delivery is None:
            # No such row, or another sender is claiming it this instant.
            return PaymentRequestDelivery.objects.filter(pk=delivery_id).first(), False
        if delivery.status != DeliveryStatus.QUEUED:
            return delivery, False
        if (delivery.claimed_until and delivery.claimed_until > now) or delivery.next_attempt_at > now:
            return delivery, False  # another sender holds it, or it is not due
        if delivery.attempts >= settings.PATIENT_MESSAGE_MAX_ATTEMPTS:
            reason = delivery.error_message or "no reason was recorded."
            _outcome_record(
                delivery, DeliveryStatus.FAILED, error_message=f"Given up after {delivery.attempts} attempts. {reason}"
            )
            return delivery, False
        if delivery.channel == DeliveryChannel.SMS:
            refusal = _sms_opt_out_refusal(delivery)
            if refusal:
                # Final: an opted-out number is never retried (START lets later messages go).
                _outcome_record(delivery, DeliveryStatus.FAILED, error_message=refusal)
                return delivery, False
        if delivery.purpose == MessagePurpose.PAYMENT_LINK:
            refusal = _link_refusal(delivery.payment_request, now)
            if refusal:
                _outcome_record(delivery, DeliveryStatus.FAILED, error_message=refusal)
                return delivery, False
        delivery.attempts += 1
        delivery.claimed_until = now + datetime.timedelta(seconds=settings.PATIENT_MESSAGE_CLAIM_LEASE_SECONDS)
        delivery.save(update_fields=["attempts", "claimed_until"])
    return delivery, True


def _claim_release(delivery_id: int, claimed_attempt: int) -> None:
    """Give up the claim an earlier run of this task took and could not release (the database
    was away), so the row is due again now rather than when the lease runs out."""
    with db_transaction.atomic():
        delivery = delivery_lock(delivery_id=delivery_id)
        if delivery and delivery.status == DeliveryStatus.QUEUED and delivery.attempts == claimed_attempt:
            delivery.claimed_until = None
            delivery.save(update_fields=["claimed_until"])


def _render_and_send(delivery: PaymentRequestDelivery) -> _Outcome:
    """Step 2, with no database transaction open: it renders (reading rows) and calls the provider."""
    if delivery.purpose == MessagePurpose.RECEIPT:
        return _receipt_send(delivery)
    if delivery.purpose == MessagePurpose.PLAN_CHARGE_FAILED:
        return _plan_notice_send(delivery)
    if delivery.purpose in _registered_messages:
        return _registered_send(delivery)
    if delivery.channel == DeliveryChannel.EMAIL:
        return _link_email_send(delivery)
    return _link_sms_send(delivery)


def _mark_sent(delivery_id: int, outcome: _Outcome) -> PaymentRequestDelivery:
    """Step 3, a short transaction under the row's lock."""
    with db_transaction.atomic():
        delivery = delivery_lock(delivery_id=delivery_id)
        if delivery.status != DeliveryStatus.QUEUED:
            return delivery
        delivery.provider_message_id = outcome.provider_message_id[:100]
        delivery.sent_at = timezone.now()
        return _outcome_record(delivery, DeliveryStatus.SENT, details=outcome.details)


def _mark_sent_after_send(delivery_id: int, provider_message_id: str) -> PaymentRequestDelivery | None:
    delivery = PaymentRequestDelivery.objects.filter(pk=delivery_id).first()
    if delivery is None:
        return None
    details = {"provider_message_id": provider_message_id[:100]}
    if delivery.purpose == MessagePurpose.RECEIPT:
        details = {"channel": delivery.channel, "language": _receipt_language(delivery.transaction)}
    return _mark_sent(delivery_id, _Outcome(provider_message_id, details))


def _attempt_failed(delivery_id: int, reason: str) -> int:
    """The attempt failed in a way that may pass: record why, free the row, make it due after the
    backoff. Returns the backoff in seconds. When the database is what failed, reconnects first; if
    it is still away, the lease runs out and the sweep takes the row."""
    _connection_recover()
    with db_transaction.atomic():
        delivery = delivery_lock(delivery_id=delivery_id)
        countdown = backoff_seconds(delivery.attempts)
        if delivery.status != DeliveryStatus.QUEUED:
            return countdown
        delivery.error_message = reason[:500]
        delivery.claimed_until = None
        delivery.next_attempt_at = timezone.now() + datetime.timedelta(seconds=countdown)
        delivery.save(update_fields=["error_message", "claimed_until", "next_attempt_at"])
    return countdown


def _connection_recover() -> None:
    """Drop this thread's database connection if an error left it unusable (PostgreSQL restarted,
    the connection was terminated), so the next query opens a new one. Outside a transaction only:
    inside one, the error belongs to whoever opened it."""
    if connection.in_atomic_block or connection.connection is None or not connection.errors_occurred:
        return
    if connection.is_usable():
        connection.errors_occurred = False
    else:
        connection.close()


def _failed_for_good(delivery_id: int, reason: str) -> PaymentRequestDelivery:
    with db_transaction.atomic():
        delivery = delivery_lock(delivery_id=delivery_id)
        if delivery.status == DeliveryStatus.QUEUED:
            _outcome_record(delivery, DeliveryStatus.FAILED, error_message=reason)
        return delivery


def _outcome_record(
    delivery: PaymentRequestDelivery, status: str, *, error_message: str = "", details: dict | None = None
) -> PaymentRequestDelivery:
    """A queued row becomes sent or failed, with its audit event: for a link on the request's
    history, for a receipt on the transaction's timeline. The caller holds the row's lock."""
    delivery.status = status
    delivery.claimed_until = None
    fields = ["status", "claimed_until", "provider_message_id", "sent_at"]
    if status == DeliveryStatus.FAILED:
        delivery.error_message = error_message[:500]
        fields.append("error_message")
        logger.warning("delivery %s (%s) failed for good", delivery.pk, delivery.channel)
    delivery.save(update_fields=fields)
    if delivery.purpose in _registered_messages:
        _registered_messages[delivery.purpose].outcome(
            delivery,
            status == DeliveryStatus.SENT,
            (details or {}) if status == DeliveryStatus.SENT else {"reason": delivery.error_message},
        )
        return delivery
    if delivery.purpose == MessagePurpose.RECEIPT:
        transaction = Transaction.objects.select_related("organization", "patient", "payment_request").get(
            pk=delivery.transaction_id
        )
        audit_event_record(
            organization=transaction.organization,
            action=AuditAction.RECEIPT_SENT if status == DeliveryStatus.SENT else AuditAction.RECEIPT_NOT_SENT,
            actor_type=ActorType.SYSTEM,
            patient=transaction.patient,
            payment_request=transaction.payment_request,
            transaction=transaction,
            changes=details
            if status == DeliveryStatus.SENT
            else {"channel": delivery.channel, "attempts": delivery.attempts, "reason": delivery.error_message},
        )
        return delivery
    payment_request = PaymentRequest.objects.select_related("organization", "patient").get(pk=delivery.payment_request_id)
    audit_event_record(
        organization=payment_request.organization,
        action=(
            AuditAction.PAYMENT_REQUEST_DELIVERY_SENT
            if status == DeliveryStatus.SENT
            else AuditAction.PAYMENT_REQUEST_DELIVERY_FAILED
        ),
        actor_type=ActorType.SYSTEM,
        patient=payment_request.patient,
        payment_request=payment_request,
        changes={
            "delivery_id": delivery.pk,
            "channel": delivery.channel,
            "status": [DeliveryStatus.QUEUED, status],
            **(details if status == DeliveryStatus.SENT else {"error_message": delivery.error_message}),
        },
    )
    return delivery


def _sms_opt_out_refusal(delivery: PaymentRequestDelivery) -> str:
    """Why no text may go to the delivery's number: it replied STOP (across all clinics, see
    ``lumapay.models.SmsOptOut``); "" when it may."""
    opt_out = sms_opted_out(delivery.destination)
    if opt_out is None:
        return ""
    with timezone.override(delivery.organization.timezone):
        when = timezone.localtime(opt_out.opted_out_at).strftime("%b %d, %Y") if opt_out.opted_out_at else "earlier"
    return (
        f"Not sent: the patient replied {opt_out.keyword or 'STOP'} to our text messages on {when} and gets no "
        "texts until they reply START."
    )


def _link_refusal(payment_request: PaymentRequest, now: datetime.datetime) -> str:
    if payment_request.status != PaymentRequestStatus.OPEN:
        return (
            f"Not sent: the request was {payment_request.get_status_display().lower()} "
            "before this message went out."
        )
    if payment_request.expires_at <= now:
        return "Not sent: the link had expired before this message went out."
    return ""


def _failure_reason(delivery: PaymentRequestDelivery, error: Exception) -> str:
    if isinstance(error, DatabaseError):
        return f"The database was unavailable while the message was prepared ({type(error).__name__})."
    if isinstance(error, SmsDeliveryError):
        return error.message
    what = "e-mail" if delivery.channel == DeliveryChannel.EMAIL else "text message"
    return f"The {what} could not be sent: {error}"


# -- rendering and handing to the provider -----------------------------------------------------------


def _message_id(delivery: PaymentRequestDelivery) -> str:
    """The e-mail's Message-ID: the same for every attempt at one row (so a mailbox provider can
    drop a duplicate), and unguessable across installations."""
    _, from_address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    token = salted_hmac("transactions.delivery.message-id", str(delivery.pk)).hexdigest()[:24]
    return f"<{token}.{delivery.pk}@{from_address.rpartition('@')[2] or 'lumapay.localhost'}>"


def _email_send(message: EmailMultiAlternatives) -> str:
    """Hand an e-mail to the backend; the provider's id for it. Raises ``_Refused`` when the
    provider rejects the recipient (a retry would be rejected too)."""
    try:
        message.send()
    except (smtplib.SMTPRecipientsRefused, AnymailRecipientsRefused) as error:
        raise _Refused(f"The e-mail could not be sent: the address was refused ({error}).") from error
    # An ESP (django-anymail) names its own id; over SMTP the Message-ID we set is the reference.
    anymail_message_id = getattr(getattr(message, "anymail_status", None), "message_id", None)
    return str(anymail_message_id) if anymail_message_id else message.extra_headers["Message-ID"]


def _link_context(payment_request: PaymentRequest) -> dict:
    organization = payment_request.organization
    return {
        "clinic_name": organization.display_name,
        "amount": format_cents(payment_request.amount_cents, payment_request.currency),
        "billing_item": payment_request.billing_item,
        "note": payment_request.note,
        "link": payment_link_url(payment_request),
        "expires_at": payment_request.expires_at,
        "support_phone": organization.support_phone,
        "support_email": organization.support_email,
    }


def _link_render(
    payment_request: PaymentRequest, template_names: list[str], *, folder: str = _LINK_TEMPLATES, extra: dict | None = None
) -> list[str]:
    """The link's message in the patient's preferred language, with dates in the clinic's time zone."""
    with translation.override(payment_request.patient.preferred_language), timezone.override(
        payment_request.organization.timezone
    ):
        context = {**_link_context(payment_request), "also": pay_page_message_lines(payment_request), **(extra or {})}
        return [render_to_string(f"{folder}/{name}", context) for name in template_names]


def _link_request(delivery: PaymentRequestDelivery) -> PaymentRequest:
    return PaymentRequest.objects.select_related("organization", "patient").get(pk=delivery.payment_request_id)


def _link_email_send(delivery: PaymentRequestDelivery) -> _Outcome:
    payment_request = _link_request(delivery)
    subject, text_body, html_body = _link_render(
        payment_request, ["email_subject.txt", "email_body.txt", "email_body.html"]
    )
    return _clinic_email_send(delivery, payment_request.organization, subject, text_body, html_body)


def _clinic_email_send(delivery: PaymentRequestDelivery, organization, subject: str, text_body: str, html_body: str) -> _Outcome:
    """An e-mail from the clinic (its name, our address; replies to its support address)."""
    _, from_address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
        body=text_body,
        from_email=formataddr((organization.display_name, from_address)),
        to=[delivery.destination],
        reply_to=[organization.support_email] if organization.support_email else None,
        headers={"Message-ID": _message_id(delivery)},
    )
    if html_body:
        message.attach_alternative(html_body, "text/html")
    provider_message_id = _email_send(message)
    return _Outcome(provider_message_id, {"provider_message_id": provider_message_id[:100]})


def _registered_send(delivery: PaymentRequestDelivery) -> _Outcome:
    subject, text_body, html_body = _registered_messages[delivery.purpose].render(delivery)
    if delivery.channel == DeliveryChannel.EMAIL:
        return _clinic_email_send(delivery, delivery.organization, subject, text_body, html_body)
    return _sms_hand_over(delivery, text_body)


def _link_sms_send(delivery: PaymentRequestDelivery) -> _Outcome:
    (body,) = _link_render(_link_request(delivery), ["sms.txt"])
    return _sms_hand_over(delivery, body)


def _sms_hand_over(delivery: PaymentRequestDelivery, body: str) -> _Outcome:
    try:
        provider_message_id = sms_send(to=delivery.destination, body=" ".join(body.split()))
    except SmsOptedOut as error:
        # STOP arrived between the claim and the send.
        raise _Refused(error.message) from error
    except SmsDeliveryError as error:
        if error.transient:
            raise
        raise _Refused(error.message) from error
    return _Outcome(provider_message_id, {"provider_message_id": provider_message_id[:100]})


def _plan_notice_send(delivery: PaymentRequestDelivery) -> _Outcome:
    """A plan's instalment was declined: what happened, when it is tried again (or that the clinic
    will be in touch), and the link to pay it or put a new card on file."""
    payment_request = _link_request(delivery)
    instalment = payment_request.plan_instalments.select_related("plan", "plan__saved_card").first()
    extra = {
        "card": str(instalment.plan.saved_card) if instalment else "",
        "instalment_number": instalment.number if instalment else "",
        "instalment_count": instalment.plan.instalment_count if instalment else "",
        "retry_at": instalment.next_attempt_at if instalment and instalment.status == "retrying" else None,
    }
    folder = "transactions/payment_plans/messages"
    if delivery.channel == DeliveryChannel.SMS:
        (body,) = _link_render(payment_request, ["sms.txt"], folder=folder, extra=extra)
        return _sms_hand_over(delivery, body)
    subject, text_body = _link_render(payment_request, ["email_subject.txt", "email_body.txt"], folder=folder, extra=extra)
    return _clinic_email_send(delivery, payment_request.organization, subject, text_body, "")


def _receipt_language(transaction: Transaction) -> str:
    return transaction.patient.preferred_language or settings.LANGUAGE_CODE


def _receipt_send(delivery: PaymentRequestDelivery) -> _Outcome:
    """The receipt e-mail with its PDF, in the patient's language."""
    from .receipt_documents import receipt_filename, receipt_pdf

    transaction = Transaction.objects.select_related("organization", "patient", "location", "payment_request").get(
        pk=delivery.transaction_id
    )
    organization, patient = transaction.organization, transaction.patient
    language = _receipt_language(transaction)
    with translation.override(language):
        context = receipt_context(transaction=transaction)
        context["patient_first_name"] = patient.first_name
        subject = " ".join(render_to_string("transactions/emails/receipt.subject.txt", context).split())
        text_body = render_to_string("transactions/emails/receipt.txt", context)
        html_body = render_to_string("transactions/emails/receipt.html", context)
        filename = receipt_filename(transaction=transaction)
    pdf = receipt_pdf(transaction=transaction, language=language)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text_body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[delivery.destination],
        reply_to=[organization.support_email] if organization.support_email else None,
        headers={"Message-ID": _message_id(delivery)},
    )
    message.attach_alternative(html_body, "text/html")
    message.attach(filename, pdf, "application/pdf")
    provider_message_id = _email_send(message)
    return _Outcome(provider_message_id, {"channel": "email", "language": language})
