"""Excel exports of exactly the transactions a member filtered on the dashboard.

A small export (at most ``settings.EXPORT_SYNC_MAX_ROWS`` rows) is written during the request and
downloaded at once. A larger one becomes a ``TransactionExport`` that a Celery task writes while the
page shows its progress; the file is kept until ``expires_at`` for the member who asked, and only
for them. Either way the export is a PHI access: one ``transactions.exported`` audit event with who,
when, the filters and the row count, and one ``ExportedTransaction`` row per transaction it held,
which puts the export on that transaction's timeline.

The workbook is written by openpyxl in write-only mode (with lxml) from a server-side cursor over
``values_list`` rows, so memory stays flat whatever the row count: no model instances, no
worksheet held in memory. Amounts are numbers (dollars, with a currency format), dates are dates in
the organization's timezone, and text a spreadsheet would take for a formula is neutralized.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from io import BytesIO
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import DatabaseError, connection, transaction as db_transaction
from django.db.models import DateTimeField, F, Func, QuerySet, Value
from django.db.models.functions import Concat
from django.utils import timezone
from openpyxl import Workbook
from openpyxl.cell import Cell, WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from lumapay.audit import audit_event_record
from lumapay.task_queue import task_enqueue_on_commit
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import ActorType
from org_profile.access import MANAGERS, AccessDenied, staff_access
from org_profile.enums import PaymentGateway
from org_profile.models import Organization

from ..enums import ExportStatus, PaymentRequestKind, TransactionStatus
from ..filters import CARD_BRANDS, TransactionFilter, query_from_params
from ..models import ExportedTransaction, Transaction, TransactionExport

logger = logging.getLogger(__name__)

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# How often the background export reports its progress to the page (rows).
PROGRESS_EVERY_ROWS = 2_000
# Rows fetched per round trip from the server-side cursor.
CHUNK_ROWS = 2_000
# A cell starting with one of these is a formula (or DDE payload) to Excel, LibreOffice and Sheets.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

# What openpyxl gives a datetime cell (the Filters sheet's date uses it too).
DATE_FORMAT = "yyyy-mm-dd h:mm:ss"


class ExportError(ApplicationError):
    pass


_EXPORT_DENIED = {AccessDenied.ROLE: "Only managers and administrators may export transactions."}


@dataclass(frozen=True)
class Column:
    header: str
    width: float
    kind: str  # "integer" | "datetime" | "text" | "money"


COLUMNS = [
    Column("Transaction ID", 14, "integer"),
    Column("Created", 17, "datetime"),
    Column("Paid", 17, "datetime"),
    Column("Patient", 28, "text"),
    Column("Patient EHR ID", 16, "text"),
    Column("Location", 20, "text"),
    Column("Kind", 10, "text"),
    Column("Billing item", 26, "text"),
    Column("Status", 18, "text"),
    Column("Amount", 12, "money"),
    Column("Collected", 12, "money"),
    Column("Refunded", 12, "money"),
    Column("Net", 12, "money"),
    Column("Processing fee", 14, "money"),
    Column("Platform fee", 13, "money"),
    Column("Currency", 9, "text"),
    Column("Vendor", 12, "text"),
    Column("Card brand", 14, "text"),
    Column("Card last 4", 11, "text"),
    Column("Authorization code", 18, "text"),
    Column("Processor reference", 24, "text"),
    Column("Last error", 40, "text"),
]

_STATUS = {value: str(label) for value, label in TransactionStatus.choices}
_KIND = {value: str(label) for value, label in PaymentRequestKind.choices}
_VENDOR = {PaymentGateway.SANDBOX.value: "Sandbox", PaymentGateway.STRIPE.value: "Stripe"}
_BRAND = dict(CARD_BRANDS)


@dataclass(frozen=True)
class ExportResult:
    """A small export's workbook (``content``), or the queued background ``export``."""

    row_count: int
    filename: str
    content: bytes | None = None
    export: TransactionExport | None = None
    # The patients of a workbook in ``content`` (a query of their ids): its PHI access.
    patient_ids: QuerySet | None = None


# -- what a spreadsheet cell may hold --------------------------------------------------------------


def neutralize(text: str) -> str:
    """Text that a spreadsheet would evaluate as a formula, prefixed with an apostrophe so it stays
    text (OWASP's advice for CSV/Excel injection)."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def money_format(currency: str) -> str:
    if currency.lower() == "usd":
        return '"$"#,##0.00;-"$"#,##0.00'
    return f'#,##0.00 "{currency.upper()}";-#,##0.00 "{currency.upper()}"'


# -- the rows --------------------------------------------------------------------------------------


class LocalTimestamp(Func):
    """``timezone('America/New_York', column)``: the wall-clock time there, without a zone, which is
    what a spreadsheet cell holds."""

    function = "timezone"
    output_field = DateTimeField()

    def __init__(self, column: str, zone: str):
        super().__init__(Value(zone), F(column))


def export_rows(transactions: QuerySet[Transaction], *, organization: Organization) -> QuerySet:
    """The export's rows as tuples, newest first, in the order of ``COLUMNS`` (less Net, which is
    derived), with dates already in the organization's local time."""
    zone = organization.timezone
    return (
        transactions.order_by("-created_at", "-id")
        .annotate(
            created_local=LocalTimestamp("created_at", zone),
            paid_local=LocalTimestamp("paid_at", zone),
            patient_name=Concat("patient__last_name", Value(", "), "patient__first_name"),
        )
        .values_list(
            "id", "created_local", "paid_local", "patient_name", "patient__external_ehr_id", "location__name",
            "kind", "billing_item", "status", "amount_cents", "charged_cents", "refunded_cents", "fee_cents",
            "platform_fee_cents", "currency", "vendor", "card_brand", "card_last4", "authorization_code", "gateway_charge_id",
            "last_error",
        )
    )


def workbook_write(
    rows: Iterable[tuple],
    target,
    *,
    organization: Organization,
    filter_summary: list[tuple[str, str]],
    exported_by: str,
    exported_at: datetime,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Write the Transactions sheet from ``rows`` (``export_rows`` tuples) and the Filters sheet,
    and save the workbook to ``target`` (a path or a binary file). Returns the number of rows."""
    workbook = Workbook(write_only=True)
    money = money_format(organization.currency)
    sheet = TypedRowsSheet(
        workbook,
        "Transactions",
        kinds=[column.kind for column in COLUMNS],
        number_formats={"money": money, "datetime": DATE_FORMAT},
    )
    for index, column in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    sheet.append_header([_styled(sheet, header, font=bold) for header in (column.header for column in COLUMNS)])

    # Plain values, in the order of COLUMNS: the sheet gives each column its type and format, and
    # neutralizes text. Amounts are cents / 100 as floats: a number cell holds a double whatever
    # was written, and the file gets the same digits a Decimal would give it.
    status_of, kind_of, vendor_of, brand_of = _STATUS.get, _KIND.get, _VENDOR.get, _BRAND.get
    append = sheet.append
    count = 0
    for (
        pk, created, paid, patient, ehr_id, location, kind, billing_item, status, amount, charged, refunded, fee,
        platform_fee, currency, vendor, brand, last4, authorization, charge_id, last_error,
    ) in rows:
        append(
            (
                pk, created, paid, patient, ehr_id, location, kind_of(kind, kind), billing_item,
                status_of(status, status), amount / 100, charged / 100, refunded / 100, (charged - refunded) / 100,
                fee / 100, platform_fee / 100, currency.upper(), vendor_of(vendor, vendor), brand_of(brand, brand), last4,
                authorization, charge_id, last_error,
            )
        )
        count += 1
        if on_progress is not None and count % PROGRESS_EVERY_ROWS == 0:
            on_progress(count)
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{count + 1}"

    about = workbook.create_sheet("Filters")
    about.column_dimensions["A"].width = 22
    about.column_dimensions["B"].width = 60
    about.append([_styled(about, "Filter", font=bold), _styled(about, "Value", font=bold)])
    if filter_summary:
        for label, value in filter_summary:
            about.append([neutralize(label), neutralize(value)])
    else:
        about.append(["(none)", "Every transaction the member may see"])
    about.append([])
    about.append([_styled(about, "Organization", font=bold), neutralize(organization.name)])
    about.append([_styled(about, "Exported by", font=bold), neutralize(exported_by)])
    about.append(
        [
            _styled(about, "Exported at", font=bold),
            _styled(about, exported_at.astimezone(ZoneInfo(organization.timezone)).replace(tzinfo=None), number_format=DATE_FORMAT),
        ]
    )
    about.append([_styled(about, "Timezone", font=bold), organization.timezone])
    about.append([_styled(about, "Rows", font=bold), count])
    workbook.save(target)
    return count


def _styled(sheet, value=None, *, font=None, number_format=None) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=value)
    if font is not None:
        cell.font = font
    if number_format is not None:
        cell.number_format = number_format
    return cell


# Text that needs more than copying into its cell: a formula prefix to neutralize, or a control
# character that XML cannot hold (openpyxl refuses it with IllegalCharacterError).
_CAREFUL_TEXT = re.compile(r"^[=+\-@\t\r]|[\000-\010\013\014\016-\037]").search
_DATA_TYPES = {"integer": "n", "money": "n", "datetime": "d", "text": "s"}


class TypedRowsSheet(WriteOnlyWorksheet):
    """A write-only sheet whose rows (after the header) are plain values in a fixed column layout.

    openpyxl's write-only sheet finds each value's type and makes a new cell for every styled
    value (an amount with its currency format, a date): for 100,000 rows that is most of the
    Python time an export spends beyond openpyxl's own XML writing. Here each column has one cell,
    made once with its type and format, and each row only puts its values in them; openpyxl's
    writer serializes them as it would any cell. Empty values (None, "") get no cell. Text that a
    spreadsheet would run as a formula is neutralized here, in every text column.
    """

    def __init__(self, workbook: Workbook, title: str, *, kinds: list[str], number_formats: dict[str, str]):
        super().__init__(parent=workbook, title=title)
        workbook._add_sheet(self)
        self._kinds = kinds
        self._columns = []
        for index, kind in enumerate(kinds, start=1):
            cell = Cell(self, row=1, column=index)
            if kind in number_formats:
                cell.number_format = number_formats[kind]
            cell.data_type = _DATA_TYPES[kind]
            self._columns.append((cell, kind == "text"))
        self._header_rows = 0

    def append_header(self, row) -> None:
        """Append a row the ordinary way (any values, styled cells): the rows above the data."""
        self._header_rows += 1
        self.append(row)

    def _values_to_row(self, values, row_idx):
        if row_idx <= self._header_rows:
            yield from super()._values_to_row(values, row_idx)
            return
        careful = _CAREFUL_TEXT
        for (cell, is_text), value in zip(self._columns, values):
            if value is None:
                continue
            if is_text:
                if not value:
                    continue
                if careful(value):
                    # The ordinary path: a cell of its own, whose setter refuses control characters.
                    yield Cell(self, row=row_idx, column=cell.column, value=neutralize(value))
                    continue
            cell._value = value
            cell.row = row_idx
            yield cell


# -- services --------------------------------------------------------------------------------------


def transaction_export_request(
    *, organization: Organization, actor, data, ip_address: str | None = None
) -> ExportResult:
    """Export the transactions ``data`` (the dashboard's query parameters) select.

    At most ``EXPORT_SYNC_MAX_ROWS`` rows: written now and returned, with its audit event. More: a
    queued ``TransactionExport`` that ``transaction_export_build`` writes in the background.
    """
    membership = staff_access(organization=organization, actor=actor, roles=MANAGERS, denied=_EXPORT_DENIED)
    filterset = TransactionFilter(data, membership=membership)
    if filterset.is_bound and not filterset.is_valid():
        raise ExportError("Correct the filters before exporting: some of them are not valid.")
    params = {name: values for name, values in filterset.used_params().lists()}
    summary = filterset.summary()
    transactions = filterset.qs
    count = transactions.order_by().count()
    now = timezone.now()

    if count <= settings.EXPORT_SYNC_MAX_ROWS:
        buffer = BytesIO()
        written = workbook_write(
            export_rows(transactions, organization=organization).iterator(chunk_size=CHUNK_ROWS),
            buffer,
            organization=organization,
            filter_summary=summary,
            exported_by=_person(actor),
            exported_at=now,
        )
        with db_transaction.atomic():
            event = audit_event_record(
                organization=organization,
                action=AuditAction.TRANSACTIONS_EXPORTED,
                actor_type=ActorType.STAFF,
                actor_user=actor,
                changes=_audit_changes(params, summary, written, export=None),
                ip_address=ip_address,
            )
            _exported_transactions_record(audit_event=event, transactions=transactions)
        return ExportResult(
            row_count=written,
            filename=export_filename(organization, now),
            content=buffer.getvalue(),
            patient_ids=transactions.order_by().values_list("patient_id", flat=True),
        )

    with db_transaction.atomic():
        export = TransactionExport.objects.create(
            organization=organization,
            requested_by=actor,
            filters=params,
            filter_summary=[list(pair) for pair in summary],
            status=ExportStatus.QUEUED,
            total_rows=count,
            expires_at=now + timedelta(hours=settings.EXPORT_TTL_HOURS),
        )
        export_id = export.pk
        task_enqueue_on_commit("transactions.tasks.transaction_export_build", export_id)
    return ExportResult(row_count=count, filename=export_filename(organization, now), export=export)


def transaction_export_build(*, export_id: int) -> TransactionExport:
    """Write a queued export's workbook, reporting progress, and record the PHI access.

    Claims the export (queued → running) under its row lock, so a second delivery of the task does
    nothing. The rows are the filters as the requester sees them now, up to the moment they asked:
    transactions created afterwards are not in it. Reads outside a transaction, so the progress
    updates commit as they go (Django then holds the server-side cursor WITH HOLD).
    """
    with db_transaction.atomic():
        # The export row alone: the organization and the member are read, not locked.
        export = (
            TransactionExport.objects.select_for_update(of=("self",))
            .select_related("organization", "requested_by")
            .get(pk=export_id)
        )
        if export.status != ExportStatus.QUEUED:
            return export
        export.status = ExportStatus.RUNNING
        export.save(update_fields=["status"])

    organization = export.organization
    try:
        membership = staff_access(organization=organization, actor=export.requested_by, roles=MANAGERS)
    except AccessDenied:
        return _export_failed(export, "You may no longer export this organization's transactions.")
    filterset = TransactionFilter(query_from_params(export.filters) or None, membership=membership)
    if filterset.is_bound and not filterset.is_valid():
        return _export_failed(export, "The filters are no longer valid (a location or billing item may be gone).")
    transactions = filterset.qs.filter(created_at__lte=export.created_at)

    def progress(rows: int) -> None:
        TransactionExport.objects.filter(pk=export.pk).update(rows_written=rows)

    try:
        with tempfile.TemporaryFile(suffix=".xlsx") as spool:
            written = workbook_write(
                export_rows(transactions, organization=organization).iterator(chunk_size=CHUNK_ROWS),
                spool,
                organization=organization,
                filter_summary=[tuple(pair) for pair in export.filter_summary],
                exported_by=_person(export.requested_by),
                exported_at=export.created_at,
                on_progress=progress,
            )
            spool.seek(0)
            export.file.save(f"transactions-{export.pk}.xlsx", File(spool), save=False)
    except (DatabaseError, OSError) as error:
        logger.exception("Transaction export %s failed", export.pk)
        return _export_failed(export, f"The export could not be written ({type(error).__name__}). Export again.")

    with db_transaction.atomic():
        export.status = ExportStatus.READY
        export.rows_written = written
        export.total_rows = written
        export.finished_at = timezone.now()
        export.save(update_fields=["status", "rows_written", "total_rows", "file", "finished_at"])
        event = audit_event_record(
            organization=organization,
            action=AuditAction.TRANSACTIONS_EXPORTED,
            actor_type=ActorType.STAFF,
            actor_user=export.requested_by,
            changes=_audit_changes(export.filters, export.filter_summary, written, export=export),
        )
        _exported_transactions_record(audit_event=event, transactions=transactions)
    return export


def transaction_export_download_record(*, export: TransactionExport, actor, ip_address: str | None = None) -> None:
    """Each download of a kept export is another PHI access."""
    audit_event_record(
        organization=export.organization,
        action=AuditAction.TRANSACTIONS_EXPORT_DOWNLOADED,
        actor_type=ActorType.STAFF,
        actor_user=actor,
        changes={"export_id": export.pk, "row_count": export.rows_written},
        ip_address=ip_address,
    )


def transaction_exports_expire(*, now: datetime | None = None) -> int:
    """Delete the files of exports past ``expires_at`` and mark them expired. Returns how many.

    Run by Celery beat; an export still queued or running when it expires is expired too (its
    worker died), and the member exports again.
    """
    now = now or timezone.now()
    expired = 0
    due = TransactionExport.objects.filter(expires_at__lte=now).exclude(status=ExportStatus.EXPIRED)
    for export_id in due.values_list("pk", flat=True):
        with db_transaction.atomic():
            export = TransactionExport.objects.select_for_update().filter(pk=export_id).first()
            if export is None or export.status == ExportStatus.EXPIRED:
                continue
            name = export.file.name
            export.status = ExportStatus.EXPIRED
            export.file = ""
            export.save(update_fields=["status", "file"])
            if name:
                db_transaction.on_commit(lambda name=name: default_storage.delete(name))
            expired += 1
    return expired


def export_filename(organization: Organization, moment: datetime) -> str:
    local = moment.astimezone(ZoneInfo(organization.timezone))
    return f"transactions-{organization.slug}-{local:%Y%m%d-%H%M}.xlsx"


def _export_failed(export: TransactionExport, message: str) -> TransactionExport:
    export.status = ExportStatus.FAILED
    export.error_message = message[:500]
    export.finished_at = timezone.now()
    export.save(update_fields=["status", "error_message", "finished_at"])
    return export


def _exported_transactions_record(*, audit_event, transactions: QuerySet) -> int:
    """Link each exported transaction to the export's audit event, so it shows on that
    transaction's timeline: one ``INSERT … SELECT`` over the export's own query, run by the
    database (the ids never come through Python, whatever the row count). Returns how many.

    The set is the filters' rows when the audit event is written, a moment after the workbook:
    only a transaction whose status or amounts changed in between could differ.
    """
    ids_sql, params = transactions.order_by().values_list("pk", flat=True).query.sql_with_params()
    table = ExportedTransaction._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (transaction_id, audit_event_id) "
            f"SELECT DISTINCT exported.id, %s::bigint FROM ({ids_sql}) AS exported (id)",
            [audit_event.pk, *params],
        )
        return cursor.rowcount


def _person(user) -> str:
    name = user.get_full_name()
    return f"{name} <{user.email}>" if name else user.email


def _audit_changes(params: dict, summary, row_count: int, *, export: TransactionExport | None) -> dict:
    return {
        "filters": params,
        "filter_summary": [list(pair) for pair in summary],
        "row_count": row_count,
        "export_id": export.pk if export is not None else None,
        "format": "xlsx",
    }
