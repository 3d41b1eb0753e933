"""The "Request payment" form. It parses what staff typed; ``payment_request_send`` decides."""

from __future__ import annotations

from django import forms
from django.conf import settings

from ehr_sync.models import Appointment, Patient
from ehr_sync.selectors import patient_appointments
from lumapay.dates import format_datetime
from lumapay.errors import ApplicationError
from lumapay.money import AmountError, cents_from_text, format_cents
from org_profile.models import Location, Membership
from org_profile.selectors import locations_for, scope_to_locations

from ..enums import PaymentRequestKind


class AppointmentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, appointment: Appointment) -> str:
        parts = [
            format_datetime(appointment.starts_at),
            appointment.location.name,
            appointment.provider_name,
        ]
        if appointment.copay_cents:
            parts.append(f"copay {format_cents(appointment.copay_cents, appointment.currency)}")
        return " · ".join(parts)


class PaymentRequestForm(forms.Form):
    amount = forms.CharField(
        max_length=30,
        help_text="In dollars, such as 45 or 45.00.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": "45.00"}),
        error_messages={"required": "Enter an amount."},
    )
    kind = forms.ChoiceField(
        label="Kind",
        choices=PaymentRequestKind.choices,
        initial=PaymentRequestKind.COPAY,
        widget=forms.RadioSelect,
    )
    billing_item = forms.CharField(
        label="Billing item",
        max_length=120,
        help_text="What the patient pays for, as it reads on their statement, such as “Office visit copay”.",
        error_messages={"required": "Enter the billing item the patient is paying for, such as “Office visit copay”."},
    )
    location = forms.ModelChoiceField(
        queryset=Location.objects.none(),
        error_messages={
            "required": "Choose the location the patient is paying.",
            "invalid_choice": "Choose one of your locations.",
        },
    )
    appointment = AppointmentChoiceField(
        queryset=Appointment.objects.none(),
        required=False,
        empty_label="No particular appointment",
        error_messages={"invalid_choice": "Choose one of this patient's appointments."},
    )
    note = forms.CharField(
        label="Note to the patient",
        required=False,
        max_length=500,
        help_text="Optional; shown on the payment page. Never write a diagnosis here.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args, membership: Membership, patient: Patient, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        locations = locations_for(membership=membership)
        self.fields["location"].queryset = locations
        appointments = scope_to_locations(patient_appointments(patient=patient), membership=membership)
        self.fields["appointment"].queryset = appointments
        if not self.is_bound and len(locations) == 1:
            self.initial.setdefault("location", locations[0].pk)

    def prefill_from_appointment(self, appointment_id: str | None) -> None:
        """Start a copay request for one of the patient's appointments ("Request copay" links)."""
        if not self.is_bound and appointment_id and appointment_id.isdigit():
            appointment = self.fields["appointment"].queryset.filter(pk=int(appointment_id)).first()
            if appointment is not None:
                self.initial.update(
                    appointment=appointment.pk,
                    location=appointment.location_id,
                    kind=PaymentRequestKind.COPAY,
                    billing_item="Office visit copay",
                    amount=(
                        format_cents(appointment.copay_cents, appointment.currency) if appointment.copay_cents else ""
                    ),
                )

    def clean_amount(self) -> int:
        try:
            return cents_from_text(self.cleaned_data["amount"], max_cents=settings.PAYMENT_REQUEST_MAX_CENTS)
        except AmountError as error:
            raise forms.ValidationError(error.message) from None

    def add_application_error(self, error: ApplicationError) -> None:
        """Show a service's refusal beside the field it names, or above the form."""
        field = error.extra.get("field")
        self.add_error(field if field in self.fields else None, error.message)
