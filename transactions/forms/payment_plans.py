"""The staff form for setting up a payment plan. It parses what staff typed; the service decides."""

from __future__ import annotations

from django import forms
from django.conf import settings

from lumapay.money import AmountError, cents_from_text
from org_profile.models import Location, Membership
from org_profile.selectors import locations_for

from ..models import SavedCard


class PaymentPlanForm(forms.Form):
    saved_card = forms.ModelChoiceField(
        label="Card on file",
        queryset=SavedCard.objects.none(),
        empty_label=None,
        error_messages={"required": "Choose the card to charge.", "invalid_choice": "Choose one of the patient's cards on file."},
    )
    amount = forms.CharField(
        label="Amount to split",
        max_length=30,
        help_text="In dollars: the patient's balance, or the part of it the plan pays.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": "240.00"}),
        error_messages={"required": "Enter the amount to split."},
    )
    instalment_count = forms.TypedChoiceField(
        label="Monthly instalments",
        coerce=int,
        choices=[(count, f"{count} monthly instalments") for count in (2, 3, 4, 6, 9, 12)],
        initial=3,
    )
    first_due_date = forms.DateField(
        label="First instalment on",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The clinic's date; the next ones fall on the same day of each following month.",
        error_messages={"required": "Enter the date of the first instalment.", "invalid": "Enter a date such as 2027-01-15."},
    )
    billing_item = forms.CharField(
        label="Billing item",
        max_length=120,
        initial="Balance after insurance",
        error_messages={"required": "Enter what the plan pays for, such as “Balance after insurance”."},
    )
    location = forms.ModelChoiceField(
        queryset=Location.objects.none(),
        error_messages={"required": "Choose the location the plan is for.", "invalid_choice": "Choose one of your locations."},
    )

    def __init__(self, *args, membership: Membership, cards, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["saved_card"].queryset = cards
        locations = locations_for(membership=membership)
        self.fields["location"].queryset = locations
        if not self.is_bound and len(locations) == 1:
            self.initial.setdefault("location", locations[0].pk)

    def clean_amount(self) -> int:
        try:
            return cents_from_text(self.cleaned_data["amount"], max_cents=settings.PAYMENT_REQUEST_MAX_CENTS)
        except AmountError as error:
            raise forms.ValidationError(error.message) from None
