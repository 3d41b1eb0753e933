from django import forms

from lumapay.money import AmountError, cents_from_text, format_cents

FULL = "full"
PARTIAL = "partial"


class RefundForm(forms.Form):
    """How much to refund (in full by default, or an amount typed in dollars) and why.

    ``refundable_cents`` is the remainder shown on the page; the service checks it again under
    the transaction's lock.
    """

    scope = forms.ChoiceField(widget=forms.RadioSelect, initial=FULL, label="How much")
    amount = forms.CharField(
        required=False,
        max_length=20,
        label="Amount to refund",
        help_text="In dollars, such as 12.50.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    reason = forms.CharField(
        max_length=500,
        label="Reason",
        help_text="Kept in the transaction's history.",
        error_messages={"required": "Enter a reason for the refund."},
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args, refundable_cents: int, currency: str = "usd", **kwargs):
        super().__init__(*args, **kwargs)
        self.refundable_cents = refundable_cents
        self.fields["scope"].choices = [
            (FULL, f"Refund in full ({format_cents(refundable_cents, currency)})"),
            (PARTIAL, "Refund part of it"),
        ]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("scope") == FULL:
            cleaned["amount_cents"] = self.refundable_cents
        elif cleaned.get("scope") == PARTIAL:
            try:
                cleaned["amount_cents"] = cents_from_text(cleaned.get("amount", ""), max_cents=self.refundable_cents)
            except AmountError as error:
                self.add_error("amount", error.message)
        return cleaned
