"""`make dev`'s demo clinic shows months of Sandbox payouts, reconciled to the cent."""

import io

import pytest
from django.core.management import call_command
from django.db.models import Sum

from org_profile.models import Organization
from payouts.models import GatewayBalance, Payout, PayoutLine

pytestmark = pytest.mark.django_db


def test_the_demo_clinic_has_three_months_of_payouts_reconciled_to_the_cent(settings):
    settings.DEBUG = True
    out = io.StringIO()
    call_command("seed_demo_clinic", stdout=out)
    clinic = Organization.objects.get(slug="demo-clinic")

    payouts = Payout.objects.filter(organization=clinic)
    statuses = {status: payouts.filter(status=status).count() for status in ("paid", "in_transit", "pending", "failed")}
    assert payouts.count() >= 40  # business days with money to send, over 90 days of a growing clinic
    assert statuses["paid"] > payouts.count() * 0.8
    # Which payouts the bank returns is drawn from their ids (the clinic's id and the day): on a fresh
    # database, three; here the clinic's id is whatever the test database's sequence gives.
    assert statuses["failed"] <= payouts.count() * 0.2
    # Something is on its way to the bank, unless the refunds since the last payout took more than
    # came in: then, as at Stripe, nothing goes out until the balance is above zero. Which of the two
    # the demo shows depends on the weekday and hour it is seeded at (its 90 days end now).
    balance = GatewayBalance.objects.get(organization=clinic, currency="usd")
    assert statuses["pending"] + statuses["in_transit"] >= 1 or balance.available_cents <= 0, (statuses, balance.available_cents)
    assert not payouts.exclude(reconciliation="matched").exists()
    for payout in payouts:
        total = PayoutLine.objects.filter(payout=payout).aggregate(total=Sum("net_cents"))["total"]
        assert total == payout.amount_cents == payout.lines_net_cents
    # Every payment and refund a payout carries is linked to its transaction.
    assert not PayoutLine.objects.filter(organization=clinic, kind__in=["charge", "refund"], transaction__isnull=True).exists()
    returned = PayoutLine.objects.filter(organization=clinic, kind="payout_failure")
    assert returned.count() <= statuses["failed"]
    assert GatewayBalance.objects.filter(organization=clinic, currency="usd").exists()
    assert "payouts:" in out.getvalue()

    # Seeding again adds nothing.
    count = payouts.count()
    call_command("seed_demo_clinic", stdout=io.StringIO())
    assert Payout.objects.filter(organization=clinic).count() == count
