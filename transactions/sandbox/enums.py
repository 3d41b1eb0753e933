from django.db import models
from django.utils.translation import gettext_lazy as _


class SandboxSessionStatus(models.TextChoices):
    OPEN = "open", _("Open")
    AWAITING_AUTHENTICATION = "awaiting_authentication", _("Awaiting authentication")
    COMPLETE = "complete", _("Complete")
    EXPIRED = "expired", _("Expired")
