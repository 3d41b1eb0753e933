"""Payouts in the operators' admin: looked at, never edited; an operator can have a payout's lines
fetched again (the action queues the same reconciliation the beat runs)."""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.test import TestCase
from django.urls import reverse

from payouts.models import GatewayBalance, Payout, PayoutLine
from tests.factories import UserFactory

from ..transactions.payouts_support import at, paid_on, week_where
from .support import advance_with_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def payout(organization):
    monday = week_where(organization, fails=False)
    paid_on(organization, at(monday, 10), amount_cents=5000)
    advance_with_events(organization, at(monday + timedelta(days=2), 1))
    return Payout.objects.get(organization=organization)


@pytest.mark.parametrize("model", [Payout, PayoutLine, GatewayBalance], ids=lambda model: model.__name__)
def test_operators_look_and_never_edit(operator_client, payout, model):
    row = model.objects.first()
    changelist = reverse(f"admin:payouts_{model._meta.model_name}_changelist")

    assert operator_client.get(changelist).status_code == 200
    assert operator_client.get(reverse(f"admin:payouts_{model._meta.model_name}_change", args=[row.pk])).status_code == 200
    assert operator_client.get(reverse(f"admin:payouts_{model._meta.model_name}_add")).status_code == 403
    assert not admin.site._registry[model].has_delete_permission(None)


def test_fetch_the_lines_again(operator_client, payout):
    PayoutLine.objects.filter(payout=payout).delete()
    Payout.objects.filter(pk=payout.pk).update(reconciliation="waiting", lines_count=0, lines_net_cents=None)

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = operator_client.post(
            reverse("admin:payouts_payout_changelist"),
            {"action": "reconcile_again", "_selected_action": [payout.pk]},
            follow=True,
        )

    assert "Queued 1 payout to be reconciled again." in response.content.decode()
    payout.refresh_from_db()
    assert (payout.reconciliation, payout.lines_count, payout.difference_cents) == ("matched", 1, 0)
