"""Reads about a clinic's EHR connections: the list with each one's health, one connection, its
runs, one run and its rejected records. Another organization's connection or run is None (404)."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from org_profile.models import Organization

from .credentials import credentials_hint
from .models import EhrConnection, ImportRejection, ImportRun, Patient

# "Sync now" is shown waiting for a worker this long at most (a lost task is not waited for forever).
SYNC_REQUEST_SHOWN_FOR = datetime.timedelta(minutes=10)
RUNS_PAGE_SIZE = 20
REJECTIONS_PAGE_SIZE = 100


class Health:
    HEALTHY = "healthy"
    FAILING = "failing"
    NEVER = "never"
    PAUSED = "paused"


@dataclass(frozen=True)
class ConnectionState:
    """What the page says of a connection now: its health badge, and whether a sync is running or
    waiting to start (the page polls while it is)."""

    health: str
    running: bool
    waiting: bool

    @property
    def in_progress(self) -> bool:
        return self.running or self.waiting


def connection_state(connection: EhrConnection, *, now: datetime.datetime | None = None) -> ConnectionState:
    now = now or timezone.now()
    if not connection.is_active:
        health = Health.PAUSED
    elif connection.failing_since:
        health = Health.FAILING
    elif connection.last_success_at:
        health = Health.HEALTHY
    else:
        health = Health.NEVER
    running = bool(connection.sync_lease_until and connection.sync_lease_until > now)
    requested = connection.sync_requested_at
    waiting = bool(
        not running
        and requested
        and requested > now - SYNC_REQUEST_SHOWN_FOR
        and (connection.last_run_started_at is None or connection.last_run_started_at < requested)
    )
    return ConnectionState(health=health, running=running, waiting=waiting)


def connections_of(*, organization: Organization) -> list[EhrConnection]:
    """The organization's connections, each with ``state`` (its badge)."""
    connections = list(EhrConnection.objects.filter(organization=organization).order_by("name", "id"))
    now = timezone.now()
    for connection in connections:
        connection.state = connection_state(connection, now=now)
    return connections


def connection_get(*, organization: Organization, connection_id: int) -> EhrConnection | None:
    connection = EhrConnection.objects.filter(organization=organization, pk=connection_id).first()
    if connection is not None:
        connection.state = connection_state(connection)
    return connection


def connection_secret_hints(connection: EhrConnection) -> dict[str, str]:
    """Which secrets are stored, and their last four characters ("…1234"); a value stored under a
    key no longer configured is "set (cannot be read with the current keys)"."""
    from lumapay.errors import ApplicationError

    try:
        return credentials_hint(connection)
    except ApplicationError:
        return {"__unreadable__": "cannot be read with the current keys: enter them again"}


def connection_runs(*, connection: EhrConnection) -> QuerySet[ImportRun]:
    """The connection's runs, newest first, with who started each."""
    return (
        ImportRun.objects.filter(organization_id=connection.organization_id, connection=connection)
        .select_related("started_by")
        .order_by("-started_at", "-id")
    )


def run_get(*, organization: Organization, run_id: int) -> ImportRun | None:
    """One run of one of the organization's connections (not an upload's)."""
    return (
        ImportRun.objects.filter(organization=organization, pk=run_id, connection__isnull=False)
        .select_related("connection", "started_by")
        .first()
    )


def run_rejections(*, run: ImportRun) -> QuerySet[ImportRejection]:
    return ImportRejection.objects.filter(organization_id=run.organization_id, run=run).order_by("id")


_FHIR_PATIENT_REFERENCE = re.compile(r"^Patient/([^/]+)")


def rejection_patient_ids(*, organization: Organization, rejections) -> list[int]:
    """The stored patients the rejected records are about, where the rejection names one: a FHIR
    "Patient/<id>" reference, a rejected patient's own id, or the patient an appointment or a
    balance points at. A rejected record of a patient not yet in LumaPay names nobody stored."""
    external_ids = set()
    for rejection in rejections:
        match = _FHIR_PATIENT_REFERENCE.match(rejection.reference)
        if match:
            external_ids.add(match.group(1))
        if rejection.field == "patient_external_id" or (rejection.kind == "patient" and rejection.field == "external_id"):
            external_ids.add(rejection.value)
    external_ids.discard("")
    if not external_ids:
        return []
    return list(
        Patient.objects.filter(organization=organization, external_ehr_id__in=external_ids).values_list("pk", flat=True)
    )


