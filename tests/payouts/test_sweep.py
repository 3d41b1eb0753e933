"""The beats: the Sandbox's schedule runs for every Sandbox clinic, and the payouts sweep catches
what payout events missed, each clinic in its own tenant scope (row-level security)."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, transaction as db_transaction
from django.test import TestCase
from django.utils import timezone

from lumapay.tenant_rls import all_organizations, organization_scope
from org_profile.enums import PaymentGateway
from payouts import services, tasks as payouts_tasks
from payouts.models import GatewayBalance, Payout, PayoutLine
from tests.factories import OrganizationFactory
from transactions import tasks as transactions_tasks
from transactions.gateways.sandbox import SandboxGateway
from transactions.models import GatewayEvent, SandboxPayout
from transactions.sandbox import payouts as sandbox_payouts

from ..transactions.payouts_support import at, paid_on, week_where
from .support import payout_fact

pytestmark = pytest.mark.django_db


def _recent_monday(organization):
    """A recent week (within the sweep's look-back) whose Wednesday payout is paid."""
    today = timezone.now().date()
    return week_where(organization, fails=False, start=today - timedelta(days=12))


def test_the_sandbox_beat_pays_out_every_sandbox_clinic_and_its_events_are_applied(organization):
    stripe_clinic = OrganizationFactory(payment_gateway=PaymentGateway.STRIPE)
    paid_on(organization, timezone.now() - timedelta(days=6), amount_cents=4000)

    with TestCase.captureOnCommitCallbacks(execute=True):
        made = transactions_tasks.sandbox_payouts_advance.delay().get()

    assert made >= 1
    assert SandboxPayout.objects.filter(organization=organization).count() == made
    assert not SandboxPayout.objects.filter(organization=stripe_clinic).exists()
    assert Payout.objects.filter(organization=organization).count() == made
    assert GatewayEvent.objects.filter(event_type="payout.created").count() == made


def test_the_sweep_catches_payouts_whose_events_were_missed(organization):
    monday = _recent_monday(organization)
    transaction = paid_on(organization, at(monday, 10), amount_cents=4000)
    # The Sandbox made the payout, but its events never reached LumaPay.
    sandbox_payouts.payouts_advance(organization.pk, now=at(monday + timedelta(days=2), 1), notify=False)
    assert not Payout.objects.exists()

    with TestCase.captureOnCommitCallbacks(execute=True):
        totals = payouts_tasks.payouts_reconcile_sweep.delay().get()

    payout = Payout.objects.get(organization=organization)
    sandbox = SandboxPayout.objects.get(organization=organization)
    assert (payout.gateway_payout_id, payout.amount_cents, payout.status) == (sandbox.id, sandbox.amount_cents, sandbox.status)
    assert payout.reconciliation == "matched"
    assert payout.lines.get().transaction == transaction
    assert GatewayBalance.objects.filter(organization=organization).exists()
    assert totals["applied"] == 1 and totals["failed"] == 0

    # Run again: nothing changes.
    reconciled_at = payout.reconciled_at
    with TestCase.captureOnCommitCallbacks(execute=True):
        again = payouts_tasks.payouts_reconcile_sweep.delay().get()
    payout.refresh_from_db()
    assert (again["applied"], again["reconcile_queued"]) == (0, 0)
    assert payout.reconciled_at == reconciled_at and PayoutLine.objects.count() == 1


def test_the_sweep_reconciles_a_payout_whose_lines_were_never_fetched(organization):
    monday = _recent_monday(organization)
    paid_on(organization, at(monday, 10), amount_cents=4000)
    sandbox_payouts.payouts_advance(organization.pk, now=at(monday + timedelta(days=2), 1), notify=False)
    sandbox = SandboxPayout.objects.get(organization=organization)
    # Applied, but its reconciliation task was lost.
    services.payout_fact_apply(
        gateway="sandbox", fact=SandboxGateway().payout_get(organization=organization, gateway_payout_id=sandbox.id),
        reconcile=False,
    )  # fmt: skip
    assert Payout.objects.get().reconciliation == "waiting"

    with TestCase.captureOnCommitCallbacks(execute=True):
        totals = payouts_tasks.payouts_reconcile_sweep.delay().get()

    assert totals["reconcile_queued"] == 1
    assert Payout.objects.get().reconciliation == "matched"


def test_each_clinic_sees_only_its_own_payouts(organization, other_organization):
    for clinic in (organization, other_organization):
        monday = _recent_monday(clinic)
        paid_on(clinic, at(monday, 10), amount_cents=4000)
        sandbox_payouts.payouts_advance(clinic.pk, now=at(monday + timedelta(days=2), 1), notify=False)
    with TestCase.captureOnCommitCallbacks(execute=True):
        payouts_tasks.payouts_reconcile_sweep.delay().get()
    assert Payout.objects.count() == 2

    with organization_scope(organization.pk):
        assert list(Payout.objects.values_list("organization_id", flat=True)) == [organization.pk]
        assert set(PayoutLine.objects.values_list("organization_id", flat=True)) == {organization.pk}
        assert set(GatewayBalance.objects.values_list("organization_id", flat=True)) == {organization.pk}
        assert set(SandboxPayout.objects.values_list("organization_id", flat=True)) == {organization.pk}
    with organization_scope(None):
        assert not Payout.objects.exists() and not PayoutLine.objects.exists()


def test_a_clinics_scope_cannot_store_another_clinics_payout(organization, other_organization):
    with organization_scope(organization.pk), pytest.raises(DatabaseError, match="row-level security"):
        with db_transaction.atomic():
            services.payout_fact_apply(gateway="sandbox", fact=payout_fact(other_organization), reconcile=False)
    with all_organizations():
        assert not Payout.objects.exists()


def test_one_clinics_failing_gateway_does_not_stop_the_others(organization, monkeypatch):
    broken = OrganizationFactory()
    monday = _recent_monday(organization)
    paid_on(organization, at(monday, 10), amount_cents=4000)
    sandbox_payouts.payouts_advance(organization.pk, now=at(monday + timedelta(days=2), 1), notify=False)
    real = services.payouts_for

    def payouts_for(clinic):
        if clinic.pk == broken.pk:
            raise services.GatewayError("The gateway refused the request.")
        return real(clinic)

    monkeypatch.setattr(services, "payouts_for", payouts_for)
    with TestCase.captureOnCommitCallbacks(execute=True):
        totals = payouts_tasks.payouts_reconcile_sweep.delay().get()

    assert totals["failed"] == 1
    assert Payout.objects.get().organization == organization


def test_the_sweep_leaves_out_a_stripe_clinic_that_disconnected_lumapay(organization):
    connected = OrganizationFactory(payment_gateway=PaymentGateway.STRIPE, stripe_account_id="acct_connected0001")
    disconnected = OrganizationFactory(
        payment_gateway=PaymentGateway.STRIPE, stripe_account_id="acct_gone00000001", stripe_disconnected_at=timezone.now()
    )
    never = OrganizationFactory(payment_gateway=PaymentGateway.STRIPE)

    with all_organizations():
        clinics = {clinic.pk for clinic in services.payouts_organizations()}

    assert {organization.pk, connected.pk} <= clinics
    assert disconnected.pk not in clinics and never.pk not in clinics


def test_the_sweep_asks_again_only_within_its_look_back(organization, settings):
    """A payout whose lines stay short of it is fetched again for PAYOUTS_RECONCILE_LOOKBACK_DAYS,
    then left to an operator: never every half hour forever."""
    now = timezone.now()
    for number, age_days in ((1, 3), (2, settings.PAYOUTS_RECONCILE_LOOKBACK_DAYS + 5)):
        services.payout_fact_apply(
            gateway="sandbox",
            fact=payout_fact(organization, gateway_payout_id=f"po_old_{number}", created=now - timedelta(days=age_days)),
            reconcile=False,
        )
    Payout.objects.filter(organization=organization).update(reconciliation="difference")
    queued = []
    import payouts.services as payouts_services

    original = payouts_services._reconcile_on_commit
    payouts_services._reconcile_on_commit = queued.append
    try:
        with organization_scope(organization.pk):
            services.payouts_reconcile_organization(organization=organization, now=now)
    finally:
        payouts_services._reconcile_on_commit = original

    recent = Payout.objects.get(gateway_payout_id="po_old_1")
    assert queued == [recent.pk]


def test_lines_that_will_never_link_do_not_hide_the_ones_behind_them(organization, monkeypatch):
    from payouts.enums import PayoutLineKind

    from ..transactions.payments import paid_transaction
    from .factories import PayoutFactory, PayoutLineFactory

    monkeypatch.setattr(services, "LINK_BATCH_SIZE", 3)
    payout = PayoutFactory(organization=organization)
    # Seven charges made outside LumaPay (never in our ledger), then one of ours, stored before
    # its charge's event arrived.
    for _ in range(7):
        PayoutLineFactory(payout=payout, kind=PayoutLineKind.CHARGE)
    ours = paid_transaction(organization=organization)
    late = PayoutLineFactory(payout=payout, kind=PayoutLineKind.CHARGE, source_id=ours.gateway_charge_id)

    assert services.payout_lines_link_pending(organization_id=organization.pk) == 1

    late.refresh_from_db()
    assert late.transaction_id == ours.pk
    assert PayoutLine.objects.filter(payout=payout, transaction__isnull=True).count() == 7
