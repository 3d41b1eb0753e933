from django.apps import AppConfig


class EhrSyncConfig(AppConfig):
    name = "ehr_sync"
    verbose_name = "Patients and EHR mirror"

    def ready(self) -> None:
        from .connectors import connector_register
        from .enums import EhrConnectionKind
        from .fhir_sync import fhir_sync

        connector_register(EhrConnectionKind.FHIR, fhir_sync)
        # Registers the tasks that services queue by name (``lumapay.task_queue.task_enqueue_on_commit``).
        from . import tasks  # noqa: F401
