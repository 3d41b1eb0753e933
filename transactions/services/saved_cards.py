"""Cards on file: saved with the patient's consent, charged by staff while the patient is away,
held before a visit and captured at check-in (or released when the visit is cancelled or
missed: ``authorizations_release_for_missed_visits``, on Celery beat), and removed by the
patient or staff.

The organization's gateway keeps the card (Stripe: a PaymentMethod under a Customer on the
clinic's connected account; the Sandbox: its own), under a customer that carries no patient
information; we keep its ids, brand, last 4 digits and expiry, and the consent as given. Every
gateway call goes through one interface (``gateways.base.CardsOnFile``): nothing here knows
which gateway it talks to. Like refunds, a staff charge writes its transaction and "charge requested"
event first, then calls the gateway outside any database transaction (with the transaction's own
idempotency key), then records the answer through the ledger path the gateway's events also
take, so the two converge.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction as db_transaction
from django.utils import timezone

from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import ActorType
from lumapay.money import format_cents
from ehr_sync.enums import AppointmentStatus
from ehr_sync.models import Appointment
from org_profile.access import AccessDenied, roles_in_words, staff_access

from ..enums import CollectionRule, SavedCardStatus, TransactionEventKind as Kind, TransactionStatus
from ..gateways import cards_on_file_for, gateway_named
from ..gateways.base import CardsOnFile, ChargeFact, CheckoutStart, GatewayError, GatewayUnavailable
from ..locks import payment_request_lock, transaction_lock
from ..models import SavedCard, Transaction, TransactionEvent
from ..selectors.saved_cards import card_on_file_consent_text  # noqa: F401 (the pages import it from here)
from .ledger import transaction_event_append
from .ledger_facts import charge_fact_record
from .transaction_open import transaction_open

logger = logging.getLogger(__name__)

def _gateway_for(organization) -> CardsOnFile:
    """The organization's gateway, for cards on file."""
    try:
        return cards_on_file_for(organization)
    except LookupError:
        raise ApplicationError("This clinic's payment processor does not keep cards on file.")


def _gateway_of(saved_card: SavedCard) -> CardsOnFile:
    """The gateway that keeps this card (the organization's, when the card was saved)."""
    return gateway_named(saved_card.vendor)


# Staff who are not members are told what a member with the wrong role is told.
_DENIED = {
    AccessDenied.NOT_A_MEMBER: "Your role does not allow this.",
    AccessDenied.LOCATION: "You can charge cards only for your own locations.",
}
_HOLD_DENIED = {**_DENIED, AccessDenied.LOCATION: "You can capture or release holds only at your own locations."}

# The end of a hold's "charge requested" message (what was asked is read back from it on a resume).
HELD_UNTIL_CHECK_IN = ", held until check-in"

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


def card_role_require(*, organization, actor, location, action: str, patient, transaction=None, amount_cents: int) -> None:
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
    *,
    payment_request,
    consent_given: bool,
    consent_text: str,
    ip_address: str | None,
    success_url: str,
    cancel_url: str,
    locale: str = "auto",
) -> CheckoutStart:
    """The patient (past the date-of-birth check) agreed to keep a card on file: record the consent
    and open the gateway's page where they enter the card, in ``locale`` (the pay page's language).
    Nothing is charged."""
    organization = payment_request.organization
    expected = card_on_file_consent_text(organization)
    if not consent_given or consent_text != expected:
        raise ApplicationError("Tick the box to agree before your card is kept on file.")
    gateway = _gateway_for(organization)
    vendor = organization.payment_gateway
    with db_transaction.atomic():
        locked = payment_request_lock(payment_request_id=payment_request.pk)
        patient = locked.patient
        customer_id = (
            SavedCard.objects.filter(organization=organization, patient=patient, vendor=vendor)
            .exclude(gateway_customer_id="")
            .values_list("gateway_customer_id", flat=True)
            .first()
        ) or gateway.customer_create(organization=organization, patient_id=patient.pk)
        card = SavedCard.objects.create(
            organization=organization,
            patient=patient,
            vendor=vendor,
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
            locale=locale,
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
    """Keep the card once the gateway has it (the patient is back from its page). Harmless to call
    again: a card already kept, or still being entered, is returned as it is."""
    if saved_card.status != SavedCardStatus.PENDING:
        return saved_card
    fact = _gateway_of(saved_card).card_setup_outcome(organization=saved_card.organization, setup_id=saved_card.gateway_setup_id)
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
    """Remove a card: its gateway forgets it, and we never charge it again. ``actor`` is the staff user,
    or None for the patient (through their payment link)."""
    if actor is not None:
        staff_access(organization=saved_card.organization, actor=actor, denied=_DENIED)
    if saved_card.status == SavedCardStatus.REMOVED:
        return saved_card
    if saved_card.gateway_payment_method_id:
        _gateway_of(saved_card).saved_card_detach(saved_card=saved_card)
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
    renews: Transaction | None = None,
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

    ``renews`` (the hold rules' own, ``services.holds``): the hold this new hold replaces before
    it lapses; it is marked superseded in the same database transaction as this one is opened, so
    the appointment never has two current automatic holds.

    Returns the transaction: succeeded (or authorized), failed when the card was declined (the
    bank's message is on it), or pending when the gateway could not be reached (its events settle
    it). Raises ``ApplicationError`` when the charge is not allowed: nothing is written but the
    refusal's audit event.
    """
    if saved_card.organization_id != organization.pk or location.organization_id != organization.pk:
        raise ApplicationError("This card does not exist.")
    _require_rule(actor=actor, rule=rule)
    action = HOLD if hold_only else CHARGE
    if actor is not None:
        card_role_require(
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
    gateway = _gateway_for(organization)
    if saved_card.vendor != gateway.name:
        raise ApplicationError("This card was kept by another payment processor than the clinic's: ask the patient to save it again.")
    actor_type = ActorType.STAFF if actor is not None else ActorType.SYSTEM

    with db_transaction.atomic():
        earlier = _charge_with_key(organization=organization, idempotency_key=idempotency_key)
        if earlier is None:
            if renews is not None:
                _hold_supersede(hold=renews)
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
                message=f"Card on file {saved_card}" + (HELD_UNTIL_CHECK_IN if hold_only else ""),
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
    return _charge_submit(
        gateway=gateway, transaction=transaction, saved_card=saved_card, hold_only=hold_only, idempotency_key=idempotency_key
    )


def saved_card_charge_resume(*, transaction: Transaction) -> Transaction:
    """Ask the gateway again for a card-on-file charge or hold that never heard its answer (still
    pending, no gateway id: the gateway was away, or the worker died after opening it), with the
    same idempotency key, so the gateway answers with what it did (or does it, once)."""
    if transaction.status != TransactionStatus.PENDING or transaction.gateway_checkout_id or transaction.saved_card_id is None:
        return transaction
    requested = TransactionEvent.objects.filter(transaction=transaction, kind=Kind.CHARGE_REQUESTED).first()
    if requested is None:
        return transaction
    key = requested.idempotency_key
    hold_only = requested.message.endswith(HELD_UNTIL_CHECK_IN)
    return _charge_submit(
        gateway=_gateway_of_transaction(transaction),
        transaction=transaction,
        saved_card=transaction.saved_card,
        hold_only=hold_only,
        idempotency_key="" if key == f"saved_card_charge:{transaction.pk}" else key,
    )


def _charge_submit(*, gateway: CardsOnFile, transaction: Transaction, saved_card: SavedCard, hold_only: bool, idempotency_key: str) -> Transaction:
    """Call the gateway for an opened charge (no database transaction open) and record its answer."""
    try:
        payment_intent, fact = gateway.saved_card_charge(
            transaction=transaction, saved_card=saved_card, capture=not hold_only, idempotency_key=idempotency_key
        )
    except GatewayUnavailable as error:
        logger.warning("transaction %s: the gateway was unavailable, left pending: %s", transaction.pk, error)
        return transaction
    except GatewayError as error:
        fact, payment_intent = ChargeFact(status="failed", charge_id=f"request:{transaction.pk}", failure_message=error.message), ""
    if payment_intent:
        Transaction.objects.filter(pk=transaction.pk).update(gateway_checkout_id=payment_intent)
        transaction.gateway_checkout_id = payment_intent
    charge_fact_record(transaction=transaction, fact=fact)
    transaction.refresh_from_db()
    return transaction


def _hold_supersede(*, hold: Transaction) -> None:
    """Mark a hold superseded by the renewal being opened (locked; refused unless it is still held
    and not already being renewed)."""
    locked = transaction_lock(transaction_id=hold.pk)
    now = timezone.now()
    if locked.status != TransactionStatus.AUTHORIZED or locked.hold_superseded_at is not None:
        raise ApplicationError("This hold is no longer held, or is being renewed already.")
    # Being captured or released right now (the patient checked in meanwhile): not renewed, or
    # the visit would end with two holds captured.
    if locked.hold_claimed_at is not None and locked.hold_claimed_at > now - HOLD_CLAIM_LEASE:
        raise ApplicationError("This hold is being captured or released right now: it is not renewed.")
    if locked.appointment_id and not Appointment.objects.filter(
        pk=locked.appointment_id, status=AppointmentStatus.BOOKED, starts_at__gt=now
    ).exists():
        raise ApplicationError("The visit of this hold is no longer ahead: it is not renewed.")
    Transaction.objects.filter(pk=locked.pk).update(hold_superseded_at=now)


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


def _require_rule(*, actor, rule: str) -> None:
    if actor is None and rule not in CollectionRule.values:
        raise ApplicationError("LumaPay acts on a card by itself only by a collection rule: name the rule.")
    if actor is not None and rule:
        raise ApplicationError("A collection rule is LumaPay's own: staff act without one.")


def authorization_capture(*, organization, actor, transaction: Transaction, rule: str = "") -> Transaction:
    """Charge the amount held on the card (the patient checked in). The hold kept to the limit when
    it was made; capturing it takes no more than was held. ``actor`` None: LumaPay, by ``rule``
    (``CAPTURE_AT_CHECK_IN``).

    Captured at most once however many ask at the same moment (two sweeps, staff pressing the
    button): the first claims the hold (``_hold_claim``), the others are told it is being
    captured; the gateway's capture is idempotent on the transaction and the ledger records it
    once. A hold the gateway let lapse cannot be captured: the lapse is recorded and the error
    says so."""
    _require_rule(actor=actor, rule=rule)
    _require_authorized(organization=organization, transaction=transaction)
    if actor is not None:
        card_role_require(
            organization=organization, actor=actor, location=transaction.location, action=CAPTURE,
            patient=transaction.patient, transaction=transaction, amount_cents=transaction.amount_cents,
        )  # fmt: skip
    _hold_claim(transaction=transaction, capture=True)
    gateway = _gateway_of_transaction(transaction)
    try:
        fact = gateway.authorization_capture(transaction=transaction)
    except GatewayUnavailable:
        _hold_unclaim(transaction=transaction)
        raise
    except GatewayError as error:
        # Nothing is held any more (released, or lapsed at the processor): record what it says.
        try:
            outcome = gateway.authorization_outcome(transaction=transaction)
            if outcome.status == "released":
                charge_fact_record(transaction=transaction, fact=outcome)
        finally:
            _hold_unclaim(transaction=transaction)
        raise ApplicationError(f"The held amount was not captured: {error.message}") from error
    with db_transaction.atomic():
        charge_fact_record(transaction=transaction, fact=fact)
        _hold_unclaim(transaction=transaction)
        audit_event_record(
            organization=organization,
            action=AuditAction.AUTHORIZATION_CAPTURED,
            actor_type=ActorType.STAFF if actor is not None else ActorType.SYSTEM,
            actor_user=actor,
            patient=transaction.patient,
            transaction=transaction,
            changes={"amount_cents": fact.amount_cents, **({"rule": rule} if actor is None else {})},
        )
    transaction.refresh_from_db()
    return transaction


def authorization_release(*, organization, actor, transaction: Transaction, reason: str, rule: str = "") -> Transaction:
    """Let the held amount go without charging it (the visit was cancelled or missed). ``actor``
    None: LumaPay, by ``rule`` (``RELEASE_MISSED_VISIT`` for an appointment the EHR reports
    cancelled or missed, ``HOLD_RENEWAL`` for a hold a new one replaced). One capture or release
    at a time (``_hold_claim``)."""
    _require_rule(actor=actor, rule=rule)
    _require_authorized(organization=organization, transaction=transaction)
    if actor is not None:
        card_role_require(
            organization=organization, actor=actor, location=transaction.location, action=RELEASE,
            patient=transaction.patient, transaction=transaction, amount_cents=transaction.amount_cents,
        )  # fmt: skip
    _hold_claim(transaction=transaction)
    try:
        fact = _gateway_of_transaction(transaction).authorization_release(transaction=transaction)
    except ApplicationError:
        _hold_unclaim(transaction=transaction)
        raise
    actor_type = ActorType.STAFF if actor is not None else ActorType.SYSTEM
    with db_transaction.atomic():
        charge_fact_record(transaction=transaction, fact=fact)
        _hold_unclaim(transaction=transaction)
        audit_event_record(
            organization=organization,
            action=AuditAction.AUTHORIZATION_RELEASED,
            actor_type=actor_type,
            actor_user=actor,
            patient=transaction.patient,
            transaction=transaction,
            changes={"amount_cents": transaction.amount_cents, "reason": reason, **({"rule": rule} if actor is None else {})},
        )
    transaction.refresh_from_db()
    return transaction


# How long a claim on a hold (a capture or release in flight) stands before another may take it
# over: longer than any gateway call lasts, so only a claim whose worker died is taken over.
HOLD_CLAIM_LEASE = timedelta(minutes=5)


def _hold_claim(*, transaction: Transaction, capture: bool = False) -> None:
    """Claim the held amount for one capture or release, in a short locked transaction before the
    gateway is called (the lock is not held across the call). Refused while it is still held by
    another's claim, or when nothing is held any more."""
    now = timezone.now()
    with db_transaction.atomic():
        locked = transaction_lock(transaction_id=transaction.pk)
        if locked.status != TransactionStatus.AUTHORIZED:
            raise ApplicationError(
                f"This payment is {locked.get_status_display().lower()}: there is no held amount to capture or release."
            )
        if locked.hold_claimed_at is not None and locked.hold_claimed_at > now - HOLD_CLAIM_LEASE:
            raise ApplicationError("This held amount is being captured or released right now. Look again in a moment.")
        if capture and locked.hold_superseded_at is not None:
            # A renewal is replacing it: the new hold is the one captured (then this one released).
            raise ApplicationError("This hold is being replaced by a renewed one, which is captured instead.")
        Transaction.objects.filter(pk=locked.pk).update(hold_claimed_at=now)


def _hold_unclaim(*, transaction: Transaction) -> None:
    Transaction.objects.filter(pk=transaction.pk).update(hold_claimed_at=None)


def _gateway_of_transaction(transaction: Transaction) -> CardsOnFile:
    """The gateway that holds the transaction's amount (its own, whatever the clinic uses now)."""
    return gateway_named(transaction.vendor)


# Why a held copay is let go, by the status the EHR reports for its appointment.
_RELEASE_REASONS = {
    AppointmentStatus.CANCELLED: "Appointment cancelled",
    AppointmentStatus.NO_SHOW: "Patient did not come (no-show)",
}


def authorizations_release_for_missed_visits() -> int:
    """Release every amount still held for a visit that will not happen: its appointment is now
    cancelled or a no-show (beat, every 15 minutes: this app reads the appointments the EHR sync
    keeps, so ehr_sync never calls into payments). LumaPay acts by the rule
    ``RELEASE_MISSED_VISIT``. Returns how many were released; a hold the gateway would not release
    stays held and is tried again on the next run."""
    released = 0
    held = (
        Transaction.objects.filter(status=TransactionStatus.AUTHORIZED, appointment__status__in=list(_RELEASE_REASONS))
        .select_related("organization", "patient", "appointment")
        .order_by("pk")
    )
    for transaction in held:
        reason = _RELEASE_REASONS[transaction.appointment.status]
        try:
            authorization_release(
                organization=transaction.organization, actor=None, transaction=transaction, reason=reason,
                rule=CollectionRule.RELEASE_MISSED_VISIT,
            )  # fmt: skip
        except ApplicationError as error:
            # The gateway refused or was unreachable (tried again next run), or staff captured or
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
