from django.db import models
from django.utils.translation import gettext_lazy as _


class PayoutStatus(models.TextChoices):
    """A payout's status as the gateway reports it (Stripe's Payout.status)."""

    PENDING = "pending", _("Pending")
    IN_TRANSIT = "in_transit", _("In transit")
    PAID = "paid", _("Paid")
    FAILED = "failed", _("Failed")
    CANCELED = "canceled", _("Cancelled")


class PayoutMethod(models.TextChoices):
    STANDARD = "standard", _("Standard")
    INSTANT = "instant", _("Instant")


class PayoutLineKind(models.TextChoices):
    """What one movement of money a payout carries is (Stripe: a balance transaction's
    ``reporting_category``, folded to what a clinic reads)."""

    CHARGE = "charge", _("Payment")
    REFUND = "refund", _("Refund")
    REFUND_FAILURE = "refund_failure", _("Refund returned")
    DISPUTE = "dispute", _("Dispute withdrawal")
    DISPUTE_REVERSAL = "dispute_reversal", _("Dispute reinstated")
    FEE = "fee", _("Fee")
    ADJUSTMENT = "adjustment", _("Adjustment")
    PAYOUT_FAILURE = "payout_failure", _("Failed payout returned")
    OTHER = "other", _("Other")


class Reconciliation(models.TextChoices):
    """Whether a payout's lines have been fetched and add up to it."""

    WAITING = "waiting", _("Lines not fetched yet")
    MATCHED = "matched", _("Lines add up to the payout")
    DIFFERENCE = "difference", _("Lines do not add up to the payout")
    # Stripe lists the balance transactions of automatic payouts only: a payout asked for by hand
    # (an instant payout from the clinic's Stripe Dashboard) carries no list to fetch.
    NOT_ITEMIZED = "not_itemized", _("Not itemized by the processor (a payout asked for by hand)")
