"""Running one EHR connection's sync, whatever its kind.

Each kind registers the function that pulls its records (``connector_register``): the FHIR client
here in ``ehr_sync.fhir_sync``; the SFTP drop folder in ``uploads`` (it reads files the Upload
Center's way, and ``uploads`` sits above ``ehr_sync``, so it registers with it). HL7 v2 has no
pull: its listener pushes each message as it arrives.

``connection_sync`` makes sure one sync of a connection runs at a time (a lease on the row, taken
and given back in short transactions: nothing is locked while the EHR answers), records the run,
and keeps the health badge true: last success, failing since, the last error in words.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from lumapay.errors import ApplicationError

from .enums import EhrConnectionKind, ImportSource
from .importer import import_run_finish, import_run_start
from .models import EhrConnection, ImportRun

logger = logging.getLogger(__name__)

# A sync that has not finished within this long is taken to have died (a killed worker); another may start.
SYNC_LEASE = datetime.timedelta(minutes=30)

SyncFunction = Callable[[EhrConnection, ImportRun], None]
_connectors: dict[str, tuple[str, SyncFunction]] = {}

SOURCE_OF_KIND = {
    EhrConnectionKind.FHIR: ImportSource.FHIR,
    EhrConnectionKind.SFTP: ImportSource.SFTP,
    EhrConnectionKind.HL7_MLLP: ImportSource.HL7,
}


class ConnectorError(ApplicationError):
    """The EHR (or its server) refused or failed: the run fails with this message, the watermark
    stays where it was, and the next scheduled sync tries again."""


def connector_register(kind: str, function: SyncFunction) -> None:
    _connectors[EhrConnectionKind(kind)] = (str(kind), function)


def connector_for(kind: str) -> SyncFunction | None:
    entry = _connectors.get(kind)
    return entry[1] if entry else None


def connection_sync(*, connection_id: int, started_by=None) -> ImportRun | None:
    """Sync one connection now. None when another sync of it is still running (or it cannot sync:
    inactive, or an HL7 feed, which is pushed to us)."""
    now = timezone.now()
    with transaction.atomic():
        taken = EhrConnection.objects.filter(
            Q(sync_lease_until__isnull=True) | Q(sync_lease_until__lt=now), pk=connection_id, is_active=True
        ).update(sync_lease_until=now + SYNC_LEASE, last_run_started_at=now)
    if not taken:
        return None
    connection = EhrConnection.objects.select_related("organization").get(pk=connection_id)
    function = connector_for(connection.kind)
    try:
        if function is None:
            return None
        run = import_run_start(
            organization=connection.organization,
            source=SOURCE_OF_KIND[connection.kind],
            connection=connection,
            label=f"{connection.name}: {'sync now' if started_by else 'scheduled sync'}",
            started_by=started_by,
        )
        error = ""
        try:
            function(connection, run)
        except ApplicationError as failure:
            error = failure.message
        except Exception as failure:  # noqa: BLE001 - recorded on the run and the badge, then re-raised
            error = f"The sync stopped on an unexpected error ({type(failure).__name__}); it will be retried."
            logger.exception("EHR sync of connection %s failed", connection_id)
        run = import_run_finish(run=run, error=error)
        _health_record(connection_id, run)
        return run
    finally:
        EhrConnection.objects.filter(pk=connection_id).update(sync_lease_until=None)


def _health_record(connection_id: int, run: ImportRun) -> None:
    with transaction.atomic():
        connection = EhrConnection.objects.select_for_update(of=("self",)).get(pk=connection_id)
        if run.error:
            connection.failing_since = connection.failing_since or run.started_at
            connection.last_error = run.error
        else:
            connection.last_success_at = run.finished_at
            connection.failing_since = None
            connection.last_error = ""
        if connection.sync_every_minutes:
            connection.next_sync_at = timezone.now() + datetime.timedelta(minutes=connection.sync_every_minutes)
        connection.save(update_fields=["failing_since", "last_error", "last_success_at", "next_sync_at", "updated_at"])
