"""``manage.py sandbox_pay_out_now``: a Sandbox clinic paid out at once (an instant payout of all it
has at the Sandbox, settled or not), so a payment made a minute ago is seen in a paid payout,
reconciled with its refund and fees, without waiting the two business days it takes to settle."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import TestCase
from django.utils import timezone

from payouts.models import Payout
from transactions.models import SandboxPayout
from transactions.sandbox import payouts as sandbox_payouts
from transactions.sandbox.processor import sandbox_fee_cents

from ..transactions.payouts_support import paid_on, refunded_on

pytestmark = pytest.mark.django_db


def test_a_payment_refunded_a_minute_ago_is_paid_out_now_and_reconciled_to_the_cent(organization, manager):
    now = timezone.now()
    payment = paid_on(organization, now - timedelta(minutes=5), amount_cents=4500)
    refund = refunded_on(payment, now - timedelta(minutes=1), 2250, actor=manager)
    out = StringIO()

    with TestCase.captureOnCommitCallbacks(execute=True):
        call_command("sandbox_pay_out_now", "--organization", organization.slug, stdout=out)

    sandbox = SandboxPayout.objects.get(organization=organization)
    expected = 4500 - sandbox_fee_cents(4500) - payment.platform_fee_cents - 2250
    assert (sandbox.method, sandbox.status, sandbox.amount_cents) == ("instant", "paid", expected)
    assert f"paid out ${expected / 100:,.2f} now" in out.getvalue()
    payout = Payout.objects.get(organization=organization)
    assert (payout.status, payout.method, payout.amount_cents, payout.arrival_date) == (
        "paid", "instant", expected, sandbox.payout_date
    )
    assert payout.automatic is False  # asked for, not made by the schedule
    assert (payout.reconciliation, payout.difference_cents) == ("matched", 0)
    lines = {(line.kind, line.net_cents, line.transaction_id) for line in payout.lines.all()}
    assert lines == {("charge", 4500 - sandbox_fee_cents(4500) - payment.platform_fee_cents, payment.pk), ("refund", -2250, payment.pk)}
    assert refund.gateway_refund_id in set(payout.lines.values_list("source_id", flat=True))

    # Nothing is left to pay out: a second run and the schedule's next days make no payout of it.
    with TestCase.captureOnCommitCallbacks(execute=True):
        call_command("sandbox_pay_out_now", "--organization", organization.slug, stdout=out)
        sandbox_payouts.payouts_advance(organization.pk, now=now + timedelta(days=5))
    assert "nothing to pay out" in out.getvalue()
    assert SandboxPayout.objects.filter(organization=organization).count() == 1


def test_an_unknown_clinic_is_refused(organization):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No clinic on the Sandbox"):
        call_command("sandbox_pay_out_now", "--organization", "no-such-clinic")
