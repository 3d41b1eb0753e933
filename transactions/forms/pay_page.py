"""Forms on the patient's pay page, and the card form of the Sandbox's hosted checkout page."""

from __future__ import annotations

import datetime

from django import forms
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy as _


class DateOfBirthForm(forms.Form):
    """Month, day and year as three short number boxes: the pattern people know from paper forms,
    and it works with every phone keyboard. Errors are form-wide and tied to all three boxes."""

    month = forms.CharField(label=_("Month"), max_length=2, required=False)
    day = forms.CharField(label=_("Day"), max_length=2, required=False)
    year = forms.CharField(label=_("Year"), max_length=4, required=False)

    def clean(self):
        data = super().clean()
        parts = [(data.get(name) or "").strip() for name in ("month", "day", "year")]
        if not all(parts):
            raise forms.ValidationError(gettext("Enter your date of birth: month, day and year."), code="required")
        if not all(part.isdigit() for part in parts) or len(parts[2]) != 4:
            raise forms.ValidationError(
                gettext("Enter your date of birth in numbers, for example 03 09 1984."), code="invalid"
            )
        month, day, year = (int(part) for part in parts)
        try:
            value = datetime.date(year, month, day)
        except ValueError:
            raise forms.ValidationError(
                gettext("That is not a real date. Check the month, day and year."), code="invalid"
            ) from None
        if value > timezone.localdate() or year < 1900:
            raise forms.ValidationError(
                gettext("That is not a real date. Check the month, day and year."), code="invalid"
            )
        data["date_of_birth"] = value
        return data


class SandboxCardForm(forms.Form):
    """The Sandbox processor's card form (its own page, English only, test cards only)."""

    number = forms.CharField(label="Card number", max_length=23, error_messages={"required": "Enter a card number."})
    expiry_month = forms.CharField(label="Expiry month", max_length=2, error_messages={"required": "Enter the month."})
    expiry_year = forms.CharField(label="Expiry year", max_length=4, error_messages={"required": "Enter the year."})
    cvc = forms.CharField(label="Security code (CVC)", max_length=4, error_messages={"required": "Enter the CVC."})
