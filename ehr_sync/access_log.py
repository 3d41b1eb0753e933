"""The organization's PHI access log as administrators read it: who looked at one patient, and the
whole log for a date range as a CSV file.

The log itself is written by ``lumapay.phi_access`` from every page that shows a patient. Both
readers here are for administrators only; the export is itself audited (an audit event with the
range and the row count) and recorded as an access to every patient it names.
"""

from __future__ import annotations

import csv
import datetime
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from django.db.models import QuerySet

from lumapay.audit import actor_from, audit_event_record
from lumapay.enums import AuditAction
from lumapay.models import PhiAccess, PhiAccessPatient
from lumapay.phi_access import page_label, patient_accesses
from lumapay.tenant_rls import organization_scope
from org_profile.access import ADMINISTRATORS, staff_access
from org_profile.models import Organization

# The profile shows this many of the latest looks; the rest are a link away.
PROFILE_RECENT_ACCESSES = 10
# A spreadsheet evaluates a cell starting with one of these as a formula (or a DDE payload).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")

CSV_HEADER = [
    "When (organization time)",
    "Staff member",
    "E-mail",
    "Through",
    "Page",
    "Path",
    "Patient id",
    "Patient",
    "Patients on the page",
    "IP address",
    "Browser",
]


def patient_access_history(*, organization: Organization, patient_id: int) -> QuerySet[PhiAccessPatient]:
    """Who looked at the patient, newest first (the access and its staff member joined)."""
    return patient_accesses(organization=organization, patient_id=patient_id)


def access_log_bounds(organization: Organization, date_from: datetime.date, date_to: datetime.date):
    """The first and the last day, whole, in the organization's time zone, as aware datetimes
    (the end is the next day's midnight, excluded)."""
    zone = ZoneInfo(organization.timezone)
    start = datetime.datetime.combine(date_from, datetime.time.min, tzinfo=zone)
    end = datetime.datetime.combine(date_to + datetime.timedelta(days=1), datetime.time.min, tzinfo=zone)
    return start, end


def access_log_rows(*, organization: Organization, date_from: datetime.date, date_to: datetime.date) -> QuerySet:
    """One row per patient per access in the range, in the order they happened."""
    start, end = access_log_bounds(organization, date_from, date_to)
    return (
        PhiAccessPatient.objects.filter(
            organization=organization,
            access__organization=organization,
            access__accessed_at__gte=start,
            access__accessed_at__lt=end,
        )
        .select_related("access", "access__actor_user", "patient")
        .order_by("access_id", "patient_id")
    )


def access_log_patient_ids(*, organization: Organization, date_from: datetime.date, date_to: datetime.date):
    return access_log_rows(organization=organization, date_from=date_from, date_to=date_to).values_list(
        "patient_id", flat=True
    )


def neutralize(text: str) -> str:
    """Text a spreadsheet would run as a formula, kept as text with a leading apostrophe."""
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def phi_access_log_export(
    *, organization: Organization, actor, date_from: datetime.date, date_to: datetime.date, ip_address=None
) -> Iterator[str]:
    """The access log of ``organization`` for the days ``date_from``..``date_to`` (its time zone)
    as CSV lines, for an administrator. Records the export as an audit event first."""
    staff_access(organization=organization, actor=actor, roles=ADMINISTRATORS)
    rows = access_log_rows(organization=organization, date_from=date_from, date_to=date_to)
    actor_type, actor_user = actor_from(actor)
    audit_event_record(
        organization=organization,
        action=AuditAction.PHI_ACCESS_LOG_EXPORTED,
        actor_type=actor_type,
        actor_user=actor_user,
        changes={"date_from": date_from.isoformat(), "date_to": date_to.isoformat(), "row_count": rows.count()},
        ip_address=ip_address,
    )
    return _csv_lines(rows, ZoneInfo(organization.timezone), organization_id=organization.pk)


def _csv_lines(rows: QuerySet, zone: ZoneInfo, *, organization_id: int) -> Iterator[str]:
    """The file's lines, read inside the organization's scope itself: the response streams after
    the view has returned and the request's scope (org_profile.middleware) has been left, where
    row-level security would show this cursor no rows and the file would hold its header only."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    with organization_scope(organization_id):
        yield from _csv_rows(writer, rows, zone)


def _csv_rows(writer, rows: QuerySet, zone: ZoneInfo) -> Iterator[str]:
    for row in rows.iterator(chunk_size=2000):
        access: PhiAccess = row.access
        user = access.actor_user
        yield writer.writerow(
            [
                neutralize(str(value))
                for value in (
                    access.accessed_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                    user.get_full_name() if user else "",
                    user.email if user else "",
                    "Operators' admin" if access.is_operator else "LumaPay",
                    page_label(access.page),
                    access.path,
                    row.patient_id,
                    row.patient.full_name,
                    access.patient_count,
                    access.ip_address or "",
                    access.user_agent,
                )
            ]
        )


def access_log_filename(organization: Organization, date_from: datetime.date, date_to: datetime.date) -> str:
    return f"access-log-{organization.slug}-{date_from:%Y%m%d}-{date_to:%Y%m%d}.csv"
