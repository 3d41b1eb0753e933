from django.db import models
from django.utils.translation import gettext_lazy as _


class PaymentRequestKind(models.TextChoices):
    COPAY = "copay", _("Copay")
    BALANCE = "balance", _("Balance")
    OTHER = "other", _("Other")


class PaymentRequestStatus(models.TextChoices):
    OPEN = "open", _("Awaiting payment")
    PAID = "paid", _("Paid")
    CANCELLED = "cancelled", _("Cancelled")
    EXPIRED = "expired", _("Expired")


class DeliveryChannel(models.TextChoices):
    EMAIL = "email", _("E-mail")
    SMS = "sms", _("SMS")


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")


class TransactionStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
    REFUNDED = "refunded", _("Refunded")


class TransactionEventKind(models.TextChoices):
    CHARGE_REQUESTED = "charge_requested", _("Charge requested")
    CHARGE_SUCCEEDED = "charge_succeeded", _("Charge succeeded")
    CHARGE_FAILED = "charge_failed", _("Charge failed")
    REFUND_REQUESTED = "refund_requested", _("Refund requested")
    REFUND_SUCCEEDED = "refund_succeeded", _("Refund succeeded")
    REFUND_FAILED = "refund_failed", _("Refund failed")


class RefundStatus(models.TextChoices):
    REQUESTED = "requested", _("Requested")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class GatewayEventStatus(models.TextChoices):
    RECEIVED = "received", _("Received")
    PROCESSED = "processed", _("Processed")
    IGNORED = "ignored", _("Ignored")
    FAILED = "failed", _("Failed")


class SandboxSessionStatus(models.TextChoices):
    OPEN = "open", _("Open")
    AWAITING_AUTHENTICATION = "awaiting_authentication", _("Awaiting authentication")
    COMPLETE = "complete", _("Complete")
    EXPIRED = "expired", _("Expired")


class ExportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Preparing")
    READY = "ready", _("Ready")
    FAILED = "failed", _("Failed")
    EXPIRED = "expired", _("Expired")
