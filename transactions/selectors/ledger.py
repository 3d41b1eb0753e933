"""Reads of transactions for staff pages: tenant and location scope, the refundable remainder and
the timeline that merges the ledger with the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet, Sum
from django.shortcuts import get_object_or_404

from lumapay.models import ActorType, AuditEvent
from org_profile.models import Membership
from org_profile.selectors import scope_to_locations

from ..enums import DeliveryChannel, RefundStatus, TransactionEventKind as Kind
from ..models import Refund, Transaction, TransactionEvent

# Ledger kinds and audit actions that mean something went wrong: the timeline shows them in red.
ERROR_EVENT_KINDS = frozenset({Kind.CHARGE_FAILED, Kind.REFUND_FAILED})

# Audit actions the timeline leaves out: PHI-access records (every visit to the page would add a
# line), and actions whose fact the ledger already shows ("charge_requested", "refund_requested").
TIMELINE_HIDDEN_ACTIONS = frozenset({"transaction.viewed", "patient.viewed", "checkout.started", "refund.requested"})
# Words in an audit action that mean something went wrong for the patient or the clinic.
_ERROR_ACTION_WORDS = ("failed", "locked", "refused")

# Titles for the audit actions the payment services write; any other action is shown as its
# name in words ("payment_request.cancelled" → "Payment request cancelled").
AUDIT_ACTION_TITLES = {
    "payment_request.delivery_sent": "Payment link delivered",
    "payment_request.delivery_failed": "Payment link not delivered",
    "payment_request.paid": "Payment request marked paid",
    "pay_link.opened": "Payment link opened",
    "pay_link.verification_passed": "Date of birth confirmed",
    "pay_link.verification_failed": "Date of birth did not match",
    "pay_link.verification_refused": "Date of birth check refused",
    "pay_link.locked": "Payment link locked after too many attempts",
    "receipt.sent": "Receipt e-mailed",
    "receipt.skipped": "No receipt sent",
    "refund.retried": "Refund sent to the processor again",
}

LEDGER_TITLES = {
    Kind.CHARGE_REQUESTED: "Checkout started",
    Kind.CHARGE_SUCCEEDED: "Payment succeeded",
    Kind.CHARGE_FAILED: "Payment failed",
    Kind.REFUND_REQUESTED: "Refund requested",
    Kind.REFUND_SUCCEEDED: "Refund succeeded",
    Kind.REFUND_FAILED: "Refund failed",
}

# Where the audit helper's callers put a failure's text in ``changes``.
_AUDIT_MESSAGE_KEYS = ("error", "error_message", "failure_message", "message", "reason")
_CHANNEL_LABELS = dict(DeliveryChannel.choices)
# Reason codes some audit events carry, in words.
_REASON_TEXTS = {
    "link_locked": "The link was locked after too many wrong dates of birth.",
    "address_limit": "Too many wrong dates of birth from the same address.",
    "no_email": "The patient has no e-mail address.",
}


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    title: str
    actor: str
    amount_cents: int | None = None
    currency: str = "usd"
    detail: str = ""
    is_error: bool = False
    source: str = ""  # "ledger" | "audit"


def transactions_for(*, membership: Membership) -> QuerySet[Transaction]:
    """The member's organization's transactions (a sub-account user's locations only), newest first.

    The ordering matches the (organization, -created_at, -id) index, so a page is an index range.
    """
    transactions = Transaction.objects.filter(organization_id=membership.organization_id).select_related(
        "patient", "location"
    )
    return scope_to_locations(transactions, membership=membership).order_by("-created_at", "-id")


def transaction_get(*, membership: Membership, pk: int) -> Transaction:
    """One transaction the member may see; 404 for another organization's or another location's."""
    return get_object_or_404(transactions_for(membership=membership).select_related("payment_request"), pk=pk)


def refund_reserved_cents(*, transaction: Transaction) -> int:
    """What refunds still waiting for the gateway hold back from the refundable remainder."""
    reserved = Refund.objects.filter(transaction=transaction, status=RefundStatus.REQUESTED).aggregate(
        total=Sum("amount_cents")
    )["total"]
    return reserved or 0


def transaction_refundable_cents(*, transaction: Transaction) -> int:
    """Charged, less refunds that succeeded, less refunds still waiting for the gateway.

    Exact only under the transaction's row lock (``refund_create`` calls it there); elsewhere it is
    what the page shows, and the service checks again.
    """
    return max(transaction.unrefunded_cents - refund_reserved_cents(transaction=transaction), 0)


def transaction_refunds(*, transaction: Transaction) -> list[Refund]:
    return list(Refund.objects.filter(transaction=transaction).select_related("requested_by").order_by("created_at", "id"))


def transaction_timeline(*, transaction: Transaction) -> list[TimelineEntry]:
    """Everything that happened to a transaction and its payment request, oldest first."""
    vendor = transaction.get_vendor_display()
    rows: list[tuple[datetime, int, int, TimelineEntry]] = []

    events = TransactionEvent.objects.filter(transaction=transaction).select_related("actor_user")
    for event in events:
        is_error = event.kind in ERROR_EVENT_KINDS
        detail = event.message
        if event.kind == Kind.REFUND_REQUESTED and event.message:
            detail = f"Reason: {event.message}"
        entry = TimelineEntry(
            at=event.created_at,
            title=LEDGER_TITLES.get(event.kind, event.get_kind_display()),
            actor=_actor_label(event.actor_type, event.actor_user, vendor),
            amount_cents=event.amount_cents or None,
            currency=event.currency,
            detail=detail,
            is_error=is_error,
            source="ledger",
        )
        rows.append((event.created_at, 0, event.pk, entry))

    linked = Q(transaction=transaction)
    if transaction.payment_request_id:
        linked |= Q(payment_request_id=transaction.payment_request_id)
    audits = (
        AuditEvent.objects.filter(linked, organization_id=transaction.organization_id)
        .exclude(action__in=TIMELINE_HIDDEN_ACTIONS)
        .select_related("actor_user")
    )
    for audit in audits:
        is_error = any(word in audit.action for word in _ERROR_ACTION_WORDS)
        entry = TimelineEntry(
            at=audit.created_at,
            title=AUDIT_ACTION_TITLES.get(audit.action, _humanize(audit.action)),
            actor=_actor_label(audit.actor_type, audit.actor_user, vendor),
            detail=_audit_detail(audit),
            is_error=is_error,
            source="audit",
        )
        rows.append((audit.created_at, 1, audit.pk, entry))

    rows.sort(key=lambda row: row[:3])
    return [row[3] for row in rows]


def _actor_label(actor_type: str, user, vendor: str) -> str:
    if actor_type == ActorType.STAFF:
        return str(user) if user is not None else "Clinic staff"
    if actor_type == ActorType.PATIENT:
        return "Patient"
    if actor_type == ActorType.GATEWAY:
        return vendor
    return "LumaPay"


def _humanize(action: str) -> str:
    text = action.replace(".", " ").replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _audit_detail(audit: AuditEvent) -> str:
    changes = audit.changes if isinstance(audit.changes, dict) else {}
    for key in _AUDIT_MESSAGE_KEYS:
        value = changes.get(key)
        if isinstance(value, str) and value:
            return _REASON_TEXTS.get(value, value)
    channels = changes.get("channels") or [changes.get("channel")]
    labels = [str(_CHANNEL_LABELS.get(channel, channel)) for channel in channels if channel]
    return f"By {' and '.join(labels)}" if labels else ""
