from django import forms
from django.conf import settings

from lumapay.money import AmountError, cents_from_text, format_cents

from .enums import Role
from .models import Organization
from .services import EDITABLE_FIELDS, ROLE_FIELDS

# Administrators may always refund and use cards on file: the page shows them as a fixed, checked box.
REFUND_ROLE_CHOICES = [(Role.MANAGER, "Managers"), (Role.STAFF, "Sub-account users")]


# A hidden input per group of role checkboxes the settings page shows (templates/org_profile/settings.html).
ROLES_SHOWN_FIELD = "role_groups_shown"


class OrganizationSettingsForm(forms.Form):
    """The organization settings page's input. It only parses what was typed; the rules are
    ``organization_update``'s, whose messages the view shows beside each field. The legal and
    public information is the profile's (org_profile.profile_forms)."""

    refund_roles = forms.MultipleChoiceField(
        required=False,
        choices=REFUND_ROLE_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        label="Who may refund payments",
    )
    saved_card_roles = forms.MultipleChoiceField(
        required=False,
        choices=REFUND_ROLE_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        label="Who may charge cards on file",
        help_text="Charge a card on file, hold a copay on it before a visit, and capture or release the hold.",
    )
    saved_card_charge_max = forms.CharField(
        required=False,
        label="Most one charge of a card on file may take",
        max_length=30,
        help_text="In dollars, such as 2000. A charge or hold above it is refused.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )

    def clean_saved_card_charge_max(self) -> int | None:
        if "saved_card_charge_max" not in self.data:
            return None  # a form sent without it (an older page still open) keeps the limit as it is
        if not self.cleaned_data["saved_card_charge_max"].strip():
            raise forms.ValidationError("Enter the most one charge of a card on file may take.")
        try:
            return cents_from_text(self.cleaned_data["saved_card_charge_max"], max_cents=settings.PAYMENT_REQUEST_MAX_CENTS)
        except AmountError as error:
            raise forms.ValidationError(error.message) from None

    idle_timeout_minutes = forms.CharField(
        required=False,
        label="Sign out after this many minutes without activity",
        help_text="From 5 to 60 minutes. A minute before, the page offers to stay signed in.",
    )

    mfa_required_for_everyone = forms.BooleanField(
        required=False,
        label="Require two-step sign-in for everyone",
        help_text=(
            "Administrators and managers always sign in with a code from an authenticator app. "
            "With this on, sub-account users do too: each sets up an app at their next sign-in."
        ),
    )

    @classmethod
    def initial_for(cls, organization: Organization) -> dict:
        initial = {field: getattr(organization, field) for field in EDITABLE_FIELDS if field in cls.base_fields}
        # Typed in dollars ("2,000.00"), kept in cents.
        initial["saved_card_charge_max"] = format_cents(organization.saved_card_charge_max_cents).lstrip("$")
        return initial

    def field_for(self, service_field: str) -> str:
        """The form field that shows the service's message about ``service_field``."""
        return "saved_card_charge_max" if service_field == "saved_card_charge_max_cents" else service_field

    def data_for_service(self) -> dict:
        # A form sent without a field (an older page still open) keeps that setting as it is. A group
        # of checkboxes sends nothing when none is ticked, so the page names the role groups it
        # showed (ROLES_SHOWN_FIELD): those count as sent, ticked or not.
        shown = set(self.data.getlist(ROLES_SHOWN_FIELD)) if hasattr(self.data, "getlist") else set()
        data = {
            field: self.cleaned_data[field]
            for field in EDITABLE_FIELDS
            if field in self.base_fields and (field in self.data or (field in ROLE_FIELDS and field in shown))
        }
        if self.cleaned_data.get("saved_card_charge_max") is not None:
            data["saved_card_charge_max_cents"] = self.cleaned_data["saved_card_charge_max"]
        return data


class PasswordConfirmForm(forms.Form):
    password = forms.CharField(label="Password", strip=False, widget=forms.PasswordInput)
