import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .enums import AuditAction


class ActorType(models.TextChoices):
    STAFF = "staff", _("Staff")
    PATIENT = "patient", _("Patient")
    GATEWAY = "gateway", _("Payment gateway")
    SYSTEM = "system", _("System")


class AuditEvent(models.Model):
    """Append-only record of who did what to which tenant object, and of every PHI access.

    Written by ``lumapay.audit.audit_event_record`` inside the same database transaction as the
    change it describes. Never updated or deleted.
    """

    organization = models.ForeignKey("org_profile.Organization", on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=80, db_index=True, choices=AuditAction.choices)
    actor_type = models.CharField(max_length=20, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    patient = models.ForeignKey("ehr_sync.Patient", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    payment_request = models.ForeignKey(
        "transactions.PaymentRequest", null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    transaction = models.ForeignKey(
        "transactions.Transaction", null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    changes = models.JSONField(default=dict, blank=True, help_text="old and new values, and other details")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action}"


class DevOutboxMessage(models.Model):
    """An e-mail or SMS the app "sent" in development, so a person trying LumaPay can open it.

    Written only by the dev outbox backends; never used in production.
    """

    channel = models.CharField(max_length=10, choices=[("email", "E-mail"), ("sms", "SMS")])
    to = models.CharField(max_length=300)
    subject = models.CharField(max_length=300, blank=True)
    body = models.TextField()
    html_body = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]


def installation_namespace_new() -> str:
    return secrets.token_hex(8)


def installation_sandbox_webhook_secret_new() -> str:
    return secrets.token_urlsafe(32)


class Installation(models.Model):
    """This installation of LumaPay: one row (id 1), made with the database.

    ``namespace`` is random: it says nothing about the installation and is derived from no secret,
    so rotating ``SECRET_KEY`` never changes it. It lives with the rows whose ids go out beside it
    (Stripe's Idempotency-Keys), so two installations sharing a Stripe platform account never send
    the same key, and a retry after a restart still sends the one it sent before.

    ``sandbox_webhook_secret`` is random too, and secret: the built-in Sandbox signs its events
    with it and the Sandbox's webhook checks them with it (``SANDBOX_WEBHOOK_SECRET`` overrides
    it). Made from nothing anyone else knows, so nobody can forge a Sandbox ``charge.succeeded``.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    namespace = models.CharField(max_length=40, unique=True, default=installation_namespace_new)
    sandbox_webhook_secret = models.CharField(max_length=100, default=installation_sandbox_webhook_secret_new)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="installation_one_row")]

    def __str__(self) -> str:
        return f"LumaPay installation {self.namespace}"


class PhiAccess(models.Model):
    """One look at patients' details: a staff page, a download, or an operator's page in the admin.

    Who, when, from where (address and browser) and what page; which patients it showed is in
    ``PhiAccessPatient`` (one row per patient). Written by ``lumapay.phi_access.phi_access_record``
    in the request that showed the data. Append-only: never updated or deleted.
    """

    organization = models.ForeignKey("org_profile.Organization", on_delete=models.PROTECT, related_name="+")
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # True when an operator looked through the operators' admin (/admin/), not the clinic's pages.
    is_operator = models.BooleanField(default=False)
    # The page's URL name ("patients:profile", "admin:ehr_sync_patient_change"): labelled by
    # lumapay.phi_access.page_label. The path alone, never its query string (a search is PHI).
    page = models.CharField(max_length=100)
    path = models.CharField(max_length=300)
    method = models.CharField(max_length=10)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    patient_count = models.PositiveIntegerField(default=0)
    accessed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["organization", "-accessed_at"], name="phi_access_org_time")]

    def __str__(self) -> str:
        return f"{self.accessed_at:%Y-%m-%d %H:%M:%S} {self.page}"


class PhiAccessPatient(models.Model):
    """One patient one ``PhiAccess`` showed. Append-only.

    One row per patient rather than an array on the access: "who looked at this patient" is then
    a range of the primary key's index (patient, access), newest access first, for the patient
    that has been on ten thousand Hub pages as cheaply as for one seen once.
    """

    pk = models.CompositePrimaryKey("patient_id", "access_id")
    patient = models.ForeignKey("ehr_sync.Patient", on_delete=models.PROTECT, related_name="+", db_index=False)
    access = models.ForeignKey(PhiAccess, on_delete=models.PROTECT, related_name="patients", db_index=False)
    organization = models.ForeignKey(
        "org_profile.Organization", on_delete=models.PROTECT, related_name="+", db_index=False
    )

    class Meta:
        indexes = [models.Index(fields=["access"], name="phi_access_patient_access")]


class SmsOptOut(models.Model):
    """Whether a mobile number told LumaPay to stop texting it (STOP), and since when; one row per
    number, ever (START sets it back, the row stays as the record of both).

    Across all clinics, not per organization: LumaPay sends every clinic's texts from one sender
    (``TWILIO_FROM_NUMBER`` or ``TWILIO_MESSAGING_SERVICE_SID``), and carriers and Twilio honour a
    STOP per sender and recipient: after it Twilio refuses every message from that sender to that
    number (error 21610), whichever clinic wrote it. A per-clinic opt-out would promise texts that
    cannot arrive, and would keep texting someone who asked us to stop. So no ``organization``
    column and no row-level security policy: the row names a number, not a patient.

    ``lumapay.sms.sms_send`` refuses an opted-out number; the patient outbox
    (``transactions.services.patient_messages``) checks it first so the delivery is recorded as not
    sent, with the reason, and never retried.
    """

    phone_number = models.CharField(max_length=20, unique=True, help_text="E.164")
    is_opted_out = models.BooleanField(default=True)
    # The last keyword received ("STOP", "START", …) and the number or messaging service it reached.
    keyword = models.CharField(max_length=20)
    received_on = models.CharField(max_length=40, blank=True)
    opted_out_at = models.DateTimeField(null=True, blank=True)
    opted_in_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "SMS opt-out"

    def __str__(self) -> str:
        return f"SMS opt-out #{self.pk} ({'opted out' if self.is_opted_out else 'opted back in'})"


def sms_opted_out(phone_number: str) -> "SmsOptOut | None":
    """The opt-out in force for ``phone_number`` (E.164), or None when texts may go to it."""
    if not phone_number:
        return None
    return SmsOptOut.objects.filter(phone_number=phone_number, is_opted_out=True).first()
