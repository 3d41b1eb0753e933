"""The current organization: chosen by the middleware, switched by the user, never one they
do not belong to."""

import pytest
from django.urls import reverse

from org_profile.enums import Role
from org_profile.middleware import SESSION_KEY as CURRENT_ORGANIZATION
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.urls("tests.org_profile.probe_urls")

PROBE = "/__probe__/current-organization/"


@pytest.fixture
def riverside(db):
    return OrganizationFactory(name="Riverside Family Medicine")


@pytest.fixture
def lakeside(db):
    return OrganizationFactory(name="Lakeside Pediatrics")


@pytest.fixture
def hilltop(db):
    """An organization the user does not belong to, with members of its own."""
    organization = OrganizationFactory(name="Hilltop Dermatology")
    MembershipFactory(organization=organization, role=Role.ADMINISTRATOR)
    return organization


@pytest.fixture
def two_org_user(riverside, lakeside):
    """Manager at Riverside, sub-account user at Lakeside; Lakeside sorts first by name."""
    user = UserFactory()
    MembershipFactory(user=user, organization=riverside, role=Role.MANAGER)
    MembershipFactory(user=user, organization=lakeside, role=Role.STAFF)
    return user


def test_middleware_picks_the_first_membership_by_organization_name(client, two_org_user, lakeside):
    client.force_login(two_org_user)

    response = client.get(PROBE)

    assert response.status_code == 200
    assert response.json() == {
        "organization_id": lakeside.id,
        "organization_name": "Lakeside Pediatrics",
        "role": Role.STAFF,
    }


def test_middleware_skips_an_inactive_membership(client, riverside, lakeside):
    user = UserFactory()
    MembershipFactory(user=user, organization=lakeside, is_active=False)
    MembershipFactory(user=user, organization=riverside, role=Role.ADMINISTRATOR)
    client.force_login(user)

    response = client.get(PROBE)

    assert response.json()["organization_id"] == riverside.id


def test_switching_organization_scopes_the_session_to_it(client, two_org_user, riverside):
    client.force_login(two_org_user)

    response = client.post(reverse("organization_switch"), {"organization": riverside.id})

    assert response.status_code == 302
    assert response.url == reverse("transactions:dashboard")
    assert client.session[CURRENT_ORGANIZATION] == riverside.id
    assert client.get(PROBE).json() == {
        "organization_id": riverside.id,
        "organization_name": "Riverside Family Medicine",
        "role": Role.MANAGER,
    }


def test_switching_back_and_forth(client, two_org_user, riverside, lakeside):
    client.force_login(two_org_user)

    client.post(reverse("organization_switch"), {"organization": riverside.id})
    client.post(reverse("organization_switch"), {"organization": lakeside.id})

    assert client.get(PROBE).json()["organization_id"] == lakeside.id


def test_switch_confirms_the_new_organization(client, two_org_user, riverside):
    client.force_login(two_org_user)

    client.post(reverse("organization_switch"), {"organization": riverside.id})

    messages = [str(m) for m in client.get(PROBE).wsgi_request._messages]
    assert messages == ["You are now working in Riverside Family Medicine."]


def test_switching_to_another_organization_is_404_and_changes_nothing(client, two_org_user, riverside, hilltop):
    client.force_login(two_org_user)
    client.post(reverse("organization_switch"), {"organization": riverside.id})

    response = client.post(reverse("organization_switch"), {"organization": hilltop.id})

    assert response.status_code == 404
    assert client.session[CURRENT_ORGANIZATION] == riverside.id
    assert client.get(PROBE).json()["organization_id"] == riverside.id


def test_switching_to_an_organization_whose_membership_is_inactive_is_404(client, riverside, lakeside):
    user = UserFactory()
    MembershipFactory(user=user, organization=riverside)
    MembershipFactory(user=user, organization=lakeside, is_active=False)
    client.force_login(user)

    response = client.post(reverse("organization_switch"), {"organization": lakeside.id})

    assert response.status_code == 404
    assert CURRENT_ORGANIZATION not in client.session


@pytest.mark.parametrize("value", ["", "riverside", "1.5", "999999999999"])
def test_switch_with_a_malformed_or_unknown_id_is_404(client, two_org_user, value):
    client.force_login(two_org_user)

    response = client.post(reverse("organization_switch"), {"organization": value})

    assert response.status_code == 404
    assert CURRENT_ORGANIZATION not in client.session


def test_switch_needs_post(client, two_org_user, riverside):
    client.force_login(two_org_user)

    response = client.get(reverse("organization_switch"), {"organization": riverside.id})

    assert response.status_code == 405
    assert CURRENT_ORGANIZATION not in client.session


def test_switch_needs_a_signed_in_user(client, riverside):
    response = client.post(reverse("organization_switch"), {"organization": riverside.id})

    assert response.status_code == 302
    assert response.url.startswith(reverse("login") + "?next=")


def test_a_membership_removed_after_switching_falls_back_to_the_first_one(client, two_org_user, riverside, lakeside):
    client.force_login(two_org_user)
    client.post(reverse("organization_switch"), {"organization": riverside.id})

    two_org_user.memberships.filter(organization=riverside).update(is_active=False)

    assert client.get(PROBE).json()["organization_id"] == lakeside.id


def test_user_without_membership_sees_the_not_a_member_page(client, db):
    client.force_login(UserFactory())

    response = client.get(PROBE)

    assert response.status_code == 403
    html = response.content.decode()
    assert "You are not a member of any organization" in html
    assert f'action="{reverse("logout")}"' in html


def test_anonymous_visitor_is_sent_to_sign_in(client, db):
    response = client.get(PROBE)

    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={PROBE}"
