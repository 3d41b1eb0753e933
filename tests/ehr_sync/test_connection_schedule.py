"""The schedule: the beat's sweep queues every due connection of every organization, and only those;
the sync task runs in its connection's organization."""

import datetime

import pytest
from django.conf import settings as django_settings
from django.test import TestCase
from django.utils import timezone

from ehr_sync import connectors
from ehr_sync.connection_services import ConnectionSettings, ehr_connection_create
from ehr_sync.connectors import connector_register
from ehr_sync.enums import EhrConnectionKind, ImportRunStatus
from ehr_sync.models import EhrConnection, ImportRun
from ehr_sync.tasks import ehr_connection_sync, ehr_connections_sync_due_sweep
from lumapay.tenant_rls import organization_scope

from ..factories import OrganizationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced():
    """Connectors for FHIR and SFTP that record which connection they synced, in which database
    scope, and put back what was registered (the real ones talk to servers this test is not about)."""
    saved = dict(connectors._connectors)
    calls = []

    def record(connection, run):
        from lumapay.tenant_rls import current_scope

        calls.append((connection.pk, current_scope().organization_id))

    connector_register(EhrConnectionKind.FHIR, record)
    connector_register(EhrConnectionKind.SFTP, record)
    yield calls
    connectors._connectors.clear()
    connectors._connectors.update(saved)


def _connection(organization, name, *, kind=EhrConnectionKind.FHIR, due_in_minutes=-1, every=15, active=True):
    return EhrConnection.objects.create(
        organization=organization,
        name=name,
        kind=kind,
        base_url="http://127.0.0.1:1/fhir",
        sync_every_minutes=every,
        is_active=active,
        next_sync_at=timezone.now() + datetime.timedelta(minutes=due_in_minutes) if due_in_minutes is not None else None,
    )


def test_the_sweep_syncs_the_due_connections_of_every_organization_and_only_those(organization, synced):
    other = OrganizationFactory(name="Lakeside Pediatrics")
    due_here = _connection(organization, "Epic")
    due_there = _connection(other, "Cerner", kind=EhrConnectionKind.SFTP)
    _connection(organization, "Not yet", due_in_minutes=5)
    _connection(organization, "Paused", active=False)
    _connection(organization, "Manual only", every=0)
    _connection(organization, "Never scheduled", due_in_minutes=None)
    hl7 = _connection(organization, "ADT feed", kind=EhrConnectionKind.HL7_MLLP)

    with TestCase.captureOnCommitCallbacks(execute=True):
        queued = ehr_connections_sync_due_sweep.apply().get()

    assert queued == 2
    # Each ran in its own organization's database scope, not the sweep's.
    assert sorted(synced) == sorted([(due_here.pk, organization.pk), (due_there.pk, other.pk)])
    assert ImportRun.objects.filter(status=ImportRunStatus.SUCCEEDED, started_by=None).count() == 2
    assert set(ImportRun.objects.values_list("connection_id", flat=True)) == {due_here.pk, due_there.pk}
    hl7.refresh_from_db()
    assert hl7.last_run_started_at is None


def test_a_queued_connection_is_not_queued_again_by_the_next_sweep(organization, synced, monkeypatch):
    connection = _connection(organization, "Epic", every=30)
    from celery import current_app

    # The broker loses nothing here: the tasks are counted, not run, to see the sweep alone.
    queued = []
    monkeypatch.setattr(current_app.tasks["ehr_sync.tasks.ehr_connection_sync"], "delay", lambda *args: queued.append(args))
    before = timezone.now()

    with TestCase.captureOnCommitCallbacks(execute=True):
        assert ehr_connections_sync_due_sweep.apply().get() == 1
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert ehr_connections_sync_due_sweep.apply().get() == 0

    assert queued == [(connection.pk, None)]
    connection.refresh_from_db()
    assert before + datetime.timedelta(minutes=29) < connection.next_sync_at < timezone.now() + datetime.timedelta(minutes=31)
    assert synced == []


def test_the_sync_task_runs_in_the_connections_organization_and_sets_the_next_sync(organization, synced, administrator):
    connection = _connection(organization, "Epic", every=15)

    run_id = ehr_connection_sync.apply(args=[connection.pk, administrator.pk]).get()

    run = ImportRun.objects.get(pk=run_id)
    assert run.started_by == administrator and run.status == ImportRunStatus.SUCCEEDED
    assert synced == [(connection.pk, organization.pk)]
    connection.refresh_from_db()
    assert connection.last_success_at == run.finished_at
    assert connection.next_sync_at > timezone.now() + datetime.timedelta(minutes=14)


def test_the_sync_task_of_a_missing_connection_does_nothing(synced):
    assert ehr_connection_sync.apply(args=[987654]).get() is None
    assert synced == [] and not ImportRun.objects.exists()


def test_a_new_scheduled_connection_is_due_at_once_and_a_manual_one_never(organization, administrator):
    with organization_scope(organization.pk):
        scheduled = ehr_connection_create(
            organization=organization, actor=administrator,
            data=ConnectionSettings(name="Epic", kind=EhrConnectionKind.FHIR, base_url="https://fhir.example.test/r4"),
        )
        manual = ehr_connection_create(
            organization=organization, actor=administrator,
            data=ConnectionSettings(name="Epic test", kind=EhrConnectionKind.FHIR, base_url="https://fhir.example.test/r4",
                                    sync_every_minutes=0),
        )
    assert scheduled.next_sync_at is not None and scheduled.next_sync_at <= timezone.now()
    assert manual.next_sync_at is None


def test_the_beat_runs_the_sweep_every_minute():
    entry = django_settings.CELERY_BEAT_SCHEDULE["ehr-connections-sync-due"]
    assert entry == {"task": "ehr_sync.tasks.ehr_connections_sync_due_sweep", "schedule": 60}
