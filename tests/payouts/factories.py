"""Payouts, their lines and balances as the payouts services would store them from the gateway's
facts. The pages only read these rows, so tests make them directly."""

import datetime

import factory
from django.utils import timezone

from payouts.enums import PayoutLineKind, PayoutMethod, PayoutStatus, Reconciliation
from payouts.models import GatewayBalance, Payout, PayoutLine

from ..factories import OrganizationFactory


class PayoutFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payout

    organization = factory.SubFactory(OrganizationFactory)
    gateway = "sandbox"
    gateway_payout_id = factory.Sequence(lambda n: f"po_test_{n:06d}")
    amount_cents = 125_000
    currency = "usd"
    status = PayoutStatus.PAID
    method = PayoutMethod.STANDARD
    created_at = factory.LazyFunction(timezone.now)
    arrival_date = factory.LazyAttribute(lambda p: (p.created_at + datetime.timedelta(days=2)).date())
    bank_name = "First Springfield Bank"
    bank_last4 = "6789"
    trace_id = factory.Sequence(lambda n: f"TRC{n:010d}")
    reconciliation = Reconciliation.WAITING


class PayoutLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PayoutLine

    payout = factory.SubFactory(PayoutFactory)
    organization = factory.LazyAttribute(lambda line: line.payout.organization)
    gateway_line_id = factory.Sequence(lambda n: f"txn_test_{n:07d}")
    kind = PayoutLineKind.CHARGE
    amount_cents = 5000
    fee_cents = 175
    net_cents = factory.LazyAttribute(lambda line: line.amount_cents - line.fee_cents)
    currency = "usd"
    created_at = factory.LazyFunction(timezone.now)
    source_id = factory.Sequence(lambda n: f"ch_test_{n:07d}")


class GatewayBalanceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GatewayBalance

    organization = factory.SubFactory(OrganizationFactory)
    currency = "usd"
    available_cents = 48_210
    pending_cents = 12_055
    next_payout_date = factory.LazyFunction(lambda: timezone.localdate() + datetime.timedelta(days=1))
    next_payout_estimate_cents = 48_210
