"""Celery tasks for payouts: each takes ids and calls one service in the organization's tenant
scope (``lumapay.tenant_rls``); the beat sweep, which spans clinics, opens each clinic's scope
itself. Services queue these by name (``lumapay.task_queue.task_enqueue_on_commit``)."""

from celery import shared_task
from django.db import OperationalError

from lumapay.tenant_rls import all_organizations, organization_scope, organization_scope_of
from org_profile.models import Organization
from transactions.gateways.base import GatewayUnavailable

from . import services
from .models import Payout


@shared_task(
    acks_late=True,
    autoretry_for=(GatewayUnavailable, OperationalError),
    retry_backoff=10,
    retry_backoff_max=900,
    retry_jitter=True,
    max_retries=8,
)
def payout_reconcile(payout_id: int) -> None:
    """Fetch one payout's lines from its gateway and reconcile them with the ledger (queued on every
    payout event; the beat queues again what is not matched)."""
    with organization_scope_of(Payout, payout_id):
        services.payout_reconcile(payout_id=payout_id)


@shared_task(
    acks_late=True,
    autoretry_for=(GatewayUnavailable, OperationalError),
    retry_backoff=10,
    retry_backoff_max=900,
    retry_jitter=True,
    max_retries=5,
)
def payout_balance_refresh(organization_id: int) -> None:
    """Read a clinic's balance and next payout from its gateway (after a ``balance.available``)."""
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return
    with organization_scope(organization_id):
        services.payouts_balance_refresh(organization=organization)


@shared_task
def payouts_reconcile_sweep() -> dict:
    """What payout events missed, for every clinic that is paid out (beat): recent payouts listed
    and applied, payouts not reconciled queued again, late lines linked, balances refreshed; each
    clinic in its own tenant scope (the service opens it)."""
    with all_organizations():
        return services.payouts_reconcile_sweep()
