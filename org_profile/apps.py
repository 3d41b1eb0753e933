from django.apps import AppConfig


class OrgProfileConfig(AppConfig):
    name = "org_profile"
    verbose_name = "Organizations and staff"
