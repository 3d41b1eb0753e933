"""The Celery application: EHR syncs, copay automation, reminders, deliveries, reconciliation."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumapay.settings")

app = Celery("lumapay")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def task_enqueue_on_commit(name: str, *args, robust: bool = False) -> None:
    """Queue the task registered as ``name`` with ``args`` once the current database transaction
    commits (at once outside one).

    Imports run one way: an app's ``tasks`` module imports its services (a task is an entry
    point, like a view), and a service names the task it queues instead of importing it. Each
    app's ``AppConfig.ready`` imports its tasks, so every name is registered in every process.
    With ``robust``, a failure to queue is logged instead of raised into the code that committed.
    """
    from django.db import transaction

    transaction.on_commit(lambda: app.tasks[name].delay(*args), robust=robust)
