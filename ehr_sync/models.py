from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import Q

from org_profile.models import Location, Organization

from .enums import AppointmentStatus, PreferredLanguage
from .search import patient_search_text


class Patient(models.Model):
    """A patient of one organization, as the EHR (or staff, or an upload) knows them.

    ``external_ehr_id`` is unique within the organization when present.
    """

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="patients")
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    date_of_birth = models.DateField()
    email = models.EmailField(blank=True)
    mobile_phone = models.CharField(max_length=20, blank=True, help_text="E.164, e.g. +15555550123")
    preferred_language = models.CharField(
        max_length=2, choices=PreferredLanguage.choices, default=PreferredLanguage.ENGLISH
    )
    sms_consent = models.BooleanField(default=False)
    sms_consent_at = models.DateTimeField(null=True, blank=True)
    external_ehr_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "external_ehr_id"],
                condition=~Q(external_ehr_id=""),
                name="patient_external_id_unique_per_org",
            )
        ]
        indexes = [
            models.Index(fields=["organization", "last_name", "first_name", "id"]),
            # Name and EHR id searches, without accents or case (ehr_sync/search.py).
            GinIndex(OpClass(patient_search_text(), name="gin_trgm_ops"), name="patient_search_unaccent_trgm"),
            # E-mail and phone searches (ILIKE / LIKE '%…%').
            GinIndex(fields=["email"], opclasses=["gin_trgm_ops"], name="patient_email_trgm"),
            GinIndex(fields=["mobile_phone"], opclasses=["gin_trgm_ops"], name="patient_mobile_phone_trgm"),
        ]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def can_receive_sms(self) -> bool:
        return bool(self.mobile_phone and self.sms_consent)


class Appointment(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="appointments")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="appointments")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="appointments")
    provider_name = models.CharField(max_length=200)
    starts_at = models.DateTimeField()
    status = models.CharField(max_length=20, choices=AppointmentStatus.choices, default=AppointmentStatus.BOOKED)
    copay_cents = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, default="usd")
    external_ehr_id = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-starts_at"]
        indexes = [models.Index(fields=["organization", "starts_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(copay_cents__gte=0), name="appointment_copay_not_negative"),
            models.UniqueConstraint(
                fields=["organization", "external_ehr_id"],
                condition=~Q(external_ehr_id=""),
                name="appointment_external_id_unique_per_org",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.starts_at:%Y-%m-%d %H:%M} · {self.provider_name}"


class Balance(models.Model):
    """What the patient owes the organization, as of a moment. One per patient."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="balances")
    patient = models.OneToOneField(Patient, on_delete=models.CASCADE, related_name="balance")
    amount_due_cents = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, default="usd")
    as_of = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.amount_due_cents} {self.currency} as of {self.as_of:%Y-%m-%d}"
