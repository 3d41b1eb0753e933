"""A transaction's page says which payout carried its money to the bank, for managers and
administrators; sub-account users see nothing of payouts there."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from org_profile.enums import Role
from payouts.enums import PayoutLineKind, PayoutStatus
from tests.factories import MembershipFactory
from tests.transactions.dashboard_support import ledger_transaction

from .factories import PayoutFactory, PayoutLineFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid_out(organization, location, patient):
    transaction = ledger_transaction(organization=organization, location=location, patient=patient,
                                     created_at=timezone.now() - datetime.timedelta(days=5))
    payout = PayoutFactory(organization=organization, status=PayoutStatus.PAID, arrival_date=datetime.date(2026, 11, 20))
    PayoutLineFactory(payout=payout, transaction=transaction, amount_cents=5000, fee_cents=175)
    return transaction, payout


@pytest.mark.parametrize("role", [Role.ADMINISTRATOR, Role.MANAGER])
def test_the_transaction_page_names_the_payout_that_carried_its_money(client, organization, paid_out, role):
    transaction, payout = paid_out
    client.force_login(MembershipFactory(organization=organization, role=role).user)

    html = client.get(reverse("transactions:transaction_detail", args=[transaction.pk])).content.decode()

    link = reverse("payouts:detail", args=[payout.pk])
    assert f'Paid out to the bank in <a href="{link}">payout #{payout.pk}</a> on Nov 20, 2026' in html
    assert "(Payment $48.25 net)" in html


def test_a_refund_in_a_later_payout_and_a_payout_in_transit_are_said_too(client, manager, organization, paid_out):
    transaction, _ = paid_out
    later = PayoutFactory(organization=organization, status=PayoutStatus.IN_TRANSIT, arrival_date=datetime.date(2026, 12, 2))
    PayoutLineFactory(payout=later, transaction=transaction, kind=PayoutLineKind.REFUND, amount_cents=-1000, fee_cents=0)
    client.force_login(manager)

    html = client.get(reverse("transactions:transaction_detail", args=[transaction.pk])).content.decode()

    assert f"On its way to the bank in <a href=\"{reverse('payouts:detail', args=[later.pk])}\">payout #{later.pk}</a>, arriving Dec 2, 2026" in html
    assert "(Refund −$10.00 net)" in html


def test_a_sub_account_user_sees_nothing_of_payouts_on_the_transaction_page(client, staff_user, paid_out):
    transaction, payout = paid_out
    client.force_login(staff_user)

    response = client.get(reverse("transactions:transaction_detail", args=[transaction.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "payout" not in html.lower()
    assert "payouts_carrying" not in response.context


def test_a_transaction_not_paid_out_yet_shows_no_payout_panel(client, manager, organization, location, patient):
    transaction = ledger_transaction(organization=organization, location=location, patient=patient,
                                     created_at=timezone.now())
    client.force_login(manager)

    html = client.get(reverse("transactions:transaction_detail", args=[transaction.pk])).content.decode()

    assert "To the bank" not in html
