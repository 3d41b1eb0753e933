"""The demo clinic's payouts for `make dev`: the Sandbox pays out its 90 days of seeded payments
(daily payouts, mostly paid, the latest pending or in transit, a few returned by the bank) and
LumaPay records them, their lines reconciled to the cent, the balance and the next payout.

Called by ``manage.py seed_demo_clinic`` after the payments (transactions/demo.py). Fast: the
Sandbox's schedule runs once without posting its events one by one, and the facts those events
would carry are applied directly, as the event dispatch would apply them. Idempotent: a second
run brings the Sandbox's schedule up to now and changes nothing else.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from org_profile.enums import PaymentGateway
from org_profile.models import Organization
from transactions.gateways.sandbox import SandboxGateway
from transactions.sandbox import payouts as sandbox_payouts
from transactions.sandbox.models import SandboxPayout

from .models import GatewayBalance, Payout
from .services import payout_fact_apply, payout_reconcile, payouts_balance_refresh


def demo_payouts_build(*, organization: Organization, now: datetime) -> None:
    if organization.payment_gateway != PaymentGateway.SANDBOX:
        return
    sandbox_payouts.payouts_advance(organization.pk, now=now, notify=False)
    gateway = SandboxGateway()
    for payout in SandboxPayout.objects.filter(organization_id=organization.pk).order_by("created_at"):
        fact = gateway.payout_get(organization=organization, gateway_payout_id=payout.id)
        payout_fact_apply(gateway=gateway.name, fact=fact, reconcile=False)
    for payout_id in Payout.objects.filter(organization=organization, reconciled_at__isnull=True).values_list(
        "pk", flat=True
    ):
        payout_reconcile(payout_id=payout_id)
    payouts_balance_refresh(organization=organization)


def demo_payouts_summary(organization: Organization) -> list[str]:
    statuses = Counter(Payout.objects.filter(organization=organization).values_list("status", flat=True))
    if not statuses:
        return []
    matched = Payout.objects.filter(organization=organization, reconciliation="matched").count()
    balance = GatewayBalance.objects.filter(organization=organization).first()
    lines = [
        f"  {sum(statuses.values())} payouts: "
        + ", ".join(f"{count} {status.replace('_', ' ')}" for status, count in sorted(statuses.items()))
        + f"; {matched} reconciled to the cent"
    ]
    if balance is not None:
        lines.append(
            f"  Balance: {balance.available_cents / 100:.2f} available, {balance.pending_cents / 100:.2f} pending"
            + (
                f"; next payout {balance.next_payout_estimate_cents / 100:.2f} sent {balance.next_payout_date}"
                if balance.next_payout_date
                else ""
            )
        )
    return lines
