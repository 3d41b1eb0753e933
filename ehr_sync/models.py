from django.contrib.postgres.indexes import GinIndex, OpClass
from django.conf import settings
from django.db import models
from django.db.models import Q, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce, Lower

from org_profile.models import Location, Organization

from .enums import (
    AppointmentStatus,
    EhrConnectionKind,
    Hl7MessageStatus,
    ImportRunStatus,
    ImportSource,
    PreferredLanguage,
)
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
    # Where the record last came from: the source's moment and version, and the import run.
    ehr_updated_at = models.DateTimeField(null=True, blank=True)
    ehr_version = models.CharField(max_length=64, blank=True)
    last_import_run = models.ForeignKey(
        "ImportRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
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
    # Where the record last came from: the source's moment and version, and the import run.
    ehr_updated_at = models.DateTimeField(null=True, blank=True)
    ehr_version = models.CharField(max_length=64, blank=True)
    last_import_run = models.ForeignKey(
        "ImportRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # When the copay last came from a source (a Coverage, a copays file), apart from the visit.
    copay_updated_at = models.DateTimeField(null=True, blank=True)

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
    last_import_run = models.ForeignKey(
        "ImportRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.amount_due_cents} {self.currency} as of {self.as_of:%Y-%m-%d}"


class EhrConnection(models.Model):
    """How one organization's EHR data reaches LumaPay: a FHIR R4 server polled on a schedule, an
    HL7 v2 feed over MLLP, or an SFTP folder of CSV/XLSX files. Managed by administrators.

    ``credentials`` are encrypted at rest (``ehr_sync.credentials``): a bearer token, a SMART
    private key, an SFTP password or key. ``options`` holds what is not secret (the SMART client
    id and token URL, the vendor's balance extension, the SFTP folder, the HL7 facility).
    """

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="ehr_connections")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=EhrConnectionKind.choices)
    base_url = models.CharField(max_length=500, blank=True, help_text="FHIR base URL, or sftp://host:port")
    options = models.JSONField(default=dict, blank=True)
    credentials_encrypted = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    # 0: only when someone presses "Sync now".
    sync_every_minutes = models.PositiveIntegerField(default=15)
    next_sync_at = models.DateTimeField(null=True, blank=True)
    # When an administrator last pressed "Sync now": the page shows it waiting until a run starts.
    sync_requested_at = models.DateTimeField(null=True, blank=True)
    # Taken by the sync that runs now (ehr_sync.connectors): one sync of a connection at a time.
    sync_lease_until = models.DateTimeField(null=True, blank=True)
    # Per resource, the source's last-updated moment up to which everything is in (FHIR).
    watermarks = models.JSONField(default=dict, blank=True)
    last_run_started_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="ehr_connection_name_unique_per_org"),
            # An HL7 message says which organization it is for by its sending facility (MSH-4), and its
            # receiving facility (MSH-6) where two clinics' EHRs send the same MSH-4 (ehr_sync.hl7_feed):
            # the pair maps to one connection across all organizations, case aside. The index sees every
            # clinic's rows (row-level security filters reads, not uniqueness), and no page reads another's.
            models.UniqueConstraint(
                Lower(KeyTextTransform("sending_facility", "options")),
                Coalesce(Lower(KeyTextTransform("receiving_facility", "options")), Value("")),
                condition=Q(kind="hl7_mllp"),
                name="ehr_connection_hl7_sending_facility_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ImportRun(models.Model):
    """One pass of records through the importer: a sync, a message, a file. What came in, and what
    became of it: created, updated, unchanged, older than what we have (kept ours), rejected."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="import_runs")
    source = models.CharField(max_length=10, choices=ImportSource.choices)
    connection = models.ForeignKey(
        EhrConnection, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    label = models.CharField(max_length=300, blank=True, help_text="the file's name, the message, the sync")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=12, choices=ImportRunStatus.choices, default=ImportRunStatus.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    received = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    older = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    # The same counts per kind of record: {"patient": {"received": 3, "created": 2, ...}, ...}
    counts_by_kind = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, help_text="why the run as a whole failed")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["organization", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.get_source_display()} {self.started_at:%Y-%m-%d %H:%M}"


class ImportRejection(models.Model):
    """One record the importer refused, and why, in the source's own words. Nothing else of the
    record was written."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    run = models.ForeignKey(ImportRun, on_delete=models.CASCADE, related_name="rejections")
    kind = models.CharField(max_length=12)
    reference = models.CharField(max_length=300)
    field = models.CharField(max_length=100, blank=True)
    value = models.TextField(blank=True)
    reason = models.TextField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.reference}: {self.reason}"


class Hl7Message(models.Model):
    """An HL7 v2 message as it arrived over MLLP, stored before it is acknowledged, so nothing the
    EHR sent is lost: a rejected one is kept, with the reason, for replay from the admin.

    ``organization`` is the one its facility maps to; empty when it maps to none (kept, rejected).
    """

    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="hl7_messages"
    )
    connection = models.ForeignKey(
        EhrConnection, null=True, blank=True, on_delete=models.SET_NULL, related_name="hl7_messages"
    )
    received_at = models.DateTimeField(auto_now_add=True)
    control_id = models.CharField(max_length=200, blank=True)
    message_type = models.CharField(max_length=20, blank=True)
    sending_facility = models.CharField(max_length=200, blank=True)
    raw = models.TextField()
    status = models.CharField(max_length=10, choices=Hl7MessageStatus.choices, default=Hl7MessageStatus.RECEIVED)
    ack_code = models.CharField(max_length=2, blank=True)
    error = models.TextField(blank=True)
    import_run = models.ForeignKey(ImportRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["organization", "-received_at"])]

    def __str__(self) -> str:
        return f"{self.message_type} {self.control_id}"
