"""Excel exports of the dashboard's filtered transactions: content read back with openpyxl, the
small download, the background export with its progress, who may download it, expiry, audit."""

import datetime
from decimal import Decimal
from io import BytesIO
from zoneinfo import ZoneInfo

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from lumapay.models import ActorType, AuditEvent
from org_profile.enums import PaymentGateway, Role
from tests.factories import LocationFactory, MembershipFactory, PatientFactory
from transactions.enums import ExportStatus, PaymentRequestKind
from transactions.models import Transaction, TransactionExport
from transactions.services import exports as export_services
from transactions.tasks import transaction_export_build, transaction_exports_expire

from .dashboard_support import ledger_transaction, local

pytestmark = pytest.mark.django_db

EXPORT = reverse("transactions:export_create")
LA = "America/Los_Angeles"
HEADERS = [
    "Transaction ID", "Created", "Paid", "Patient", "Patient EHR ID", "Location", "Kind", "Billing item", "Status",
    "Amount", "Collected", "Refunded", "Net", "Processing fee", "Platform fee", "Currency", "Vendor", "Card brand", "Card last 4",
    "Authorization code", "Processor reference", "Last error",
]
USD = '"$"#,##0.00;-"$"#,##0.00'


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def clinic(organization, location, other_location):
    organization.timezone = LA
    organization.save(update_fields=["timezone"])
    ana = PatientFactory(organization=organization, first_name="Ana", last_name="Ruiz", external_ehr_id="MRN-1")
    # Text a spreadsheet would run as a formula, in every field a person or a gateway controls.
    mallory = PatientFactory(
        organization=organization, first_name='HYPERLINK("http://evil.example")', last_name="=1+2",
        external_ehr_id="@SUM(A1)",
    )
    rows = {
        "paid": ledger_transaction(
            organization=organization, location=location, patient=ana, created_at=local(LA, 2026, 3, 2, 9, 15),
            paid_at=local(LA, 2026, 3, 2, 9, 17), amount_cents=4250, billing_item="Office visit copay",
            refunded_cents=1250, vendor=PaymentGateway.SANDBOX, card_brand="visa",
        ),
        "declined": ledger_transaction(
            organization=organization, location=location, patient=ana, created_at=local(LA, 2026, 3, 3, 10, 0),
            amount_cents=9900, kind=PaymentRequestKind.BALANCE, billing_item="+Statement balance",
            outcome="declined", card_brand="mastercard", card_last4="0002",
        ),
        "mallory": ledger_transaction(
            organization=organization, location=other_location, patient=mallory,
            created_at=local(LA, 2026, 3, 4, 11, 0), amount_cents=1000, billing_item="-10 visit\t",
            card_brand="amex", card_last4="0005",
        ),
        "april": ledger_transaction(
            organization=organization, location=location, patient=ana, created_at=local(LA, 2026, 4, 2, 8, 0),
            amount_cents=2000, billing_item="\rcarriage",
        ),
    }
    return rows


def _workbook(content: bytes):
    return load_workbook(BytesIO(content))


def _sheet_rows(workbook, name):
    return [list(row) for row in workbook[name].iter_rows(values_only=True)]


def test_a_small_export_downloads_at_once_with_exactly_the_filtered_rows(client_for, manager, clinic):
    response = client_for(manager).post(EXPORT, {"created_from": "2026-03-01", "created_to": "2026-03-31"})

    assert response.status_code == 200
    assert response["Content-Type"] == export_services.XLSX_CONTENT_TYPE
    assert response["Content-Disposition"].startswith('attachment; filename="transactions-riverside-')
    assert response["Cache-Control"] == "no-store"
    workbook = _workbook(response.content)
    assert workbook.sheetnames == ["Transactions", "Filters"]
    rows = _sheet_rows(workbook, "Transactions")
    assert rows[0] == HEADERS
    assert [row[0] for row in rows[1:]] == [clinic["mallory"].pk, clinic["declined"].pk, clinic["paid"].pk]
    assert TransactionExport.objects.count() == 0


def test_cells_are_numbers_dates_and_text_with_formats(client_for, manager, clinic, location):
    Transaction.objects.filter(pk=clinic["paid"].pk).update(platform_fee_cents=153)  # the platform's fee, $1.53
    response = client_for(manager).post(EXPORT, {"q": "ruiz", "status": ["partially_refunded"]})
    sheet = _workbook(response.content)["Transactions"]
    header, row = list(sheet.iter_rows(min_row=1, max_row=2))
    paid = clinic["paid"]

    assert [cell.value for cell in row] == [
        paid.pk,
        datetime.datetime(2026, 3, 2, 9, 15),  # Los Angeles wall-clock time, no zone
        datetime.datetime(2026, 3, 2, 9, 17),
        "Ruiz, Ana",
        "MRN-1",
        location.name,
        "Copay",
        "Office visit copay",
        "Partially refunded",
        42.5,
        42.5,
        12.5,
        30,
        0,
        1.53,
        "USD",
        "Sandbox",
        "Visa",
        "4242",
        None,
        None,
        None,
    ]
    by_header = dict(zip([cell.value for cell in header], row))
    for name in ("Amount", "Collected", "Refunded", "Net", "Processing fee"):
        assert by_header[name].data_type == "n" and by_header[name].number_format == USD
    for name in ("Created", "Paid"):
        assert by_header[name].is_date and by_header[name].number_format == "yyyy-mm-dd h:mm:ss"
    assert by_header["Transaction ID"].data_type == "n"
    assert by_header["Card last 4"].data_type == "s"
    assert all(cell.font.b for cell in header)


def test_the_sheet_has_frozen_headers_widths_and_a_filter(client_for, manager, clinic):
    workbook = _workbook(client_for(manager).post(EXPORT, {}).content)
    sheet = workbook["Transactions"]

    assert sheet.freeze_panes == "A2"
    assert sheet.column_dimensions["A"].width == 14
    assert sheet.column_dimensions["D"].width == 28
    assert sheet.column_dimensions["V"].width == 40
    assert sheet.auto_filter.ref == "A1:V5"


def test_text_that_a_spreadsheet_would_run_is_neutralized(client_for, manager, clinic):
    workbook = _workbook(client_for(manager).post(EXPORT, {"q": "=cmd|' /C calc'!A0"}).content)
    everything = _workbook(client_for(manager).post(EXPORT, {}).content)
    rows = {row[0]: row for row in _sheet_rows(everything, "Transactions")[1:]}

    mallory = rows[clinic["mallory"].pk]
    assert mallory[3] == """'=1+2, HYPERLINK("http://evil.example")"""
    assert mallory[4] == "'@SUM(A1)"
    assert mallory[7] == "'-10 visit\t"
    assert rows[clinic["declined"].pk][7] == "'+Statement balance"
    assert rows[clinic["april"].pk][7] == "'\rcarriage"
    for sheet in everything.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", cell.coordinate
    # What the member typed in the filters is neutralized on the Filters sheet too.
    assert _sheet_rows(workbook, "Filters")[1] == ["Patient", "'=cmd|' /C calc'!A0"]


def test_the_filters_sheet_lists_the_filters_who_when_and_the_row_count(client_for, manager, clinic, other_location):
    manager.first_name, manager.last_name = "Morgan", "Reyes"
    manager.save(update_fields=["first_name", "last_name"])

    response = client_for(manager).post(
        EXPORT,
        {"created_from": "2026-03-01", "amount_min": "10", "location": [str(other_location.pk)],
         "status": ["succeeded"], "has_errors": "false"},
    )
    rows = _sheet_rows(_workbook(response.content), "Filters")

    assert rows[:6] == [
        ["Filter", "Value"],
        ["Created", "from Mar 1, 2026"],
        ["Amount", "from $10.00"],
        ["Status", "Succeeded"],
        ["Location", "Northside Clinic"],
        ["Errors", "Without errors"],
    ]
    assert rows[6] == [None, None]
    assert rows[7] == ["Organization", "Riverside Family Medicine"]
    assert rows[8] == ["Exported by", f"Morgan Reyes <{manager.email}>"]
    assert rows[9][0] == "Exported at"
    now_in_los_angeles = timezone.localtime(timezone=ZoneInfo(LA)).replace(tzinfo=None)
    assert abs((rows[9][1] - now_in_los_angeles).total_seconds()) < 120
    assert rows[10] == ["Timezone", LA]
    assert rows[11] == ["Rows", 1]


def test_the_export_is_recorded_as_a_phi_access(client_for, manager, clinic):
    client_for(manager).post(EXPORT, {"kind": ["copay"], "created_to": "2026-03-31"}, REMOTE_ADDR="10.0.0.7")

    event = AuditEvent.objects.get(action="transactions.exported")
    assert (event.organization_id, event.actor_type, event.actor_user_id, event.ip_address) == (
        clinic["paid"].organization_id, ActorType.STAFF, manager.pk, "10.0.0.7",
    )
    assert event.changes == {
        "filters": {"created_to": ["2026-03-31"], "kind": ["copay"]},
        "filter_summary": [["Created", "up to Mar 31, 2026"], ["Kind", "Copay"]],
        "row_count": 2,
        "export_id": None,
        "format": "xlsx",
    }


def test_sub_account_users_may_not_export(client_for, staff_user, clinic):
    response = client_for(staff_user).post(EXPORT, {})

    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="transactions.exported").exists()
    assert TransactionExport.objects.count() == 0


def test_invalid_filters_are_refused_with_nothing_exported(client_for, manager, clinic):
    response = client_for(manager).post(EXPORT, {"amount_min": "lots", "kind": ["copay"]})

    assert response.status_code == 302
    assert response.url == "/?amount_min=lots&kind=copay"
    assert not AuditEvent.objects.filter(action="transactions.exported").exists()


def test_only_the_organizations_rows_even_with_another_organizations_ids(client_for, manager, clinic, other_organization):
    theirs = ledger_transaction(
        organization=other_organization, location=LocationFactory(organization=other_organization),
        patient=PatientFactory(organization=other_organization), created_at=local(LA, 2026, 3, 5, 9, 0),
    )

    rows = _sheet_rows(_workbook(client_for(manager).post(EXPORT, {}).content), "Transactions")

    assert theirs.pk not in [row[0] for row in rows[1:]]
    assert len(rows) == 5


# -- large exports, in the background --------------------------------------------------------------


@pytest.fixture
def large(settings):
    settings.EXPORT_SYNC_MAX_ROWS = 2


def _request_large(client, capture, params=None):
    with capture(execute=True):
        response = client.post(EXPORT, params or {})
    return response


def test_a_large_export_runs_in_the_background_and_downloads_for_its_requester(
    client_for, manager, clinic, large, django_capture_on_commit_callbacks
):
    client = client_for(manager)
    response = _request_large(client, django_capture_on_commit_callbacks, {"created_to": "2026-03-31"})

    export = TransactionExport.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("transactions:export_detail", args=[export.pk])
    assert (export.status, export.total_rows, export.rows_written, export.requested_by_id) == (
        ExportStatus.READY, 3, 3, manager.pk,
    )
    assert export.filters == {"created_to": ["2026-03-31"]}
    assert export.filter_summary == [["Created", "up to Mar 31, 2026"]]
    assert export.file.name.startswith("exports/") and default_storage.exists(export.file.name)
    assert abs((export.expires_at - export.created_at) - datetime.timedelta(hours=24)) < datetime.timedelta(seconds=1)

    page = client.get(response.url).content.decode()
    assert reverse("transactions:export_download", args=[export.pk]) in page
    assert "hx-trigger" not in page

    download = client.get(reverse("transactions:export_download", args=[export.pk]))
    content = b"".join(download.streaming_content)
    assert download.status_code == 200
    assert download["Content-Type"] == export_services.XLSX_CONTENT_TYPE
    assert download["Cache-Control"] == "no-store"
    rows = _sheet_rows(_workbook(content), "Transactions")
    assert [row[0] for row in rows[1:]] == [clinic["mallory"].pk, clinic["declined"].pk, clinic["paid"].pk]
    assert _sheet_rows(_workbook(content), "Filters")[-1] == ["Rows", 3]

    exported = AuditEvent.objects.get(action="transactions.exported")
    assert (exported.actor_user_id, exported.changes["row_count"], exported.changes["export_id"]) == (
        manager.pk, 3, export.pk,
    )
    downloaded = AuditEvent.objects.get(action="transactions.export_downloaded")
    assert (downloaded.actor_user_id, downloaded.changes) == (manager.pk, {"export_id": export.pk, "row_count": 3})


def test_nobody_else_may_see_or_download_an_export(
    client_for, manager, clinic, large, organization, other_organization, django_capture_on_commit_callbacks
):
    _request_large(client_for(manager), django_capture_on_commit_callbacks)
    export = TransactionExport.objects.get()
    colleague = MembershipFactory(organization=organization, role=Role.ADMINISTRATOR).user
    outsider = MembershipFactory(organization=other_organization, role=Role.MANAGER).user
    urls = [
        reverse("transactions:export_detail", args=[export.pk]),
        reverse("transactions:export_download", args=[export.pk]),
    ]

    for user in (colleague, outsider):
        client = client_for(user)
        assert [client.get(url).status_code for url in urls] == [404, 404]
        assert export.pk not in [e.pk for e in client.get(reverse("transactions:export_list")).context["exports"]]
    assert not AuditEvent.objects.filter(action="transactions.export_downloaded").exists()


def test_the_page_polls_while_the_export_runs(client_for, manager, organization):
    export = TransactionExport.objects.create(
        organization=organization, requested_by=manager, status=ExportStatus.RUNNING, total_rows=3000,
        rows_written=1000, expires_at=timezone.now() + datetime.timedelta(hours=24),
        filter_summary=[["Kind", "Copay"]], filters={"kind": ["copay"]},
    )
    client = client_for(manager)
    url = reverse("transactions:export_detail", args=[export.pk])

    page = client.get(url)
    partial = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="export-status")
    body = partial.content.decode()

    assert page.templates[0].name == "transactions/exports/detail.html"
    assert "Kind</dt><dd>Copay" in page.content.decode()
    assert 'href="/?kind=copay"' in page.content.decode()
    assert partial.templates[0].name == "transactions/exports/_status.html"
    assert body.lstrip().startswith('<div id="export-status"')
    assert f'hx-get="{url}" hx-trigger="every 1s"' in body
    assert '<progress id="export-progress" max="100" value="33">33%</progress>' in body
    assert "1,000 of 3,000 rows (33%)." in body
    assert client.get(reverse("transactions:export_download", args=[export.pk])).url == url


def test_the_task_reports_progress_as_it_writes(manager, organization, clinic, monkeypatch):
    monkeypatch.setattr(export_services, "PROGRESS_EVERY_ROWS", 1)
    export = TransactionExport.objects.create(
        organization=organization, requested_by=manager, total_rows=4,
        expires_at=timezone.now() + datetime.timedelta(hours=24),
    )

    with CaptureQueriesContext(connection) as queries:
        transaction_export_build.delay(export.pk)

    progress = [
        query["sql"] for query in queries.captured_queries
        if query["sql"].startswith('UPDATE "transactions_transactionexport" SET "rows_written"')
    ]
    assert [sql.split("= ", 1)[1].split(" ")[0] for sql in progress] == ["1", "2", "3", "4"]
    export.refresh_from_db()
    assert (export.status, export.rows_written, export.total_rows) == (ExportStatus.READY, 4, 4)


def test_a_second_delivery_of_the_task_does_nothing(manager, organization, clinic):
    export = TransactionExport.objects.create(
        organization=organization, requested_by=manager, total_rows=4,
        expires_at=timezone.now() + datetime.timedelta(hours=24),
    )
    transaction_export_build.delay(export.pk)
    export.refresh_from_db()
    first_file = export.file.name

    transaction_export_build.delay(export.pk)

    export.refresh_from_db()
    assert (export.status, export.file.name) == (ExportStatus.READY, first_file)
    assert AuditEvent.objects.filter(action="transactions.exported").count() == 1


def test_rows_created_after_the_request_are_not_in_the_export(manager, organization, clinic, location):
    export = TransactionExport.objects.create(
        organization=organization, requested_by=manager, total_rows=4,
        expires_at=timezone.now() + datetime.timedelta(hours=24),
    )
    later = ledger_transaction(
        organization=organization, location=location, patient=clinic["paid"].patient,
        created_at=timezone.now() + datetime.timedelta(minutes=5),
    )

    transaction_export_build.delay(export.pk)

    export.refresh_from_db()
    with export.file.open("rb") as file:
        ids = [row[0] for row in _sheet_rows(_workbook(file.read()), "Transactions")[1:]]
    assert later.pk not in ids and len(ids) == 4


def test_a_requester_no_longer_a_manager_gets_a_failed_export(manager, organization, clinic):
    export = TransactionExport.objects.create(
        organization=organization, requested_by=manager, total_rows=4,
        expires_at=timezone.now() + datetime.timedelta(hours=24),
    )
    organization.memberships.filter(user=manager).update(role=Role.STAFF)

    transaction_export_build.delay(export.pk)

    export.refresh_from_db()
    assert (export.status, export.error_message, export.file.name) == (
        ExportStatus.FAILED, "You may no longer export this organization's transactions.", "",
    )
    assert not AuditEvent.objects.filter(action="transactions.exported").exists()


def test_expired_exports_are_refused_and_their_files_deleted(
    client_for, manager, clinic, large, django_capture_on_commit_callbacks
):
    client = client_for(manager)
    _request_large(client, django_capture_on_commit_callbacks)
    export = TransactionExport.objects.get()
    name = export.file.name
    TransactionExport.objects.filter(pk=export.pk).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))

    refused = client.get(reverse("transactions:export_download", args=[export.pk]))
    assert refused.status_code == 410
    assert "This export has expired" in refused.content.decode()
    assert default_storage.exists(name)

    with django_capture_on_commit_callbacks(execute=True):
        expired = transaction_exports_expire.delay().get()

    export.refresh_from_db()
    assert (expired, export.status, export.file.name) == (1, ExportStatus.EXPIRED, "")
    assert not default_storage.exists(name)
    assert client.get(reverse("transactions:export_download", args=[export.pk])).status_code == 410
    assert not AuditEvent.objects.filter(action="transactions.export_downloaded").exists()


def test_the_cleanup_leaves_exports_that_have_not_expired(manager, organization, clinic):
    export = TransactionExport.objects.create(
        organization=organization, requested_by=manager, total_rows=4,
        expires_at=timezone.now() + datetime.timedelta(hours=1),
    )
    transaction_export_build.delay(export.pk)

    assert transaction_exports_expire.delay().get() == 0

    export.refresh_from_db()
    assert export.status == ExportStatus.READY and default_storage.exists(export.file.name)


def test_the_workbook_matches_the_filtered_count_for_every_filter(client_for, manager, clinic, location):
    client = client_for(manager)
    for params in ({}, {"kind": ["copay"]}, {"location": [str(location.pk)]}, {"has_errors": "true"},
                   {"created_from": "2026-04-01"}, {"q": "ruiz", "amount_max": "50"}):
        dashboard = client.get(reverse("transactions:dashboard"), params)
        rows = _sheet_rows(_workbook(client.post(EXPORT, params).content), "Transactions")[1:]

        assert [row[0] for row in rows] == [t.pk for t in dashboard.context["page"].object_list], params
        assert len(rows) == dashboard.context["summary"].count
        assert _sheet_rows(_workbook(client.post(EXPORT, params).content), "Filters")[-1] == ["Rows", len(rows)]


def test_money_cells_are_exact_decimals(manager, organization, clinic):
    from transactions.filters import TransactionFilter

    membership = organization.memberships.get(user=manager)
    buffer = BytesIO()
    export_services.workbook_write(
        export_services.export_rows(TransactionFilter(None, membership=membership).qs, organization=organization),
        buffer, organization=organization, filter_summary=[], exported_by="x", exported_at=timezone.now(),
    )
    rows = {row[0]: row for row in _sheet_rows(load_workbook(BytesIO(buffer.getvalue())), "Transactions")[1:]}

    assert [Decimal(str(value)) for value in rows[clinic["paid"].pk][9:14]] == [
        Decimal("42.5"), Decimal("42.5"), Decimal("12.5"), Decimal("30"), Decimal("0"),
    ]
    assert _sheet_rows(load_workbook(BytesIO(buffer.getvalue())), "Filters")[1] == [
        "(none)", "Every transaction the member may see",
    ]


def test_sub_account_users_have_no_export_pages(client_for, staff_user, manager, organization):
    export = TransactionExport.objects.create(
        organization=organization, requested_by=manager, total_rows=1,
        expires_at=timezone.now() + datetime.timedelta(hours=1),
    )
    client = client_for(staff_user)

    statuses = [
        client.get(reverse("transactions:export_list")).status_code,
        client.get(reverse("transactions:export_detail", args=[export.pk])).status_code,
        client.get(reverse("transactions:export_download", args=[export.pk])).status_code,
    ]

    assert statuses == [403, 403, 403]


def test_the_list_shows_the_members_own_exports_newest_first(client_for, manager, organization, other_organization):
    def make(user, org, minutes_ago):
        export = TransactionExport.objects.create(
            organization=org, requested_by=user, total_rows=9000, filter_summary=[["Kind", "Copay"]],
            expires_at=timezone.now() + datetime.timedelta(hours=1),
        )
        TransactionExport.objects.filter(pk=export.pk).update(
            created_at=timezone.now() - datetime.timedelta(minutes=minutes_ago)
        )
        return export.pk

    older, newer = make(manager, organization, 30), make(manager, organization, 5)
    make(MembershipFactory(organization=organization, role=Role.MANAGER).user, organization, 1)
    make(manager, other_organization, 1)

    response = client_for(manager).get(reverse("transactions:export_list"))

    assert [export.pk for export in response.context["exports"]] == [newer, older]
    assert "Kind: Copay" in response.content.decode()
