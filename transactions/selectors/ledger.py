"""Reads of transactions for staff pages: tenant and location scope, the refundable remainder and
the audit timeline that merges the ledger with the audit trail."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import BigIntegerField, Count, Func, Max, Q, QuerySet, Sum
from django.utils.dateparse import parse_datetime

from lumapay.enums import AuditAction, audit_action_label
from lumapay.models import ActorType, AuditEvent
from lumapay.dates import format_datetime
from lumapay.money import format_cents
from org_profile.models import Membership, Organization
from org_profile.selectors import scope_to_locations

from ..enums import CollectionRule, DeliveryChannel, RefundStatus, TransactionEventKind as Kind
from ..models import ExportedTransaction, Refund, Transaction, TransactionEvent
from ..problems import FAILURE_KINDS, unresolved_failures

# Ledger kinds that mean the processor failed a payment or a refund. Those no later success
# resolved (``transactions.problems``) are the timeline's red "Error" entries and its "problems
# with this payment"; resolved ones stay on the timeline as history. The dashboard's "has errors"
# filter reads the same rule from ``Transaction.has_unresolved_problems``.
ERROR_EVENT_KINDS = FAILURE_KINDS
# Ledger kinds that need a manager's attention without being a processing error: a cardholder's
# dispute, and an issuer's inquiry about a charge (which, unlike a dispute, takes no money).
WARNING_EVENT_KINDS = frozenset({Kind.DISPUTE_OPENED, Kind.DISPUTE_LOST, Kind.INQUIRY_OPENED})
# Audit actions that are errors in processing the request: the patient never got the link, or
# their receipt (given up after repeated failures, with the reason).
ERROR_ACTIONS = frozenset({AuditAction.PAYMENT_REQUEST_DELIVERY_FAILED, AuditAction.RECEIPT_NOT_SENT})
# Audit actions that are worth noticing but are not a fault of the payment: a wrong date of birth.
WARNING_ACTIONS = frozenset(
    {
        AuditAction.PAY_LINK_VERIFICATION_FAILED,
        AuditAction.PAY_LINK_VERIFICATION_REFUSED,
        AuditAction.PAY_LINK_LOCKED,
        AuditAction.SAVED_CARD_REFUSED,
        AuditAction.AUTHORIZATION_RENEWAL_FAILED,
    }
)

# Audit actions the timeline leaves out, because a ledger event already tells the same fact
# ("checkout.started" is the "charge requested" event, "refund.requested" the "refund requested"
# event, "payment_request.paid" the "charge succeeded" event), or because they are about the
# patient rather than this payment ("patient.viewed"). Staff views of the transaction are not
# lines either: they are counted into one (``transaction_views_summary``).
TIMELINE_HIDDEN_ACTIONS = frozenset(
    {
        AuditAction.CHECKOUT_STARTED,
        AuditAction.REFUND_REQUESTED,
        AuditAction.PAYMENT_REQUEST_PAID,
        AuditAction.PATIENT_VIEWED,
        AuditAction.TRANSACTION_VIEWED,
    }
)

LEDGER_TITLES = {
    Kind.CHARGE_REQUESTED: "Checkout started",
    Kind.CHARGE_SUCCEEDED: "Payment succeeded",
    Kind.CHARGE_FAILED: "Payment failed",
    Kind.REFUND_REQUESTED: "Refund requested",
    Kind.REFUND_SUCCEEDED: "Refund succeeded",
    Kind.REFUND_FAILED: "Refund failed",
}

# A refund made at the processor outside LumaPay (``Refund.is_made_outside``): its request has a title of
# its own, and it and its outcome this actor.
OUTSIDE_REFUND_TITLE = "Refund made outside LumaPay"

GATEWAY_ACTOR = "Payment processor"
OUTSIDE_ACTOR = "Payment processor (outside LumaPay)"
SYSTEM_ACTOR = "LumaPay"
PATIENT_ACTOR = "Patient"

# Where the audit helper's callers put a failure's text in ``changes``.
_AUDIT_MESSAGE_KEYS = ("error", "error_message", "failure_message", "message", "reason")
# The channels as a sentence says them ("by e-mail and text message"), not as a label ("SMS").
CHANNEL_WORDS = {DeliveryChannel.EMAIL: "e-mail", DeliveryChannel.SMS: "text message"}
# Reason codes some audit events carry, in words.
_REASON_TEXTS = {
    "link_locked": "The link was locked after too many wrong dates of birth.",
    "address_limit": "Too many wrong dates of birth from the same address.",
    "no_email": "The patient has no e-mail address.",
}
# Why a charge, hold, capture or release of a card on file was refused (saved_card.refused).
_CARD_REFUSAL_TEXTS = {
    "role": "the member's role may not use cards on file",
    "location": "not one of the member's locations",
    "not_a_member": "not a member of this organization",
    "limit": "above the organization's limit for one charge",
}


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a transaction's audit timeline.

    ``anchor`` is unique on the page (the problems summary links to it); ``reference`` is the
    processor's id for the charge or refund; ``other_transaction_id`` names another checkout of the
    same payment request when the entry happened there.
    """

    at: datetime
    title: str
    actor: str
    anchor: str
    amount_cents: int | None = None
    currency: str = "usd"
    detail: str = ""
    is_error: bool = False  # a failure no later success resolved: a problem
    is_resolved: bool = False  # a failure a later success resolved: history
    is_warning: bool = False
    source: str = ""  # "ledger" | "funds" | "audit"
    reference: str = ""
    other_transaction_id: int | None = None


def organization_zone(organization: Organization) -> zoneinfo.ZoneInfo:
    """The organization's time zone, for every date a clinic or its patients read."""
    try:
        return zoneinfo.ZoneInfo(organization.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def transactions_for(*, membership: Membership) -> QuerySet[Transaction]:
    """The member's organization's transactions (a sub-account user's locations only), newest first.

    The ordering matches the (organization, -created_at, -id) index, so a page is an index range.
    """
    transactions = Transaction.objects.filter(organization_id=membership.organization_id).select_related(
        "patient", "location"
    )
    return scope_to_locations(transactions, membership=membership).order_by("-created_at", "-id")


def transaction_get(*, membership: Membership, pk: int) -> Transaction | None:
    """One transaction the member may see; None for another organization's or another location's."""
    return transactions_for(membership=membership).select_related("payment_request", "organization").filter(pk=pk).first()


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


def transaction_net_cents(*, transaction: Transaction) -> int:
    """What the clinic keeps: charged, less refunds that succeeded (whoever made them), less what
    disputes withdrew and did not reinstate, less the processor's fees (on the charge, and for
    disputes) and the platform's (Stripe does not give the platform's fee back when a payment is
    refunded)."""
    return (
        transaction.charged_cents
        - transaction.refunded_cents
        - transaction.disputed_cents
        - transaction.fee_cents
        - transaction.dispute_fee_cents
        - transaction.platform_fee_cents
    )


def transaction_timeline(*, transaction: Transaction) -> list[TimelineEntry]:
    """Everything that happened to a transaction and its payment request, oldest first.

    Five queries whatever the length: the ledger events of the request's checkouts; the audit
    events of the transaction and its request, each with its staff user; the exports that held it
    (through ``ExportedTransaction``); and staff views, counted into one line by one aggregate
    query (plus the last viewer's row), never loaded one by one.
    """
    rows: list[tuple[datetime, int, int, int, TimelineEntry]] = []
    audits = list(_audit_events(transaction)) + list(_export_events(transaction))
    # The patient's address for each checkout they started, from the audit event of the same step.
    checkout_addresses = {
        (audit.changes or {}).get("checkout_id"): audit.ip_address
        for audit in audits
        if audit.action == AuditAction.CHECKOUT_STARTED and isinstance(audit.changes, dict)
    }

    events = list(_ledger_events(transaction))
    unresolved = {event.pk for event in unresolved_failures(events)}
    for event in events:
        other = event.transaction_id if event.transaction_id != transaction.pk else None
        ip_address = checkout_addresses.get(event.gateway_reference) if event.kind == Kind.CHARGE_REQUESTED else None
        made_outside = event.refund is not None and event.refund.is_made_outside
        title = LEDGER_TITLES.get(event.kind, event.get_kind_display())
        if made_outside and event.kind == Kind.REFUND_REQUESTED:
            title = OUTSIDE_REFUND_TITLE
        entry = TimelineEntry(
            at=event.created_at,
            title=title,
            actor=OUTSIDE_ACTOR if made_outside else actor_label(event.actor_type, event.actor_user, ip_address),
            anchor=f"ledger-{event.pk}",
            amount_cents=event.amount_cents or None,
            currency=event.currency,
            detail=_ledger_detail(event, transaction),
            is_error=event.pk in unresolved,
            is_resolved=event.kind in ERROR_EVENT_KINDS and event.pk not in unresolved,
            is_warning=event.kind in WARNING_EVENT_KINDS,
            source="ledger",
            reference=event.gateway_reference,
            other_transaction_id=other,
        )
        rows.append((event.created_at, 0, event.pk, 0, entry))
        fee = _fee_entry(event, transaction)
        if fee is not None:
            rows.append((event.created_at, 0, event.pk, 1, fee))

    for audit in audits:
        if audit.action in TIMELINE_HIDDEN_ACTIONS:
            continue
        other = audit.transaction_id if audit.transaction_id not in (None, transaction.pk) else None
        entry = TimelineEntry(
            at=audit.created_at,
            title=audit_action_label(audit.action),
            actor=actor_label(audit.actor_type, audit.actor_user, audit.ip_address),
            anchor=f"audit-{audit.pk}",
            detail=_audit_detail(audit, transaction),
            is_error=audit.action in ERROR_ACTIONS,
            is_warning=audit.action in WARNING_ACTIONS,
            source="audit",
            other_transaction_id=other,
        )
        rows.append((audit.created_at, 1, audit.pk, 0, entry))

    views = transaction_views_summary(transaction=transaction)
    if views is not None:
        rows.append((views.last_at, 2, 0, 0, views.entry()))

    rows.sort(key=lambda row: row[:4])
    return [row[4] for row in rows]


@dataclass(frozen=True)
class ViewsSummary:
    """Staff views of one transaction (each one stays an audit event in the PHI access log)."""

    count: int
    staff_count: int
    last_at: datetime
    last_by: str

    def entry(self) -> TimelineEntry:
        times = "once" if self.count == 1 else f"{self.count:,} times"
        people = f"{self.staff_count} staff member{'' if self.staff_count == 1 else 's'}"
        return TimelineEntry(
            at=self.last_at, title=f"Viewed {times} by {people}", actor=self.last_by, anchor="views", source="views"
        )


def transaction_views_summary(*, transaction: Transaction) -> ViewsSummary | None:
    """How often, by how many staff members, and last by whom a transaction was viewed: one
    aggregate query over its "transaction.viewed" events, and the last viewer's user row."""
    summary = AuditEvent.objects.filter(
        organization_id=transaction.organization_id,
        transaction_id=transaction.pk,
        action=AuditAction.TRANSACTION_VIEWED,
    ).aggregate(
        count=Count("id"),
        staff_count=Count("actor_user_id", distinct=True),
        last_at=Max("created_at"),
        last_user_id=Func(
            ArrayAgg("actor_user_id", order_by=("-created_at", "-id")),
            template="(%(expressions)s)[1]",
            output_field=BigIntegerField(),
        ),
    )
    if not summary["count"]:
        return None
    last_user = get_user_model().objects.filter(pk=summary["last_user_id"]).first()
    return ViewsSummary(
        count=summary["count"],
        staff_count=summary["staff_count"],
        last_at=summary["last_at"],
        last_by=actor_label(ActorType.STAFF, last_user),
    )


def timeline_problems(timeline: list[TimelineEntry]) -> list[TimelineEntry]:
    """The entries a manager has to look at: unresolved errors in processing or refunding, oldest
    first (a declined card the patient then paid with another card is not one)."""
    return [entry for entry in timeline if entry.is_error]


def _ledger_events(transaction: Transaction) -> QuerySet[TransactionEvent]:
    # Every checkout of the same payment request: a declined attempt on an earlier, expired
    # checkout is part of this payment's story.
    if transaction.payment_request_id:
        scope = Q(transaction__payment_request_id=transaction.payment_request_id)
    else:
        scope = Q(transaction_id=transaction.pk)
    return (
        TransactionEvent.objects.filter(scope, organization_id=transaction.organization_id)
        .select_related("actor_user", "refund")
        .order_by("created_at", "id")
    )


def _audit_events(transaction: Transaction) -> QuerySet[AuditEvent]:
    linked = Q(transaction_id=transaction.pk)
    if transaction.payment_request_id:
        linked |= Q(payment_request_id=transaction.payment_request_id)
    return (
        AuditEvent.objects.filter(linked, organization_id=transaction.organization_id)
        # Views are counted, not listed; "checkout.started" stays: it holds the patient's address.
        .exclude(action=AuditAction.TRANSACTION_VIEWED)
        .select_related("actor_user")
        .order_by("created_at", "id")
    )


def _export_events(transaction: Transaction) -> QuerySet[AuditEvent]:
    """The exports that held this transaction, found through ``ExportedTransaction``'s primary key
    (a query of its own: inside the OR above, PostgreSQL could not use that index)."""
    exported_in = ExportedTransaction.objects.filter(transaction_id=transaction.pk).values("audit_event_id")
    return (
        AuditEvent.objects.filter(
            organization_id=transaction.organization_id,
            action=AuditAction.TRANSACTIONS_EXPORTED,
            pk__in=exported_in,
        )
        .select_related("actor_user")
        .order_by("created_at", "id")
    )


def _fee_entry(event: TransactionEvent, transaction: Transaction) -> TimelineEntry | None:
    """The processor's fee, beside the charge it was taken from."""
    if event.kind != Kind.CHARGE_SUCCEEDED or event.transaction_id != transaction.pk or not transaction.fee_cents:
        return None
    fee = format_cents(-transaction.fee_cents, transaction.currency)
    net = format_cents(event.amount_cents - transaction.fee_cents, transaction.currency)
    return TimelineEntry(
        at=event.created_at,
        title=f"Processing fee {fee}, net {net}",
        actor=GATEWAY_ACTOR,
        anchor=f"fee-{event.pk}",
        source="funds",
    )


def _ledger_detail(event: TransactionEvent, transaction: Transaction) -> str:
    if event.kind == Kind.REFUND_REQUESTED:
        return f"Reason: {event.message}" if event.message else ""
    if event.kind in ERROR_EVENT_KINDS:
        return event.message or "The payment processor gave no reason."
    if (
        event.kind == Kind.CHARGE_SUCCEEDED
        and event.transaction_id == transaction.pk
        and transaction.card_last4
    ):
        card = f"{transaction.card_brand.title()} ···· {transaction.card_last4}"
        if transaction.authorization_code:
            return f"{card}, authorization code {transaction.authorization_code}"
        return card
    return event.message


def actor_label(actor_type: str, user, ip_address: str | None = None) -> str:
    """Who did something, as every timeline and history names them: the staff member, the patient
    (and from where), the payment processor, or LumaPay itself."""
    if actor_type == ActorType.STAFF:
        if user is None:
            return "Clinic staff"
        name = user.get_full_name()
        return f"{name} ({user.email})" if name else user.email
    if actor_type == ActorType.PATIENT:
        return f"{PATIENT_ACTOR} ({ip_address})" if ip_address else PATIENT_ACTOR
    if actor_type == ActorType.GATEWAY:
        return GATEWAY_ACTOR
    return SYSTEM_ACTOR


def channels_text(changes: dict) -> str:
    """How a message went, as every timeline and history says it: "By e-mail and text message"."""
    channels = changes.get("channels") or [changes.get("channel")]
    words = [CHANNEL_WORDS.get(channel, channel) for channel in channels if channel]
    return f"By {' and '.join(words)}" if words else ""


def _audit_detail(audit: AuditEvent, transaction: Transaction) -> str:
    """What the entry says beside its title; for something LumaPay did by itself, the rule first."""
    detail = _audit_detail_text(audit, transaction)
    changes = audit.changes if isinstance(audit.changes, dict) else {}
    rule = changes.get("rule")
    if not rule:
        return detail
    try:
        label = str(CollectionRule(rule).label)
    except ValueError:
        label = str(rule)
    return f"By the rule: {label}." + (f" {detail}" if detail else "")


def _audit_detail_text(audit: AuditEvent, transaction: Transaction) -> str:
    changes = audit.changes if isinstance(audit.changes, dict) else {}
    if audit.action == AuditAction.PAY_LINK_VERIFICATION_FAILED:
        count = changes.get("failed_verification_count")
        if isinstance(count, list) and len(count) == 2:
            return f"Wrong date of birth, attempt {count[1]} on this link."
    if audit.action == AuditAction.PAY_LINK_LOCKED:
        until = changes.get("verification_locked_until")
        locked_until = parse_datetime(until[1]) if isinstance(until, list) and until[1:] and until[1] else None
        if locked_until is not None:
            return f"Locked until {format_datetime(locked_until, organization_zone(transaction.organization))}."
    if audit.action == AuditAction.SAVED_CARD_REFUSED:
        attempted = str(changes.get("attempted", "")).capitalize()
        reason = changes.get("reason", "")
        return f"{attempted}: {_CARD_REFUSAL_TEXTS.get(reason, reason)}."
    if audit.action == AuditAction.TRANSACTIONS_EXPORTED:
        rows = changes.get("row_count", changes.get("rows"))
        return f"{rows} rows" if isinstance(rows, int) else ""
    channels = channels_text(changes)
    for key in _AUDIT_MESSAGE_KEYS:
        value = changes.get(key)
        if isinstance(value, str) and value:
            message = _REASON_TEXTS.get(value, value)
            return f"{channels}: {message}" if channels and audit.action in ERROR_ACTIONS else message
    return channels
