"""The payouts CSV: exactly the filtered set, for the clinic's bookkeeper.

Streamed as it is read: a server-side cursor (``QuerySet.iterator(chunk_size=…)``) feeds
``csv.writer`` a chunk of rows at a time, so 100,000 payouts never sit in memory. The database
writes each cell as its text: dates in the organization's time zone, amounts as plain numbers in
dollars with two decimals (``1234.50``: a spreadsheet reads a number, never "$1,234.50" text),
labels for statuses, and free text from the gateway (payout id, bank digits, trace id, failure
reason) made formula-safe with the Excel export's rule (``transactions.services.exports``:
``FORMULA_PREFIXES`` gets an apostrophe in front). Python only writes the rows out.

No patient information: a payout is money the gateway sent the clinic's bank.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from itertools import islice

from django.db.models import Case, CharField, F, Func, QuerySet, Value, When
from django.db.models.functions import Cast, Coalesce, NullIf, Upper
from django.utils import timezone

from lumapay.audit import actor_from, audit_event_record
from lumapay.enums import AuditAction
from lumapay.tenant_rls import organization_scope
from org_profile.access import MANAGERS, staff_access
from org_profile.models import Organization
from transactions.services.exports import FORMULA_PREFIXES

from .enums import PayoutMethod, PayoutStatus, Reconciliation
from .models import Payout

HEADER = [
    "Payout ID", "Created", "Arrival date", "Status", "Method", "Amount", "Currency", "Bank account (last 4)",
    "Trace ID", "Failure reason", "Reconciliation",
]
CHUNK_ROWS = 2000

_EXPORT_DENIED = {"role": "Only managers and administrators may export payouts."}


class _LocalText(Func):
    """``to_char(timezone(zone, column), format)``: the wall-clock time in the organization's zone."""

    output_field = CharField()

    def __init__(self, column: str, zone: str, pattern: str):
        super().__init__(Func(Value(zone), F(column), function="timezone"), Value(pattern), function="to_char")


class _DollarsText(Func):
    """Cents as dollars with two decimals, as text: 123456 → ``1234.56``, -5 → ``-0.05``."""

    template = "((%(expressions)s)::numeric / 100)::numeric(20, 2)::text"
    output_field = CharField()


class _FormulaSafe(Func):
    """The SQL twin of ``transactions.services.exports.neutralize``: text starting with one of
    ``FORMULA_PREFIXES`` gets an apostrophe in front so a spreadsheet keeps it as text."""

    output_field = CharField()

    def as_sql(self, compiler, connection, **extra):
        text, params = compiler.compile(self.source_expressions[0])
        placeholders = ", ".join(["%s"] * len(FORMULA_PREFIXES))
        return (
            f"(CASE WHEN left({text}, 1) IN ({placeholders}) THEN '''' || {text} ELSE {text} END)",
            [*params, *FORMULA_PREFIXES, *params, *params],
        )


def _labels(field: str, choices) -> Case:
    return Case(*(When(**{field: value}, then=Value(str(label))) for value, label in choices),
                default=F(field), output_field=CharField())


def export_rows(payouts: QuerySet[Payout], *, organization: Organization) -> QuerySet:
    """The CSV's rows as tuples of text in ``HEADER``'s order, newest first."""
    zone = organization.timezone
    return (
        payouts.order_by("-created_at", "-id")
        .annotate(
            _created=_LocalText("created_at", zone, "YYYY-MM-DD HH24:MI:SS"),
            _arrival=Cast("arrival_date", CharField()),
            _status=_labels("status", PayoutStatus.choices),
            _method=_labels("method", PayoutMethod.choices),
            _amount=_DollarsText("amount_cents"),
            _currency=Upper("currency"),
            _payout_id=_FormulaSafe(F("gateway_payout_id")),
            _last4=_FormulaSafe(F("bank_last4")),
            _trace=_FormulaSafe(F("trace_id")),
            _failure=_FormulaSafe(Coalesce(NullIf("failure_message", Value("")), F("failure_code"))),
            _reconciliation=_labels("reconciliation", Reconciliation.choices),
        )
        .values_list(
            "_payout_id", "_created", "_arrival", "_status", "_method", "_amount", "_currency", "_last4", "_trace",
            "_failure", "_reconciliation",
        )
    )


def payouts_export_csv(
    *, organization: Organization, actor, payouts: QuerySet[Payout], filters: dict, ip_address: str | None = None
) -> tuple[int, Iterator[str]]:
    """Record the export (``PAYOUTS_EXPORTED``, with the filters and the number of rows) and
    return that number and the CSV's text, in chunks, to stream. Managers and administrators only."""
    staff_access(organization=organization, actor=actor, roles=MANAGERS, denied=_EXPORT_DENIED)
    payouts = payouts.filter(organization=organization)
    row_count = payouts.count()
    actor_type, actor_user = actor_from(actor)
    audit_event_record(
        organization=organization,
        action=AuditAction.PAYOUTS_EXPORTED,
        actor_type=actor_type,
        actor_user=actor_user,
        changes={"filters": filters, "row_count": row_count},
        ip_address=ip_address,
    )
    return row_count, _chunks(export_rows(payouts, organization=organization), organization_id=organization.pk)


def _chunks(rows: QuerySet, *, organization_id: int) -> Iterator[str]:
    """The header, then ``CHUNK_ROWS`` rows at a time as one string.

    Read inside the organization's scope itself: the response is streamed after the view has
    returned and the request's scope (org_profile.middleware) has been left, and row-level
    security would otherwise show this cursor no rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    yield buffer.getvalue()
    with organization_scope(organization_id):
        iterator = rows.iterator(chunk_size=CHUNK_ROWS)
        while batch := list(islice(iterator, CHUNK_ROWS)):
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(batch)
            yield buffer.getvalue()


def export_filename(organization: Organization) -> str:
    return f"payouts-{organization.slug}-{timezone.localdate():%Y%m%d}.csv"
