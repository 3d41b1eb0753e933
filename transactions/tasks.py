"""Celery tasks: each takes ids, loads nothing itself and calls one service that checks the
current state first, so a second delivery of the same task is harmless."""

from celery import shared_task
from django.db import OperationalError

from .gateways.base import GatewayUnavailable


@shared_task(acks_late=True)
def payment_request_deliver(delivery_id: int) -> None:
    from .services.payment_requests import delivery_send

    delivery_send(delivery_id=delivery_id)


@shared_task
def payment_requests_expire_overdue() -> int:
    from .services.payment_requests import payment_requests_expire_overdue as expire

    return expire()


@shared_task(
    acks_late=True,
    autoretry_for=(GatewayUnavailable, OperationalError),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def gateway_event_process(gateway_event_id: int) -> None:
    from .services.gateway_events import gateway_event_process as process

    process(gateway_event_id=gateway_event_id)


@shared_task(acks_late=True)
def receipt_email_send(transaction_id: int) -> None:
    from .services.receipts import receipt_email_send as send

    send(transaction_id=transaction_id)


@shared_task
def stripe_events_recover() -> int:
    """List recent Stripe events and store any the webhook never received (beat, every 10 minutes)."""
    from .services.stripe_events import stripe_events_recover as recover

    return recover()


@shared_task(acks_late=True)
def transaction_export_build(export_id: int) -> None:
    """Write a large Excel export of the dashboard's filtered transactions."""
    from .services.exports import transaction_export_build as build

    build(export_id=export_id)


@shared_task
def transaction_exports_expire() -> int:
    """Delete the files of Excel exports past their expiry (beat, hourly)."""
    from .services.exports import transaction_exports_expire as expire

    return expire()


@shared_task
def authorizations_release_for_missed_visits() -> int:
    """Let go of copays held for appointments the EHR now reports cancelled or missed (beat, every
    15 minutes)."""
    from .services.saved_cards import authorizations_release_for_missed_visits as release

    return release()
