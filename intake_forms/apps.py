from django.apps import AppConfig


class IntakeFormsConfig(AppConfig):
    name = "intake_forms"
    verbose_name = "Intake forms"
