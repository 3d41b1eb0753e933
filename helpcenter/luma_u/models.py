"""Luma U's progress, per organization membership: one row per lesson a member opened (read, quiz
attempts, scores, passed), and one per track they completed (the certificate's date and code).

Rows belong to the membership, not to the track: a member whose role changes moves to the other
track and keeps what they did in both (coming back finds it again).
"""

from __future__ import annotations

from django.db import models

from org_profile.models import Membership, Organization


class LessonProgress(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="luma_u_lessons")
    track = models.CharField(max_length=40, help_text="the track the lesson belongs to (content.TRACKS)")
    lesson = models.CharField(max_length=80, help_text="the lesson's slug (content.py)")
    read_at = models.DateTimeField(null=True, blank=True, help_text="when the member first opened the lesson")
    attempts = models.PositiveIntegerField(default=0, help_text="quiz answers sent")
    last_score = models.PositiveSmallIntegerField(null=True, blank=True)
    best_score = models.PositiveSmallIntegerField(null=True, blank=True)
    question_count = models.PositiveSmallIntegerField(default=0)
    passed_at = models.DateTimeField(null=True, blank=True, help_text="when every answer was first right")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "helpcenter"
        verbose_name = "Luma U lesson progress"
        verbose_name_plural = "Luma U lesson progress"
        constraints = [
            models.UniqueConstraint(fields=["membership", "lesson"], name="luma_u_progress_one_per_lesson"),
        ]

    def __str__(self) -> str:
        return f"{self.lesson} · membership {self.membership_id}"


class TrackCompletion(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="luma_u_completions")
    track = models.CharField(max_length=40)
    completed_at = models.DateTimeField(help_text="when the last of the track's quizzes was passed")
    verification_code = models.CharField(max_length=20, unique=True, help_text="printed on the certificate")

    class Meta:
        app_label = "helpcenter"
        verbose_name = "Luma U completed track"
        constraints = [
            models.UniqueConstraint(fields=["membership", "track"], name="luma_u_completion_one_per_track"),
        ]

    def __str__(self) -> str:
        return f"{self.track} · membership {self.membership_id}"
