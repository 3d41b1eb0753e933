"""Reads of Excel exports: only the member who asked ever sees one."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from org_profile.models import Membership

from lumapay.enums import AuditAction
from lumapay.models import AuditEvent

from ..enums import ExportStatus
from ..models import ExportedTransaction, Transaction, TransactionExport

# Statuses during which the page keeps polling.
EXPORT_IN_PROGRESS = (ExportStatus.QUEUED, ExportStatus.RUNNING)


def exports_of_requester(*, membership: Membership, limit: int = 20) -> QuerySet[TransactionExport]:
    """The member's own exports in their current organization, newest first."""
    return TransactionExport.objects.filter(
        organization_id=membership.organization_id, requested_by_id=membership.user_id
    ).order_by("-created_at", "-id")[:limit]


def export_of_requester(*, membership: Membership, pk: int) -> TransactionExport | None:
    """One export, for the member who asked for it. Anyone else, in this organization or another,
    gets None (the view answers 404): an export's existence is not theirs to know."""
    return (
        TransactionExport.objects.select_related("organization")
        .filter(pk=pk, organization_id=membership.organization_id, requested_by_id=membership.user_id)
        .first()
    )


def export_is_downloadable(export: TransactionExport) -> bool:
    return export.status == ExportStatus.READY and bool(export.file) and export.expires_at > timezone.now()


def export_percent(export: TransactionExport) -> int:
    if export.status == ExportStatus.READY:
        return 100
    if not export.total_rows:
        return 0
    return min(99, export.rows_written * 100 // export.total_rows)


def export_patient_ids(export: TransactionExport) -> QuerySet:
    """The ids of the patients a kept export's workbook names (through the transactions its audit
    event holds), for the PHI access log of each download."""
    events = AuditEvent.objects.filter(
        organization_id=export.organization_id,
        action=AuditAction.TRANSACTIONS_EXPORTED,
        created_at__gte=export.created_at,
        changes__export_id=export.pk,
    ).values("pk")
    return Transaction.objects.filter(
        organization_id=export.organization_id,
        pk__in=ExportedTransaction.objects.filter(audit_event_id__in=events).values("transaction_id"),
    ).values_list("patient_id", flat=True)
