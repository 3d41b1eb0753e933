"""Choices of the Help Center's support tickets."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class TicketCategory(models.TextChoices):
    BILLING = "billing", _("Billing and payments")
    EHR_DATA = "ehr_data", _("EHR and data")
    ACCOUNT = "account", _("Account and sign-in")
    BUG = "bug", _("Something is broken (a bug)")
    OTHER = "other", _("Other")


class TicketStatus(models.TextChoices):
    OPEN = "open", _("Open")
    WAITING_ON_CLINIC = "waiting_on_clinic", _("Waiting on the clinic")
    ANSWERED = "answered", _("Answered")
    CLOSED = "closed", _("Closed")


class MessageAuthor(models.TextChoices):
    MEMBER = "member", _("Clinic member")
    OPERATOR = "operator", _("LumaPay support")


class MessageChannel(models.TextChoices):
    WEB = "web", _("In LumaPay")
    EMAIL = "email", _("By e-mail")
    ADMIN = "admin", _("Operators' admin")
