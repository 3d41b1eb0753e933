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


class MessagePurpose(models.TextChoices):
    """What a message owed to a patient carries (``PaymentRequestDelivery.purpose``)."""

    PAYMENT_LINK = "payment_link", _("Payment link")
    RECEIPT = "receipt", _("Receipt")
    # A plan's instalment was declined: what happened, when it is tried again, and the link to
    # pay it or put a new card on file (the instalment's payment request).
    PLAN_CHARGE_FAILED = "plan_charge_failed", _("Plan instalment declined")
    # The link to an intake form sent by itself (intake_forms renders it and records its outcome,
    # see ``services.patient_messages.patient_message_register``).
    FORM_LINK = "form_link", _("Form link")


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
    # The cardholder disputed the charge with their bank: the amount is held back until it closes.
    DISPUTED = "disputed", _("Disputed")
    # The bank sided with the cardholder: the disputed amount went back to them for good.
    DISPUTE_LOST = "dispute_lost", _("Dispute lost")
    # A saved card's amount held before the visit, to be captured at check-in…
    AUTHORIZED = "authorized", _("Authorized")
    # …or let go (appointment cancelled or missed): nothing was charged.
    RELEASED = "released", _("Authorization released")


class TransactionEventKind(models.TextChoices):
    CHARGE_REQUESTED = "charge_requested", _("Charge requested")
    CHARGE_SUCCEEDED = "charge_succeeded", _("Charge succeeded")
    CHARGE_FAILED = "charge_failed", _("Charge failed")
    REFUND_REQUESTED = "refund_requested", _("Refund requested")
    REFUND_SUCCEEDED = "refund_succeeded", _("Refund succeeded")
    REFUND_FAILED = "refund_failed", _("Refund failed")
    CHARGE_AUTHORIZED = "charge_authorized", _("Payment authorized")
    AUTHORIZATION_RELEASED = "authorization_released", _("Authorization released")
    DISPUTE_OPENED = "dispute_opened", _("Dispute opened")
    DISPUTE_UPDATED = "dispute_updated", _("Dispute under review")
    DISPUTE_WON = "dispute_won", _("Dispute won")
    DISPUTE_LOST = "dispute_lost", _("Dispute lost")
    # An inquiry (a "retrieval request") asks the clinic about a charge: it moves no money.
    INQUIRY_OPENED = "inquiry_opened", _("Inquiry opened")
    INQUIRY_CLOSED = "inquiry_closed", _("Inquiry closed")
    # What a dispute does to the money: the processor withdraws the disputed amount from the
    # clinic's balance, with a dispute fee, and reinstates the amount (sometimes the fee) if the
    # clinic wins. The only dispute events that change the totals.
    DISPUTE_FUNDS_WITHDRAWN = "dispute_funds_withdrawn", _("Disputed amount withdrawn")
    DISPUTE_FUNDS_REINSTATED = "dispute_funds_reinstated", _("Disputed amount reinstated")
    DISPUTE_FEE = "dispute_fee", _("Dispute fee")
    DISPUTE_FEE_RETURNED = "dispute_fee_returned", _("Dispute fee returned")


class DisputeStatus(models.TextChoices):
    """Stripe's dispute statuses. ``warning_*`` are inquiries, which do not withdraw funds yet."""

    WARNING_NEEDS_RESPONSE = "warning_needs_response", _("Inquiry: needs a response")
    WARNING_UNDER_REVIEW = "warning_under_review", _("Inquiry: under review")
    WARNING_CLOSED = "warning_closed", _("Inquiry closed")
    NEEDS_RESPONSE = "needs_response", _("Needs a response")
    UNDER_REVIEW = "under_review", _("Under review")
    APPEAL_NEEDS_RESPONSE = "appeal_needs_response", _("Appeal: needs a response")
    APPEAL_UNDER_REVIEW = "appeal_under_review", _("Appeal: under review")
    WON = "won", _("Won")
    LOST = "lost", _("Lost")
    PREVENTED = "prevented", _("Prevented")


class SavedCardStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for the card")
    ACTIVE = "active", _("On file")
    REMOVED = "removed", _("Removed")


class RefundStatus(models.TextChoices):
    REQUESTED = "requested", _("Requested")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class GatewayEventStatus(models.TextChoices):
    RECEIVED = "received", _("Received")
    PROCESSED = "processed", _("Processed")
    IGNORED = "ignored", _("Ignored")
    FAILED = "failed", _("Failed")


class ExportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Preparing")
    READY = "ready", _("Ready")
    FAILED = "failed", _("Failed")
    EXPIRED = "expired", _("Expired")


class EhrPostingKind(models.TextChoices):
    """Which money event a posting to the EHR carries (``ehr_sync.posting.PostingKind``)."""

    PAYMENT = "payment", _("Payment")
    REFUND = "refund", _("Refund")
    REVERSAL = "reversal", _("Reversal (dispute lost)")


class EhrPostingStatus(models.TextChoices):
    PENDING = "pending", _("Waiting to be posted")
    POSTED = "posted", _("Posted")
    # The EHR refused it, in its words; retried with backoff until the attempts run out.
    FAILED = "failed", _("Failed")


class CollectionRule(models.TextChoices):
    """The automation rule behind something LumaPay did by itself. Recorded on the request or
    transaction it made (``automation_rule``), in the audit event's ``changes["rule"]`` and on the
    Automation page, so staff can always see which rule acted and why."""

    COPAY_BEFORE_VISIT = "copay_before_visit", _("Copay request before the visit")
    HOLD_BEFORE_VISIT = "hold_before_visit", _("Copay held on the card on file before the visit")
    CAPTURE_AT_CHECK_IN = "capture_at_check_in", _("Held copay captured at check-in")
    RELEASE_MISSED_VISIT = "release_missed_visit", _("Hold released: the visit was cancelled or missed")
    HOLD_RENEWAL = "hold_renewal", _("Hold renewed before it lapses")
    BALANCE_REQUEST = "balance_request", _("Balance request")
    BALANCE_REMINDER = "balance_reminder", _("Balance reminder")
    PLAN_INSTALMENT = "plan_instalment", _("Payment plan instalment")
    EHR_POSTING = "ehr_posting", _("Payment posted to the EHR")


class PaymentPlanStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    NEEDS_ATTENTION = "needs_attention", _("Needs attention")
    COMPLETED = "completed", _("Paid in full")
    CANCELLED = "cancelled", _("Cancelled")


class InstalmentStatus(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    # Being charged: a sender holds it until ``claimed_until`` (a killed worker's claim runs out).
    CHARGING = "charging", _("Being charged")
    RETRYING = "retrying", _("Declined; will be tried again")
    PAID = "paid", _("Paid")
    # Declined on the last retry: staff decide (call the patient, change the card, cancel).
    NEEDS_ATTENTION = "needs_attention", _("Declined; needs attention")
    CANCELLED = "cancelled", _("Cancelled")


class PlanConsentSource(models.TextChoices):
    STAFF = "staff", _("Given to staff (in person or by phone)")
    PAY_LINK = "pay_link", _("Given by the patient on their payment link")
