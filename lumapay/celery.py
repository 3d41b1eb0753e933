"""The Celery application: EHR syncs, copay automation, reminders, deliveries, reconciliation."""

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumapay.settings")

# Every task starts with no organization in the database (lumapay/tenant_rls.py).
app = Celery("lumapay", task_cls="lumapay.tenant_rls:TenantTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _worker_connections_without_organization(**kwargs) -> None:
    """A worker's database connections start as the app's role with no organization: a query
    outside a task's scope sees no clinic's rows."""
    from lumapay.tenant_rls import serve_with_tenant_role

    serve_with_tenant_role()
