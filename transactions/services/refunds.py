"""Refunds: reserve the amount in our ledger first, then ask the gateway, then record its answer.

First the charge's refunds are read at the gateway, and those made outside LumaPay (in the clinic's
Stripe Dashboard) are imported, so the refundable remainder counts them. The Refund row, its
"refund_requested" ledger event and the audit event are then written together under the
transaction's row lock, and the refundable remainder is computed under that same lock, so two
managers refunding at once can never refund more than was charged. The gateway is called after
that commit, with the refund's stored idempotency key, so a retry can never refund twice.
"""

from __future__ import annotations

import logging
import uuid

from django.db import transaction as db_transaction

from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import ActorType
from lumapay.money import format_cents
from org_profile.access import AccessDenied, roles_in_words, staff_access

from ..enums import RefundStatus, TransactionEventKind as Kind
from ..gateways import gateway_for, gateway_named
from ..gateways.base import GatewayError, GatewayUnavailable, RefundFact
from ..locks import refund_lock, transaction_lock
from ..models import Refund, Transaction
from ..selectors.ledger import refund_reserved_cents, transaction_refundable_cents
from .ledger import transaction_event_append
from .ledger_facts import charge_refunds_import, refund_fact_record

logger = logging.getLogger(__name__)


class RefundFailed(ApplicationError):
    """The gateway refused or failed the refund; it is recorded as failed and holds no money back."""


def refund_create(
    *,
    organization,
    actor,
    transaction: Transaction,
    amount_cents: int,
    reason: str,
    idempotency_key: uuid.UUID | None = None,
) -> Refund:
    """Refund ``amount_cents`` of a paid transaction to the patient's card.

    Only a member whose role the organization lets refund (``Organization.refund_roles``) may.
    Returns the refund: succeeded, or still "requested" when the gateway could not be reached (its
    amount stays reserved until ``refund_retry`` or the gateway's event settles it). Raises
    ``ApplicationError`` when the refund is not allowed (nothing is written) and ``RefundFailed``
    when the gateway says no (the failure is recorded).

    ``idempotency_key`` (the confirmation page's) makes a second submit of the same confirmation
    return the refund the first one made, instead of refunding again.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("Enter a reason for the refund. It is kept in the transaction's history.")
    if len(reason) > 500:
        raise ApplicationError("Keep the reason under 500 characters.")
    if amount_cents <= 0:
        raise ApplicationError("The refund amount must be more than $0.00.")
    if transaction.organization_id != organization.pk:
        raise ApplicationError("This transaction does not exist.")
    _require_refund_role(organization=organization, actor=actor, location=transaction.location)
    _outside_refunds_import(organization=organization, transaction=transaction)

    with db_transaction.atomic():
        locked = transaction_lock(transaction_id=transaction.pk)
        if idempotency_key is not None:
            # Under the transaction's lock, so the first submit has committed or not started.
            existing = Refund.objects.filter(idempotency_key=idempotency_key).first()
            if existing is not None:
                if existing.transaction_id != locked.pk or existing.amount_cents != amount_cents:
                    raise ApplicationError("This refund form was already used. Start the refund again.")
                return existing
        if locked.charged_cents == 0:
            raise ApplicationError(
                f"This payment is {locked.get_status_display().lower()}: nothing was charged, so there is nothing to refund."
            )
        refundable = transaction_refundable_cents(transaction=locked)
        if refundable == 0:
            reserved = refund_reserved_cents(transaction=locked)
            if reserved:
                raise ApplicationError(
                    f"Nothing is left to refund: {format_cents(reserved, locked.currency)} of this payment "
                    "is already waiting to be refunded."
                )
            if locked.disputed_cents:
                raise ApplicationError(
                    f"Nothing is left to refund: the card network withdrew "
                    f"{format_cents(locked.disputed_cents, locked.currency)} of this payment for a dispute, "
                    "and the rest has been refunded."
                )
            raise ApplicationError("This payment has already been refunded in full.")
        if amount_cents > refundable:
            raise ApplicationError(
                f"You can refund at most {format_cents(refundable, locked.currency)} of this payment"
                f"{_refunded_already_text(locked)}."
            )
        refund = Refund.objects.create(
            organization=organization,
            transaction=locked,
            amount_cents=amount_cents,
            currency=locked.currency,
            reason=reason,
            requested_by=actor,
            **({"idempotency_key": idempotency_key} if idempotency_key is not None else {}),
        )
        transaction_event_append(
            transaction=locked,
            kind=Kind.REFUND_REQUESTED,
            amount_cents=amount_cents,
            idempotency_key=f"refund_requested:{refund.pk}",
            actor_type=ActorType.STAFF,
            actor_user=actor,
            refund=refund,
            message=reason,
        )
        audit_event_record(
            organization=organization,
            action=AuditAction.REFUND_REQUESTED,
            actor_type=ActorType.STAFF,
            actor_user=actor,
            patient=locked.patient,
            payment_request=locked.payment_request,
            transaction=locked,
            changes={"refund_id": refund.pk, "amount_cents": amount_cents, "reason": reason},
        )

    return _refund_submit(organization=organization, refund=refund)


def refund_retry(*, organization, actor, refund: Refund) -> Refund:
    """Ask the gateway again for a refund still waiting after a transient failure.

    The same idempotency key goes with it, so the gateway answers with the refund it may already
    have made rather than making a second one.
    """
    if refund.organization_id != organization.pk:
        raise ApplicationError("This refund does not exist.")
    _require_refund_role(organization=organization, actor=actor, location=refund.transaction.location)
    with db_transaction.atomic():
        transaction_lock(transaction_id=refund.transaction_id)
        locked = refund_lock(refund_id=refund.pk)
        if locked.is_made_outside:
            raise ApplicationError(
                "This refund was made at the payment processor, outside LumaPay; LumaPay cannot send it again."
            )
        if locked.status != RefundStatus.REQUESTED:
            raise ApplicationError(
                f"This refund has already {locked.get_status_display().lower()}; there is nothing to retry."
            )
        audit_event_record(
            organization=organization,
            action=AuditAction.REFUND_RETRIED,
            actor_type=ActorType.STAFF,
            actor_user=actor,
            transaction=locked.transaction,
            changes={"refund_id": locked.pk, "amount_cents": locked.amount_cents},
        )
    return _refund_submit(organization=organization, refund=locked)


def _outside_refunds_import(*, organization, transaction: Transaction) -> None:
    """Read the charge's refunds at the gateway and import those made outside LumaPay, before the
    refundable remainder is computed. An HTTP call: never under a lock. When the gateway cannot
    say, nothing is refunded: the remainder could be wrong."""
    try:
        facts = gateway_named(transaction.vendor).charge_refunds(transaction=transaction)
    except GatewayUnavailable as error:
        logger.warning("transaction %s: the charge's refunds could not be read: %s", transaction.pk, error)
        raise ApplicationError(
            "The payment processor did not answer when LumaPay checked this payment's refunds made outside "
            "LumaPay. Nothing was refunded; try again in a minute."
        )
    except GatewayError as error:
        raise ApplicationError(
            f"The payment processor would not list this payment's refunds: {error.message} Nothing was refunded."
        )
    charge_refunds_import(transaction=transaction, facts=facts)


def _refunded_already_text(transaction: Transaction) -> str:
    """", after $7.00 refunded outside LumaPay": why the remainder is less than the charge, when
    refunds made at the processor are part of it."""
    outside = [
        refund.amount_cents
        for refund in Refund.objects.filter(transaction=transaction, is_made_outside=True).exclude(
            status=RefundStatus.FAILED
        )
    ]
    if not outside:
        return ""
    return f", after {format_cents(sum(outside), transaction.currency)} refunded outside LumaPay (at the payment processor)"


def _refund_submit(*, organization, refund: Refund) -> Refund:
    """Call the gateway (never inside a database transaction) and record what it says."""
    amount = format_cents(refund.amount_cents, refund.currency)
    try:
        fact = gateway_for(organization).refund(refund=refund)
    except GatewayUnavailable as error:
        # We cannot know whether the processor acted: keep the amount reserved and retry later
        # with the same key.
        logger.warning("refund %s: gateway unavailable, left requested: %s", refund.pk, error)
        return refund
    except GatewayError as error:
        refund_fact_record(refund=refund, fact=_refused_fact(refund, error.message))
        raise RefundFailed(
            f"The payment processor refused the refund of {amount}: {error.message} Nothing was refunded.",
            extra={"refund_id": refund.pk},
        )
    refund_fact_record(refund=refund, fact=fact)
    if refund.status == RefundStatus.FAILED:
        raise RefundFailed(
            f"The refund of {amount} failed: {refund.failure_message or 'the processor gave no reason.'}",
            extra={"refund_id": refund.pk},
        )
    return refund


def _refused_fact(refund: Refund, message: str) -> RefundFact:
    # A refusal leaves no refund at the gateway, so there is no gateway refund id.
    return RefundFact(
        status="failed",
        gateway_refund_id="",
        amount_cents=refund.amount_cents,
        idempotency_key=str(refund.idempotency_key),
        failure_message=message,
    )


def refund_roles_text(organization) -> str:
    """Who may refund in this organization, in words: "administrators and managers"."""
    return roles_in_words(organization.refund_roles)


def _require_refund_role(*, organization, actor, location) -> None:
    """The actor is an active member whose role the organization's setting lets refund, working at
    the payment's location."""
    refused = f"In this organization, only {refund_roles_text(organization)} can refund payments."
    staff_access(
        organization=organization,
        actor=actor,
        roles=organization.refund_roles,
        location=location,
        denied={
            AccessDenied.NOT_A_MEMBER: refused,
            AccessDenied.ROLE: refused,
            AccessDenied.LOCATION: "You can refund payments only at your own locations.",
        },
    )
