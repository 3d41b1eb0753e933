from django.db import models
from django.utils.translation import gettext_lazy as _


class PreferredLanguage(models.TextChoices):
    ENGLISH = "en", _("English")
    SPANISH = "es", _("Spanish")


class AppointmentStatus(models.TextChoices):
    BOOKED = "booked", _("Booked")
    ARRIVED = "arrived", _("Checked in")
    FULFILLED = "fulfilled", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")
    NO_SHOW = "noshow", _("No-show")
