"""What every signed-in page costs before its own work: the user's memberships are read once, for
the current organization and the header's switcher."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from org_profile.enums import Role
from org_profile.middleware import SESSION_KEY as CURRENT_ORGANIZATION
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("transactions:dashboard")


@pytest.fixture
def two_org_manager():
    """Manager at Riverside and at Lakeside; Lakeside sorts first by name."""
    user = UserFactory()
    MembershipFactory(user=user, organization=OrganizationFactory(name="Riverside Family Medicine"), role=Role.MANAGER)
    MembershipFactory(user=user, organization=OrganizationFactory(name="Lakeside Pediatrics"), role=Role.MANAGER)
    return user


def _queries_on(captured, table: str) -> list[str]:
    return [query["sql"] for query in captured.captured_queries if f'FROM "{table}"' in query["sql"]]


def test_the_memberships_are_read_once_for_the_current_organization_and_the_switcher(client, two_org_manager):
    riverside = two_org_manager.memberships.get(organization__name="Riverside Family Medicine").organization
    client.force_login(two_org_manager)
    session = client.session
    session[CURRENT_ORGANIZATION] = riverside.pk
    session.save()

    with CaptureQueriesContext(connection) as captured:
        response = client.get(DASHBOARD)

    body = response.content.decode()
    assert response.status_code == 200
    assert len(_queries_on(captured, "org_profile_membership")) == 1
    assert f'<option value="{riverside.pk}" selected>Riverside Family Medicine</option>' in body
    assert "Lakeside Pediatrics</option>" in body
