import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from lumapay.models import ActorType
from org_profile.enums import PaymentGateway
from org_profile.models import Location, Organization

from .enums import (
    CollectionRule,
    DeliveryChannel,
    DeliveryStatus,
    DisputeStatus,
    EhrPostingKind,
    EhrPostingStatus,
    ExportStatus,
    GatewayEventStatus,
    InstalmentStatus,
    MessagePurpose,
    PaymentPlanStatus,
    PaymentRequestKind,
    PaymentRequestStatus,
    PlanConsentSource,
    RefundStatus,
    SavedCardStatus,
    TransactionEventKind,
    TransactionStatus,
)

# The Sandbox processor keeps its own books in its own module; importing them here registers them
# under this app's label, where the migrations created them.
from .sandbox.models import (  # noqa: F401
    SandboxBalanceTransaction,
    SandboxCharge,
    SandboxCheckoutSession,
    SandboxCustomer,
    SandboxPaymentIntent,
    SandboxPaymentMethod,
    SandboxPayout,
    SandboxRefund,
    SandboxSetupSession,
)


class PaymentRequest(models.Model):
    """A charge staff asked a patient to pay, through a signed link sent by e-mail and/or SMS.

    Never deleted: cancelled and expired requests stay on record. ``public_id`` is what the link
    carries (signed); the database id never leaves the staff pages.
    """

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="payment_requests")
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey("ehr_sync.Patient", on_delete=models.PROTECT, related_name="payment_requests")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="payment_requests")
    appointment = models.ForeignKey(
        "ehr_sync.Appointment", null=True, blank=True, on_delete=models.SET_NULL, related_name="payment_requests"
    )
    kind = models.CharField(max_length=20, choices=PaymentRequestKind.choices)
    billing_item = models.CharField(max_length=120)
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    note = models.CharField(max_length=500, blank=True, help_text="shown to the patient on the pay page")
    status = models.CharField(max_length=20, choices=PaymentRequestStatus.choices, default=PaymentRequestStatus.OPEN)
    expires_at = models.DateTimeField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Date-of-birth check on the pay page: failures on this link, and until when it is locked.
    failed_verification_count = models.PositiveIntegerField(default=0)
    verification_locked_until = models.DateTimeField(null=True, blank=True)
    # The collection rule that made this request when LumaPay made it by itself ("" when staff did).
    automation_rule = models.CharField(max_length=30, choices=CollectionRule.choices, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_cents__gt=0) & Q(amount_cents__lte=100_000_00),
                name="payment_request_amount_in_range",
            ),
            # One automatic copay request per appointment, whatever happens (a re-sync, a
            # reschedule, two schedulers at once, a worker restart): the database says no to a second.
            models.UniqueConstraint(
                fields=["appointment"],
                condition=Q(automation_rule="copay_before_visit"),
                name="payment_request_one_automatic_copay_per_appointment",
            ),
            # One open automatic balance request per patient: a second pass, or a growing balance,
            # cannot leave two links asking for the same money.
            models.UniqueConstraint(
                fields=["patient"],
                condition=Q(automation_rule="balance_request", status="open"),
                name="payment_request_one_open_automatic_balance_per_patient",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["status", "expires_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} request #{self.pk}"


class PaymentRequestDelivery(models.Model):
    """One e-mail or SMS a patient is owed: the outbox. A request's link (one row per channel,
    ``payment_request`` set), a paid transaction's receipt (``transaction`` set, at most one per
    channel), or a message an app above this one registered (an intake form's link: neither set,
    the form's submission points at its row).

    Written in the same database transaction as its cause (the request sent, the charge recorded),
    so a rollback owes nothing and a commit cannot lose it; then sent by the task
    ``transactions.tasks.patient_message_send`` (see ``services/patient_messages.py``), retried with
    backoff, re-sent by a beat sweep when stuck, and marked sent, or failed with the reason. While
    queued, ``claimed_until`` is the lease of the one sender working on it.
    """

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    purpose = models.CharField(max_length=20, choices=MessagePurpose.choices, default=MessagePurpose.PAYMENT_LINK)
    payment_request = models.ForeignKey(
        PaymentRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="deliveries"
    )
    transaction = models.ForeignKey(
        "Transaction", null=True, blank=True, on_delete=models.PROTECT, related_name="deliveries"
    )
    channel = models.CharField(max_length=10, choices=DeliveryChannel.choices)
    destination = models.CharField(max_length=254)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED)
    error_message = models.CharField(max_length=500, blank=True)
    provider_message_id = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="sends started (claims), successful or not")
    next_attempt_at = models.DateTimeField(default=timezone.now, help_text="not sent before this (backoff)")
    claimed_until = models.DateTimeField(null=True, blank=True, help_text="a sender's lease on the row")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(purpose=MessagePurpose.PAYMENT_LINK, payment_request__isnull=False, transaction__isnull=True)
                    | Q(purpose=MessagePurpose.RECEIPT, transaction__isnull=False, payment_request__isnull=True)
                    | Q(purpose=MessagePurpose.PLAN_CHARGE_FAILED, payment_request__isnull=False)
                    | Q(purpose=MessagePurpose.FORM_LINK, payment_request__isnull=True, transaction__isnull=True)
                ),
                name="delivery_purpose_names_its_cause",
            ),
            models.UniqueConstraint(
                fields=["transaction", "channel"],
                condition=Q(purpose=MessagePurpose.RECEIPT),
                name="one_receipt_per_transaction_and_channel",
            ),
        ]
        indexes = [
            # The sweep: queued rows by when they are due.
            models.Index(
                fields=["next_attempt_at"], condition=Q(status=DeliveryStatus.QUEUED), name="delivery_queued_due"
            ),
        ]


# What the dashboard's totals, chart and filters read of a transaction: the INCLUDE of the indexes
# that serve a filter the daily totals cannot answer, so those totals are index-only scans.
SUMMARY_COLUMNS = [
    "organization", "location", "created_at", "paid_at", "status", "kind", "amount_cents", "charged_cents",
    "refunded_cents", "vendor", "card_brand", "has_unresolved_problems",
]


def _summary_columns_but(*keys: str) -> list[str]:
    """The summary columns an index does not already hold as keys."""
    return [column for column in SUMMARY_COLUMNS if column not in keys]


class Transaction(models.Model):
    """One payment by a patient through a gateway, with its refunds.

    The truth is the append-only ``TransactionEvent`` rows; ``status``, ``charged_cents``,
    ``refunded_cents``, ``disputed_cents`` and ``dispute_fee_cents`` are a cache that only
    ``transactions.services.ledger.transaction_recalculate`` writes, under the row lock.
    """

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="transactions")
    payment_request = models.ForeignKey(
        PaymentRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="transactions"
    )
    # Indexed by transaction_patient_cover (the dashboard's patient filter), not by a bare index.
    patient = models.ForeignKey(
        "ehr_sync.Patient", on_delete=models.PROTECT, related_name="transactions", db_index=False
    )
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="transactions")
    kind = models.CharField(max_length=20, choices=PaymentRequestKind.choices)
    billing_item = models.CharField(max_length=120)
    amount_cents = models.BigIntegerField(help_text="the amount the patient was asked to pay")
    currency = models.CharField(max_length=3, default="usd")
    vendor = models.CharField(max_length=20, choices=PaymentGateway.choices)
    gateway_checkout_id = models.CharField(max_length=100, blank=True)
    gateway_checkout_url = models.URLField(max_length=500, blank=True, help_text="the hosted checkout page")
    gateway_checkout_expires_at = models.DateTimeField(null=True, blank=True)
    gateway_charge_id = models.CharField(max_length=100, blank=True)
    # A staff charge of a card on file (off-session), and the visit an authorization is for.
    saved_card = models.ForeignKey(
        "SavedCard", null=True, blank=True, on_delete=models.PROTECT, related_name="transactions"
    )
    appointment = models.ForeignKey(
        "ehr_sync.Appointment", null=True, blank=True, on_delete=models.SET_NULL, related_name="transactions"
    )
    authorization_code = models.CharField(max_length=40, blank=True)
    card_brand = models.CharField(max_length=20, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    status = models.CharField(max_length=20, choices=TransactionStatus.choices, default=TransactionStatus.PENDING)
    charged_cents = models.BigIntegerField(default=0)
    refunded_cents = models.BigIntegerField(default=0)
    disputed_cents = models.BigIntegerField(
        default=0, help_text="held back by open disputes or lost to lost ones (not given back by won ones)"
    )
    fee_cents = models.BigIntegerField(default=0, help_text="the processor's fee on the charge, when known")
    dispute_fee_cents = models.BigIntegerField(
        default=0, help_text="the processor's dispute fees taken, less those given back (from the ledger)"
    )
    platform_fee_cents = models.BigIntegerField(
        default=0,
        help_text="the platform's fee on the charge (Stripe's application fee), as the gateway reports it",
    )
    last_error = models.CharField(
        max_length=500, blank=True, help_text="the message of the newest unresolved failure (transactions.problems)"
    )
    # The collection rule that made this transaction when LumaPay made it by itself (a hold before
    # the visit, a plan's instalment); "" when a patient or staff did.
    automation_rule = models.CharField(max_length=30, choices=CollectionRule.choices, blank=True)
    hold_claimed_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="when a capture or release of the held amount was claimed (services.saved_cards): one at a time; "
        "a claim older than HOLD_CLAIM_LEASE is given up (its worker died)",
    )
    hold_superseded_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="when a renewal (a new hold) began to replace this hold before it lapsed; it is released once "
        "the new one is held (services.holds)",
    )
    has_unresolved_problems = models.BooleanField(
        default=False,
        help_text="a failed charge or refund that no later success resolved (transactions.problems): the "
        "dashboard's \"has errors\"",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="transaction_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_cents__gte=0) & Q(refunded_cents__lte=F("charged_cents")),
                name="transaction_refunds_within_charge",
            ),
            models.CheckConstraint(condition=Q(disputed_cents__gte=0), name="transaction_disputed_not_negative"),
            # A request is paid at most once, however many times the patient presses "Pay".
            models.UniqueConstraint(
                fields=["payment_request"],
                condition=Q(charged_cents__gt=0),
                name="transaction_one_paid_per_request",
            ),
            models.UniqueConstraint(
                fields=["vendor", "gateway_checkout_id"],
                condition=~Q(gateway_checkout_id=""),
                name="transaction_checkout_unique",
            ),
            # Holds by rule (services.holds). The hold rule holds an appointment's copay once: a
            # declined or released hold leaves the copay to a payment request, never to a second hold…
            models.UniqueConstraint(
                fields=["appointment"],
                condition=Q(automation_rule="hold_before_visit"),
                name="transaction_one_automatic_hold_per_appointment",
            ),
            # …and an appointment has at most one current automatic hold (being made, or held): a
            # renewal marks the hold it replaces superseded in the same step as it is opened.
            models.UniqueConstraint(
                fields=["appointment"],
                condition=Q(
                    automation_rule__in=["hold_before_visit", "hold_renewal"],
                    status__in=["pending", "authorized"],
                    hold_superseded_at__isnull=True,
                ),
                name="transaction_one_live_hold_per_appointment",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "status", "-created_at"]),
            # The dashboard's filters, totals, chart and export (migration 0005 says why each).
            models.Index(
                fields=["organization", "-created_at", "-id"],
                include=[
                    "location", "status", "kind", "amount_cents", "charged_cents", "refunded_cents", "paid_at",
                    "vendor", "card_brand", "has_unresolved_problems",
                ],
                name="transaction_org_created_cover",
            ),
            models.Index(
                fields=["organization", "location", "-created_at", "-id"],
                include=[
                    "status", "kind", "amount_cents", "charged_cents", "refunded_cents", "paid_at", "vendor",
                    "card_brand", "has_unresolved_problems",
                ],
                name="transaction_org_location_cover",
            ),
            # The filters the daily totals cannot answer (migration 0011 says why each).
            models.Index(
                fields=["organization", "billing_item", "-created_at", "-id"],
                include=_summary_columns_but("organization", "created_at"),
                name="transaction_org_billing_cover",
            ),
            models.Index(
                fields=["organization", "amount_cents"],
                include=_summary_columns_but("organization", "amount_cents"),
                name="transaction_org_amount_cover",
            ),
            models.Index(
                fields=["patient", "-created_at", "-id"],
                include=_summary_columns_but("created_at"),
                name="transaction_patient_cover",
            ),
            models.Index(
                fields=["organization", "-paid_at"], condition=Q(paid_at__isnull=False), name="transaction_org_paid"
            ),
        ]

    def __str__(self) -> str:
        return f"Transaction #{self.pk}"

    @property
    def unrefunded_cents(self) -> int:
        """Charged less refunded, less what disputes hold back or took (the card network, not the
        clinic, returns that to the cardholder, so refunding it too would pay the patient twice).
        Refunds still waiting for the gateway hold part of this back: what may be refunded now is
        ``selectors.ledger.transaction_refundable_cents``."""
        return max(self.charged_cents - self.refunded_cents - self.disputed_cents, 0)


# The sums every daily-total cell holds; its unique index includes them, so the dashboard's
# totals are an index-only scan of one organization's cells.
DAILY_SUMS = ["transactions", "charged_cents", "refunded_cents", "payments"]


class DailyCells(models.Model):
    """What the three daily-total tables share: the organization, the local day paid (none for
    unpaid transactions) and the sums. Written by the database only (the trigger of migrations
    0010 and 0012)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    paid_on = models.DateField(null=True)
    transactions = models.IntegerField()
    charged_cents = models.BigIntegerField()
    refunded_cents = models.BigIntegerField()
    payments = models.IntegerField(help_text="transactions with money charged")

    class Meta:
        abstract = True


class DailyTotal(DailyCells):
    """The dashboard's totals and chart, summed ahead: one row per organization, location, kind, local
    day created, local day paid (none for unpaid), status and whether problems are unresolved.

    Exact, never an estimate: a trigger on ``transactions_transaction`` (migration 0010) moves each
    row's count and money from its old cell to its new one in the same database transaction as
    every insert, update or delete, whichever code wrote it (the ledger's recalculation, the seed,
    a data migration, the admin). Local days are in the organization's time zone; changing the
    zone rebuilds the organization's rows (a trigger on the organization). The dashboard reads
    these rows instead of the transactions when every filter in use is one of these columns
    (``transactions.filters.TransactionFilter.daily_totals``). Written by the database only.
    """

    location = models.ForeignKey(
        Location, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    created_on = models.DateField()
    status = models.CharField(max_length=20, choices=TransactionStatus.choices)
    kind = models.CharField(max_length=20, choices=PaymentRequestKind.choices)
    has_unresolved_problems = models.BooleanField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                # Location and kind first: this table answers location and kind filters and
                # sub-account users (always a set of locations); dates go to DailyCardTotal.
                fields=[
                    "organization", "location", "kind", "created_on", "paid_on", "status", "has_unresolved_problems"
                ],
                name="daily_total_cell",
                nulls_distinct=False,
                include=DAILY_SUMS,
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.created_on} {self.status}: {self.transactions}"


class DailyCardTotal(DailyCells):
    """The same sums as ``DailyTotal``, per kind, vendor and card brand instead of location and kind:
    the dashboard's vendor and card-brand filters, alone or with kind, dates, status and errors (for
    a manager, who sees every location). Kept by the same trigger (migrations 0010 and 0012)."""

    created_on = models.DateField()
    status = models.CharField(max_length=20, choices=TransactionStatus.choices)
    kind = models.CharField(max_length=20, choices=PaymentRequestKind.choices)
    vendor = models.CharField(max_length=20)
    card_brand = models.CharField(max_length=20)
    has_unresolved_problems = models.BooleanField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "organization", "created_on", "paid_on", "status", "kind", "vendor", "card_brand",
                    "has_unresolved_problems",
                ],
                name="daily_card_total_cell",
                nulls_distinct=False,
                include=DAILY_SUMS,
            )
        ]


def amount_band(cents: int) -> tuple[int, int]:
    """The amounts (lowest, highest, in cents) summed together in one ``DailyAmountTotal`` cell
    with ``cents``; the same as the SQL functions ``transactions_amount_band_low``/``_high``
    (migration 0012).

    Under $100 each whole-dollar amount is its own band ($20.00, $30.00: copays, typed as filter
    bounds) and the amounts with cents between two whole dollars share one ($20.01–$20.99); from
    $100 the bands are $100 wide ($100.00–$199.99), from $1,000 $1,000 wide. A filter bound on a
    band's edge ($20, $30, $100, $1,000) takes whole cells only.
    """
    if cents < 100_00:
        if cents % 100 == 0:
            return cents, cents
        start = cents // 100 * 100
        return start + 1, start + 99
    width = 100_00 if cents < 1_000_00 else 1_000_00
    start = cents // width * width
    return start, start + width - 1


class DailyAmountTotal(DailyCells):
    """The same sums as ``DailyTotal`` per local day paid and band of amounts (``amount_band``):
    the dashboard's amount filter, alone or with the paid dates, for a manager. A range reads the
    cells whose band lies inside it, and the transactions themselves only for the part of a band
    a bound cuts (``TransactionFilter.daily_totals``), so the totals stay exact. Kept by the same
    trigger (migration 0012)."""

    amount_low = models.BigIntegerField(help_text="the band's lowest amount in cents")
    amount_high = models.BigIntegerField(help_text="the band's highest amount in cents")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "amount_low", "paid_on"],
                name="daily_amount_total_cell",
                nulls_distinct=False,
                include=["amount_high", *DAILY_SUMS],
            )
        ]


class DailyPaidTotal(DailyCells):
    """The same sums as ``DailyTotal`` per local day paid alone (none for unpaid transactions): one
    organization's whole set in about one cell per day it collected (730 for two years), where
    the unfiltered dashboard summed 14,200 ``DailyAmountTotal`` cells (10 ms of the database's CPU
    on every page for the throughput benchmark's organization), and the paid dates alone for a
    manager. Kept by the same trigger (migration 0025), in the same database transaction as every
    write to a transaction, so the totals read from it are exact and current.
    """

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "paid_on"],
                name="daily_paid_total_cell",
                nulls_distinct=False,
                include=DAILY_SUMS,
            )
        ]


class Refund(models.Model):
    """A refund of part or all of a transaction. The idempotency key is stored before the gateway
    is called and reused on every retry, so a retry can never refund twice.

    A refund made at the processor outside LumaPay is a row too (``is_made_outside``), one per
    gateway refund id, so the ledger counts every refund of the charge once, whoever made it."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="refunds")
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    reason = models.CharField(max_length=500)
    status = models.CharField(max_length=20, choices=RefundStatus.choices, default=RefundStatus.REQUESTED)
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    gateway_refund_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    failure_message = models.CharField(max_length=500, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    is_made_outside = models.BooleanField(
        default=False,
        help_text="made at the payment processor (the clinic's own Stripe Dashboard), not through LumaPay: "
        "imported from the processor's events or its list of the charge's refunds",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(amount_cents__gt=0), name="refund_amount_positive")]


class SavedCard(models.Model):
    """A patient's card kept at the gateway, with the patient's consent to charge it later.

    The gateway holds the card; we keep its ids, brand, last 4 digits and expiry, and the consent
    exactly as given: the text the patient agreed to, when, and from which address. Pending until
    the gateway confirms the card; a removed card stays on record (``removed_at``) and is never
    charged again.
    """

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey("ehr_sync.Patient", on_delete=models.PROTECT, related_name="saved_cards")
    vendor = models.CharField(max_length=20, choices=PaymentGateway.choices)
    status = models.CharField(max_length=20, choices=SavedCardStatus.choices, default=SavedCardStatus.PENDING)
    gateway_customer_id = models.CharField(max_length=100)
    gateway_setup_id = models.CharField(max_length=100, blank=True, help_text="the gateway's card-saving checkout")
    gateway_payment_method_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    card_brand = models.CharField(max_length=20, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    consent_text = models.TextField()
    consented_at = models.DateTimeField()
    consent_ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["vendor", "gateway_setup_id"], condition=~Q(gateway_setup_id=""), name="saved_card_setup_once"
            )
        ]

    def __str__(self) -> str:
        return f"{(self.card_brand or 'card').title()} ···· {self.card_last4 or '????'}"


class Dispute(models.Model):
    """A cardholder's dispute of a transaction's charge, as the gateway last described it.

    One per gateway dispute id. The money side is in the ledger (``dispute_*`` events); this row
    keeps what staff need to act: reason, status, evidence deadline. ``status_as_of`` is the
    gateway's time for ``status``, so an event delivered late never sets an older status.
    """

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="disputes")
    gateway_dispute_id = models.CharField(max_length=100, unique=True)
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    reason = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=30, choices=DisputeStatus.choices)
    evidence_due_by = models.DateTimeField(null=True, blank=True)
    status_as_of = models.BigIntegerField(default=0, help_text="the gateway's event time (Unix seconds) for the status")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(amount_cents__gte=0), name="dispute_amount_not_negative")]

    def __str__(self) -> str:
        return f"Dispute {self.gateway_dispute_id}"


class TransactionEvent(models.Model):
    """Append-only ledger row: the truth about a transaction's money.

    ``idempotency_key`` is unique per transaction, so the same fact reported twice (the confirmation
    page and the webhook, or a webhook delivered twice) is written once.
    """

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=30, choices=TransactionEventKind.choices)
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    refund = models.ForeignKey(Refund, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    actor_type = models.CharField(max_length=20, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    gateway_reference = models.CharField(max_length=100, blank=True, help_text="the gateway's charge or refund id")
    gateway_event_id = models.CharField(max_length=100, blank=True)
    message = models.CharField(max_length=500, blank=True, help_text="the gateway's message, or the refund reason")
    idempotency_key = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["transaction", "idempotency_key"], name="transaction_event_once"),
            models.CheckConstraint(condition=Q(amount_cents__gte=0), name="transaction_event_amount_not_negative"),
        ]
        indexes = [
            # Failure events only: the dashboard's "has errors" filter (migration 0005).
            models.Index(
                fields=["organization", "transaction"],
                condition=Q(kind__in=["charge_failed", "refund_failed"]),
                name="transaction_event_failures",
            ),
            # The money events the EHR hears about, by when: the posting sweep's "recent events
            # without a posting" and the daily posting file (transactions/services/ehr_postings.py).
            models.Index(
                fields=["organization", "created_at"],
                condition=Q(kind__in=["charge_succeeded", "refund_succeeded", "dispute_lost"]),
                name="transaction_event_posted_kinds",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount_cents}"


class GatewayEvent(models.Model):
    """An event a gateway sent us (webhook), stored raw before anything else is done with it.

    One row per (gateway, event id); processing records status and error so it can be replayed.
    """

    gateway = models.CharField(max_length=20, choices=PaymentGateway.choices)
    event_id = models.CharField(max_length=100)
    event_type = models.CharField(max_length=100)
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    payload = models.JSONField()
    status = models.CharField(max_length=20, choices=GatewayEventStatus.choices, default=GatewayEventStatus.RECEIVED)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(
        default=timezone.now,
        help_text="when its processing was last queued; the sweep queues it again if it is still unprocessed minutes later",
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["gateway", "event_id"], name="gateway_event_once")]
        indexes = [
            # The sweep's question (transactions.services.gateway_events.gateway_events_requeue_stalled):
            # a few rows among all events ever received.
            models.Index(
                fields=["dispatched_at"],
                condition=Q(status__in=["received", "failed"]),
                name="gateway_event_unsettled",
            )
        ]

    def __str__(self) -> str:
        return f"{self.gateway} {self.event_type} {self.event_id}"


class GatewayEventCursor(models.Model):
    """How far the periodic listing of a gateway's events has read, per account ("" for the
    platform's own): the next listing starts a little before ``last_event_created``."""

    gateway = models.CharField(max_length=20, choices=PaymentGateway.choices)
    account = models.CharField(max_length=100, blank=True)
    last_event_created = models.BigIntegerField(help_text="Unix seconds of the newest event listed")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["gateway", "account"], name="gateway_event_cursor_once")]

    def __str__(self) -> str:
        return f"{self.gateway} {self.account or 'platform'} @ {self.last_event_created}"


class TransactionExport(models.Model):
    """An Excel file of exactly the transactions a staff user had filtered, made for that user.

    Only ``requested_by`` may download it, and only until ``expires_at``. Asking for it is a PHI
    access, recorded as an audit event with the filters and the row count.
    """

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    filters = models.JSONField(default=dict, help_text="the dashboard's query parameters")
    filter_summary = models.JSONField(default=list, help_text="[label, value] pairs, as shown on the filters sheet")
    status = models.CharField(max_length=20, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    total_rows = models.PositiveIntegerField(null=True, blank=True)
    rows_written = models.PositiveIntegerField(default=0)
    file = models.FileField(upload_to="exports/%Y/%m/", blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "requested_by", "-created_at"])]


class ExportedTransaction(models.Model):
    """One transaction held by one Excel export (its "transactions.exported" audit event), so the
    transaction's timeline finds its exports through the primary key's index instead of scanning
    every export's filters.

    Append-only. Written by one ``INSERT … SELECT`` over the export's own query, in the database
    and in the audit event's transaction: a 100,000-row export adds 100,000 narrow rows and no ids
    pass through Python.
    """

    pk = models.CompositePrimaryKey("transaction_id", "audit_event_id")
    # The primary key's index leads with the transaction: no other index is needed.
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="+", db_index=False)
    audit_event = models.ForeignKey("lumapay.AuditEvent", on_delete=models.PROTECT, related_name="+", db_index=False)


class EhrPosting(models.Model):
    """One money event (a payment, a refund, a reversal) posted back to the organization's EHR.

    Exactly one per ledger event (``event`` is unique), written in the same database transaction
    as the event when the organization posts through a connection, or by the beat's sweep for an
    event that has none. ``public_id`` is what the EHR knows it by, the same on every send: the
    FHIR identifier of a conditional create, the HL7 message control id (MSH-10) and FT1-2.

    Pending until the EHR acknowledges it (posted, with the EHR's reference) or refuses it (failed,
    in the EHR's words). Both pending and failed rows are sent again after ``next_attempt_at``
    (backoff) until ``EHR_POSTING_MAX_ATTEMPTS``; then ``next_attempt_at`` is empty and only staff's
    "Post again" sends it. ``claimed_until`` is the lease of the one worker sending it.
    """

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="ehr_postings")
    event = models.OneToOneField("TransactionEvent", on_delete=models.PROTECT, related_name="ehr_posting")
    connection = models.ForeignKey("ehr_sync.EhrConnection", on_delete=models.PROTECT, related_name="+")
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=10, choices=EhrPostingKind.choices)
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(max_length=10, choices=EhrPostingStatus.choices, default=EhrPostingStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="sends started (claims), answered or not")
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now, help_text="not sent before this (backoff); empty: no more automatic sends")
    claimed_until = models.DateTimeField(null=True, blank=True, help_text="a worker's lease on the row")
    error_message = models.CharField(max_length=500, blank=True, help_text="the EHR's words, or why it did not answer")
    ehr_reference = models.CharField(max_length=200, blank=True, help_text="the EHR's id for the posting")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    posted_at = models.DateTimeField(null=True, blank=True)
    automation_rule = models.CharField(max_length=30, choices=CollectionRule.choices, default=CollectionRule.EHR_POSTING)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.CheckConstraint(condition=Q(amount_cents__gt=0), name="ehr_posting_amount_positive")]
        indexes = [
            # The sweep: unposted rows by when they are due.
            models.Index(
                fields=["next_attempt_at"], condition=~Q(status="posted"), name="ehr_posting_unposted_due"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} posting {self.public_id}"


def _default_reminder_days() -> list[int]:
    return [3, 7, 14]


class CollectionRules(models.Model):
    """What LumaPay collects by itself for one organization (managers and administrators set it).

    Every rule is off until someone turns it on. Times are the clinic's (``Organization.timezone``);
    nothing is sent to a patient within the quiet hours.
    """

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="collection_rules")
    # Copay before the visit: a payment request this long before each upcoming appointment with a copay.
    copay_request_enabled = models.BooleanField(default=False)
    copay_request_hours_before = models.PositiveSmallIntegerField(default=48)
    # Hold before the visit: with a card on file (and the patient's consent to it), hold the copay
    # this long before the visit instead of asking; capture at check-in, release if the visit is
    # cancelled or missed. A hold lasts 7 days at the processor, so at most 144 hours ahead.
    hold_enabled = models.BooleanField(default=False)
    hold_hours_before = models.PositiveSmallIntegerField(default=24)
    # Balances: a request when a balance appears or grows above the threshold, then reminders
    # this many days after it was sent while it is unpaid.
    balance_request_enabled = models.BooleanField(default=False)
    balance_threshold_cents = models.BigIntegerField(default=10_00)
    balance_reminder_days = models.JSONField(default=_default_reminder_days)
    # Quiet hours, in the clinic's time zone: a message due inside them waits for their end.
    quiet_hours_start = models.TimeField(default="21:00")
    quiet_hours_end = models.TimeField(default="08:00")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        verbose_name_plural = "collection rules"
        constraints = [
            models.CheckConstraint(
                condition=Q(copay_request_hours_before__gte=1) & Q(copay_request_hours_before__lte=336),
                name="collection_rules_copay_lead_in_range",
            ),
            models.CheckConstraint(
                condition=Q(hold_hours_before__gte=1) & Q(hold_hours_before__lte=144),
                name="collection_rules_hold_lead_within_hold_life",
            ),
            models.CheckConstraint(condition=Q(balance_threshold_cents__gte=0), name="collection_rules_threshold_not_negative"),
        ]

    def __str__(self) -> str:
        return f"Collection rules of {self.organization}"


def collection_rules_for(organization) -> CollectionRules:
    """The organization's rules as saved, or the defaults (everything off) when none were saved."""
    try:
        return organization.collection_rules
    except CollectionRules.DoesNotExist:
        return CollectionRules(organization=organization)


class BalanceAsked(models.Model):
    """How much of a patient's balance LumaPay has already asked for by itself (the balance rule):
    one row per patient, at most.

    A balance request is due when the mirrored balance (``ehr_sync.Balance``) is above the
    organization's threshold and above ``asked_cents``. Each automatic balance request sets
    ``asked_cents`` to the balance it asked for; a balance that drops (paid, adjusted in the EHR)
    lowers it to the new amount, so a balance that later grows again is asked for again, while a
    balance the EHR has not yet lowered after a payment is never asked for twice.
    """

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    patient = models.OneToOneField("ehr_sync.Patient", on_delete=models.CASCADE, related_name="+")
    asked_cents = models.BigIntegerField()
    payment_request = models.ForeignKey(PaymentRequest, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(asked_cents__gte=0), name="balance_asked_not_negative")]

    def __str__(self) -> str:
        return f"{self.asked_cents} asked of patient {self.patient_id}"


class PaymentReminder(models.Model):
    """A reminder LumaPay sent of an open automatic balance request (the balance rule's cadence).
    Append-only; one per (request, number), so no reminder is ever sent twice, whatever runs at
    once."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    payment_request = models.ForeignKey(PaymentRequest, on_delete=models.PROTECT, related_name="reminders")
    # 1 for the first reminder, and the days after the first send it was due on.
    number = models.PositiveSmallIntegerField()
    days_after = models.PositiveSmallIntegerField()
    sent_at = models.DateTimeField()

    class Meta:
        ordering = ["payment_request_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["payment_request", "number"], name="payment_reminder_once_per_number")
        ]

    def __str__(self) -> str:
        return f"Reminder {self.number} of request {self.payment_request_id}"
class PaymentPlan(models.Model):
    """A patient's balance (or a chosen amount) split into instalments charged to a card on file,
    with the patient's consent as given: the text, when, to whom or where.

    The instalments' amounts add up to ``total_cents`` exactly (``payment_plan_create``). Cancelled
    plans stop charging; a plan whose instalment was declined after every retry needs staff.
    """

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey("ehr_sync.Patient", on_delete=models.PROTECT, related_name="payment_plans")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="+")
    saved_card = models.ForeignKey(SavedCard, on_delete=models.PROTECT, related_name="payment_plans")
    billing_item = models.CharField(max_length=120)
    total_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    instalment_count = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=20, choices=PaymentPlanStatus.choices, default=PaymentPlanStatus.ACTIVE)
    # The consent, exactly as given.
    consent_text = models.TextField()
    consented_at = models.DateTimeField()
    consent_source = models.CharField(max_length=20, choices=PlanConsentSource.choices)
    consent_ip_address = models.GenericIPAddressField(null=True, blank=True)
    # The request whose link the patient set the plan up from (``consent_source`` pay_link).
    source_payment_request = models.ForeignKey(
        PaymentRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    needs_attention_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(total_cents__gt=0) & Q(total_cents__lte=100_000_00), name="payment_plan_total_in_range"
            ),
            models.CheckConstraint(
                condition=Q(instalment_count__gte=2) & Q(instalment_count__lte=24), name="payment_plan_instalments_2_to_24"
            ),
        ]

    def __str__(self) -> str:
        return f"Payment plan #{self.pk}"


class PaymentPlanInstalment(models.Model):
    """One instalment of a plan: charged on ``due_date`` (the clinic's date) by the beat task,
    retried after a decline, ``transaction`` being its latest attempt's. Due for an attempt when
    ``next_attempt_at`` has passed (scheduled or retrying), or when a charging sender's claim
    (``claimed_until``) ran out: it died mid-charge, and the same attempt's idempotency key is used
    again, so nothing is charged twice."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    plan = models.ForeignKey(PaymentPlan, on_delete=models.PROTECT, related_name="instalments")
    number = models.PositiveSmallIntegerField()
    due_date = models.DateField(help_text="in the clinic's time zone")
    amount_cents = models.BigIntegerField()
    status = models.CharField(max_length=20, choices=InstalmentStatus.choices, default=InstalmentStatus.SCHEDULED)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    transaction = models.ForeignKey(Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # After a decline: the link the patient is sent to pay this instalment or put a new card on file.
    payment_request = models.ForeignKey(
        PaymentRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="plan_instalments"
    )
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["plan_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "number"], name="payment_plan_instalment_number_once"),
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="payment_plan_instalment_amount_positive"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["scheduled", "retrying", "charging"]),
                name="plan_instalment_due",
            ),
            models.Index(fields=["organization", "due_date"], name="plan_instalment_org_due_date"),
        ]

    def __str__(self) -> str:
        return f"Instalment {self.number} of plan #{self.plan_id}"


class PaymentPlanAttempt(models.Model):
    """One attempt at charging an instalment, written (with its idempotency key) before the gateway
    is called; a rerun after a crash reuses the unfinished attempt and its key. Append-only but for
    its outcome."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    instalment = models.ForeignKey(PaymentPlanInstalment, on_delete=models.PROTECT, related_name="charge_attempts")
    number = models.PositiveSmallIntegerField()
    idempotency_key = models.CharField(max_length=100, unique=True)
    transaction = models.ForeignKey(Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    outcome = models.CharField(max_length=20, blank=True, help_text="'' until known: succeeded, failed or pending")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["instalment_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["instalment", "number"], name="payment_plan_attempt_number_once"),
        ]
