"""Events from payment gateways (Stripe's webhooks, and the Sandbox processor's, posted the same way).

Receiving stores the verified event raw, once per (gateway, event id), and queues its processing
after commit; processing runs in its own transaction, turns the stored payload into facts and
applies each through the entry of ``FACT_KINDS`` for its kind, recording status, attempts and the
error, so a failed event can be replayed by an operator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import DatabaseError, IntegrityError, OperationalError, transaction as db_transaction
from django.utils import timezone

from lumapay.audit import actor_from, audit_event_record
from lumapay.task_queue import task_enqueue_on_commit
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError

from ..enums import GatewayEventStatus
from ..gateways import gateway_named
from ..gateways.base import AccountFact, GatewayFact, GatewayUnavailable, LedgerFact
from ..models import GatewayEvent
from .ledger_facts import ledger_fact_apply, ledger_fact_organization_id
from .stripe_connect import account_fact_apply, account_fact_organization_id

logger = logging.getLogger(__name__)

# Worth retrying later with the same event: the gateway or our database was briefly unreachable.
TRANSIENT_ERRORS = (GatewayUnavailable, OperationalError)
# Recorded on the event for an operator to replay; anything else is a bug and propagates.
RECORDED_ERRORS = (ApplicationError, DatabaseError, LookupError, ValueError, TypeError)


@dataclass(frozen=True)
class FactKind:
    """How one kind of fact is applied, and which clinic it concerns. Both take keyword
    arguments ``gateway`` and ``fact``; ``apply`` also ``gateway_event_id`` and returns True when
    it changed anything; ``organization_id`` returns None for a fact that is not about us."""

    apply: Callable[..., bool]
    organization_id: Callable[..., int | None]


# One entry per kind of fact a gateway event can carry (``transactions.gateways.base.GatewayFact``).
# A new kind (payouts next) is its fact class, the service that applies it, and one entry here.
FACT_KINDS: dict[type, FactKind] = {
    LedgerFact: FactKind(apply=ledger_fact_apply, organization_id=ledger_fact_organization_id),
    AccountFact: FactKind(apply=account_fact_apply, organization_id=account_fact_organization_id),
}


def _organization_id_for(gateway: str, facts: list[GatewayFact], payload: dict) -> int | None:
    """The organization the event is about, when it is one of ours: the one the gateway names
    (a Stripe event comes from the clinic's connected account), else the one its facts concern."""
    organization_id = gateway_named(gateway).organization_id_for_event(payload)
    if organization_id is not None:
        return organization_id
    for fact in facts:
        kind = FACT_KINDS.get(type(fact))
        organization_id = kind.organization_id(gateway=gateway, fact=fact) if kind is not None else None
        if organization_id is not None:
            return organization_id
    return None


def gateway_event_receive(*, gateway: str, body: bytes, headers) -> GatewayEvent:
    """Verify a delivered event and store it raw, once; queue its processing after commit.

    Raises ``WebhookVerificationError`` (nothing stored) when the signature, timestamp or body do
    not check out, and ``LookupError`` for a gateway we do not have. A second delivery of the same
    event returns the stored row and queues it again only while it is not processed.
    """
    verified = gateway_named(gateway).event_verify(body=body, headers=headers)
    try:
        with db_transaction.atomic():
            event = GatewayEvent.objects.create(
                gateway=gateway,
                event_id=verified.event_id,
                event_type=verified.event_type,
                organization_id=_organization_id_for(gateway, verified.facts, verified.payload),
                payload=verified.payload,
            )
    except IntegrityError:
        event = GatewayEvent.objects.get(gateway=gateway, event_id=verified.event_id)
        logger.info("gateway %s event %s delivered again (status %s)", gateway, event.event_id, event.status)
    if event.status in (GatewayEventStatus.RECEIVED, GatewayEventStatus.FAILED):
        _process_on_commit(event.pk)
    return event


def gateway_event_store_fetched(
    *, gateway: str, payload: dict, organization_id: int | None = None
) -> tuple[GatewayEvent, bool]:
    """Store an event we listed from the gateway's API ourselves (it never reached the webhook,
    or not yet), as a delivered one is stored: raw, once per (gateway, event id), processed after
    commit. Returns (event, created).

    There is no signature to check: the event came over our own authenticated call to the
    gateway, not from whoever can reach the webhook. One already stored (delivered, or listed
    before) is left as it is.
    """
    try:
        event_id, event_type = payload["id"], payload["type"]
    except (KeyError, TypeError):
        raise ValueError("A listed gateway event has no id or type.")
    try:
        with db_transaction.atomic():
            event = GatewayEvent.objects.create(
                gateway=gateway,
                event_id=event_id,
                event_type=event_type,
                organization_id=organization_id or _organization_id_for(gateway, [], payload),
                payload=payload,
            )
    except IntegrityError:
        return GatewayEvent.objects.get(gateway=gateway, event_id=event_id), False
    logger.info("gateway %s event %s (%s) recovered by listing", gateway, event_id, event_type)
    _process_on_commit(event.pk)
    return event, True


def _process_on_commit(gateway_event_id: int) -> None:
    # robust: the event is stored; a failure to process it is recorded on the row, and it must not
    # turn the gateway's delivery (or the Sandbox checkout page that triggered it) into an error.
    task_enqueue_on_commit("transactions.tasks.gateway_event_process", gateway_event_id, robust=True)


def gateway_event_process(*, gateway_event_id: int) -> GatewayEvent:
    """Apply a stored event's facts to the ledger, in its own transaction, once.

    Skips an event already processed or ignored. An event with no fact we handle is marked
    ignored. On failure the event is marked failed with the error and the attempt count; transient
    errors are raised again so the task retries, others wait for an operator's replay.
    """
    try:
        with db_transaction.atomic():
            event = GatewayEvent.objects.select_for_update().get(pk=gateway_event_id)
            if event.status in (GatewayEventStatus.PROCESSED, GatewayEventStatus.IGNORED):
                return event
            facts = gateway_named(event.gateway).facts_from_payload(payload=event.payload)
            for fact in facts:
                kind = FACT_KINDS.get(type(fact))
                if kind is None:
                    # Recorded on the event, for a replay once something applies this kind.
                    raise LookupError(f"Nothing applies a {type(fact).__name__}: it has no entry in FACT_KINDS.")
                kind.apply(gateway=event.gateway, fact=fact, gateway_event_id=event.event_id)
            event.status = GatewayEventStatus.PROCESSED if facts else GatewayEventStatus.IGNORED
            event.attempts += 1
            event.error_message = ""
            event.processed_at = timezone.now()
            if event.organization_id is None:
                event.organization_id = _organization_id_for(event.gateway, facts, event.payload)
            event.save(update_fields=["status", "attempts", "error_message", "processed_at", "organization"])
            return event
    except RECORDED_ERRORS as exc:
        event = _failure_record(gateway_event_id=gateway_event_id, error=exc)
        if isinstance(exc, TRANSIENT_ERRORS):
            raise
        return event


def _failure_record(*, gateway_event_id: int, error: Exception) -> GatewayEvent:
    with db_transaction.atomic():
        event = GatewayEvent.objects.select_for_update().get(pk=gateway_event_id)
        event.status = GatewayEventStatus.FAILED
        event.attempts += 1
        event.error_message = f"{type(error).__name__}: {error}"
        event.save(update_fields=["status", "attempts", "error_message"])
    logger.warning(
        "gateway %s event %s failed (attempt %s): %s", event.gateway, event.event_id, event.attempts, type(error).__name__
    )
    return event


class GatewayEventReplayFailed(ApplicationError):
    """Processing the event failed again; the message is the error recorded on the event."""


def gateway_event_replay(*, gateway_event_id: int, actor=None) -> GatewayEvent:
    """Process a stored event again, now, for an operator (an admin action or the
    ``replay_gateway_events`` command). Harmless for an event already processed: the ledger's
    idempotency keys write each fact once. Raises ``GatewayEventReplayFailed`` when it fails again
    (the error stays recorded on the event)."""
    with db_transaction.atomic():
        event = GatewayEvent.objects.select_for_update().get(pk=gateway_event_id)
        old_status = event.status
        event.status = GatewayEventStatus.RECEIVED
        event.save(update_fields=["status"])
        if event.organization_id is not None:
            actor_type, actor_user = actor_from(actor)
            audit_event_record(
                organization=event.organization,
                action=AuditAction.GATEWAY_EVENT_REPLAYED,
                actor_type=actor_type,
                actor_user=actor_user,
                changes={"gateway_event": event.event_id, "status": [old_status, GatewayEventStatus.RECEIVED]},
            )
    event = gateway_event_process(gateway_event_id=gateway_event_id)
    if event.status == GatewayEventStatus.FAILED:
        raise GatewayEventReplayFailed(f"Event {event.event_id} failed again: {event.error_message}")
    return event
