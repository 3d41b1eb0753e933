"""Staff on the dashboard in Chromium: filters that update the list in place and follow back and
forward, and a background Excel export with its progress bar."""

from __future__ import annotations

import datetime
import re
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from lumapay.dates import format_date
from transactions import tasks
from transactions.enums import ExportStatus, PaymentRequestKind
from transactions.models import TransactionExport

from ..factories import PatientFactory
from ..transactions.dashboard_support import ledger_transaction
from .support import sign_in

pytestmark = pytest.mark.browser


def _payments(organization, location) -> None:
    """Four payments of this week: Ruiz (copay, paid), Okafor (balance, paid), Park (copay,
    declined), Diaz (copay, refunded in full)."""
    now = timezone.now()
    for hours_ago, last_name, kind, outcome, refunded_cents in [
        (4, "Ruiz", PaymentRequestKind.COPAY, "paid", 0),
        (3, "Okafor", PaymentRequestKind.BALANCE, "paid", 0),
        (2, "Park", PaymentRequestKind.COPAY, "declined", 0),
        (1, "Diaz", PaymentRequestKind.COPAY, "paid", 5000),
    ]:
        ledger_transaction(
            organization=organization,
            location=location,
            patient=PatientFactory(organization=organization, first_name="Ana", last_name=last_name),
            created_at=now - datetime.timedelta(hours=hours_ago),
            kind=kind,
            outcome=outcome,
            refunded_cents=refunded_cents,
        )


def _listed(page: Page, *, shown: list[str], hidden: list[str]) -> None:
    results = page.get_by_role("region", name="Transactions")
    for name in shown:
        expect(results).to_contain_text(f"Ana {name}")
    for name in hidden:
        expect(results).not_to_contain_text(f"Ana {name}")


def _tick(page: Page, name: str) -> None:
    """Tick a filter's checkbox, first opening the disclosures (a dropdown, "More filters") it is in."""
    hidden_or_not = page.get_by_role("checkbox", name=name, exact=True, include_hidden=True)
    for closed in page.locator("details:not([open])", has=hidden_or_not).all():
        closed.locator(":scope > summary").click()
    page.get_by_role("checkbox", name=name, exact=True).check()


def _used_filters(page: Page) -> dict[str, list[str]]:
    return {name: values for name, values in parse_qs(urlsplit(page.url).query).items() if name in ("status", "q")}


def test_dashboard_filters_update_in_place_and_follow_back_and_forward(page, checks, organization, location, manager):
    # Given four payments, and a manager on the dashboard
    _payments(organization, location)
    sign_in(page, manager, checks)
    _listed(page, shown=["Ruiz", "Okafor", "Park", "Diaz"], hidden=[])
    checks.check(page, "dashboard")
    page.evaluate("window.sameDocument = true")  # gone if the page reloads

    # When the manager picks the status "Succeeded", then also searches for the patient "Okafor"
    _tick(page, "Succeeded")
    expect(page).to_have_url(re.compile(r"[?&]status=succeeded(&|$)"))
    _listed(page, shown=["Ruiz", "Okafor"], hidden=["Park", "Diaz"])
    page.get_by_role("searchbox", name="Patient").fill("Okafor")

    # Then each filter updates the list in place, and the URL carries both and nothing else (no
    # empty filters)
    expect(page).to_have_url(re.compile(r"[?&]q=Okafor(&|$)"))
    _listed(page, shown=["Okafor"], hidden=["Ruiz", "Park", "Diaz"])
    assert _used_filters(page) == {"status": ["succeeded"], "q": ["Okafor"]}
    assert sorted(parse_qs(urlsplit(page.url).query, keep_blank_values=True)) == ["q", "status"]
    assert page.evaluate("window.sameDocument") is True
    checks.check(page, "dashboard (filtered)")

    # When the manager goes back
    page.go_back()

    # Then the URL, the list and the form are those of the first filter
    expect(page).not_to_have_url(re.compile(r"[?&]q=Okafor"))
    assert _used_filters(page) == {"status": ["succeeded"]}
    _listed(page, shown=["Ruiz", "Okafor"], hidden=["Park", "Diaz"])
    expect(page.get_by_role("searchbox", name="Patient")).to_have_value("")
    expect(page.get_by_role("checkbox", name="Succeeded", exact=True, include_hidden=True)).to_be_checked()

    # When the manager goes forward again, then both filters are back
    page.go_forward()
    expect(page).to_have_url(re.compile(r"[?&]q=Okafor(&|$)"))
    assert _used_filters(page) == {"status": ["succeeded"], "q": ["Okafor"]}
    _listed(page, shown=["Okafor"], hidden=["Ruiz", "Park", "Diaz"])
    expect(page.get_by_role("searchbox", name="Patient")).to_have_value("Okafor")
    checks.assert_clean()


def test_a_large_export_shows_its_progress_then_downloads(page, checks, organization, location, manager, settings, monkeypatch):
    # Given more payments than download at once, and a worker that has not taken the job yet
    settings.EXPORT_SYNC_MAX_ROWS = 2
    _payments(organization, location)
    queued = []
    monkeypatch.setattr(tasks.transaction_export_build, "delay", queued.append)
    sign_in(page, manager)

    # When the manager exports the four transactions
    page.get_by_role("button", name="Export 4 transactions to Excel").click()

    # Then the export's page shows a progress bar at 0 of 4 rows
    expect(page.get_by_role("heading", name="Excel export", level=1)).to_be_visible()
    progress = page.get_by_role("progressbar", name="Waiting to start…")
    expect(progress).to_have_attribute("value", "0")
    expect(page.get_by_text("0 of 4 rows (0%).")).to_be_visible()
    checks.check(page, "export (waiting)")
    export = TransactionExport.objects.get()
    assert (queued, export.status, export.total_rows) == ([export.pk], ExportStatus.QUEUED, 4)

    # When the worker writes the file (the task a Celery worker runs)
    tasks.transaction_export_build(export.pk)

    # Then the page, polling, says the file is ready, and the download holds the four rows
    expect(page.get_by_text("Your export of 4 transactions is ready.")).to_be_visible()
    expect(progress).to_have_count(0)
    checks.check(page, "export (ready)")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the Excel file").click()
    with open(download.value.path(), "rb") as file:
        rows = list(openpyxl.load_workbook(file, read_only=True).worksheets[0].iter_rows(values_only=True))
    patient = rows[0].index("Patient")
    assert sorted(row[patient] for row in rows[1:]) == ["Diaz, Ana", "Okafor, Ana", "Park, Ana", "Ruiz, Ana"]
    checks.assert_clean()


def test_a_bar_of_the_chart_narrows_the_list_to_its_day_in_place(page, checks, organization, location, manager):
    # Given this week's four payments and one paid three days earlier, and a manager on the dashboard
    _payments(organization, location)
    earlier = timezone.now() - datetime.timedelta(days=3)
    ledger_transaction(
        organization=organization,
        location=location,
        patient=PatientFactory(organization=organization, first_name="Ana", last_name="Quispe"),
        created_at=earlier,
    )
    day = timezone.localtime(earlier, ZoneInfo(organization.timezone)).date()
    sign_in(page, manager, checks)
    _listed(page, shown=["Ruiz", "Okafor", "Quispe"], hidden=[])
    page.evaluate("window.sameDocument = true")  # gone if the page reloads

    # When the manager chooses the bar of that day
    page.get_by_role("link", name=re.compile(rf"^{re.escape(format_date(day))}: ")).click()

    # Then the list shows that day's payment alone, in place, and the URL names the day paid
    expect(page).to_have_url(re.compile(rf"[?&]paid_from={day.isoformat()}(&|$)"))
    _listed(page, shown=["Quispe"], hidden=["Ruiz", "Okafor", "Park", "Diaz"])
    query = parse_qs(urlsplit(page.url).query)
    assert query["paid_from"] == query["paid_to"] == [day.isoformat()]
    assert page.evaluate("window.sameDocument") is True
    checks.check(page, "dashboard (one day of the chart)")

    # And back returns to the whole list
    page.go_back()
    _listed(page, shown=["Ruiz", "Okafor", "Quispe"], hidden=[])
    checks.assert_clean()
