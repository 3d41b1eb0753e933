"""Forms on the patient's pay page."""

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

