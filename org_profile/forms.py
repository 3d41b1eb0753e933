from django import forms

from .enums import Role
from .models import Organization
from .services import EDITABLE_FIELDS, STATEMENT_DESCRIPTOR_MAX_LENGTH

# Administrators may always refund: the page shows them as a fixed, checked box.
REFUND_ROLE_CHOICES = [(Role.MANAGER, "Managers"), (Role.STAFF, "Sub-account users")]


class OrganizationSettingsForm(forms.Form):
    """The organization settings page's input. It only parses what was typed; the rules (the
    statement descriptor, the tax ID, phone numbers, e-mail and web addresses) are
    ``organization_update``'s, whose messages the view shows beside each field."""

    legal_name = forms.CharField(required=False, label="Legal business name")
    tax_id_last4 = forms.CharField(
        required=False, label="Tax ID (last 4 digits)", help_text="Only the last 4 digits of the EIN."
    )
    address_line1 = forms.CharField(required=False, label="Address")
    address_line2 = forms.CharField(required=False, label="Address line 2")
    city = forms.CharField(required=False, label="City")
    state = forms.CharField(required=False, label="State")
    postal_code = forms.CharField(required=False, label="ZIP code")

    public_name = forms.CharField(
        required=False,
        label="Public name",
        help_text="What patients see on payment pages, e-mails and receipts. Leave it empty to use the organization's name.",
    )
    support_phone = forms.CharField(required=False, label="Support phone")
    support_email = forms.CharField(required=False, label="Support e-mail address")
    website = forms.CharField(required=False, label="Website")
    statement_descriptor = forms.CharField(
        required=False,
        label="Statement descriptor",
        help_text=(
            f"What patients see on their card statement: 5 to {STATEMENT_DESCRIPTOR_MAX_LENGTH} letters, "
            "digits and spaces, with at least one letter."
        ),
    )
    refund_roles = forms.MultipleChoiceField(
        required=False,
        choices=REFUND_ROLE_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        label="Who may refund payments",
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
        return {field: getattr(organization, field) for field in EDITABLE_FIELDS}

    def data_for_service(self) -> dict:
        data = {field: self.cleaned_data[field] for field in EDITABLE_FIELDS}
        website = data["website"].strip()
        if website and "://" not in website:
            # People type "riverside.example"; the address patients follow needs a scheme.
            data["website"] = f"https://{website}"
        return data
