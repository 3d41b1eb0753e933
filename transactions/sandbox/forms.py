from django import forms
from django.utils.translation import gettext_lazy as _


class SandboxCardForm(forms.Form):
    """The Sandbox processor's card form (its own page, in the checkout's language, test cards only)."""

    number = forms.CharField(label=_("Card number"), max_length=23, error_messages={"required": _("Enter a card number.")})
    expiry_month = forms.CharField(label=_("Expiry month"), max_length=2, error_messages={"required": _("Enter the month.")})
    expiry_year = forms.CharField(label=_("Expiry year"), max_length=4, error_messages={"required": _("Enter the year.")})
    cvc = forms.CharField(label=_("CVC"), max_length=4, error_messages={"required": _("Enter the CVC.")})
