"""Cards on file: saved with the patient's consent, charged by staff while the patient is away,
held before a visit and captured at check-in (or released when the visit is cancelled or
missed: ``authorizations_release_for_missed_visits``, on Celery beat), and removed by the
patient or staff.

Stripe keeps the card (a PaymentMethod under a Customer on the clinic's connected account that
carries no patient information); we keep its ids, brand, last 4 digits and expiry, and the
consent as given. Like refunds, a staff charge writes its transaction and "charge requested"
event first, then calls the gateway outside any database transaction (with the transaction's own
idempotency key), then records the answer through the ledger path the gateway's events also
take, so the two converge.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection, transaction as db_transaction
from django.utils import timezone
from django.utils.translation import gettext

from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import ActorType
from lumapay.money import format_cents
from ehr_sync.enums import AppointmentStatus
from org_profile.access import AccessDenied, roles_in_words, staff_access
from org_profile.enums import PaymentGateway

from ..enums import CollectionRule, SavedCardStatus, TransactionEventKind as Kind, TransactionStatus
from ..gateways.base import ChargeFact, CheckoutStart, GatewayError, GatewayUnavailable
from ..gateways.stripe import StripeGateway
from ..locks import payment_request_lock, transaction_lock
from ..models import SavedCard, Transaction, TransactionEvent
from .ledger import transaction_event_append
from .ledger_facts import charge_fact_record
from .transaction_open import transaction_open

logger = logging.getLogger(__name__)

# Shown to the patient next to the box they tick; recorded word for word with the card.
def card_on_file_consent_text(organization) -> str:
    """The consent, in the active language: the pay page shows it in the patient's language, and
    the text shown is the text recorded."""
    return gettext(
        "I authorize %(clinic)s to keep this card on file with its payment processor and to charge it for my "
        "copays and balances, including holding a copay before a visit and charging it at check-in. I can "
        "remove the card at any time from a payment link or by asking the clinic."
    ) % {"clinic": organization.display_name}


def _stripe_for(organization) -> StripeGateway:
    if organization.payment_gateway != PaymentGateway.STRIPE:
        raise ApplicationError("Cards can be kept on file only when the clinic takes payments through Stripe.")
    return StripeGateway()


# Staff who are not members are told what a member with the wrong role is told.
_DENIED = {
    AccessDenied.NOT_A_MEMBER: "Your role does not allow this.",
    AccessDenied.LOCATION: "You can charge cards only for your own locations.",
}
_HOLD_DENIED = {**_DENIED, AccessDenied.LOCATION: "You can capture or release holds only at your own locations."}

# What a refusal records as the action tried (``saved_card.refused`` audit events).
CHARGE, HOLD, CAPTURE, RELEASE = "charge", "hold", "capture", "release"


def saved_card_roles_text(organization) -> str:
    """Who may charge, hold, capture and release in this organization: "administrators and managers"."""
    return roles_in_words(organization.saved_card_roles)


def saved_card_refusal_text(organization) -> str:
    return (
        f"In this organization, only {saved_card_roles_text(organization)} can charge a card on file, "
        "hold an amount on it, or capture or release a hold."
    )


def _refusal_record(
    *, organization, actor, action: str, reason: str, patient, transaction=None, amount_cents: int, rule: str = ""
) -> None:
    """A refused charge, hold, capture or release is kept in the audit trail (who tried what, and
    why it was refused): committed on its own, as nothing else is written. ``actor`` None: LumaPay
    itself, by ``rule``."""
    changes = {"attempted": action, "reason": reason, "amount_cents": amount_cents}
    if actor is None:
        changes["rule"] = rule
    audit_event_record(
        organization=organization,
        action=AuditAction.SAVED_CARD_REFUSED,
        actor_type=ActorType.STAFF if actor is not None else ActorType.SYSTEM,
        actor_user=actor,
        patient=patient,
        transaction=transaction,
        changes=changes,
    )


def _require_card_role(*, organization, actor, location, action: str, patient, transaction=None, amount_cents: int) -> None:
    """The actor is an active member whose role the organization lets use cards on file
    (``Organization.saved_card_roles``), working at ``location``. A refusal is audited."""
    refused = saved_card_refusal_text(organization)
    denied = {
        **(_HOLD_DENIED if action in (CAPTURE, RELEASE) else _DENIED),
        AccessDenied.NOT_A_MEMBER: refused,
        AccessDenied.ROLE: refused,
    }
    try:
        staff_access(organization=organization, actor=actor, roles=organization.saved_card_roles, location=location, denied=denied)
    except AccessDenied as error:
        _refusal_record(
            organization=organization, actor=actor, action=action, reason=error.reason,
            patient=patient, transaction=transaction, amount_cents=amount_cents,
        )  # fmt: skip
        raise


def _require_within_limit(*, organization, actor, action: str, patient, amount_cents: int, rule: str = "") -> None:
    """One charge or hold takes at most the organization's ``saved_card_charge_max_cents``, whoever
    asks (staff, or LumaPay by a collection rule)."""
    limit = organization.saved_card_charge_max_cents
    if amount_cents <= limit:
        return
    _refusal_record(
        organization=organization, actor=actor, action=action, reason="limit", patient=patient,
        amount_cents=amount_cents, rule=rule,
    )  # fmt: skip
    raise ApplicationError(
        f"{format_cents(amount_cents, organization.currency)} is more than this organization allows for one "
        f"{'hold' if action == HOLD else 'charge'} of a card on file ({format_cents(limit, organization.currency)}). "
        "Send the patient a payment request instead, or ask an administrator to raise the limit in the organization settings."
    )


# -- saving a card (the patient, through the payment link) -------------------------------------------


def saved_card_setup_begin(
    *, payment_request, consent_given: bool, consent_text: str, ip_address: str | None, success_url: str, cancel_url: str
) -> CheckoutStart:
    """The patient (past the date-of-birth check) agreed to keep a card on file: record the consent
    and open Stripe's page where they enter the card. Nothing is charged."""
    organization = payment_request.organization
    expected = card_on_file_consent_text(organization)
    if not consent_given or consent_text != expected:
        raise ApplicationError("Tick the box to agree before your card is kept on file.")
    gateway = _stripe_for(organization)
    with db_transaction.atomic():
        locked = payment_request_lock(payment_request_id=payment_request.pk)
        patient = locked.patient
        customer_id = (
            SavedCard.objects.filter(organization=organization, patient=patient, vendor=PaymentGateway.STRIPE)
            .exclude(gateway_customer_id="")
            .values_list("gateway_customer_id", flat=True)
            .first()
        ) or gateway.customer_create(organization=organization, patient_id=patient.pk)
        card = SavedCard.objects.create(
            organization=organization,
            patient=patient,
            vendor=PaymentGateway.STRIPE,
            gateway_customer_id=customer_id,
            consent_text=expected,
            consented_at=timezone.now(),
            consent_ip_address=ip_address,
        )
        start = gateway.card_setup_start(
            organization=organization,
            customer_id=customer_id,
            saved_card_id=card.pk,
            success_url=success_url,
            cancel_url=cancel_url,
        )
        card.gateway_setup_id = start.checkout_id
        card.save(update_fields=["gateway_setup_id"])
        audit_event_record(
            organization=organization,
            action=AuditAction.SAVED_CARD_CONSENTED,
            actor_type=ActorType.PATIENT,
            patient=patient,
            payment_request=locked,
            changes={"saved_card": card.pk, "consent_text": expected},
            ip_address=ip_address,
        )
    return start


def saved_card_setup_complete(*, saved_card: SavedCard) -> SavedCard:
    """Keep the card once Stripe has it (the patient is back from Stripe's page). Harmless to call
    again: a card already kept, or still being entered, is returned as it is."""
    if saved_card.status != SavedCardStatus.PENDING:
        return saved_card
    fact = StripeGateway().card_setup_outcome(organization=saved_card.organization, setup_id=saved_card.gateway_setup_id)
    if fact is None:
        return saved_card
    with db_transaction.atomic():
        kept = SavedCard.objects.filter(pk=saved_card.pk, status=SavedCardStatus.PENDING).update(
            status=SavedCardStatus.ACTIVE,
            gateway_payment_method_id=fact.payment_method_id,
            card_brand=fact.card_brand,
            card_last4=fact.card_last4,
            exp_month=fact.exp_month,
            exp_year=fact.exp_year,
        )
        if kept:
            audit_event_record(
                organization=saved_card.organization,
                action=AuditAction.SAVED_CARD_SAVED,
                actor_type=ActorType.GATEWAY,
                patient=saved_card.patient,
                changes={"saved_card": saved_card.pk, "card": f"{fact.card_brand} {fact.card_last4}"},
            )
    saved_card.refresh_from_db()
    return saved_card


def saved_card_remove(*, saved_card: SavedCard, actor=None, ip_address: str | None = None) -> SavedCard:
    """Remove a card: Stripe forgets it, and we never charge it again. ``actor`` is the staff user,
    or None for the patient (through their payment link)."""
    if actor is not None:
        staff_access(organization=saved_card.organization, actor=actor, denied=_DENIED)
    if saved_card.status == SavedCardStatus.REMOVED:
        return saved_card
    if saved_card.gateway_payment_method_id:
        StripeGateway().saved_card_detach(saved_card=saved_card)
    with db_transaction.atomic():
        removed = SavedCard.objects.filter(pk=saved_card.pk).exclude(status=SavedCardStatus.REMOVED).update(
            status=SavedCardStatus.REMOVED, removed_at=timezone.now(), removed_by=actor
        )
        if removed:
            audit_event_record(
                organization=saved_card.organization,
                action=AuditAction.SAVED_CARD_REMOVED,
                actor_type=ActorType.STAFF if actor is not None else ActorType.PATIENT,
                actor_user=actor,
                patient=saved_card.patient,
                changes={"saved_card": saved_card.pk, "card": str(saved_card)},
                ip_address=ip_address,
            )
    saved_card.refresh_from_db()
    return saved_card


# -- charging it (staff) -------------------------------------------------------------------------------


def saved_card_charge(
    *,
    organization,
    actor,
    saved_card: SavedCard,
    amount_cents: int,
    kind: str,
    billing_item: str,
    location,
    appointment=None,
    hold_only: bool = False,
    rule: str = "",
    idempotency_key: str = "",
) -> Transaction:
    """Charge a patient's card on file, or with ``hold_only`` hold the amount before a visit (to be
    captured at check-in with ``authorization_capture`` or let go with ``authorization_release``).

    ``actor`` is the staff member, or None for LumaPay itself acting by a collection rule: then
    ``rule`` (a ``CollectionRule`` value) is required, no role is checked (the rule is the
    organization's own), the events and audit are recorded as ``ActorType.SYSTEM`` with
    ``changes["rule"]``, and the transaction carries ``automation_rule=rule``.

    Staff must be a member whose role the organization lets use cards on file
    (``saved_card_roles``), at ``location``. Staff or not, one charge or hold takes at most the
    organization's ``saved_card_charge_max_cents``.

    ``idempotency_key``, when given, is the key of this charge: the gateway call's (Stripe's
    Idempotency-Key) and the "charge requested" event's. Called again with the same key (a retried
    plan instalment), it opens no second transaction and charges nothing twice: it returns the
    transaction the first call opened (asking the gateway again, with the same key, if that one
    never heard the gateway's answer).

    Returns the transaction: succeeded (or authorized), failed when the card was declined (the
    bank's message is on it), or pending when the gateway could not be reached (its events settle
    it). Raises ``ApplicationError`` when the charge is not allowed: nothing is written but the
    refusal's audit event.
    """
    if saved_card.organization_id != organization.pk or location.organization_id != organization.pk:
        raise ApplicationError("This card does not exist.")
    if actor is None and rule not in CollectionRule.values:
        raise ApplicationError("LumaPay charges a card by itself only by a collection rule: name the rule.")
    if actor is not None and rule:
        raise ApplicationError("A collection rule is LumaPay's own: staff charge a card without one.")
    action = HOLD if hold_only else CHARGE
    if actor is not None:
        _require_card_role(
            organization=organization, actor=actor, location=location, action=action,
            patient=saved_card.patient, amount_cents=amount_cents,
        )  # fmt: skip
    if saved_card.status != SavedCardStatus.ACTIVE:
        raise ApplicationError("This card is not on file (it was removed, or the patient never finished saving it).")
    if not 0 < amount_cents <= settings.PAYMENT_REQUEST_MAX_CENTS:
        raise ApplicationError(f"The amount must be between $0.01 and {format_cents(settings.PAYMENT_REQUEST_MAX_CENTS, 'usd')}.")
    _require_within_limit(
        organization=organization, actor=actor, action=action, patient=saved_card.patient,
        amount_cents=amount_cents, rule=rule,
    )  # fmt: skip
    billing_item = (billing_item or "").strip()
    if not billing_item:
        raise ApplicationError("Say what the charge is for. It is kept in the transaction's history.")
    gateway = _stripe_for(organization)
    actor_type = ActorType.STAFF if actor is not None else ActorType.SYSTEM

    with db_transaction.atomic():
        earlier = _charge_with_key(organization=organization, idempotency_key=idempotency_key)
        if earlier is None:
            transaction = transaction_open(
                organization=organization,
                patient=saved_card.patient,
                location=location,
                kind=kind,
                billing_item=billing_item,
                amount_cents=amount_cents,
                vendor=saved_card.vendor,
                saved_card=saved_card,
                appointment=appointment,
                automation_rule=rule,
            )
            transaction_event_append(
                transaction=transaction,
                kind=Kind.CHARGE_REQUESTED,
                amount_cents=amount_cents,
                idempotency_key=idempotency_key or f"saved_card_charge:{transaction.pk}",
                actor_type=actor_type,
                actor_user=actor,
                message=f"Card on file {saved_card}" + (", held until check-in" if hold_only else ""),
            )
            changes = {"saved_card": saved_card.pk, "amount_cents": amount_cents}
            if actor is None:
                changes["rule"] = rule
            audit_event_record(
                organization=organization,
                action=AuditAction.SAVED_CARD_HOLD_REQUESTED if hold_only else AuditAction.SAVED_CARD_CHARGE_REQUESTED,
                actor_type=actor_type,
                actor_user=actor,
                patient=saved_card.patient,
                transaction=transaction,
                changes=changes,
            )
    if earlier is not None:
        if earlier.status != TransactionStatus.PENDING or earlier.gateway_checkout_id:
            return earlier  # the first call's answer is known: nothing is asked twice
        transaction = earlier

    try:
        payment_intent, fact = gateway.saved_card_charge(
            transaction=transaction, saved_card=saved_card, capture=not hold_only, idempotency_key=idempotency_key
        )
    except GatewayUnavailable as error:
        logger.warning("transaction %s: Stripe unavailable, left pending: %s", transaction.pk, error)
        return transaction
    except GatewayError as error:
        fact, payment_intent = ChargeFact(status="failed", charge_id=f"request:{transaction.pk}", failure_message=error.message), ""
    if payment_intent:
        Transaction.objects.filter(pk=transaction.pk).update(gateway_checkout_id=payment_intent)
        transaction.gateway_checkout_id = payment_intent
    charge_fact_record(transaction=transaction, fact=fact)
    transaction.refresh_from_db()
    return transaction


def _charge_with_key(*, organization, idempotency_key: str) -> Transaction | None:
    """The transaction an earlier call with this ``idempotency_key`` opened, if any (None without a
    key). Called inside the database transaction that would open a new one: a transaction-scoped
    advisory lock on the key makes two calls with the same key at once take turns, so the second
    sees the first's transaction instead of opening another."""
    if not idempotency_key:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtext('lumapay.saved_card_charge'), hashtext(%s))",
            [f"{organization.pk}:{idempotency_key}"],
        )
    event = (
        TransactionEvent.objects.filter(
            organization=organization, kind=Kind.CHARGE_REQUESTED, idempotency_key=idempotency_key
        )
        .select_related("transaction")
        .first()
    )
    return event.transaction if event is not None else None


def authorization_capture(*, organization, actor, transaction: Transaction) -> Transaction:
    """Charge the amount held on the card (the patient checked in). The hold kept to the limit when
    it was made; capturing it takes no more than was held."""
    _require_authorized(organization=organization, transaction=transaction)
    _require_card_role(
        organization=organization, actor=actor, location=transaction.location, action=CAPTURE,
        patient=transaction.patient, transaction=transaction, amount_cents=transaction.amount_cents,
    )  # fmt: skip
    fact = _stripe_for(organization).authorization_capture(transaction=transaction)
    with db_transaction.atomic():
        charge_fact_record(transaction=transaction, fact=fact)
        audit_event_record(
            organization=organization,
            action=AuditAction.AUTHORIZATION_CAPTURED,
            actor_type=ActorType.STAFF,
            actor_user=actor,
            patient=transaction.patient,
            transaction=transaction,
            changes={"amount_cents": fact.amount_cents},
        )
    transaction.refresh_from_db()
    return transaction


def authorization_release(*, organization, actor, transaction: Transaction, reason: str) -> Transaction:
    """Let the held amount go without charging it (the visit was cancelled or missed). ``actor``
    None: the system (an appointment the EHR reports cancelled or missed)."""
    _require_authorized(organization=organization, transaction=transaction)
    if actor is not None:
        _require_card_role(
            organization=organization, actor=actor, location=transaction.location, action=RELEASE,
            patient=transaction.patient, transaction=transaction, amount_cents=transaction.amount_cents,
        )  # fmt: skip
    fact = _stripe_for(organization).authorization_release(transaction=transaction)
    actor_type = ActorType.STAFF if actor is not None else ActorType.SYSTEM
    with db_transaction.atomic():
        charge_fact_record(transaction=transaction, fact=fact)
        audit_event_record(
            organization=organization,
            action=AuditAction.AUTHORIZATION_RELEASED,
            actor_type=actor_type,
            actor_user=actor,
            patient=transaction.patient,
            transaction=transaction,
            changes={"amount_cents": transaction.amount_cents, "reason": reason},
        )
    transaction.refresh_from_db()
    return transaction


# Why a held copay is let go, by the status the EHR reports for its appointment.
_RELEASE_REASONS = {
    AppointmentStatus.CANCELLED: "Appointment cancelled",
    AppointmentStatus.NO_SHOW: "Patient did not come (no-show)",
}


def authorizations_release_for_missed_visits() -> int:
    """Release every amount still held for a visit that will not happen: its appointment is now
    cancelled or a no-show (beat, every 15 minutes: this app reads the appointments the EHR sync
    keeps, so ehr_sync never calls into payments). Returns how many were released; a hold Stripe
    would not release stays held and is tried again on the next run."""
    released = 0
    held = (
        Transaction.objects.filter(status=TransactionStatus.AUTHORIZED, appointment__status__in=list(_RELEASE_REASONS))
        .select_related("organization", "patient", "appointment")
        .order_by("pk")
    )
    for transaction in held:
        reason = _RELEASE_REASONS[transaction.appointment.status]
        try:
            authorization_release(organization=transaction.organization, actor=None, transaction=transaction, reason=reason)
        except ApplicationError as error:
            # Stripe refused or was unreachable (tried again next run), or staff captured or
            # released it since the query ran (then nothing is held any more).
            logger.warning("transaction %s: the hold was not released: %s", transaction.pk, error.message)
            continue
        released += 1
    return released


def _require_authorized(*, organization, transaction: Transaction) -> None:
    if transaction.organization_id != organization.pk:
        raise ApplicationError("This transaction does not exist.")
    with db_transaction.atomic():
        locked = transaction_lock(transaction_id=transaction.pk)
        if locked.status != TransactionStatus.AUTHORIZED:
            raise ApplicationError(
                f"This payment is {locked.get_status_display().lower()}: there is no held amount to capture or release."
            )
