"""The Upload Center in Chromium, as issue 10's "done" reads: a manager uploads a CSV with three
bad rows, reads exactly what is wrong, imports the valid rows behind a progress bar, uploads the
same file again and nothing changes. Each page is checked (axe-core, 390 px) and photographed at
390 px and 1366 px into .local/browser-screenshots/ for a person to look at."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from ehr_sync.models import Patient
from uploads import tasks
from uploads.models import Upload

from ..uploads.test_upload_center_flow import THREE_BAD_ROWS
from .conftest import SCREENSHOT_DIR
from .support import DESKTOP, PHONE, sign_in

pytestmark = pytest.mark.browser


def _photograph(page: Page, name: str) -> None:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    for viewport in (PHONE, DESKTOP):
        page.set_viewport_size(viewport)
        page.screenshot(path=str(SCREENSHOT_DIR / f"upload-center-{name}-{viewport['width']}px.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def _upload(page: Page) -> None:
    page.get_by_role("link", name="Upload Center", exact=True).click()
    expect(page.get_by_role("heading", name="Upload Center", level=1)).to_be_visible()
    page.get_by_label("What the file holds").select_option("patients")
    page.get_by_label("File (CSV or Excel .xlsx)").set_input_files(
        files=[{"name": "patients.csv", "mimeType": "text/csv", "buffer": THREE_BAD_ROWS}]
    )
    page.get_by_role("button", name="Upload and check").click()
    expect(page.get_by_role("heading", name="Patients file", level=1)).to_be_visible()


def _import_valid_rows(page: Page, queued: list) -> Upload:
    page.get_by_role("button", name="Import the 3 valid rows").click()
    progress = page.get_by_role("progressbar", name="Importing the valid rows…")
    expect(progress).to_have_attribute("value", "0")
    upload = Upload.objects.get(pk=queued[-1])
    return upload


def test_a_manager_previews_three_bad_rows_imports_the_rest_and_the_same_file_again_changes_nothing(
    page, checks, organization, manager, monkeypatch
):
    queued = []
    monkeypatch.setattr(tasks.upload_import, "delay", queued.append)
    sign_in(page, manager, checks)

    # When the manager uploads a CSV of six patients, three of them wrong
    _upload(page)

    # Then the preview lists exactly those three problems, and all or nothing is not possible
    expect(page.get_by_text("3 of the 6 rows have problems, listed below. Nothing has been imported yet.")).to_be_visible()
    problems = page.get_by_role("table")
    expect(problems.get_by_role("row")).to_have_count(4)
    expect(problems).to_contain_text("The patient's first name is missing.")
    expect(problems).to_contain_text("1975-13-40")
    expect(problems).to_contain_text("This is not an e-mail address.")
    expect(page.get_by_role("button", name="Import all or nothing")).to_be_disabled()
    checks.check(page, "preview")
    _photograph(page, "preview")

    # When the manager imports the valid rows, the page shows the progress until a worker is done
    upload = _import_valid_rows(page, queued)
    checks.check(page, "importing")
    _photograph(page, "importing")
    tasks.upload_import(upload.pk)

    # Then the page shows what the import did
    expect(page.get_by_text("Imported: 3 created, 0 updated, 0 unchanged, 3 rejected.")).to_be_visible()
    expect(page.get_by_role("heading", name="Rows not imported (3)")).to_be_visible()
    checks.check(page, "imported")
    _photograph(page, "imported")
    stored = list(Patient.objects.order_by("pk").values_list())
    assert len(stored) == 3

    # When the manager uploads the same file again
    _upload(page)
    expect(page.get_by_text("This same file was imported on")).to_be_visible()
    expect(page.get_by_text("importing it again changes nothing")).to_be_visible()
    _photograph(page, "preview-again")
    again = _import_valid_rows(page, queued)
    tasks.upload_import(again.pk)

    # Then nothing changes
    expect(page.get_by_text("Imported: 0 created, 0 updated, 3 unchanged, 3 rejected.")).to_be_visible()
    assert list(Patient.objects.order_by("pk").values_list()) == stored

    # And the history lists both uploads
    page.get_by_role("link", name="← Upload Center").click()
    history = page.get_by_role("region", name="Uploads")
    expect(history.get_by_role("row")).to_have_count(3)
    checks.check(page, "history")
    _photograph(page, "history")
    checks.assert_clean()
