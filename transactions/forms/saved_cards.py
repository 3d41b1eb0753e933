"""The staff forms for cards on file. They parse what staff typed; the services decide."""

from __future__ import annotations

from django import forms
from django.conf import settings

from ehr_sync.models import Appointment, Patient
from lumapay.money import AmountError, cents_from_text
from org_profile.models import Location, Membership
from org_profile.selectors import locations_for

from ..enums import PaymentRequestKind
from ..selectors.saved_cards import appointments_to_hold
from .payment_requests import AppointmentChoiceField


class SavedCardChargeForm(forms.Form):
    amount = forms.CharField(
        max_length=30,
        help_text="In dollars, such as 45 or 45.00.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": "45.00"}),
        error_messages={"required": "Enter an amount."},
    )
    kind = forms.ChoiceField(label="Kind", choices=PaymentRequestKind.choices, initial=PaymentRequestKind.BALANCE)
    billing_item = forms.CharField(
        label="Billing item",
        max_length=120,
        error_messages={"required": "Enter what the charge is for, such as “Balance after insurance”."},
    )
    location = forms.ModelChoiceField(
        queryset=Location.objects.none(),
        error_messages={"required": "Choose the location the charge is for.", "invalid_choice": "Choose one of your locations."},
    )

    def __init__(self, *args, membership: Membership, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        locations = locations_for(membership=membership)
        self.fields["location"].queryset = locations
        if not self.is_bound and len(locations) == 1:
            self.initial.setdefault("location", locations[0].pk)

    def clean_amount(self) -> int:
        try:
            return cents_from_text(self.cleaned_data["amount"], max_cents=settings.PAYMENT_REQUEST_MAX_CENTS)
        except AmountError as error:
            raise forms.ValidationError(error.message) from None


class SavedCardHoldForm(forms.Form):
    appointment = AppointmentChoiceField(
        queryset=Appointment.objects.none(),
        empty_label=None,
        error_messages={
            "required": "Choose the appointment to hold the copay for.",
            "invalid_choice": "Choose one of this patient's upcoming appointments with a copay.",
        },
    )

    def __init__(self, *args, membership: Membership, patient: Patient, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["appointment"].queryset = appointments_to_hold(membership=membership, patient=patient)


class AuthorizationReleaseForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=200,
        help_text="Such as “Appointment cancelled” or “No-show”. Kept in the transaction's history.",
        error_messages={"required": "Say why the hold is released."},
    )
