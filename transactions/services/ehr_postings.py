"""Every payment, refund and reversal posted back to the organization's EHR, exactly once.

The books (``EhrPosting``, one row per money event) live here; the wire (FHIR, HL7 v2 over MLLP)
is ``ehr_sync.posting``.

Owing a posting
---------------
``ehr_posting_owe`` runs inside ``transaction_event_append``, in the database transaction that
writes the money event (a charge succeeded, a refund succeeded, a dispute lost): the event and its
posting commit together or not at all, and the send task is queued once they have. The organization
must post through a connection (an active FHIR or HL7 connection with posting turned on, the first
by id when there are several), and the event must be newer than the moment posting was turned on
(``posting_since``): turning it on does not send the EHR the clinic's whole history. A beat sweep
(``ehr_postings_sweep``) is the safety net: it owes the postings of recent events that have none
(an event written by a path that did not call the ledger, a connection turned on a minute late)
and queues again every posting whose task was lost or whose worker died.

Sending one (``ehr_posting_send``, the task ``ehr_posting_send``), as the outbox does: claim under
the row's lock (a lease, ``claimed_until``: two workers never send the same row at once), send
with no database transaction open, record the outcome in another short one. Posted: done, with the
EHR's reference and an audit event (LumaPay, rule ``ehr_posting``). Refused: failed, in the EHR's
words. Unanswered (a lost ACK, a timeout): still pending. Both are sent again after a backoff,
until ``EHR_POSTING_MAX_ATTEMPTS``; a manager or an administrator can press "Post again".

Organizations that post through no connection (their data comes from uploads) get the daily
posting file instead (``ehr_posting_file``): the day's payments, refunds and reversals as CSV.
"""

from __future__ import annotations

import csv
import datetime
import zoneinfo
import io
import logging
import random
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction as db_transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ehr_sync.access_log import neutralize
from ehr_sync.enums import ConnectionOption
from ehr_sync.posting import PostingOutcome, PostingRecord, posting_enabled, posting_send
from lumapay.audit import actor_from, audit_event_record
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import ActorType
from lumapay.task_queue import task_enqueue_on_commit
from org_profile.access import MANAGERS, staff_access
from org_profile.models import Organization

from ..enums import CollectionRule, EhrPostingKind, EhrPostingStatus, TransactionEventKind as Kind
from ..locks import ehr_posting_lock
from ..models import EhrPosting, TransactionEvent
from ..selectors.ehr_postings import posting_connection_for, posting_connections

logger = logging.getLogger(__name__)

SEND_TASK = "transactions.tasks.ehr_posting_send"
# Which ledger events are money the EHR hears about, and as what.
POSTED_EVENT_KINDS = {
    Kind.CHARGE_SUCCEEDED: EhrPostingKind.PAYMENT,
    Kind.REFUND_SUCCEEDED: EhrPostingKind.REFUND,
    Kind.DISPUTE_LOST: EhrPostingKind.REVERSAL,
}
BACKOFF_FIRST_SECONDS = 60
BACKOFF_MAX_SECONDS = 6 * 3600
# The sweep leaves a due row this long to the task queued for it before queueing another.
SWEEP_GRACE = datetime.timedelta(minutes=1)
# How far back the sweep looks for money events without a posting.
SWEEP_LOOKBACK = datetime.timedelta(days=7)
_DENIED = {"role": "Only managers and administrators can post to the EHR again or download posting files."}


class EhrPostingRefused(ApplicationError):
    pass


# -- owing -------------------------------------------------------------------------------------------


def ehr_posting_owe(*, event: TransactionEvent) -> EhrPosting | None:
    """Owe the EHR the posting of a money event, in the caller's database transaction (the one
    that wrote the event). Once per event: a second call returns the first one's row. None when
    the event moves no money the EHR hears about, or the organization posts through no connection."""
    kind = POSTED_EVENT_KINDS.get(event.kind)
    if kind is None or event.amount_cents <= 0:
        return None
    connection = posting_connection_for(event.organization_id)
    if connection is None:
        return None
    since = parse_datetime(str((connection.options or {}).get(ConnectionOption.POSTING_SINCE) or ""))
    if since is not None and event.created_at < since:
        return None
    try:
        with db_transaction.atomic():
            posting = EhrPosting.objects.create(
                organization_id=event.organization_id,
                transaction_id=event.transaction_id,
                event=event,
                connection=connection,
                kind=kind,
                amount_cents=event.amount_cents,
                currency=event.currency,
            )
    except IntegrityError:
        return EhrPosting.objects.get(event=event)
    # robust: a broker that is down must not undo the payment; the sweep queues it later.
    task_enqueue_on_commit(SEND_TASK, posting.pk, robust=True)
    return posting


# -- sending -----------------------------------------------------------------------------------------


def ehr_posting_send(*, posting_id: int) -> EhrPosting | None:
    """Post one row to the EHR: claim, send, record. Does nothing to a row that is posted, claimed
    by another worker or not due, so a second delivery of the task is harmless. Returns the row as
    it stands (None: no such row)."""
    posting, claimed = _claim(posting_id)
    if not claimed:
        return posting
    if not posting_enabled(posting.connection):
        # Turned off (or the connection paused) after the posting was owed: nothing is sent, and
        # nothing is retried by itself; "Post again" sends it once posting is on again.
        outcome = PostingOutcome(
            PostingOutcome.REFUSED,
            f"Posting is off on the connection “{posting.connection.name}”: turn it on, then press Post again.",
        )
        return _outcome_record(posting.pk, posting.attempts, outcome, final=True)
    record = posting_record(posting)
    outcome = posting_send(posting.connection, record)
    # The posting's id only: the EHR's words may name the patient.
    logger.info("EHR posting %s attempt %s: %s", posting.pk, posting.attempts, outcome.status)
    return _outcome_record(posting.pk, posting.attempts, outcome)


def posting_record(posting: EhrPosting) -> PostingRecord:
    transaction = posting.transaction
    appointment = transaction.appointment
    return PostingRecord(
        posting_id=str(posting.public_id),
        charge_id=transaction.gateway_charge_id or f"lumapay-transaction-{transaction.pk}",
        kind=posting.kind,
        amount_cents=posting.amount_cents,
        currency=posting.currency,
        # In the clinic's time zone: the day the EHR files it on (FHIR paymentDate, HL7 FT1-4) is
        # the clinic's day, as in the daily posting file.
        occurred_at=posting.event.created_at.astimezone(zoneinfo.ZoneInfo(transaction.organization.timezone)),
        patient_ehr_id=transaction.patient.external_ehr_id,
        appointment_ehr_id=appointment.external_ehr_id if appointment is not None else "",
        location_ehr_id=transaction.location.ehr_location_id,
    )


def _claim(posting_id: int) -> tuple[EhrPosting | None, bool]:
    now = timezone.now()
    with db_transaction.atomic():
        posting = ehr_posting_lock(posting_id=posting_id, skip_locked=True)
        if posting is None:
            return EhrPosting.objects.filter(pk=posting_id).first(), False
        if (
            posting.status == EhrPostingStatus.POSTED
            or (posting.claimed_until is not None and posting.claimed_until > now)
            or posting.next_attempt_at is None
            or posting.next_attempt_at > now
        ):
            return posting, False
        posting.attempts += 1
        posting.claimed_until = now + datetime.timedelta(seconds=settings.EHR_POSTING_CLAIM_LEASE_SECONDS)
        posting.save(update_fields=["attempts", "claimed_until", "updated_at"])
    posting = EhrPosting.objects.select_related(
        "connection", "event", "transaction__patient", "transaction__location", "transaction__appointment"
    ).get(pk=posting_id)
    return posting, True


def _outcome_record(posting_id: int, attempt: int, outcome: PostingOutcome, *, final: bool = False) -> EhrPosting:
    now = timezone.now()
    with db_transaction.atomic():
        posting = ehr_posting_lock(posting_id=posting_id)
        if posting.status == EhrPostingStatus.POSTED:
            return posting
        if not outcome.is_posted and posting.attempts != attempt:
            # Our lease ran out and a newer send owns the row now: its outcome is the one to keep.
            return posting
        before = posting.status
        posting.claimed_until = None
        if outcome.is_posted:
            posting.status = EhrPostingStatus.POSTED
            posting.posted_at = now
            posting.ehr_reference = outcome.reference[:200]
            posting.error_message = ""
            posting.next_attempt_at = None
            action = AuditAction.EHR_POSTING_POSTED
        else:
            exhausted = final or posting.attempts >= settings.EHR_POSTING_MAX_ATTEMPTS
            message = outcome.message
            if outcome.status == PostingOutcome.REFUSED:
                posting.status = EhrPostingStatus.FAILED
            elif exhausted:
                posting.status = EhrPostingStatus.FAILED
                message = f"No answer after {posting.attempts} attempt{'s' if posting.attempts != 1 else ''}: {message}"
            posting.error_message = message[:500]
            posting.next_attempt_at = None if exhausted else now + datetime.timedelta(seconds=backoff_seconds(posting.attempts))
            action = AuditAction.EHR_POSTING_FAILED if posting.status == EhrPostingStatus.FAILED else None
        posting.save()
        # The timeline hears of the posting once posted, and of each time it turns failed (not of
        # every retry of a failure that stays the same).
        if action is not None and not (action == AuditAction.EHR_POSTING_FAILED and before == EhrPostingStatus.FAILED):
            _audit(posting, action, attempt)
    return posting


def _audit(posting: EhrPosting, action: str, attempt: int) -> None:
    audit_event_record(
        organization=posting.organization,
        action=action,
        actor_type=ActorType.SYSTEM,
        transaction=posting.transaction,
        patient=posting.transaction.patient,
        changes={
            "rule": CollectionRule.EHR_POSTING,
            "posting_id": str(posting.public_id),
            "kind": posting.kind,
            "connection_id": posting.connection_id,
            "attempt": attempt,
            "ehr_reference": posting.ehr_reference,
            "error": posting.error_message,
        },
    )


def backoff_seconds(attempts: int) -> int:
    """After the ``attempts``-th failed send: doubling from a minute, capped at 6 hours, with jitter."""
    base = min(BACKOFF_FIRST_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS)
    return max(1, round(base * random.uniform(0.8, 1.2)))


def ehr_postings_sweep(*, now: datetime.datetime | None = None) -> int:
    """The beat's safety net (every ``EHR_POSTINGS_SWEEP_EVERY_SECONDS``): owe the postings of the
    last week's money events that have none, and queue again every posting that is due and that
    no live worker holds. Returns how many were queued."""
    now = now or timezone.now()
    # Only organizations that post through a connection: an upload-only clinic's events never get
    # a posting, and must not fill the sweep's batch.
    posting_organizations = posting_connections().values("organization_id")
    missing = TransactionEvent.objects.filter(
        organization_id__in=posting_organizations,
        kind__in=list(POSTED_EVENT_KINDS),
        created_at__gte=now - SWEEP_LOOKBACK,
        ehr_posting__isnull=True,
    ).order_by("created_at", "pk")[:1000]
    for event in missing:
        with db_transaction.atomic():
            ehr_posting_owe(event=event)
    due = (
        EhrPosting.objects.exclude(status=EhrPostingStatus.POSTED)
        .filter(next_attempt_at__lte=now)
        .filter(Q(claimed_until__lte=now) | Q(claimed_until__isnull=True, next_attempt_at__lte=now - SWEEP_GRACE))
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:1000]
    )
    ids = list(due)
    for posting_id in ids:
        task_enqueue_on_commit(SEND_TASK, posting_id)
    return len(ids)


# -- staff -------------------------------------------------------------------------------------------


def ehr_posting_retry(*, organization: Organization, actor, posting: EhrPosting, ip_address: str | None = None) -> EhrPosting:
    """"Post again": send a posting that is not posted now, whatever its backoff (managers and
    administrators). Audited; the send happens in the task, as every send does."""
    staff_access(organization=organization, actor=actor, roles=MANAGERS, denied=_DENIED)
    actor_type, actor_user = actor_from(actor)
    with db_transaction.atomic():
        locked = ehr_posting_lock(posting_id=posting.pk)
        if locked is None or locked.organization_id != organization.pk:
            raise EhrPostingRefused("No such posting.")
        if locked.status == EhrPostingStatus.POSTED:
            raise EhrPostingRefused("This was posted to the EHR already.")
        if locked.claimed_until is not None and locked.claimed_until > timezone.now():
            raise EhrPostingRefused("LumaPay is posting this right now: look again in a minute.")
        locked.next_attempt_at = timezone.now()
        locked.save(update_fields=["next_attempt_at", "updated_at"])
        audit_event_record(
            organization=organization,
            action=AuditAction.EHR_POSTING_RETRIED,
            actor_type=actor_type,
            actor_user=actor_user,
            transaction=locked.transaction,
            changes={"posting_id": str(locked.public_id), "kind": locked.kind, "status": locked.status},
            ip_address=ip_address,
        )
        task_enqueue_on_commit(SEND_TASK, locked.pk)
    return locked


# -- the daily posting file --------------------------------------------------------------------------

POSTING_FILE_HEADER = [
    "Date", "Time", "Kind", "Amount", "Currency", "Patient EHR id", "Patient", "Appointment EHR id",
    "Location", "Location EHR id", "LumaPay transaction", "LumaPay posting reference", "Processor reference",
]
POSTING_FILE_KINDS = {
    EhrPostingKind.PAYMENT: "Payment", EhrPostingKind.REFUND: "Refund", EhrPostingKind.REVERSAL: "Reversal",
}


@dataclass(frozen=True)
class PostingFile:
    filename: str
    content: bytes
    rows: int


def ehr_posting_file_days(*, organization: Organization, zone, today: datetime.date, days: int = 14) -> list[tuple[datetime.date, int]]:
    """The last ``days`` local days and how many money events each holds, newest first."""
    start = datetime.datetime.combine(today - datetime.timedelta(days=days - 1), datetime.time.min, tzinfo=zone)
    counts: dict[datetime.date, int] = {}
    for created_at in TransactionEvent.objects.filter(
        organization=organization, kind__in=list(POSTED_EVENT_KINDS), amount_cents__gt=0, created_at__gte=start
    ).values_list("created_at", flat=True):
        day = created_at.astimezone(zone).date()
        counts[day] = counts.get(day, 0) + 1
    return [(today - datetime.timedelta(days=n), counts.get(today - datetime.timedelta(days=n), 0)) for n in range(days)]


def ehr_posting_file(
    *, organization: Organization, actor, day: datetime.date, zone, ip_address: str | None = None
) -> PostingFile:
    """The day's payments, refunds and reversals (the organization's local day) as a CSV the clinic
    uploads to its EHR: amounts as numbers (a refund or a reversal negative), text made safe from
    spreadsheet formulas. Managers and administrators; each download is audited."""
    staff_access(organization=organization, actor=actor, roles=MANAGERS, denied=_DENIED)
    start = datetime.datetime.combine(day, datetime.time.min, tzinfo=zone)
    end = start + datetime.timedelta(days=1)
    events = (
        TransactionEvent.objects.filter(
            organization=organization,
            kind__in=list(POSTED_EVENT_KINDS),
            amount_cents__gt=0,
            created_at__gte=start,
            created_at__lt=end,
        )
        .select_related("transaction__patient", "transaction__location", "transaction__appointment")
        .order_by("created_at", "pk")
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(POSTING_FILE_HEADER)
    rows = 0
    patient_ids = set()
    for event in events:
        kind = POSTED_EVENT_KINDS[event.kind]
        transaction = event.transaction
        moment = event.created_at.astimezone(zone)
        amount = Decimal(event.amount_cents) / 100 * (1 if kind == EhrPostingKind.PAYMENT else -1)
        appointment = transaction.appointment
        writer.writerow(
            [
                moment.date().isoformat(),
                moment.strftime("%H:%M:%S"),
                POSTING_FILE_KINDS[kind],
                f"{amount:.2f}",
                event.currency.upper(),
                neutralize(transaction.patient.external_ehr_id),
                neutralize(transaction.patient.full_name),
                neutralize(appointment.external_ehr_id if appointment is not None else ""),
                neutralize(transaction.location.name),
                neutralize(transaction.location.ehr_location_id),
                transaction.pk,
                f"E{event.pk}",
                neutralize(event.gateway_reference or transaction.gateway_charge_id),
            ]
        )
        rows += 1
        patient_ids.add(transaction.patient_id)
    actor_type, actor_user = actor_from(actor)
    audit_event_record(
        organization=organization,
        action=AuditAction.EHR_POSTING_FILE_DOWNLOADED,
        actor_type=actor_type,
        actor_user=actor_user,
        changes={"day": day.isoformat(), "rows": rows},
        ip_address=ip_address,
    )
    return PostingFile(
        filename=f"ehr-postings-{day.isoformat()}.csv", content=buffer.getvalue().encode("utf-8-sig"), rows=rows
    )
