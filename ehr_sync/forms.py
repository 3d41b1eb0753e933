"""Forms for the staff pages about patients. They parse what was typed; the services decide."""

from django import forms

from lumapay.errors import ApplicationError

from .enums import PreferredLanguage
from .phone_numbers import mobile_phone_normalize


class PatientSearchForm(forms.Form):
    q = forms.CharField(
        label="Search patients",
        required=False,
        max_length=200,
        widget=forms.TextInput(
            attrs={"type": "search", "autocomplete": "off", "aria-describedby": "patient-search-hint"}
        ),
    )


class PatientForm(forms.Form):
    """Adding or editing a patient by hand. ``cleaned_data`` holds what the services take."""

    first_name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    last_name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    date_of_birth = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        error_messages={"invalid": "Enter the date of birth as a date, such as 1984-03-09."},
    )
    email = forms.EmailField(
        label="E-mail",
        required=False,
        max_length=254,
        error_messages={"invalid": "This is not an e-mail address. Check it, or leave it empty."},
    )
    mobile_phone = forms.CharField(
        label="Mobile phone",
        required=False,
        max_length=40,
        help_text="A US number such as (217) 555-0100, or an international number starting with +.",
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
    )
    preferred_language = forms.ChoiceField(choices=PreferredLanguage.choices, initial=PreferredLanguage.ENGLISH)
    sms_consent = forms.BooleanField(
        label="The patient agreed to receive text messages on this mobile phone",
        required=False,
    )
    external_ehr_id = forms.CharField(
        label="EHR id",
        required=False,
        max_length=100,
        help_text="The patient's id in your EHR (MRN), if you know it.",
    )

    def clean_mobile_phone(self) -> str:
        try:
            return mobile_phone_normalize(self.cleaned_data["mobile_phone"])
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from None

    def add_application_error(self, error: ApplicationError) -> None:
        """Show a service's refusal beside the field it names, or above the form."""
        field = error.extra.get("field")
        self.add_error(field if field in self.fields else None, error.message)


class AccessLogExportForm(forms.Form):
    """The days of the PHI access log an administrator exports, in the organization's time zone."""

    date_from = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    date_to = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))

    def clean(self):
        cleaned = super().clean()
        date_from, date_to = cleaned.get("date_from"), cleaned.get("date_to")
        if date_from and date_to and date_to < date_from:
            raise forms.ValidationError("The last day comes before the first: swap them.")
        return cleaned
