from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "uploads"
    verbose_name = "Upload Center"

    def ready(self) -> None:
        # ehr_sync runs SFTP drop folder connections but cannot import the Upload Center's reader
        # (uploads sits above it): the Upload Center registers the connector with it.
        from ehr_sync.connectors import connector_register
        from ehr_sync.enums import EhrConnectionKind

        from .sftp_drop import drop_folder_sync

        connector_register(EhrConnectionKind.SFTP, drop_folder_sync)
        # Registers the tasks that services queue by name (``lumapay.task_queue.task_enqueue_on_commit``).
        from . import tasks  # noqa: F401
