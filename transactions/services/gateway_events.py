"""Events from payment gateways (Stripe's webhooks, and the Sandbox processor's, posted the same way).

Receiving stores the verified event raw, once per (gateway, event id), and queues its processing
after commit; processing runs in its own transaction, turns the stored payload into facts and
applies each through the entry of ``FACT_KINDS`` for its kind, recording status, attempts and the
error, so a failed event can be replayed by an operator.

The gateway was answered 200 once the event was stored, so it never sends it again: an event whose
processing task was lost (the worker killed mid-way, the queue unreachable after the commit) is
queued again by a beat sweep, ``gateway_events_requeue_stalled``, until it is processed or given up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, OperationalError, transaction as db_transaction
from django.db.models import Q
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
# The processing task retries a transient failure by itself, waiting at most this long between
# two attempts (``transactions.tasks.gateway_event_process``); the sweep leaves such an event to
# those retries until this long (and the sweep's own delay) has passed since the last one.
RETRY_BACKOFF_MAX_SECONDS = 600
# How many stalled events one run of the sweep queues again at most (the next run takes the rest).
SWEEP_BATCH = 500


@dataclass(frozen=True)
class FactKind:
    """How one kind of fact is applied, and which clinic it concerns. Both take keyword
    arguments ``gateway`` and ``fact``; ``apply`` also ``gateway_event_id`` and returns True when
    it changed anything; ``organization_id`` returns None for a fact that is not about us."""

    apply: Callable[..., bool]
    organization_id: Callable[..., int | None]


# One entry per kind of fact a gateway event can carry (``transactions.gateways.base.GatewayFact``).
# A new kind is its fact class, the service that applies it, and one entry here; an app above
# transactions (payouts) adds its kinds with ``fact_kind_register`` from its ``AppConfig.ready``.
FACT_KINDS: dict[type, FactKind] = {
    LedgerFact: FactKind(apply=ledger_fact_apply, organization_id=ledger_fact_organization_id),
    AccountFact: FactKind(apply=account_fact_apply, organization_id=account_fact_organization_id),
}


def fact_kind_register(fact_class: type, kind: FactKind) -> None:
    """Let an app above transactions apply one kind of fact (call from ``AppConfig.ready``). Until
    one is registered, an event carrying that kind fails with the reason and waits for a replay."""
    registered = FACT_KINDS.get(fact_class)
    if registered is not None and registered != kind:
        raise ValueError(f"{fact_class.__name__} is applied already by {registered.apply.__qualname__}.")
    FACT_KINDS[fact_class] = kind


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
            logger.info(
                "gateway %s event %s (%s) %s on attempt %s: %s fact(s) applied",
                event.gateway,
                event.event_id,
                event.event_type,
                event.status,
                event.attempts,
                len(facts),
            )
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
        # A transient failure's retry is queued now (the task raises it again).
        event.dispatched_at = timezone.now()
        event.save(update_fields=["status", "attempts", "error_message", "dispatched_at"])
    logger.warning(
        "gateway %s event %s failed (attempt %s): %s", event.gateway, event.event_id, event.attempts, type(error).__name__
    )
    return event


def _stalled(now: datetime) -> Q:
    """Events whose processing should have happened by ``now`` and has not: received (never
    finished an attempt) and queued longer ago than the sweep's delay, or failed for a transient
    reason with the task's own retries evidently over (exhausted, or lost with their worker)."""
    after = timedelta(seconds=settings.GATEWAY_EVENTS_SWEEP_AFTER_SECONDS)
    transient = Q()
    for error in TRANSIENT_ERRORS:
        transient |= Q(error_message__startswith=f"{error.__name__}: ")
    return Q(status=GatewayEventStatus.RECEIVED, dispatched_at__lt=now - after) | (
        Q(status=GatewayEventStatus.FAILED, dispatched_at__lt=now - after - timedelta(seconds=RETRY_BACKOFF_MAX_SECONDS))
        & transient
    )


def gateway_events_requeue_stalled(*, now: datetime | None = None) -> int:
    """Queue again the processing of every stalled event (see ``_stalled``); give up, with the
    reason on the event, on one that has had ``settings.GATEWAY_EVENT_MAX_ATTEMPTS`` attempts.
    Returns how many were queued again. Run by Celery beat.

    Safe while a worker processes the same event: an event whose row is locked (being processed
    now) is skipped, and processing checks the event's status under that lock, so a copy queued
    here for an event processed meanwhile does nothing. A received event found stalled counts one
    attempt: the one that never finished (its worker died) or never started (its task was lost).
    Given up means failed: the sweep no longer queues it, an operator replays it (admin or
    ``replay_gateway_events``), and a copy of its task still queued may yet process it.
    """
    now = now or timezone.now()
    requeued = 0
    stalled_ids = list(
        GatewayEvent.objects.filter(_stalled(now)).order_by("dispatched_at", "pk").values_list("pk", flat=True)[
            :SWEEP_BATCH
        ]
    )
    for gateway_event_id in stalled_ids:
        with db_transaction.atomic():
            event = (
                GatewayEvent.objects.select_for_update(skip_locked=True)
                .filter(_stalled(now), pk=gateway_event_id)
                .first()
            )
            if event is None:
                continue  # being processed right now, or processed since the list was read
            if event.status == GatewayEventStatus.RECEIVED:
                event.attempts += 1
                event.error_message = (
                    f"Not processed within {settings.GATEWAY_EVENTS_SWEEP_AFTER_SECONDS} s of being queued "
                    "(its worker stopped mid-way, or its task was lost)."
                )
            if event.attempts >= settings.GATEWAY_EVENT_MAX_ATTEMPTS:
                last_error = event.error_message
                event.status = GatewayEventStatus.FAILED
                event.error_message = f"Given up after {event.attempts} attempts; replay it once the cause is fixed. Last: {last_error}"
                event.save(update_fields=["status", "attempts", "error_message"])
                logger.error(
                    "gateway %s event %s (%s) given up after %s attempts",
                    event.gateway,
                    event.event_id,
                    event.event_type,
                    event.attempts,
                )
                continue
            event.dispatched_at = now
            event.save(update_fields=["attempts", "error_message", "dispatched_at"])
            _process_on_commit(event.pk)
            requeued += 1
            logger.warning(
                "gateway %s event %s (%s) still %s, queued again (attempt %s so far)",
                event.gateway,
                event.event_id,
                event.event_type,
                event.status,
                event.attempts,
            )
    return requeued


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
