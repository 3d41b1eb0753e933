from django import forms


class SandboxCardForm(forms.Form):
    """The Sandbox processor's card form (its own page, English only, test cards only)."""

    number = forms.CharField(label="Card number", max_length=23, error_messages={"required": "Enter a card number."})
    expiry_month = forms.CharField(label="Expiry month", max_length=2, error_messages={"required": "Enter the month."})
    expiry_year = forms.CharField(label="Expiry year", max_length=4, error_messages={"required": "Enter the year."})
    cvc = forms.CharField(label="Security code (CVC)", max_length=4, error_messages={"required": "Enter the CVC."})
