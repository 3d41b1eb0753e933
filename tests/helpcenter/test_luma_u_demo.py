"""The demo clinic's Luma U progress (helpcenter/luma_u/demo.py): each role has something to see
in `make dev`, and seeding again changes nothing."""

import pytest

from helpcenter.luma_u.content import MANAGERS_TRACK
from helpcenter.luma_u.demo import demo_luma_u_build, demo_luma_u_summary
from helpcenter.luma_u.models import LessonProgress, TrackCompletion
from org_profile.enums import Role
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_the_demo_gives_the_staff_user_two_lessons_and_the_manager_a_completed_track(organization):
    users = {role: MembershipFactory(organization=organization, role=role).user for role in Role.values}
    demo_luma_u_build(organization=organization, users=users)
    rows = list(LessonProgress.objects.values_list("membership__role", "passed_at", "attempts"))

    demo_luma_u_build(organization=organization, users=users)

    assert list(LessonProgress.objects.values_list("membership__role", "passed_at", "attempts")) == rows
    assert LessonProgress.objects.filter(membership__role=Role.STAFF, passed_at__isnull=False).count() == 2
    assert LessonProgress.objects.filter(membership__role=Role.STAFF, passed_at__isnull=True).count() == 1
    assert not LessonProgress.objects.filter(membership__role=Role.ADMINISTRATOR).exists()
    completion = TrackCompletion.objects.get()
    assert (completion.membership.role, completion.track) == (Role.MANAGER, MANAGERS_TRACK.slug)
    assert demo_luma_u_summary(organization) == [
        f"  Luma U: {2 + len(MANAGERS_TRACK.lessons)} lessons passed, 1 track completed (Luma U, beside Security in the header)"
    ]
