from django.db import models
from django.utils.translation import gettext_lazy as _


class PreferredLanguage(models.TextChoices):
    ENGLISH = "en", _("English")
    SPANISH = "es", _("Spanish")


class AppointmentStatus(models.TextChoices):
    BOOKED = "booked", _("Booked")
    ARRIVED = "arrived", _("Checked in")
    FULFILLED = "fulfilled", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")
    NO_SHOW = "noshow", _("No-show")


class ImportSource(models.TextChoices):
    FHIR = "fhir", _("FHIR sync")
    HL7 = "hl7", _("HL7 v2 message")
    SFTP = "sftp", _("SFTP drop folder")
    UPLOAD = "upload", _("Upload Center")


class ImportRunStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    # Finished, with records rejected: the accepted ones are in, each rejection is listed.
    SUCCEEDED_WITH_REJECTIONS = "rejections", _("Finished with rejected records")
    FAILED = "failed", _("Failed")


class EhrConnectionKind(models.TextChoices):
    FHIR = "fhir", _("FHIR R4 server")
    HL7_MLLP = "hl7_mllp", _("HL7 v2 over MLLP")
    SFTP = "sftp", _("SFTP drop folder")


class Hl7MessageStatus(models.TextChoices):
    RECEIVED = "received", _("Received")
    IMPORTED = "imported", _("Imported")
    REJECTED = "rejected", _("Rejected")
