from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    ADMINISTRATOR = "administrator", _("Administrator")
    MANAGER = "manager", _("Manager")
    STAFF = "staff", _("Sub-account user")


class PaymentGateway(models.TextChoices):
    SANDBOX = "sandbox", _("Sandbox (test payments only)")
    STRIPE = "stripe", _("Stripe")
