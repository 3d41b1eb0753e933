from django.apps import AppConfig


class LumapayConfig(AppConfig):
    name = "lumapay"
    verbose_name = "LumaPay platform"
    default_auto_field = "django.db.models.BigAutoField"
