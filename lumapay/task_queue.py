"""Queueing a Celery task from a service, by the task's name, once the database transaction commits."""

from celery import current_app
from django.db import transaction


def task_enqueue_on_commit(name: str, *args, robust: bool = False) -> None:
    """Queue the task registered as ``name`` with ``args`` once the current database transaction
    commits (at once outside one).

    Imports run one way: an app's ``tasks`` module imports its services (a task is an entry
    point, like a view), and a service names the task it queues instead of importing it. Each
    app's ``AppConfig.ready`` imports its tasks, so every name is registered in every process.
    With ``robust``, a failure to queue is logged instead of raised into the code that committed.
    """
    transaction.on_commit(lambda: current_app.tasks[name].delay(*args), robust=robust)
