from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "uploads"
    verbose_name = "Upload Center"

    def ready(self) -> None:
        # Registers the tasks that services queue by name (``lumapay.task_queue.task_enqueue_on_commit``).
        from . import tasks  # noqa: F401
