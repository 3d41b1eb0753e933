"""An Excel export shows on the timeline of every transaction it held, and only on theirs: the
export writes one (transaction, export) row per exported transaction, in the database, in the
transaction of its audit event."""

import pytest
from django.urls import reverse

from lumapay.models import AuditEvent
from transactions.models import ExportedTransaction, TransactionExport
from transactions.selectors.ledger import transaction_timeline

from .dashboard_support import ledger_transaction, local

pytestmark = pytest.mark.django_db

EXPORT = reverse("transactions:export_create")


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def march_and_april(organization, location, patient):
    march = [
        ledger_transaction(
            organization=organization, location=location, patient=patient,
            created_at=local("UTC", 2026, 3, day, 9, 0), amount_cents=1000 * day,
        )
        for day in (2, 3)
    ]
    april = ledger_transaction(
        organization=organization, location=location, patient=patient,
        created_at=local("UTC", 2026, 4, 2, 9, 0), amount_cents=2000,
    )
    return march, april


def _exports_on(transaction):
    return [
        (entry.title, entry.detail)
        for entry in transaction_timeline(transaction=transaction)
        if entry.title == "Exported to Excel"
    ]


def test_a_small_export_is_on_each_exported_transactions_timeline_only(client_for, manager, march_and_april):
    march, april = march_and_april

    response = client_for(manager).post(EXPORT, {"created_from": "2026-03-01", "created_to": "2026-03-31"})

    assert response.status_code == 200
    event = AuditEvent.objects.get(action="transactions.exported")
    assert sorted(ExportedTransaction.objects.values_list("transaction_id", "audit_event_id")) == sorted(
        (transaction.pk, event.pk) for transaction in march
    )
    assert [_exports_on(transaction) for transaction in march] == [[("Exported to Excel", "2 rows")]] * 2
    assert _exports_on(april) == []


def test_a_background_export_is_on_each_exported_transactions_timeline(
    client_for, manager, march_and_april, settings, django_capture_on_commit_callbacks
):
    settings.EXPORT_SYNC_MAX_ROWS = 1
    march, april = march_and_april

    with django_capture_on_commit_callbacks(execute=True):
        client_for(manager).post(EXPORT, {"created_to": "2026-03-31"})

    export = TransactionExport.objects.get()
    assert export.rows_written == 2
    event = AuditEvent.objects.get(action="transactions.exported")
    assert event.changes["export_id"] == export.pk
    assert ExportedTransaction.objects.filter(audit_event=event).count() == 2
    assert [_exports_on(transaction) for transaction in march] == [[("Exported to Excel", "2 rows")]] * 2
    assert _exports_on(april) == []


def test_an_export_refused_writes_no_links(client_for, staff_user, march_and_april):
    response = client_for(staff_user).post(EXPORT, {})

    assert response.status_code == 403
    assert ExportedTransaction.objects.count() == 0
    assert not AuditEvent.objects.filter(action="transactions.exported").exists()


def test_the_timeline_reads_exports_by_index_whatever_their_number(
    client_for, manager, march_and_april, django_assert_max_num_queries
):
    march, _april = march_and_april
    client = client_for(manager)
    for _ in range(5):
        client.post(EXPORT, {"created_from": "2026-03-01", "created_to": "2026-03-31"})

    with django_assert_max_num_queries(5):
        entries = _exports_on(march[0])

    assert entries == [("Exported to Excel", "2 rows")] * 5
