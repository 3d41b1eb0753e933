from django.apps import AppConfig


class HelpCenterConfig(AppConfig):
    name = "helpcenter"
    verbose_name = "Help Center and Luma U"

    def ready(self) -> None:
        # Help Center: the support tickets' tasks (queued by name) and the receiver of members'
        # e-mailed replies (anymail's inbound signal).
        from . import inbound_email, ticket_tasks  # noqa: F401
