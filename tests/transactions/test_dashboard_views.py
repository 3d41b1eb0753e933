import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from org_profile.enums import Role
from tests.factories import LocationFactory, MembershipFactory, OrganizationFactory, PatientFactory
from transactions.enums import PaymentRequestKind, TransactionStatus
from transactions.models import Refund, Transaction

from .payments import money_state, paid_transaction

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("transactions:dashboard")


def _transactions(organization, location, count, *, start=None, patient=None):
    """``count`` pending transactions one hour apart, the last one the newest."""
    patient = patient or PatientFactory(organization=organization)
    start = start or timezone.now() - datetime.timedelta(days=30)
    made = []
    for number in range(count):
        transaction = Transaction.objects.create(
            organization=organization,
            patient=patient,
            location=location,
            kind=PaymentRequestKind.COPAY,
            billing_item=f"Visit {number}",
            amount_cents=1000 + number,
            vendor=organization.payment_gateway,
        )
        Transaction.objects.filter(pk=transaction.pk).update(created_at=start + datetime.timedelta(hours=number))
        made.append(transaction.pk)
    return made


def _listed(response):
    return [transaction.pk for transaction in response.context["page"].object_list]


def test_dashboard_lists_newest_first_25_per_page(client_for, manager, organization, location):
    made = _transactions(organization, location, 27)

    client = client_for(manager)
    first = client.get(DASHBOARD)
    second = client.get(DASHBOARD, {"older_than": first.context["page"].older_cursor})

    assert first.status_code == 200
    assert _listed(first) == list(reversed(made))[:25]
    assert _listed(second) == list(reversed(made))[25:]
    assert (first.context["page"].has_older, second.context["page"].has_older) == (True, False)
    assert first.context["summary"].count == 27
    assert "Older →" in first.content.decode()
    assert "← Newer" in second.content.decode()


def test_same_moment_is_ordered_by_id_newest_first(client_for, manager, organization, location):
    moment = timezone.now() - datetime.timedelta(days=1)
    made = _transactions(organization, location, 3)
    Transaction.objects.filter(pk__in=made).update(created_at=moment)

    response = client_for(manager).get(DASHBOARD)

    assert _listed(response) == list(reversed(made))


def test_dashboard_shows_the_columns(client_for, manager, organization, location, patient):
    payment = paid_transaction(organization=organization, patient=patient, location=location, amount_cents=4250)

    body = client_for(manager).get(DASHBOARD).content.decode()

    assert reverse("transactions:transaction_detail", args=[payment.pk]) in body
    assert reverse("patients:profile", args=[patient.pk]) in body
    assert patient.full_name in body
    assert "Copay · Office visit copay" in body
    assert location.name in body
    assert "$42.50" in body
    assert f'<span class="status status-{TransactionStatus.SUCCEEDED}">Succeeded</span>' in body
    assert "Visa ···· 4242" in body
    assert "Sandbox (test payments only)" in body


def test_staff_see_only_their_locations(client_for, staff_user, organization, location, other_location):
    mine = _transactions(organization, location, 2)
    _transactions(organization, other_location, 3)

    response = client_for(staff_user).get(DASHBOARD)

    assert _listed(response) == list(reversed(mine))


def test_administrators_see_every_location(client_for, administrator, organization, location, other_location):
    made = _transactions(organization, location, 2) + _transactions(
        organization, other_location, 2, start=timezone.now() - datetime.timedelta(days=2)
    )

    response = client_for(administrator).get(DASHBOARD)

    assert sorted(_listed(response)) == sorted(made)


def test_another_organizations_transactions_are_not_listed(client_for, manager, organization, location, other_organization):
    _transactions(other_organization, LocationFactory(organization=other_organization), 2)

    response = client_for(manager).get(DASHBOARD)

    assert _listed(response) == []
    assert "No transactions yet." in response.content.decode()


def test_dashboard_queries_do_not_grow_with_rows(client_for, manager, organization, location):
    client = client_for(manager)
    _transactions(organization, location, 2)
    with CaptureQueriesContext(connection) as few:
        client.get(DASHBOARD)
    for _ in range(8):
        _transactions(organization, LocationFactory(organization=organization), 3)
    with CaptureQueriesContext(connection) as many:
        response = client.get(DASHBOARD)

    assert len(_listed(response)) == 25
    assert len(many) == len(few)


def test_signed_out_visitors_go_to_the_login_page(client):
    response = client.get(DASHBOARD)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_detail_and_refund_of_another_organization_are_404(client_for, organization, location, other_organization):
    theirs = paid_transaction(organization=other_organization, amount_cents=3000)
    outsider = MembershipFactory(organization=organization, role=Role.ADMINISTRATOR).user
    before = money_state(theirs)

    client = client_for(outsider)
    detail = client.get(reverse("transactions:transaction_detail", args=[theirs.pk]))
    refund = client.post(
        reverse("transactions:transaction_refund", args=[theirs.pk]),
        {"amount": "50.00", "reason": "Overpaid"},
    )

    assert (detail.status_code, refund.status_code) == (404, 404)
    assert money_state(theirs) == before
    assert Refund.objects.count() == 0


def test_staff_get_404_for_another_locations_transaction(client_for, staff_user, organization, other_location):
    elsewhere = paid_transaction(organization=organization, location=other_location, amount_cents=3000)

    response = client_for(staff_user).get(reverse("transactions:transaction_detail", args=[elsewhere.pk]))

    assert response.status_code == 404


def test_a_user_without_a_membership_is_told_so(client_for):
    from tests.factories import UserFactory

    response = client_for(UserFactory()).get(DASHBOARD)

    assert response.status_code == 403


def test_switching_organization_scopes_the_dashboard(client_for, organization, location):
    second = OrganizationFactory(name="Lakeside Pediatrics")
    mine = _transactions(second, LocationFactory(organization=second), 1)
    _transactions(organization, location, 2)
    member = MembershipFactory(organization=organization, role=Role.MANAGER).user
    MembershipFactory(user=member, organization=second, role=Role.MANAGER)

    client = client_for(member)
    client.post(reverse("organization_switch"), {"organization": second.pk})
    response = client.get(DASHBOARD)

    assert _listed(response) == mine
