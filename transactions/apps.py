from django.apps import AppConfig


class TransactionsConfig(AppConfig):
    name = "transactions"
    verbose_name = "Payments"

    def ready(self) -> None:
        from ehr_sync.patient_panels import patient_panels_register

        from .views.patient_panels import PAYMENT_PANELS

        patient_panels_register(PAYMENT_PANELS)
