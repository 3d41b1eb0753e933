"""The organization profile's forms. They only parse what was typed; the rules are
org_profile.profile's, whose messages the views show beside each field."""

from django import forms

from .enums import BusinessType, IndustryCode
from .profile import PUBLIC_FIELDS, US_STATES

class NeverShownInput(forms.TextInput):
    """A text box that never puts a value back on the page (an EIN, a date of birth, SSN digits):
    not after saving, not after a refused form."""

    def format_value(self, value):
        return None


STATE_CHOICES = [("", "Choose a state")] + sorted(US_STATES.items(), key=lambda item: item[1])


class ProfileForm(forms.Form):
    def add_service_errors(self, errors: dict[str, list[str]]) -> None:
        for field, messages in errors.items():
            for message in messages:
                self.add_error(field if field in self.fields else None, message)


class LegalForm(ProfileForm):
    legal_name = forms.CharField(
        required=False, label="Legal business name", help_text="As the IRS knows it, such as Riverside Family Medicine PLLC."
    )
    business_type = forms.ChoiceField(
        required=False, label="Business type", choices=[("", "Choose the kind of business")] + BusinessType.choices
    )
    tax_id = forms.CharField(
        required=False,
        label="Employer Identification Number (EIN)",
        help_text="9 digits, such as 12-3456789. Stored encrypted; only its last 4 digits are shown again.",
        widget=NeverShownInput(attrs={"autocomplete": "off", "inputmode": "numeric", "spellcheck": "false"}),
    )
    address_line1 = forms.CharField(required=False, label="Registered address")
    address_line2 = forms.CharField(required=False, label="Address line 2")
    city = forms.CharField(required=False, label="City")
    state = forms.ChoiceField(required=False, label="State", choices=STATE_CHOICES)
    postal_code = forms.CharField(required=False, label="ZIP code", help_text="12345 or 12345-6789.")
    industry_code = forms.ChoiceField(
        required=False,
        label="Industry code (MCC)",
        choices=[("", "Choose the clinic's kind of care")] + IndustryCode.choices,
        help_text="How card networks classify the clinic's charges.",
    )

    @classmethod
    def initial_for(cls, organization) -> dict:
        # The EIN is never put back on the page: its field starts empty, and empty keeps it.
        return {field: getattr(organization, field) for field in cls.base_fields if field != "tax_id"}

    def data_for_service(self) -> dict:
        return {field: self.cleaned_data[field] for field in self.fields if field in self.data}


class PublicForm(ProfileForm):
    public_name = forms.CharField(
        required=False,
        label="Public name",
        help_text="What patients see on pay pages, e-mails and receipts. Empty: the organization's name.",
    )
    support_phone = forms.CharField(required=False, label="Support phone", widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}))
    support_email = forms.CharField(required=False, label="Support e-mail address", widget=forms.TextInput(attrs={"type": "email", "autocomplete": "off"}))
    website = forms.CharField(required=False, label="Website")
    statement_descriptor = forms.CharField(
        required=False,
        label="Statement descriptor",
        help_text="What patients see on their card statement: 5 to 22 Latin letters, digits, spaces and simple punctuation, with at least one letter; not < > \\ ' \" *.",
    )

    @classmethod
    def initial_for(cls, organization) -> dict:
        return {field: getattr(organization, field) for field in PUBLIC_FIELDS}

    def data_for_service(self) -> dict:
        return {field: self.cleaned_data[field] for field in self.fields if field in self.data}


class LogoForm(forms.Form):
    logo = forms.FileField(
        required=False,
        label="Logo",
        help_text="A PNG, JPEG or WebP image. It is shown at most 512 pixels wide.",
        error_messages={"empty": "Choose an image file for the logo.", "invalid": "Choose an image file for the logo."},
    )


class PersonForm(ProfileForm):
    first_name = forms.CharField(required=False, label="First name")
    last_name = forms.CharField(required=False, label="Last name")
    title = forms.CharField(required=False, label="Title", help_text="Such as Practice Administrator or CEO (required for the controller).")
    email = forms.CharField(required=False, label="E-mail address", widget=forms.TextInput(attrs={"type": "email", "autocomplete": "off"}))
    phone = forms.CharField(required=False, label="Phone", widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}))
    date_of_birth = forms.CharField(
        required=False,
        label="Date of birth",
        help_text="YYYY-MM-DD. Stored encrypted and never shown again.",
        widget=NeverShownInput(attrs={"autocomplete": "off", "placeholder": "YYYY-MM-DD"}),
    )
    ssn_last4 = forms.CharField(
        required=False,
        label="Last 4 digits of the SSN",
        help_text="Stored encrypted and never shown again.",
        widget=NeverShownInput(attrs={"autocomplete": "off", "inputmode": "numeric", "maxlength": "4"}),
    )
    address_line1 = forms.CharField(required=False, label="Home address")
    address_line2 = forms.CharField(required=False, label="Address line 2")
    city = forms.CharField(required=False, label="City")
    state = forms.ChoiceField(required=False, label="State", choices=STATE_CHOICES)
    postal_code = forms.CharField(required=False, label="ZIP code")
    is_owner = forms.BooleanField(required=False, label="Owns 25% or more of the business")
    ownership_percent = forms.CharField(required=False, label="Share owned (%)", widget=forms.TextInput(attrs={"inputmode": "decimal"}))
    is_controller = forms.BooleanField(
        required=False, label="Controller (representative)", help_text="The person who manages the business and answers for it to Stripe."
    )

    @classmethod
    def initial_for(cls, person) -> dict:
        initial = {field: getattr(person, field) for field in cls.base_fields if field not in ("date_of_birth", "ssn_last4")}
        if person.ownership_percent is not None:
            initial["ownership_percent"] = f"{person.ownership_percent.normalize():f}"
        return initial

    def data_for_service(self) -> dict:
        return dict(self.cleaned_data)
