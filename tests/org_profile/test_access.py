"""staff_access: the one answer to "active member, one of these roles, at this location"."""

import pytest

from org_profile.access import ADMINISTRATORS, MANAGERS, AccessDenied, staff_access
from org_profile.enums import Role

from ..factories import LocationFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def _refusal(**arguments):
    with pytest.raises(AccessDenied) as error:
        staff_access(**arguments)
    return error.value.reason, error.value.message, error.value.extra


def test_an_active_member_with_the_role_at_their_location_is_let_in(organization, location, staff_user):
    membership = staff_access(organization=organization, actor=staff_user, location=location)

    assert (membership.user, membership.organization, membership.role) == (staff_user, organization, Role.STAFF)


def test_managers_and_administrators_work_at_every_location(organization, other_location, manager, administrator):
    for actor in (manager, administrator):
        assert staff_access(organization=organization, actor=actor, roles=MANAGERS, location=other_location).user == actor


def test_a_sub_account_user_is_refused_another_location_by_name(organization, other_location, staff_user):
    assert _refusal(organization=organization, actor=staff_user, location=other_location) == (
        AccessDenied.LOCATION, "Northside Clinic is not one of your locations.", {"field": "location"}
    )


def test_a_location_of_another_organization_is_refused_even_to_an_administrator(
    organization, other_organization, administrator
):
    elsewhere = LocationFactory(organization=other_organization, name="Lakeside Main")

    assert _refusal(organization=organization, actor=administrator, location=elsewhere)[0] == AccessDenied.LOCATION


def test_a_role_not_listed_is_refused(organization, manager):
    assert _refusal(organization=organization, actor=manager, roles=ADMINISTRATORS) == (
        AccessDenied.ROLE, "Your role does not allow this.", {}
    )


@pytest.mark.parametrize("who", ["inactive", "elsewhere", "nobody", "none"])
def test_someone_who_is_not_an_active_member_is_refused(organization, other_organization, who):
    actor = {
        "inactive": lambda: MembershipFactory(organization=organization, role=Role.ADMINISTRATOR, is_active=False).user,
        "elsewhere": lambda: MembershipFactory(organization=other_organization, role=Role.ADMINISTRATOR).user,
        "nobody": lambda: UserFactory(),
        "none": lambda: None,
    }[who]()

    assert _refusal(organization=organization, actor=actor)[:2] == (
        AccessDenied.NOT_A_MEMBER, "You are not a member of this organization."
    )


def test_a_service_words_each_refusal_its_own_way(organization, other_location, staff_user):
    reason, message, _extra = _refusal(
        organization=organization,
        actor=staff_user,
        location=other_location,
        denied={AccessDenied.LOCATION: "You can charge cards only for your own locations ({location})."},
    )

    assert (reason, message) == (AccessDenied.LOCATION, "You can charge cards only for your own locations (Northside Clinic).")
