"""The collection rules' settings form: what a manager types, checked in words they can act on."""

from __future__ import annotations

import datetime

from django import forms
from django.conf import settings

from lumapay.money import format_cents

from ..models import CollectionRules

# A hold lasts 7 days at the processor: placed more than 6 days ahead it would lapse first.
HOLD_LIFE_HOURS = 7 * 24
HOLD_LEAD_MAX_HOURS = 144
COPAY_LEAD_MAX_HOURS = 336


class CollectionRulesForm(forms.Form):
    copay_request_enabled = forms.BooleanField(
        required=False, label="Send a copay request before each visit with a copay"
    )
    copay_request_hours_before = forms.IntegerField(
        label="How many hours before the visit",
        help_text=f"From 1 to {COPAY_LEAD_MAX_HOURS} hours (14 days). 48 sends it two days before.",
        error_messages={"invalid": "Enter a whole number of hours.", "required": "Enter how many hours before the visit."},
    )
    hold_enabled = forms.BooleanField(
        required=False,
        label="Hold the copay on the card on file instead, when the patient has one",
    )
    hold_hours_before = forms.IntegerField(
        label="How many hours before the visit to place the hold",
        help_text=f"From 1 to {HOLD_LEAD_MAX_HOURS} hours: a hold lasts 7 days at the processor, so it must be placed "
        "less than 7 days before the visit, with a day to spare.",
        error_messages={"invalid": "Enter a whole number of hours.", "required": "Enter how many hours before the visit."},
    )
    balance_request_enabled = forms.BooleanField(
        required=False, label="Send a balance request when a patient's balance appears or grows above the threshold"
    )
    balance_threshold = forms.DecimalField(
        label="Threshold, in dollars",
        min_value=0,
        max_digits=9,
        decimal_places=2,
        help_text="Balances above this amount are asked for. 0 asks for every balance.",
        error_messages={
            "invalid": "Enter an amount in dollars, such as 10.00.",
            "required": "Enter a threshold (0 for every balance).",
            "min_value": "The threshold cannot be negative.",
            "max_decimal_places": "Enter the amount in dollars and cents, such as 10.50.",
        },
    )
    balance_reminder_days = forms.CharField(
        label="Send reminders this many days after the request",
        required=False,
        help_text="Days, separated by commas, from the smallest, such as 3, 7, 14. Leave empty for no reminders.",
    )
    quiet_hours_start = forms.TimeField(
        label="Quiet hours start",
        input_formats=["%H:%M"],
        help_text="In the clinic's time zone. Nothing is sent to patients during quiet hours: what is due waits until they end.",
        error_messages={"invalid": "Enter a time such as 21:00.", "required": "Enter when quiet hours start."},
    )
    quiet_hours_end = forms.TimeField(
        label="Quiet hours end",
        input_formats=["%H:%M"],
        help_text="The same time as the start means no quiet hours.",
        error_messages={"invalid": "Enter a time such as 08:00.", "required": "Enter when quiet hours end."},
    )

    @staticmethod
    def initial_for(rules: CollectionRules) -> dict:
        def as_time(value):
            return value if isinstance(value, datetime.time) else datetime.time.fromisoformat(value)

        return {
            "copay_request_enabled": rules.copay_request_enabled,
            "copay_request_hours_before": rules.copay_request_hours_before,
            "hold_enabled": rules.hold_enabled,
            "hold_hours_before": rules.hold_hours_before,
            "balance_request_enabled": rules.balance_request_enabled,
            "balance_threshold": format_cents(rules.balance_threshold_cents).lstrip("$").replace(",", ""),
            "balance_reminder_days": ", ".join(str(day) for day in rules.balance_reminder_days or []),
            "quiet_hours_start": as_time(rules.quiet_hours_start).strftime("%H:%M"),
            "quiet_hours_end": as_time(rules.quiet_hours_end).strftime("%H:%M"),
        }

    def clean_copay_request_hours_before(self):
        hours = self.cleaned_data["copay_request_hours_before"]
        if not 1 <= hours <= COPAY_LEAD_MAX_HOURS:
            raise forms.ValidationError(f"Enter from 1 to {COPAY_LEAD_MAX_HOURS} hours.")
        return hours

    def clean_hold_hours_before(self):
        hours = self.cleaned_data["hold_hours_before"]
        if hours >= HOLD_LIFE_HOURS:
            raise forms.ValidationError(
                "A hold lasts 7 days (168 hours) at the processor: placed this early it would lapse before the "
                f"visit. Enter at most {HOLD_LEAD_MAX_HOURS} hours."
            )
        if not 1 <= hours <= HOLD_LEAD_MAX_HOURS:
            raise forms.ValidationError(f"Enter from 1 to {HOLD_LEAD_MAX_HOURS} hours.")
        return hours

    def clean_balance_reminder_days(self):
        text = self.cleaned_data["balance_reminder_days"].strip()
        if not text:
            return []
        try:
            days = [int(part) for part in text.replace(" ", "").split(",") if part]
        except ValueError:
            raise forms.ValidationError("Enter whole days separated by commas, such as 3, 7, 14.") from None
        if len(days) > 10:
            raise forms.ValidationError("Enter at most 10 reminders.")
        link_days = settings.PAYMENT_LINK_TTL_DAYS
        if any(day < 1 or day >= link_days for day in days):
            raise forms.ValidationError(
                f"Each reminder must come from 1 to {link_days - 1} days after the request: its link works for "
                f"{link_days} days."
            )
        if any(later <= earlier for earlier, later in zip(days, days[1:])):
            raise forms.ValidationError("Enter the days from the smallest to the largest, each once, such as 3, 7, 14.")
        return days

    def values_for_service(self) -> dict:
        data = self.cleaned_data
        return {
            "copay_request_enabled": data["copay_request_enabled"],
            "copay_request_hours_before": data["copay_request_hours_before"],
            "hold_enabled": data["hold_enabled"],
            "hold_hours_before": data["hold_hours_before"],
            "balance_request_enabled": data["balance_request_enabled"],
            "balance_threshold_cents": int(data["balance_threshold"] * 100),
            "balance_reminder_days": data["balance_reminder_days"],
            "quiet_hours_start": data["quiet_hours_start"],
            "quiet_hours_end": data["quiet_hours_end"],
        }
