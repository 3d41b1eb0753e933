from django.db import models
from django.utils.translation import gettext_lazy as _


class SandboxSessionStatus(models.TextChoices):
    OPEN = "open", _("Open")
    AWAITING_AUTHENTICATION = "awaiting_authentication", _("Awaiting authentication")
    COMPLETE = "complete", _("Complete")
    EXPIRED = "expired", _("Expired")


class SandboxIntentStatus(models.TextChoices):
    """A card-on-file payment at the Sandbox (Stripe's PaymentIntent, simplified)."""

    REQUIRES_CAPTURE = "requires_capture", _("Held, awaiting capture")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELED = "canceled", _("Canceled")


class SandboxCancellation(models.TextChoices):
    """Why a hold was let go: the merchant asked, or it lapsed (holds last ``HOLD_LIFETIME``)."""

    REQUESTED = "requested", _("Released by the merchant")
    EXPIRED = "expired", _("Lapsed")


class SandboxBalanceType(models.TextChoices):
    """What moved money in a merchant's balance at the Sandbox (Stripe's BalanceTransaction.type)."""

    CHARGE = "charge", _("Charge")
    REFUND = "refund", _("Refund")
    PAYOUT_FAILURE = "payout_failure", _("Failed payout returned")


class SandboxPayoutStatus(models.TextChoices):
    """A Sandbox payout's status (Stripe's Payout.status)."""

    PENDING = "pending", _("Pending")
    IN_TRANSIT = "in_transit", _("In transit")
    PAID = "paid", _("Paid")
    FAILED = "failed", _("Failed")
