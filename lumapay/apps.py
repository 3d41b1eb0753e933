from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class LumapayConfig(AppConfig):
    name = "lumapay"
    verbose_name = "LumaPay platform"
    default_auto_field = "django.db.models.BigAutoField"


class OperatorsAdminConfig(admin_apps.AdminConfig):
    """Django's admin app (in INSTALLED_APPS instead of ``django.contrib.admin``), with ``admin.site``
    being LumaPay's operators' site (lumapay/admin_site.py): every ``@admin.register``, ours and
    django-otp's, lands on the site that requires the second step of signing in."""

    default = False  # this module's default app config stays LumapayConfig
    default_site = "lumapay.admin_site.OperatorsAdminSite"
