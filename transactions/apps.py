from django.apps import AppConfig


class TransactionsConfig(AppConfig):
    name = "transactions"
    verbose_name = "Payments"

    def ready(self) -> None:
        from ehr_sync.patient_panels import patient_panels_register

        # Registers the tasks that services queue by name (``lumapay.task_queue.task_enqueue_on_commit``).
        from . import tasks  # noqa: F401
        from .views.patient_panels import PAYMENT_PANELS
        from .views.plan_panels import PLAN_PANELS

        patient_panels_register(PAYMENT_PANELS)
        patient_panels_register(PLAN_PANELS)
