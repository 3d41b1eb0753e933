import uuid

from django import forms

from lumapay.money import AmountError, cents_from_text, format_cents


def dollars_text(cents: int) -> str:
    """Cents as the form shows and takes them back: "22.50"."""
    return f"{cents // 100}.{cents % 100:02d}"


class RefundForm(forms.Form):
    """How much to refund (one amount, in dollars, prefilled with what is refundable) and why.

    Posted twice: first from the transaction's page (``confirmed`` empty: the view shows the
    confirmation), then from the confirmation page with ``confirmed`` set and the same values, plus
    an ``idempotency_key`` made for that confirmation, so a double click refunds once.
    ``refundable_cents`` is the remainder shown on the page; the service checks it again under the
    transaction's lock. There is no "in full" choice that could override a typed amount: the
    page's "Full amount" button only fills the field (``filled_in_full``).
    """

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
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)
    idempotency_key = forms.UUIDField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, refundable_cents: int, currency: str = "usd", **kwargs):
        super().__init__(*args, **kwargs)
        self.refundable_cents = refundable_cents
        self.full_amount_label = f"Full amount ({format_cents(refundable_cents, currency)})"
        self.fields["amount"].initial = dollars_text(refundable_cents)

    @classmethod
    def redisplayed(cls, data, *, refundable_cents: int, currency: str = "usd", in_full: bool = False) -> "RefundForm":
        """The form as the person left it (Back from the confirmation, or the "Full amount"
        button), unbound so it shows no errors yet."""
        amount = dollars_text(refundable_cents) if in_full else data.get("amount", "")
        return cls(
            initial={"amount": amount, "reason": data.get("reason", "")},
            refundable_cents=refundable_cents,
            currency=currency,
        )

    def clean(self):
        cleaned = super().clean()
        try:
            cleaned["amount_cents"] = cents_from_text(cleaned.get("amount", ""), max_cents=self.refundable_cents)
        except AmountError as error:
            self.add_error("amount", error.message)
        return cleaned

    def confirmation_fields(self) -> dict:
        """The hidden values the confirmation page posts back, with a key for this confirmation.

        Always the exact amount shown: if another refund lands in between, the confirmation is
        refused instead of quietly refunding a different amount.
        """
        return {
            "amount": dollars_text(self.cleaned_data["amount_cents"]),
            "reason": self.cleaned_data["reason"],
            "confirmed": "1",
            "idempotency_key": str(self.cleaned_data.get("idempotency_key") or uuid.uuid4()),
        }
