"""The Sandbox processor's own books: its checkouts, charges and refunds, its merchants' balance
transactions and payouts; not our ledger.

The classes live here with the processor; ``transactions.models`` imports them, so they keep the
``transactions`` app label and the migrations that created them.
"""

from django.db import models
from django.db.models import F, Q

from org_profile.models import Organization

from .enums import (
    SandboxBalanceType,
    SandboxCancellation,
    SandboxIntentStatus,
    SandboxPayoutStatus,
    SandboxSessionStatus,
)


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


class SandboxCustomer(models.Model):
    """A merchant's customer at the Sandbox, under which cards are kept (Stripe's Customer). It
    carries no name or contact: the merchant knows whose it is."""

    id = models.CharField(primary_key=True, max_length=40)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)


class SandboxPaymentMethod(models.Model):
    """A test card kept under a customer (Stripe's PaymentMethod). ``test_outcome`` is what the
    test card does when charged (``processor.TEST_CARDS``)."""

    id = models.CharField(primary_key=True, max_length=40)
    customer = models.ForeignKey(SandboxCustomer, on_delete=models.PROTECT, related_name="payment_methods")
    card_brand = models.CharField(max_length=20)
    card_last4 = models.CharField(max_length=4)
    exp_month = models.PositiveSmallIntegerField()
    exp_year = models.PositiveSmallIntegerField()
    test_outcome = models.CharField(max_length=30)
    detached_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class SandboxSetupSession(models.Model):
    """The Sandbox's hosted "save your card" page (Stripe Checkout in setup mode): nothing is
    charged; on success the card is kept under the customer."""

    id = models.CharField(primary_key=True, max_length=40)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(SandboxCustomer, on_delete=models.PROTECT, related_name="+")
    client_reference = models.CharField(max_length=100, help_text="the merchant's id for the card, opaque to the processor")
    merchant_name = models.CharField(max_length=200)
    locale = models.CharField(max_length=10, default="auto")
    success_url = models.URLField(max_length=500)
    cancel_url = models.URLField(max_length=500)
    status = models.CharField(max_length=30, choices=SandboxSessionStatus.choices, default=SandboxSessionStatus.OPEN)
    pending_card_last4 = models.CharField(max_length=4, blank=True)
    pending_card_brand = models.CharField(max_length=20, blank=True)
    pending_exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    pending_exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    payment_method = models.ForeignKey(SandboxPaymentMethod, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()


class SandboxPaymentIntent(models.Model):
    """A charge of a card on file while the customer is away (Stripe's off-session PaymentIntent):
    charged at once, or only held (``capture_method`` "manual") until captured or released. A
    hold lapses at ``capture_before`` (7 days, as card networks allow): it is then released by
    the processor and can no longer be captured."""

    id = models.CharField(primary_key=True, max_length=40)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(SandboxCustomer, on_delete=models.PROTECT, related_name="+")
    payment_method = models.ForeignKey(SandboxPaymentMethod, on_delete=models.PROTECT, related_name="+")
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    capture_method = models.CharField(max_length=10, default="automatic")  # "automatic" | "manual"
    status = models.CharField(max_length=30, choices=SandboxIntentStatus.choices)
    cancellation_reason = models.CharField(max_length=20, choices=SandboxCancellation.choices, blank=True)
    client_reference = models.CharField(max_length=100, help_text="our transaction id, opaque to the processor")
    idempotency_key = models.CharField(max_length=255, unique=True)
    application_fee_cents = models.BigIntegerField(default=0)
    failure_code = models.CharField(max_length=40, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    authorization_code = models.CharField(max_length=20, blank=True)
    authorized_at = models.DateTimeField(null=True, blank=True)
    capture_before = models.DateTimeField(null=True, blank=True)
    captured_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class SandboxCharge(models.Model):
    """A card charge attempt at the Sandbox processor: succeeded or failed, with its refunds. Made
    through a hosted checkout (``session``) or by charging a card on file (``payment_intent``)."""

    id = models.CharField(primary_key=True, max_length=40)
    session = models.ForeignKey(SandboxCheckoutSession, null=True, blank=True, on_delete=models.PROTECT, related_name="charges")
    payment_intent = models.ForeignKey(
        SandboxPaymentIntent, null=True, blank=True, on_delete=models.PROTECT, related_name="charges"
    )
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
            models.UniqueConstraint(fields=["payment_intent"], condition=Q(is_paid=True), name="sandbox_intent_paid_once"),
            models.CheckConstraint(
                condition=Q(session__isnull=True, payment_intent__isnull=False) | Q(session__isnull=False, payment_intent__isnull=True),
                name="sandbox_charge_one_source",
            ),
        ]

    @property
    def source(self):
        """The checkout or the card-on-file payment the charge was made through."""
        return self.session if self.session_id else self.payment_intent

    @property
    def checkout_id(self) -> str:
        return self.session_id or self.payment_intent_id


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


class SandboxPayout(models.Model):
    """One payout the Sandbox made from a merchant's available balance to its bank account (Stripe's
    Payout): one per business day and currency when there is money to send, made at midnight UTC
    of ``payout_date``. Its id is drawn from the merchant, currency and day, so a second run of the
    schedule finds the payout the first one made."""

    id = models.CharField(primary_key=True, max_length=40)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    currency = models.CharField(max_length=3, default="usd")
    amount_cents = models.BigIntegerField()
    payout_date = models.DateField(help_text="the business day the payout was made for")
    status = models.CharField(max_length=20, choices=SandboxPayoutStatus.choices, default=SandboxPayoutStatus.PENDING)
    method = models.CharField(max_length=20, default="standard")
    arrival_date = models.DateField()
    bank_name = models.CharField(max_length=100)
    bank_last4 = models.CharField(max_length=4)
    trace_id = models.CharField(max_length=40, blank=True)
    failure_code = models.CharField(max_length=60, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()
    in_transit_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True, help_text="when it was paid, or failed")

    class Meta:
        constraints = [
            # One scheduled payout a day; instant payouts (``payouts.payout_instant``) come on top.
            models.UniqueConstraint(
                fields=["organization", "currency", "payout_date"],
                condition=Q(method="standard"),
                name="sandbox_payout_one_per_day",
            ),
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="sandbox_payout_positive"),
        ]
        indexes = [
            models.Index(
                fields=["organization", "status"],
                name="sandbox_payout_open",
                condition=Q(status__in=["pending", "in_transit"]),
            ),
            models.Index(fields=["organization", "created_at"], name="sandbox_payout_org_created"),
        ]


class SandboxBalanceTransaction(models.Model):
    """One movement of money in a merchant's balance at the Sandbox (Stripe's BalanceTransaction):
    a charge (its fees taken: the Sandbox's and the platform's application fee), a refund, or a
    failed payout's money coming back. It becomes available on ``available_on`` and is carried by
    one payout (``payout``) once paid out. Booked by the processor from its charges and refunds
    (``processor.books_update``), once each: its id is drawn from what caused it."""

    id = models.CharField(primary_key=True, max_length=40)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    type = models.CharField(max_length=20, choices=SandboxBalanceType.choices)
    source_id = models.CharField(max_length=40, help_text="the charge, refund or payout that moved the money")
    charge_id = models.CharField(max_length=40, blank=True, help_text="the charge it concerns (a refund's charge)")
    amount_cents = models.BigIntegerField()
    fee_cents = models.BigIntegerField(default=0)
    net_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    created_at = models.DateTimeField()
    available_on = models.DateField()
    payout = models.ForeignKey(
        SandboxPayout, null=True, blank=True, on_delete=models.PROTECT, related_name="balance_transactions"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["type", "source_id"], name="sandbox_balance_transaction_once"),
            models.CheckConstraint(condition=Q(net_cents=F("amount_cents") - F("fee_cents")), name="sandbox_balance_net"),
        ]
        indexes = [
            models.Index(
                fields=["organization", "currency", "available_on"],
                name="sandbox_balance_unpaid",
                condition=Q(payout__isnull=True),
            ),
            models.Index(fields=["payout", "created_at"], name="sandbox_balance_by_payout"),
        ]
