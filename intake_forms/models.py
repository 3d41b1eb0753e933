"""Intake forms: a clinic's questionnaire, published in versions, answered by patients through a
signed link, possibly with a payment question that pays through the gateway's hosted checkout.

A ``FormVersion`` is immutable once published: the builder edits a draft, which publishing turns
into the version patients get from then on. A ``FormSubmission`` keeps the version it answered,
so later edits never change what a patient was asked. Answers are kept per question ``key`` (a
random id that stays the same across versions, so a condition "show B when A is yes" survives a
new version). Every table carries ``organization`` and row-level security (the migration).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from org_profile.models import Organization


class QuestionKind(models.TextChoices):
    SHORT_TEXT = "short_text", _("Short text")
    LONG_TEXT = "long_text", _("Long text")
    SINGLE_CHOICE = "single_choice", _("Single choice")
    CHECKBOXES = "checkboxes", _("Checkboxes")
    DATE = "date", _("Date")
    PHONE = "phone", _("Phone")
    EMAIL = "email", _("E-mail")
    CONSENT = "consent", _("Consent with signature")
    FILE = "file", _("File upload")
    PAYMENT = "payment", _("Payment")


class PaymentMode(models.TextChoices):
    FIXED = "fixed", _("A fixed amount")
    COPAY = "copay", _("The appointment's copay")
    BALANCE = "balance", _("The patient's balance")
    CHOSEN = "chosen", _("An amount the patient chooses")


class SubmissionStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", _("In progress")
    COMPLETE = "complete", _("Complete")


def _question_key() -> str:
    return uuid.uuid4().hex[:12]


class IntakeForm(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    title = models.CharField(max_length=120)
    with_copay_request = models.BooleanField(
        default=False, help_text="sent with the automatic copay request before a visit (its pay page links to it)"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "pk"]

    def __str__(self) -> str:
        return self.title


class FormVersion(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    form = models.ForeignKey(IntakeForm, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    published_at = models.DateTimeField(null=True, blank=True, help_text="empty while a draft")
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["form", "number"], name="form_version_number_unique")]
        ordering = ["form", "number"]

    @property
    def is_draft(self) -> bool:
        return self.published_at is None


class FormSection(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(FormVersion, on_delete=models.CASCADE, related_name="sections")
    title = models.CharField(max_length=120)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["order", "pk"]


class FormQuestion(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    section = models.ForeignKey(FormSection, on_delete=models.CASCADE, related_name="questions")
    key = models.CharField(max_length=12, default=_question_key, help_text="the same in every version")
    kind = models.CharField(max_length=20, choices=QuestionKind.choices)
    label = models.CharField(max_length=300)
    help_text = models.CharField(max_length=500, blank=True)
    required = models.BooleanField(default=False)
    order = models.PositiveIntegerField(default=0)
    choices = models.JSONField(default=list, blank=True, help_text="the options of a choice question")
    # Shown only when the answer to the question with this key equals ``condition_value``.
    condition_key = models.CharField(max_length=12, blank=True)
    condition_value = models.CharField(max_length=200, blank=True)
    # The payment question.
    payment_mode = models.CharField(max_length=10, choices=PaymentMode.choices, blank=True)
    amount_cents = models.BigIntegerField(null=True, blank=True, help_text="the fixed amount")
    min_cents = models.BigIntegerField(null=True, blank=True)
    max_cents = models.BigIntegerField(null=True, blank=True)
    declining_allowed = models.BooleanField(default=False)

    class Meta:
        ordering = ["order", "pk"]


class FormSubmission(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    version = models.ForeignKey(FormVersion, on_delete=models.PROTECT, related_name="submissions")
    patient = models.ForeignKey("ehr_sync.Patient", on_delete=models.PROTECT, related_name="+")
    appointment = models.ForeignKey("ehr_sync.Appointment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    sent_with = models.ForeignKey(
        "transactions.PaymentRequest", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="the copay request whose pay page links to this form",
    )
    payment_request = models.ForeignKey(
        "transactions.PaymentRequest", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="what the payment question pays (the copay request itself, or one made for the form)",
    )
    payment_transaction = models.ForeignKey(
        "transactions.Transaction", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    payment_declined = models.BooleanField(default=False)
    link_delivery = models.OneToOneField(
        "transactions.PaymentRequestDelivery", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="the e-mail or SMS that carries the link of a form sent by itself",
    )
    status = models.CharField(max_length=20, choices=SubmissionStatus.choices, default=SubmissionStatus.IN_PROGRESS)
    answers = models.JSONField(default=dict, blank=True, help_text="question key → answer")
    failed_verification_count = models.PositiveIntegerField(default=0)
    verification_locked_until = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]


class FormFile(models.Model):
    """A file a patient uploaded for a file question: checked by content and size, served only
    to staff of the organization (a view that records the PHI access)."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    submission = models.ForeignKey(FormSubmission, on_delete=models.CASCADE, related_name="files")
    question_key = models.CharField(max_length=12)
    file_name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=60)
    size = models.PositiveIntegerField()
    data = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
