from django.db import models
from django.utils.translation import gettext_lazy as _


class UploadStatus(models.TextChoices):
    PREVIEWED = "previewed", _("Waiting for a choice")
    IMPORTING = "importing", _("Importing")
    IMPORTED = "imported", _("Imported")
    DISCARDED = "discarded", _("Discarded")
    FAILED = "failed", _("Failed")


class ImportMode(models.TextChoices):
    ALL_OR_NOTHING = "all_or_nothing", _("All or nothing")
    VALID_ROWS = "valid_rows", _("The valid rows")
