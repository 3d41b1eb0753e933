"""Celery tasks: each takes ids, loads nothing itself and calls one service that checks the
current state first, so a second delivery of the same task is harmless.

Tasks are entry points, like views: they import services, and services never import them (a
service queues a task by its name, through ``lumapay.task_queue.task_enqueue_on_commit``).
"""

from celery import shared_task
from django.db import OperationalError

from .gateways.base import GatewayUnavailable
from .services import exports, gateway_events, payment_requests, receipts, saved_cards, stripe_events


@shared_task(acks_late=True)
def payment_request_deliver(delivery_id: int) -> None:
    payment_requests.delivery_send(delivery_id=delivery_id)


@shared_task
def payment_requests_expire_overdue() -> int:
    return payment_requests.payment_requests_expire_overdue()


@shared_task(
    acks_late=True,
    autoretry_for=(GatewayUnavailable, OperationalError),
    retry_backoff=5,
    retry_backoff_max=gateway_events.RETRY_BACKOFF_MAX_SECONDS,
    retry_jitter=True,
    max_retries=8,
)
def gateway_event_process(gateway_event_id: int) -> None:
    gateway_events.gateway_event_process(gateway_event_id=gateway_event_id)


@shared_task
def gateway_events_requeue_stalled() -> int:
    """Queue again the gateway events stored but not processed in time (beat, every minute)."""
    return gateway_events.gateway_events_requeue_stalled()


@shared_task(acks_late=True)
def receipt_email_send(transaction_id: int) -> None:
    receipts.receipt_email_send(transaction_id=transaction_id)


@shared_task
def stripe_events_recover() -> int:
    """List recent Stripe events and store any the webhook never received (beat, every 10 minutes)."""
    return stripe_events.stripe_events_recover()


@shared_task(acks_late=True)
def transaction_export_build(export_id: int) -> None:
    """Write a large Excel export of the dashboard's filtered transactions."""
    exports.transaction_export_build(export_id=export_id)


@shared_task
def transaction_exports_expire() -> int:
    """Delete the files of Excel exports past their expiry (beat, hourly)."""
    return exports.transaction_exports_expire()


@shared_task
def authorizations_release_for_missed_visits() -> int:
    """Let go of copays held for appointments the EHR now reports cancelled or missed (beat, every
    15 minutes)."""
    return saved_cards.authorizations_release_for_missed_visits()
