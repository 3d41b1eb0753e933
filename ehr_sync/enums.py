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


# -- what an EHR connection holds (EhrConnection.options and its encrypted credentials) --------------
# The connection pages write these; the FHIR sync, the HL7 listener and the SFTP drop folder read
# them. One spelling, imported by all of them.


class FhirAuth(models.TextChoices):
    BEARER = "bearer", _("Bearer token")
    SMART = "smart", _("SMART backend services (signed JWT)")


class SmartJwtAlgorithm(models.TextChoices):
    # The two SMART Backend Services requires servers to support.
    RS384 = "RS384", _("RS384 (RSA)")
    ES384 = "ES384", _("ES384 (elliptic curve)")


class BalanceAdapter(models.TextChoices):
    """Where a FHIR server keeps what the patient owes: FHIR R4 has no standard resource for it."""

    NONE = "none", _("None: balances come from an upload or another source")
    ORACLE_HEALTH = "oracle_health", _("Oracle Health (Cerner)")
    MODMED = "modmed", _("ModMed")
    HL7_R5_BALANCE = "hl7_r5_balance", _("HL7's cross-version Account.balance (R5 in R4)")
    CUSTOM = "custom", _("A custom extension on Patient or Account")


class PostingAdapter(models.TextChoices):
    """How a FHIR connection posts a payment back to the EHR (``ehr_sync.posting``). Each is a
    conditional create keyed by LumaPay's posting id (``If-None-Exist: identifier=…``)."""

    # R4's resource for a payment received and how it is allocated; the default.
    PAYMENT_RECONCILIATION = "payment_reconciliation", _("PaymentReconciliation (FHIR R4 default)")
    # A credit line on the patient's account, for EHRs that take postings as charge items.
    CHARGE_ITEM = "charge_item", _("ChargeItem: a credit on the patient's account")


class ConnectionOption:
    """Keys of ``EhrConnection.options`` (nothing secret)."""

    # FHIR
    AUTH = "auth"  # a FhirAuth value
    CLIENT_ID = "client_id"  # SMART
    TOKEN_URL = "token_url"  # SMART
    JWT_ALGORITHM = "jwt_algorithm"  # SMART, a SmartJwtAlgorithm value
    KEY_ID = "key_id"  # SMART: the kid of the public key registered with the EHR
    SCOPE = "scope"  # SMART: the scopes asked for (a default when empty)
    SMS_CONSENT_EXTENSION_URL = "sms_consent_extension_url"  # where the EHR says the patient agreed to texts
    BALANCE_ADAPTER = "balance_adapter"  # a BalanceAdapter value
    BALANCE_EXTENSION_URL = "balance_extension_url"  # BalanceAdapter.CUSTOM
    APPOINTMENT_WINDOW_DAYS = "appointment_window_days"  # an int: how many days ahead to read
    APPOINTMENT_WINDOW_DAYS_BACK = "appointment_window_days_back"  # an int, default 1: days back
    # HL7 v2 over MLLP: the MSH-4 sending facility that maps a message to this organization
    SENDING_FACILITY = "sending_facility"
    # Where two clinics' EHRs send the same MSH-4: the MSH-6 receiving facility that tells them apart.
    RECEIVING_FACILITY = "receiving_facility"
    # Other facilities whose patient ids (PID-3's assigning facility) this clinic shares (a health system).
    PATIENT_FACILITIES = "patient_facilities"
    # Posting payments, refunds and reversals back to the EHR (ehr_sync.posting), FHIR and HL7 v2:
    POSTING_ENABLED = "posting_enabled"  # a bool: off unless an administrator turns it on
    POSTING_SINCE = "posting_since"  # ISO moment posting was turned on: nothing older is posted
    POSTING_ADAPTER = "posting_adapter"  # FHIR: a PostingAdapter value
    # FHIR: the identifier system of LumaPay's posting ids on the EHR (a default when empty)
    POSTING_IDENTIFIER_SYSTEM = "posting_identifier_system"
    OUTBOUND_ADDRESS = "outbound_address"  # HL7: "host:port" of the EHR's MLLP listener for DFT^P03
    # SFTP (host and port are in base_url, sftp://host:port)
    FOLDER = "folder"
    USERNAME = "username"
    HOST_KEY = "host_key"  # the server's key: a known_hosts line or a SHA256: fingerprint


class ConnectionSecret:
    """Keys of the connection's credentials (encrypted at rest, ``ehr_sync.credentials``)."""

    BEARER_TOKEN = "bearer_token"  # FHIR, FhirAuth.BEARER
    PRIVATE_KEY_PEM = "private_key_pem"  # FHIR, FhirAuth.SMART
    PASSWORD = "password"  # SFTP
    PRIVATE_KEY = "private_key"  # SFTP


DEFAULT_APPOINTMENT_WINDOW_DAYS = 14
