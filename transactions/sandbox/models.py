"""The Sandbox processor's own books: its checkouts, charges and refunds, not our ledger.

The classes live here with the processor; ``transactions.models`` imports them, so they keep the
``transactions`` app label and the migrations that created them.
"""

from django.db import models
from django.db.models import F, Q

from org_profile.models import Organization

from .enums import SandboxSessionStatus


class SandboxCheckoutSession(models.Model):
    """The Sandbox processor's hosted checkout: its side of the books, not ours.

    Completes at most once; a declined card leaves it open for another try.
    """

    id = models.CharField(primary_key=True, max_length=40)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    client_reference = models.CharField(max_length=100, help_text="our transaction id, opaque to the processor")
    merchant_name = models.CharField(max_length=200)
    application_fee_cents = models.BigIntegerField(
        default=0, help_text="what the platform takes of the payment, as the merchant asked (Stripe's application_fee_amount)"
    )
    locale = models.CharField(
        max_length=10,
        default="auto",
        help_text="the language of the checkout page, as the merchant asked (Stripe's locale): a language code, "
        "or 'auto' for the browser's",
    )
    success_url = models.URLField(max_length=500)
    cancel_url = models.URLField(max_length=500)
    status = models.CharField(max_length=30, choices=SandboxSessionStatus.choices, default=SandboxSessionStatus.OPEN)
    pending_card_last4 = models.CharField(max_length=4, blank=True)
    pending_card_brand = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()


class SandboxCharge(models.Model):
    """A card charge attempt at the Sandbox processor: succeeded or failed, with its refunds."""

    id = models.CharField(primary_key=True, max_length=40)
    session = models.ForeignKey(SandboxCheckoutSession, on_delete=models.PROTECT, related_name="charges")
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    is_paid = models.BooleanField()
    failure_code = models.CharField(max_length=40, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    card_brand = models.CharField(max_length=20)
    card_last4 = models.CharField(max_length=4)
    authorization_code = models.CharField(max_length=20, blank=True)
    amount_refunded_cents = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_refunded_cents__lte=F("amount_cents")), name="sandbox_charge_refund_within_amount"
            ),
            models.UniqueConstraint(fields=["session"], condition=Q(is_paid=True), name="sandbox_session_paid_once"),
        ]


class SandboxRefund(models.Model):
    """A refund at the Sandbox processor. ``idempotency_key`` makes a retried request return the
    same refund, as a real processor's idempotency keys do."""

    id = models.CharField(primary_key=True, max_length=40)
    charge = models.ForeignKey(SandboxCharge, on_delete=models.PROTECT, related_name="refunds")
    amount_cents = models.BigIntegerField()
    idempotency_key = models.CharField(max_length=100, unique=True)
    status = models.CharField(max_length=20)
    failure_message = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
