"""Selectors answer None for what the member may not see; the view turns it into 404 (never 403)."""

import pytest
from django.urls import reverse

from org_profile.models import Membership
from transactions.selectors.ledger import transaction_get

from .payments import checkout_transaction

pytestmark = pytest.mark.django_db


def test_a_transaction_of_another_organization_or_location_is_none(
    organization, other_organization, location, other_location, staff_user, manager
):
    # given a transaction at the Downtown Clinic, one at Northside and one in another organization
    downtown = checkout_transaction(organization=organization, location=location)
    northside = checkout_transaction(organization=organization, location=other_location)
    elsewhere = checkout_transaction(organization=other_organization)
    staff = Membership.objects.get(user=staff_user)
    managing = Membership.objects.get(user=manager)

    # when each member looks each one up, then they find only what they may see
    assert [transaction_get(membership=staff, pk=t.pk) for t in (downtown, northside, elsewhere)] == [downtown, None, None]
    assert [transaction_get(membership=managing, pk=t.pk) for t in (downtown, northside, elsewhere)] == [
        downtown, northside, None
    ]


def test_the_page_of_a_transaction_not_theirs_is_a_404(client_for, organization, other_organization, manager):
    # given another organization's transaction
    elsewhere = checkout_transaction(organization=other_organization)

    # when a manager of this organization opens its page and its receipt
    client = client_for(manager)
    responses = [
        client.get(reverse("transactions:transaction_detail", args=[elsewhere.pk])),
        client.get(reverse("transactions:transaction_receipt", args=[elsewhere.pk])),
    ]

    # then both are "not found"
    assert [response.status_code for response in responses] == [404, 404]
