"""The demo clinic's Luma U progress for `make dev`: the staff user has passed the first two
lessons of the staff track, the manager has completed the managers' track (their certificate is
ready) and the administrator has not started, so each role sees its own track and the team page
has something to show.

Called by ``manage.py seed_demo_clinic`` after the other apps' demos. Idempotent: a clinic that
already has Luma U progress is left as it is.
"""

from __future__ import annotations

from org_profile.enums import Role
from org_profile.models import Organization

from .content import MANAGERS_TRACK, STAFF_TRACK
from .models import LessonProgress, TrackCompletion
from .services import lesson_read_record, quiz_submit


def _pass(*, organization: Organization, user, lessons) -> None:
    for lesson in lessons:
        lesson_read_record(organization=organization, actor=user, lesson_slug=lesson.slug)
        quiz_submit(
            organization=organization,
            actor=user,
            lesson_slug=lesson.slug,
            answers={question.id: question.correct for question in lesson.questions},
        )


def demo_luma_u_build(*, organization: Organization, users: dict) -> None:
    if LessonProgress.objects.filter(organization=organization).exists():
        return
    if Role.STAFF in users:
        _pass(organization=organization, user=users[Role.STAFF], lessons=STAFF_TRACK.lessons[:2])
        lesson_read_record(organization=organization, actor=users[Role.STAFF], lesson_slug=STAFF_TRACK.lessons[2].slug)
    if Role.MANAGER in users:
        _pass(organization=organization, user=users[Role.MANAGER], lessons=MANAGERS_TRACK.lessons)


def demo_luma_u_summary(organization: Organization) -> list[str]:
    passed = LessonProgress.objects.filter(organization=organization, passed_at__isnull=False).count()
    if not passed:
        return []
    completed = TrackCompletion.objects.filter(organization=organization).count()
    return [f"  Luma U: {passed} lessons passed, {completed} track completed (Luma U, beside Security in the header)"]
