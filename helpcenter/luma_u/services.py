"""Luma U's writes: a lesson opened, a quiz answered (scored here, from the option ids the member
chose and nothing else the browser says), a track completed.

Every service takes ``organization`` and ``actor`` and finds the member's membership through
``staff_access``: progress always belongs to the signed-in member in the request's organization.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from django.db import IntegrityError, transaction as db_transaction
from django.utils import timezone

from lumapay.errors import ApplicationError
from org_profile.access import staff_access
from org_profile.models import Membership, Organization

from .content import Lesson, Question
from .models import LessonProgress, TrackCompletion
from .selectors import track_of


class LessonNotFound(ApplicationError):
    """The lesson is not in the member's track (or does not exist)."""


class QuizIncomplete(ApplicationError):
    """An answer is missing, or is not one of the question's options."""


@dataclass(frozen=True)
class WrongAnswer:
    question: Question
    chosen: str  # the chosen option's text
    explanation: str


@dataclass(frozen=True)
class QuizResult:
    score: int
    total: int
    wrong: list[WrongAnswer]
    completion: TrackCompletion | None  # set when this answer completed the track

    @property
    def passed(self) -> bool:
        return self.score == self.total


def _member_and_lesson(*, organization: Organization, actor, lesson_slug: str) -> tuple[Membership, Lesson]:
    membership = staff_access(organization=organization, actor=actor)
    lesson = track_of(membership).lesson(lesson_slug)
    if lesson is None:
        raise LessonNotFound("This lesson is not in your track.")
    return membership, lesson


def _progress_locked(*, membership: Membership, lesson: Lesson) -> LessonProgress:
    track = track_of(membership)
    LessonProgress.objects.get_or_create(
        organization_id=membership.organization_id,
        membership=membership,
        lesson=lesson.slug,
        defaults={"track": track.slug, "question_count": len(lesson.questions)},
    )
    return LessonProgress.objects.select_for_update(of=("self",)).get(
        organization_id=membership.organization_id, membership=membership, lesson=lesson.slug
    )


def lesson_read_record(*, organization: Organization, actor, lesson_slug: str) -> LessonProgress:
    """The member opened a lesson of their track: the first time is kept as when they read it."""
    membership, lesson = _member_and_lesson(organization=organization, actor=actor, lesson_slug=lesson_slug)
    with db_transaction.atomic():
        progress = _progress_locked(membership=membership, lesson=lesson)
        if progress.read_at is None:
            progress.read_at = timezone.now()
            progress.save(update_fields=["read_at", "updated_at"])
    return progress


def quiz_submit(
    *, organization: Organization, actor, lesson_slug: str, answers: Mapping[str, str]
) -> QuizResult:
    """Score the member's answers to a lesson's quiz: ``answers`` maps each question's id to the
    chosen option's id. Passing means every answer right; retries are allowed, and a quiz once
    passed stays passed. Passing the track's last quiz completes the track.

    Raises ``QuizIncomplete`` (nothing recorded) when a question has no answer, or an answer that
    is not one of its options.
    """
    membership, lesson = _member_and_lesson(organization=organization, actor=actor, lesson_slug=lesson_slug)
    for question in lesson.questions:
        chosen = answers.get(question.id)
        if not chosen or chosen not in dict(question.options):
            raise QuizIncomplete("Answer every question, then check your answers.")
    wrong = [
        WrongAnswer(question=question, chosen=question.option_text(answers[question.id]), explanation=question.explanation)
        for question in lesson.questions
        if answers[question.id] != question.correct
    ]
    score = len(lesson.questions) - len(wrong)
    now = timezone.now()
    with db_transaction.atomic():
        progress = _progress_locked(membership=membership, lesson=lesson)
        progress.attempts += 1
        progress.last_score = score
        progress.best_score = max(score, progress.best_score or 0)
        progress.question_count = len(lesson.questions)
        progress.read_at = progress.read_at or now
        if not wrong and progress.passed_at is None:
            progress.passed_at = now
        progress.save()
        completion = track_completion_record(membership=membership, when=now) if not wrong else None
    return QuizResult(score=score, total=len(lesson.questions), wrong=wrong, completion=completion)


def _verification_code() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
    raw = "".join(secrets.choice(alphabet) for _ in range(12))
    return f"LU-{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def track_completion_record(*, membership: Membership, when) -> TrackCompletion | None:
    """The member's completion of their track, recorded once every lesson's quiz is passed (the
    first time: later retakes keep the date and the code). None while a quiz is not passed."""
    track = track_of(membership)
    passed = set(
        LessonProgress.objects.filter(
            organization_id=membership.organization_id, membership=membership, passed_at__isnull=False
        ).values_list("lesson", flat=True)
    )
    if any(lesson.slug not in passed for lesson in track.lessons):
        return None
    existing = TrackCompletion.objects.filter(
        organization_id=membership.organization_id, membership=membership, track=track.slug
    ).first()
    if existing is not None:
        return existing
    for _try in range(5):
        try:
            with db_transaction.atomic():
                return TrackCompletion.objects.create(
                    organization_id=membership.organization_id,
                    membership=membership,
                    track=track.slug,
                    completed_at=when,
                    verification_code=_verification_code(),
                )
        except IntegrityError:
            existing = TrackCompletion.objects.filter(
                organization_id=membership.organization_id, membership=membership, track=track.slug
            ).first()
            if existing is not None:
                return existing
    raise RuntimeError("Could not draw a unique verification code.")
