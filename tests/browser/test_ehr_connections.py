"""An administrator in Chromium adds the clinic's FHIR connection, presses "Sync now", watches it
wait for the worker, and sees the run and the health badge appear without reloading."""

from __future__ import annotations

import datetime
import os

import pytest
from celery import current_app
from django.utils import timezone
from playwright.sync_api import expect

from ehr_sync import connectors
from ehr_sync.connectors import connector_register
from ehr_sync.enums import EhrConnectionKind
from ehr_sync.importer import records_import
from ehr_sync.models import EhrConnection, ImportRun
from ehr_sync.records import PatientRecord, RecordBatch
from ehr_sync.tasks import ehr_connection_sync

from .support import sign_in

pytestmark = pytest.mark.browser

TOKEN = "browser-token-secret-4242"


@pytest.fixture
def fhir_connector():
    """A stand-in for the FHIR connector (built beside this page, in ehr_sync.fhir_sync): this test
    is about the page, not the FHIR server. It imports one patient, as a sync would."""
    saved = dict(connectors._connectors)

    def one_patient(connection, run):
        record = PatientRecord(
            external_id="P-1", first_name="Ana", last_name="Ruiz", date_of_birth=datetime.date(1990, 1, 2),
            source_updated_at=timezone.now(), reference="Patient/P-1",
        )
        records_import(run=run, batch=RecordBatch(patients=[record]))

    connector_register(EhrConnectionKind.FHIR, one_patient)
    yield
    connectors._connectors.clear()
    connectors._connectors.update(saved)


def _screenshots(page, name):
    """Saved when LUMAPAY_SCREENSHOTS is set, to look at the page at both widths."""
    if not os.environ.get("LUMAPAY_SCREENSHOTS"):
        return
    from .conftest import SCREENSHOT_DIR
    from .support import DESKTOP, PHONE

    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    for viewport in (PHONE, DESKTOP):
        page.set_viewport_size(viewport)
        page.screenshot(path=str(SCREENSHOT_DIR / f"ehr-connections-{name}-{viewport['width']}px.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def test_an_administrator_adds_a_fhir_connection_and_syncs_it_now(page, checks, organization, administrator, fhir_connector, settings, monkeypatch):
    from cryptography.fernet import Fernet

    settings.EHR_CREDENTIALS_KEYS = [Fernet.generate_key().decode()]
    # The worker has not taken the sync yet: the test runs it below, as a Celery worker would.
    queued = []
    monkeypatch.setattr(current_app.tasks["ehr_sync.tasks.ehr_connection_sync"], "delay", lambda *args: queued.append(args))

    # Given an administrator signed in, on the EHR connections page
    sign_in(page, administrator)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    page.get_by_role("navigation", name="Settings").get_by_role("link", name="EHR connections").click()
    expect(page.get_by_role("heading", name="EHR connections", level=1)).to_be_visible()
    checks.check(page, "EHR connections (none)")

    # When they add a FHIR server with a bearer token
    page.get_by_role("link", name="FHIR R4 server").click()
    expect(page.get_by_role("heading", name="Add an EHR connection", level=1)).to_be_visible()
    checks.check(page, "FHIR connection form")
    _screenshots(page, "form")
    page.get_by_label("Name").fill("Epic")
    page.get_by_label("FHIR base URL").fill("https://fhir.example.test/r4")
    page.get_by_label("Access token").fill(TOKEN)
    page.get_by_label("Manual only").check()
    page.get_by_role("button", name="Add connection").click()

    # Then its page says it never synced, and shows no secret
    expect(page.get_by_role("heading", name="Epic", level=1)).to_be_visible()
    expect(page.get_by_text("Never synced")).to_be_visible()
    assert TOKEN not in page.content()
    checks.check(page, "connection (never synced)")

    # When they press "Sync now"
    page.get_by_role("button", name="Sync now").click()

    # Then the page says the sync waits for a worker, and the button waits too
    expect(page.get_by_text("Waiting to start…")).to_be_visible()
    expect(page.get_by_role("button", name="Sync now")).to_be_disabled()
    checks.check(page, "connection (sync waiting)")
    _screenshots(page, "waiting")
    connection = EhrConnection.objects.get()
    assert queued == [(connection.pk, administrator.pk)]

    # When the worker runs the sync
    ehr_connection_sync(connection.pk, administrator.pk)

    # Then the page, polling, shows it healthy with the run, by the administrator, one patient created
    expect(page.get_by_text("Healthy")).to_be_visible()
    expect(page.get_by_text("Waiting to start…")).to_have_count(0)
    runs = page.get_by_role("region", name="Runs")
    row = runs.get_by_role("row").nth(1)
    expect(row).to_contain_text(administrator.email)
    expect(row).to_contain_text("Succeeded")
    expect(page.get_by_role("button", name="Sync now")).to_be_enabled()
    checks.check(page, "connection (healthy)")
    _screenshots(page, "healthy")
    run = ImportRun.objects.get()
    assert (run.created, run.started_by_id) == (1, administrator.pk)

    # And the list shows the badge too
    page.get_by_role("link", name="← EHR connections").click()
    expect(page.get_by_role("cell", name="Epic")).to_be_visible()
    expect(page.get_by_text("Healthy")).to_be_visible()
    checks.check(page, "EHR connections (one healthy)")
    _screenshots(page, "list")
    checks.assert_clean()
