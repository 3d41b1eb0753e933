"""The form for adding or changing an EHR connection: the fields of its kind only. It parses what
was typed into ``ConnectionSettings``; the services decide (ehr_sync/connection_services.py).

Secrets are write-only: the field is always empty, its help says whether one is set ("set (…1234)"),
an empty field keeps it, and "Remove" forgets it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django import forms

from lumapay.errors import ApplicationError

from .connection_services import SFTP_DEFAULT_PORT, ConnectionSettings
from .enums import (
    DEFAULT_APPOINTMENT_WINDOW_DAYS,
    BalanceAdapter,
    ConnectionOption,
    ConnectionSecret,
    EhrConnectionKind,
    FhirAuth,
    PostingAdapter,
    SmartJwtAlgorithm,
)
from .models import EhrConnection

SCHEDULED, MANUAL = "scheduled", "manual"

# The form's fields of each kind, in the order the page shows them, by fieldset.
FIELDSETS = {
    EhrConnectionKind.FHIR: [
        ("Server", ["name", "base_url"]),
        ("Sign-in", ["auth", "bearer_token", "client_id", "token_url", "key_id", "jwt_algorithm", "private_key_pem"]),
        ("What to read", ["appointment_window_days", "balance_adapter", "balance_extension_url", "sms_consent_extension_url"]),
        ("Posting payments back to the EHR", ["posting_enabled", "posting_adapter", "posting_identifier_system"]),
    ],
    EhrConnectionKind.HL7_MLLP: [
        ("Feed", ["name", "sending_facility", "receiving_facility", "patient_facilities"]),
        ("Posting payments back to the EHR", ["posting_enabled", "outbound_address"]),
    ],
    EhrConnectionKind.SFTP: [
        ("Server", ["name", "host", "port", "host_key", "folder"]),
        ("Sign-in", ["username", "password", "private_key"]),
    ],
}
_COMMON = ["schedule", "sync_every_minutes", "is_active"]
SECRET_LABELS = {
    ConnectionSecret.BEARER_TOKEN: "Access token",
    ConnectionSecret.PRIVATE_KEY_PEM: "Private key (PEM)",
    ConnectionSecret.PASSWORD: "Password",
    ConnectionSecret.PRIVATE_KEY: "Private key",
}
_SECRET_HELP = {
    ConnectionSecret.BEARER_TOKEN: "Sent as “Authorization: Bearer …”. Leave empty for a server that needs none (a test server).",
    ConnectionSecret.PRIVATE_KEY_PEM: "The key LumaPay signs its token requests with; the EHR holds its public key (JWKS).",
    ConnectionSecret.PASSWORD: "Or use a private key below.",
    ConnectionSecret.PRIVATE_KEY: "An OpenSSH or PEM key without a passphrase, whose public key the server accepts.",
}


class SecretTextarea(forms.Textarea):
    """A key pasted in a text area, never written back into the page (as PasswordInput's
    ``render_value=False``), even when the form comes back with an error."""

    def format_value(self, value):
        return None


class EhrConnectionForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="What your team calls it, e.g. “Epic production”.")
    # FHIR
    base_url = forms.CharField(
        label="FHIR base URL", max_length=500, required=False, help_text="e.g. https://fhir.example-ehr.com/r4"
    )
    auth = forms.ChoiceField(label="How LumaPay signs in", choices=FhirAuth.choices, initial=FhirAuth.BEARER, widget=forms.RadioSelect)
    client_id = forms.CharField(label="Client id (SMART)", max_length=200, required=False)
    token_url = forms.CharField(label="Token URL (SMART)", max_length=500, required=False)
    key_id = forms.CharField(
        label="Key id, kid (SMART)", max_length=200, required=False,
        help_text="The kid of the public key you registered with the EHR (in its JWKS).",
    )
    jwt_algorithm = forms.ChoiceField(
        label="Signing algorithm (SMART)", choices=SmartJwtAlgorithm.choices, initial=SmartJwtAlgorithm.RS384
    )
    appointment_window_days = forms.IntegerField(
        label="Days of appointments ahead to read", min_value=1, max_value=365, initial=DEFAULT_APPOINTMENT_WINDOW_DAYS
    )
    balance_adapter = forms.ChoiceField(
        label="Patient balances", choices=BalanceAdapter.choices, initial=BalanceAdapter.NONE,
        help_text="FHIR R4 has no standard place for what a patient owes: each EHR vendor keeps it its own way.",
    )
    balance_extension_url = forms.CharField(
        label="Balance extension URL (custom, Oracle Health)", max_length=500, required=False,
        help_text="The extension's url on Patient or Account whose valueMoney is the balance.",
    )
    sms_consent_extension_url = forms.CharField(
        label="SMS consent extension URL", max_length=500, required=False,
        help_text="A Patient extension (valueBoolean) saying whether the patient agreed to texts. "
        "Empty: SMS consent stays as your staff recorded it.",
    )
    # HL7 v2
    sending_facility = forms.CharField(
        label="Sending facility (MSH-4)", max_length=180, required=False,
        help_text="Messages whose MSH-4 is this value are this organization's.",
    )
    receiving_facility = forms.CharField(
        label="Receiving facility (MSH-6)", max_length=180, required=False,
        help_text="Only when another clinic's EHR sends the same MSH-4: the MSH-6 on this organization's messages.",
    )
    patient_facilities = forms.CharField(
        label="Facilities that share patient ids", max_length=500, required=False,
        help_text="Comma-separated: other facilities (PID-3) whose patients are this organization's, in a health system.",
    )
    # Posting payments, refunds and reversals back to the EHR (FHIR and HL7)
    posting_enabled = forms.BooleanField(
        label="Post payments, refunds and reversals to the EHR", required=False,
        help_text="Each one is posted once, from the moment you turn this on; failures are retried.",
    )
    posting_adapter = forms.ChoiceField(
        label="Post as", choices=PostingAdapter.choices, initial=PostingAdapter.PAYMENT_RECONCILIATION, required=False,
        help_text="The FHIR resource the EHR takes payments as. Ask the EHR's team if unsure.",
    )
    posting_identifier_system = forms.CharField(
        label="Identifier system for LumaPay's postings", max_length=300, required=False,
        help_text="Empty: https://lumapay.com/fhir/ehr-posting. The EHR finds a retried posting by it.",
    )
    outbound_address = forms.CharField(
        label="The EHR's MLLP address for postings (host:port)", max_length=300, required=False,
        help_text="Where LumaPay sends DFT^P03 messages, e.g. ehr.clinic.example:6661.",
    )
    # SFTP
    host = forms.CharField(label="Host", max_length=253, required=False, help_text="e.g. sftp.clinic.example")
    port = forms.IntegerField(label="Port", min_value=1, max_value=65535, initial=SFTP_DEFAULT_PORT, required=False)
    host_key = forms.CharField(
        label="The server's host key", required=False, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="The line “ssh-keyscan -t ed25519 host” prints (run it on a trusted network), or the server's public key. Required: "
        "LumaPay never trusts the key a server first shows.",
    )
    folder = forms.CharField(label="Folder", max_length=300, required=False, initial="/", help_text="Where the EHR drops its files.")
    username = forms.CharField(label="User name", max_length=200, required=False)
    # Schedule and state
    schedule = forms.ChoiceField(
        label="Schedule",
        choices=[(SCHEDULED, "Every few minutes"), (MANUAL, "Manual only: when someone presses “Sync now”")],
        initial=SCHEDULED,
        widget=forms.RadioSelect,
    )
    sync_every_minutes = forms.IntegerField(label="Sync every (minutes)", min_value=1, max_value=7 * 24 * 60, initial=15, required=False)
    is_active = forms.BooleanField(
        label="Active", required=False, initial=True, help_text="A paused connection neither syncs nor accepts messages."
    )

    def __init__(self, *args, kind: str, connection: EhrConnection | None = None, hints: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.connection = connection
        hints = hints or {}
        for name in SECRET_LABELS:
            self.fields[name] = forms.CharField(
                label=SECRET_LABELS[name],
                required=False,
                strip=False,
                widget=SecretTextarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"})
                if name in (ConnectionSecret.PRIVATE_KEY_PEM, ConnectionSecret.PRIVATE_KEY)
                else forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
                help_text=_SECRET_HELP[name],
            )
            if name in hints:
                self.fields[f"remove_{name}"] = forms.BooleanField(label=f"Remove the stored {SECRET_LABELS[name].lower()}", required=False)
        wanted = {name for _legend, names in FIELDSETS[kind] for name in names} | set(_COMMON)
        wanted |= {f"remove_{name}" for name in hints if name in wanted}
        for name in list(self.fields):
            if name not in wanted:
                del self.fields[name]
        self.hints = hints
        if kind == EhrConnectionKind.HL7_MLLP:
            # Pushed by the EHR as it happens: no schedule.
            for name in ("schedule", "sync_every_minutes"):
                del self.fields[name]

    def fieldsets(self):
        """[(legend, [(bound field, its "remove" box or None, the stored secret's hint or "")])]."""
        sets = []
        for legend, names in FIELDSETS[self.kind]:
            rows = []
            for name in names:
                if name in self.fields:
                    remove = self[f"remove_{name}"] if f"remove_{name}" in self.fields else None
                    rows.append((self[name], remove, self.hints.get(name, "")))
            sets.append((legend, rows))
        return sets

    @staticmethod
    def initial_for(connection: EhrConnection) -> dict:
        options = connection.options or {}
        initial = {
            "name": connection.name,
            "base_url": connection.base_url,
            "schedule": SCHEDULED if connection.sync_every_minutes else MANUAL,
            "sync_every_minutes": connection.sync_every_minutes or 15,
            "is_active": connection.is_active,
            **{key: value for key, value in options.items() if not isinstance(value, (dict, list))},
        }
        if options.get(ConnectionOption.PATIENT_FACILITIES):
            initial["patient_facilities"] = ", ".join(options[ConnectionOption.PATIENT_FACILITIES])
        if connection.kind == EhrConnectionKind.SFTP and connection.base_url:
            parts = urlsplit(connection.base_url)
            initial.update(host=parts.hostname or "", port=parts.port or SFTP_DEFAULT_PORT, base_url="")
        return initial

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("schedule") == SCHEDULED and not cleaned.get("sync_every_minutes") and "sync_every_minutes" in self.fields:
            self.add_error("sync_every_minutes", "Say how often, in minutes, or choose “Manual only”.")
        return cleaned

    def settings(self) -> ConnectionSettings:
        data = self.cleaned_data
        options = {}
        for key in (
            ConnectionOption.AUTH, ConnectionOption.CLIENT_ID, ConnectionOption.TOKEN_URL, ConnectionOption.JWT_ALGORITHM,
            ConnectionOption.KEY_ID, ConnectionOption.SMS_CONSENT_EXTENSION_URL,
            ConnectionOption.APPOINTMENT_WINDOW_DAYS, ConnectionOption.BALANCE_ADAPTER, ConnectionOption.BALANCE_EXTENSION_URL,
            ConnectionOption.SENDING_FACILITY, ConnectionOption.RECEIVING_FACILITY, ConnectionOption.PATIENT_FACILITIES,
            ConnectionOption.FOLDER, ConnectionOption.USERNAME, ConnectionOption.HOST_KEY,
            ConnectionOption.POSTING_ENABLED, ConnectionOption.POSTING_ADAPTER,
            ConnectionOption.POSTING_IDENTIFIER_SYSTEM, ConnectionOption.OUTBOUND_ADDRESS,
            "host", "port",
        ):
            if key in data:
                options[key] = data[key]
        scheduled = data.get("schedule") == SCHEDULED
        return ConnectionSettings(
            name=data["name"],
            kind=self.kind,
            base_url=data.get("base_url", ""),
            options=options,
            secrets={name: data[name] for name in SECRET_LABELS if data.get(name)},
            secrets_removed={name for name in SECRET_LABELS if data.get(f"remove_{name}")},
            sync_every_minutes=(data.get("sync_every_minutes") or 0) if scheduled else 0,
            is_active=data["is_active"],
        )

    def add_application_error(self, error: ApplicationError) -> None:
        """Show a service's refusal beside the field it names, or above the form."""
        field = error.extra.get("field")
        self.add_error(field if field in self.fields else None, error.message)


def secret_fields_typed(data) -> bool:
    """Whether a posted form sets or removes a secret (re-authentication is asked first)."""
    return any(data.get(name) for name in SECRET_LABELS) or any(data.get(f"remove_{name}") for name in SECRET_LABELS)
