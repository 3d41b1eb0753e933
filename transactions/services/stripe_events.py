"""Recovering Stripe events that never reached the webhook.

Stripe retries a failed webhook delivery for three days, then gives up; an endpoint that was
down, misconfigured or answering errors loses events. The periodic task lists recent events from
Stripe, for the platform and for each clinic's connected account, and stores any we do not have
through the same storage step as a delivered event (``gateway_event_store_fetched``), so they are
processed like the others. Listing is by creation time: each account's cursor remembers the
newest event listed, and the next listing starts a few minutes before it (an event can appear in
the list a moment after its creation time).
"""

from __future__ import annotations

import logging
import time

from org_profile.enums import PaymentGateway
from org_profile.models import Organization

from ..gateways.base import GatewayError
from ..gateways.stripe import StripeGateway, stripe_configured
from ..models import GatewayEventCursor
from .gateway_events import gateway_event_store_fetched

logger = logging.getLogger(__name__)

LISTING_OVERLAP_SECONDS = 5 * 60
# The first listing for an account reaches back as far as Stripe keeps retrying a delivery.
FIRST_LISTING_LOOKBACK_SECONDS = 3 * 24 * 3600


def stripe_events_recover(*, now: int | None = None) -> int:
    """List recent Stripe events and store those we never received. Returns how many were new.

    An account Stripe refuses to list (a clinic that disconnected its account) is logged and
    skipped; the others are still listed. Nothing to do when Stripe is not configured.
    """
    if not stripe_configured():
        return 0
    now = int(time.time()) if now is None else now
    gateway = StripeGateway()
    accounts: list[tuple[str, int | None]] = [("", None)]
    accounts += list(
        Organization.objects.exclude(stripe_account_id__isnull=True)
        .exclude(stripe_account_id="")
        .filter(stripe_disconnected_at__isnull=True)  # the platform can no longer read a disconnected one
        .order_by("pk")
        .values_list("stripe_account_id", "pk")
    )
    recovered = 0
    for account, organization_id in accounts:
        try:
            recovered += _account_events_recover(gateway, account=account, organization_id=organization_id, now=now)
        except GatewayError as error:
            logger.warning("stripe events of account %r could not be listed: %s", account or "platform", error.message)
    return recovered


def _account_events_recover(gateway: StripeGateway, *, account: str, organization_id: int | None, now: int) -> int:
    cursor = GatewayEventCursor.objects.filter(gateway=PaymentGateway.STRIPE, account=account).first()
    if cursor is None:
        created_after = now - FIRST_LISTING_LOOKBACK_SECONDS
        newest = created_after
    else:
        created_after = cursor.last_event_created - LISTING_OVERLAP_SECONDS
        newest = cursor.last_event_created
    recovered = 0
    for payload in gateway.events_list(account=account, created_after=created_after):
        _event, created = gateway_event_store_fetched(
            gateway=PaymentGateway.STRIPE, payload=payload, organization_id=organization_id
        )
        recovered += created
        newest = max(newest, int(payload.get("created") or 0))
    # Advanced only after the whole listing went through: a failure part-way lists it all again.
    GatewayEventCursor.objects.update_or_create(
        gateway=PaymentGateway.STRIPE, account=account, defaults={"last_event_created": newest}
    )
    if recovered:
        logger.info("stripe account %r: %s event(s) recovered by listing", account or "platform", recovered)
    return recovered
