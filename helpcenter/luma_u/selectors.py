"""Luma U's reads: the track a member follows, a quiz's questions in this attempt's order, a
member's progress, and their team's (for managers and administrators)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt

from org_profile.models import Membership, Organization

from .content import Lesson, Question, Track, track_for_role
from .models import LessonProgress, TrackCompletion


@lru_cache(maxsize=64)
def lesson_html(body: str) -> str:
    """A lesson's Markdown as HTML. Raw HTML in the Markdown is escaped, never passed through."""
    return MarkdownIt("commonmark", {"html": False}).render(body)


def track_of(membership: Membership) -> Track:
    return track_for_role(membership.role)


def quiz_in_order(*, membership: Membership, lesson: Lesson, attempt: int) -> list[tuple[Question, list[tuple[str, str]]]]:
    """The lesson's questions, and each one's options, shuffled for this member and this attempt.

    The order is decided on the server from (membership, lesson, attempt), so the same page shows
    the same order when reloaded, and a retry after a wrong answer shows another; the client only
    ever sends back the option ids it chose.
    """
    seed = hashlib.sha256(f"luma-u:{membership.pk}:{lesson.slug}:{attempt}".encode()).hexdigest()
    shuffler = random.Random(seed)
    questions = list(lesson.questions)
    shuffler.shuffle(questions)
    ordered = []
    for question in questions:
        options = list(question.options)
        shuffler.shuffle(options)
        ordered.append((question, options))
    return ordered


@dataclass(frozen=True)
class LessonStatus:
    lesson: Lesson
    number: int
    read: bool
    passed: bool
    attempts: int
    last_score: int | None
    best_score: int | None


@dataclass(frozen=True)
class TrackProgress:
    track: Track
    lessons: list[LessonStatus]
    completion: TrackCompletion | None

    @property
    def passed_count(self) -> int:
        return sum(1 for status in self.lessons if status.passed)

    @property
    def total(self) -> int:
        return len(self.lessons)

    @property
    def complete(self) -> bool:
        return self.passed_count == self.total

    @property
    def percent(self) -> int:
        return round(100 * self.passed_count / self.total) if self.total else 0


def lesson_progress_get(*, membership: Membership, lesson: Lesson) -> LessonProgress | None:
    return LessonProgress.objects.filter(
        organization_id=membership.organization_id, membership=membership, lesson=lesson.slug
    ).first()


def track_progress(*, membership: Membership) -> TrackProgress:
    """The member's progress in the track their role gives them now."""
    track = track_of(membership)
    rows = {
        row.lesson: row
        for row in LessonProgress.objects.filter(organization_id=membership.organization_id, membership=membership)
    }
    statuses = []
    for number, lesson in enumerate(track.lessons, start=1):
        row = rows.get(lesson.slug)
        statuses.append(
            LessonStatus(
                lesson=lesson,
                number=number,
                read=bool(row and row.read_at),
                passed=bool(row and row.passed_at),
                attempts=row.attempts if row else 0,
                last_score=row.last_score if row else None,
                best_score=row.best_score if row else None,
            )
        )
    completion = TrackCompletion.objects.filter(
        organization_id=membership.organization_id, membership=membership, track=track.slug
    ).first()
    return TrackProgress(track=track, lessons=statuses, completion=completion)


@dataclass(frozen=True)
class TeamMember:
    membership: Membership
    name: str
    email: str
    role: str
    track: Track
    passed: int
    total: int
    completed_at: object  # datetime | None


def team_progress(*, organization: Organization) -> list[TeamMember]:
    """Every active member of ``organization`` with their track and how far they are.

    Only managers' and administrators' pages call this (views check the role).
    """
    memberships = list(
        Membership.objects.filter(organization=organization, is_active=True)
        .select_related("user")
        .order_by("user__last_name", "user__first_name", "user__email", "pk")
    )
    passed: dict[int, set[str]] = {}
    for membership_id, lesson in LessonProgress.objects.filter(
        organization=organization, passed_at__isnull=False
    ).values_list("membership_id", "lesson"):
        passed.setdefault(membership_id, set()).add(lesson)
    completions = {
        (membership_id, track): completed_at
        for membership_id, track, completed_at in TrackCompletion.objects.filter(organization=organization).values_list(
            "membership_id", "track", "completed_at"
        )
    }
    team = []
    for membership in memberships:
        track = track_of(membership)
        done = passed.get(membership.pk, set())
        user = membership.user
        team.append(
            TeamMember(
                membership=membership,
                name=user.get_full_name() or user.email,
                email=user.email,
                role=membership.get_role_display(),
                track=track,
                passed=sum(1 for lesson in track.lessons if lesson.slug in done),
                total=len(track.lessons),
                completed_at=completions.get((membership.pk, track.slug)),
            )
        )
    return team


def certificate_by_code(code: str):
    """The completed track a certificate's verification code names (any organization: the code
    alone identifies it, as printed), or None. ``code`` is matched without case or spaces, and the
    dashes are optional."""
    from lumapay.tenant_rls import all_organizations

    from .models import TrackCompletion

    raw = "".join(ch for ch in (code or "").upper() if ch.isalnum())
    if raw.startswith("LU"):
        raw = raw[2:]
    if len(raw) != 12:
        return None
    normalized = f"LU-{raw[:4]}-{raw[4:8]}-{raw[8:]}"
    # Reviewed cross-clinic step: a certificate is checked by someone outside the clinic (a
    # licensing body, an employer), with its code and nothing else.
    with all_organizations():
        return (
            TrackCompletion.objects.select_related("organization", "membership__user")
            .filter(verification_code=normalized)
            .first()
        )
