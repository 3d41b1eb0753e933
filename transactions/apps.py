from django.apps import AppConfig


class TransactionsConfig(AppConfig):
    name = "transactions"
    verbose_name = "Payments"

    def ready(self):
        # Registers the tasks that services queue by name (``lumapay.celery.task_enqueue_on_commit``).
        from . import tasks  # noqa: F401
