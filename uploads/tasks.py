"""Celery tasks of the Upload Center: each takes an upload's id and calls one service in the
upload's organization (``organization_scope_of``)."""

from celery import shared_task

from lumapay.tenant_rls import organization_scope_of

from . import services
from .models import Upload


@shared_task(acks_late=True)
def upload_import(upload_id: int) -> None:
    """Import an upload the member chose to import, batch by batch, storing its progress."""
    with organization_scope_of(Upload, upload_id):
        services.upload_import_run(upload_id=upload_id)
