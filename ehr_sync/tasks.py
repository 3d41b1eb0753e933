"""Celery tasks for EHR connections: one connection's sync, and the beat's sweep that queues the
syncs that are due.

Every task starts with no organization in the database (``lumapay.tenant_rls.TenantTask``): the
sync runs in its connection's organization (``organization_scope_of``); the sweep spans clinics,
a reviewed exception (``all_organizations``), and only queues.
"""

from celery import shared_task
from celery.signals import worker_process_shutdown
from django.contrib.auth import get_user_model
from django.db import OperationalError

from lumapay.tenant_rls import all_organizations, organization_scope_of

from .connection_services import ehr_connections_sync_due
from .connectors import connection_sync
from .fhir_validation import pool_stop
from .models import EhrConnection


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=5,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=5,
)
def ehr_connection_sync(connection_id: int, started_by_id: int | None = None) -> int | None:
    """Sync one connection (scheduled, or "Sync now" by ``started_by_id``). A second delivery while
    it runs finds the lease taken and does nothing; the EHR's own failures are recorded on the run
    and the health badge, and the next scheduled sync tries again, so only a database that is away
    is retried here. Returns the run's id (None when nothing ran)."""
    started_by = get_user_model().objects.filter(pk=started_by_id).first() if started_by_id else None
    with organization_scope_of(EhrConnection, connection_id):
        run = connection_sync(connection_id=connection_id, started_by=started_by)
    return run.pk if run is not None else None


@shared_task
def ehr_connections_sync_due_sweep() -> int:
    """Queue every connection whose scheduled sync is due, in every organization (beat, every minute)."""
    with all_organizations():
        return len(ehr_connections_sync_due())


@worker_process_shutdown.connect
def fhir_validation_pool_stop(**_kwargs) -> None:
    """A worker process that ends (replaced after its tasks, or at shutdown) stops the pool its FHIR
    syncs checked resources in: billiard's children end without running ``atexit``."""
    pool_stop()
