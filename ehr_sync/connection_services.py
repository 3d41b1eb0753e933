"""Writes to a clinic's EHR connections: adding and changing one (administrators only), asking for a
sync now, and the beat's sweep that queues every connection whose scheduled sync is due.

Secrets (a bearer token, a SMART private key, an SFTP password or key) are write-only: a change
names which were set or removed, never their values, in the audit log as anywhere else.
"""

from __future__ import annotations

import binascii
import datetime
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from lumapay.audit import actor_from, audit_event_record
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.task_queue import task_enqueue_on_commit
from org_profile.access import ADMINISTRATORS, staff_access
from org_profile.models import Organization

from .credentials import credentials_encrypt, credentials_read
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

SYNC_TASK = "ehr_sync.tasks.ehr_connection_sync"
# Kinds LumaPay pulls on a schedule; an HL7 v2 feed is pushed to us as it happens.
POLLED_KINDS = (EhrConnectionKind.FHIR, EhrConnectionKind.SFTP)
MAX_SYNC_EVERY_MINUTES = 7 * 24 * 60
MAX_APPOINTMENT_WINDOW_DAYS = 365
SFTP_DEFAULT_PORT = 22

_DENIED = {"role": "Only administrators manage EHR connections."}
_NAME_CONSTRAINT = "ehr_connection_name_unique_per_org"
_FACILITY_CONSTRAINT = "ehr_connection_hl7_sending_facility_unique"
_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}=?$")


class ConnectionInvalid(ApplicationError):
    """What the administrator typed cannot work: ``extra["field"]`` names the form field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message, extra={"field": field_name})


@dataclass
class ConnectionSettings:
    """A connection as the form describes it. ``secrets``: the ones typed (a new value each);
    ``secrets_removed``: the names to forget. A secret in neither stays as it is."""

    name: str
    kind: str
    base_url: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    secrets_removed: set[str] = field(default_factory=set)
    sync_every_minutes: int = 15
    is_active: bool = True


def secrets_used(kind: str, options: dict[str, Any]) -> tuple[str, ...]:
    """The secrets a connection of this kind and these options uses; any other is dropped on save."""
    if kind == EhrConnectionKind.FHIR:
        if options.get(ConnectionOption.AUTH) == FhirAuth.SMART:
            return (ConnectionSecret.PRIVATE_KEY_PEM,)
        return (ConnectionSecret.BEARER_TOKEN,)
    if kind == EhrConnectionKind.SFTP:
        return (ConnectionSecret.PASSWORD, ConnectionSecret.PRIVATE_KEY)
    return ()


# -- adding and changing -------------------------------------------------------------------------


def ehr_connection_create(
    *, organization: Organization, actor, data: ConnectionSettings, ip_address: str | None = None
) -> EhrConnection:
    staff_access(organization=organization, actor=actor, roles=ADMINISTRATORS, denied=_DENIED)
    options, base_url = _settings_clean(data)
    _posting_since_set(options, None)
    secrets = {name: value for name, value in data.secrets.items() if value and name in secrets_used(data.kind, options)}
    _secrets_check(data.kind, options, secrets)
    actor_type, actor_user = actor_from(actor)
    connection = EhrConnection(
        organization=organization,
        name=data.name.strip(),
        kind=data.kind,
        base_url=base_url,
        options=options,
        credentials_encrypted=credentials_encrypt(secrets),
        is_active=data.is_active,
        sync_every_minutes=data.sync_every_minutes,
        # A new connection syncs at the beat's next sweep; then every sync_every_minutes.
        next_sync_at=timezone.now() if data.sync_every_minutes and data.kind in POLLED_KINDS else None,
    )
    with transaction.atomic():
        _connection_save(connection, update_fields=None)
        audit_event_record(
            organization=organization,
            action=AuditAction.EHR_CONNECTION_CREATED,
            actor_type=actor_type,
            actor_user=actor_user,
            changes={"connection_id": connection.pk, **{name: [None, value] for name, value in _audited(connection).items()}},
            ip_address=ip_address,
        )
        if secrets:
            audit_event_record(
                organization=organization,
                action=AuditAction.EHR_CONNECTION_CREDENTIALS_CHANGED,
                actor_type=actor_type,
                actor_user=actor_user,
                changes={"connection_id": connection.pk, "connection": connection.name, "set": sorted(secrets), "removed": []},
                ip_address=ip_address,
            )
    return connection


def ehr_connection_update(
    *,
    organization: Organization,
    actor,
    connection: EhrConnection,
    data: ConnectionSettings,
    ip_address: str | None = None,
) -> EhrConnection:
    """Change a connection. Its kind stays what it was (a new kind is a new connection)."""
    staff_access(organization=organization, actor=actor, roles=ADMINISTRATORS, denied=_DENIED)
    data.kind = connection.kind
    options, base_url = _settings_clean(data)
    used = secrets_used(connection.kind, options)
    actor_type, actor_user = actor_from(actor)
    with transaction.atomic():
        locked = EhrConnection.objects.select_for_update(of=("self",)).get(pk=connection.pk, organization=organization)
        before = _audited(locked)
        previous = dict(locked.options or {})
        if previous.get(ConnectionOption.POSTING_SINCE) and options.get(ConnectionOption.POSTING_ENABLED):
            options[ConnectionOption.POSTING_SINCE] = previous[ConnectionOption.POSTING_SINCE]
        else:
            options.pop(ConnectionOption.POSTING_SINCE, None)
        _posting_since_set(options, previous)
        typed = {name: value for name, value in data.secrets.items() if value and name in used}
        try:
            stored = credentials_read(locked)
        except ApplicationError:
            # Stored under a key no longer configured: only new secrets can replace them.
            if not typed:
                raise ConnectionInvalid("__all__", "The stored credentials cannot be read with the current keys: enter them again.") from None
            stored = {}
        secrets = {name: value for name, value in stored.items() if name in used and name not in data.secrets_removed}
        secrets.update(typed)
        _secrets_check(locked.kind, options, secrets)
        secrets_set = sorted(name for name in typed if stored.get(name) != typed[name])
        secrets_removed = sorted(set(stored) - set(secrets))

        locked.name = data.name.strip()
        locked.base_url = base_url
        locked.options = options
        locked.is_active = data.is_active
        schedule_changed = locked.sync_every_minutes != data.sync_every_minutes
        locked.sync_every_minutes = data.sync_every_minutes
        if locked.kind not in POLLED_KINDS or not locked.sync_every_minutes:
            locked.next_sync_at = None
        elif schedule_changed or locked.next_sync_at is None:
            locked.next_sync_at = timezone.now()
        if secrets_set or secrets_removed:
            locked.credentials_encrypted = credentials_encrypt(secrets)
        _connection_save(locked, update_fields=None)
        after = _audited(locked)
        changes = {name: [before[name], after[name]] for name in after if before[name] != after[name]}
        if changes:
            audit_event_record(
                organization=organization,
                action=AuditAction.EHR_CONNECTION_CHANGED,
                actor_type=actor_type,
                actor_user=actor_user,
                changes={"connection_id": locked.pk, **changes},
                ip_address=ip_address,
            )
        if secrets_set or secrets_removed:
            audit_event_record(
                organization=organization,
                action=AuditAction.EHR_CONNECTION_CREDENTIALS_CHANGED,
                actor_type=actor_type,
                actor_user=actor_user,
                changes={"connection_id": locked.pk, "connection": locked.name, "set": secrets_set, "removed": secrets_removed},
                ip_address=ip_address,
            )
    return locked


def _audited(connection: EhrConnection) -> dict[str, Any]:
    """What the audit log records of a connection: everything but its secrets."""
    return {
        "name": connection.name,
        "kind": connection.kind,
        "base_url": connection.base_url,
        "options": dict(connection.options),
        "sync_every_minutes": connection.sync_every_minutes,
        "is_active": connection.is_active,
    }


def _connection_save(connection: EhrConnection, update_fields) -> None:
    try:
        with transaction.atomic():
            connection.save(update_fields=update_fields)
    except IntegrityError as error:
        text = str(error)
        if _NAME_CONSTRAINT in text:
            raise ConnectionInvalid("name", f"Another EHR connection is already called “{connection.name}”.") from None
        if _FACILITY_CONSTRAINT in text:
            raise ConnectionInvalid(
                "sending_facility",
                "This sending facility (with this receiving facility) already has an HL7 connection, here or at "
                "another organization: ask the EHR for the facility names it uses for this organization alone.",
            ) from None
        raise


# -- checking what was typed ---------------------------------------------------------------------


def _settings_clean(data: ConnectionSettings) -> tuple[dict[str, Any], str]:
    """(options, base_url) for ``data``, or ConnectionInvalid naming the first field that is wrong."""
    if not data.name.strip():
        raise ConnectionInvalid("name", "Give the connection a name, e.g. “Epic production”.")
    if not 0 <= data.sync_every_minutes <= MAX_SYNC_EVERY_MINUTES:
        raise ConnectionInvalid("sync_every_minutes", "Sync between every minute and once a week, or manually only (0).")
    options = data.options
    if data.kind == EhrConnectionKind.FHIR:
        return _fhir_options(options), _http_url("base_url", data.base_url, "The FHIR server's base URL")
    if data.kind == EhrConnectionKind.HL7_MLLP:
        facility = str(options.get(ConnectionOption.SENDING_FACILITY, "")).strip()
        if not facility:
            raise ConnectionInvalid("sending_facility", "Enter the sending facility (MSH-4) the EHR puts on this organization's messages.")
        if len(facility) > 180:
            raise ConnectionInvalid("sending_facility", "The sending facility is longer than 180 characters.")
        cleaned = {ConnectionOption.SENDING_FACILITY: facility}
        receiving = str(options.get(ConnectionOption.RECEIVING_FACILITY) or "").strip()
        if len(receiving) > 180:
            raise ConnectionInvalid("receiving_facility", "The receiving facility is longer than 180 characters.")
        if receiving:
            cleaned[ConnectionOption.RECEIVING_FACILITY] = receiving
        shared = options.get(ConnectionOption.PATIENT_FACILITIES) or []
        if isinstance(shared, str):
            shared = shared.split(",")
        shared = sorted({str(name).strip() for name in shared if str(name).strip()})
        if shared:
            cleaned[ConnectionOption.PATIENT_FACILITIES] = shared
        cleaned.update(_posting_options(data.kind, options))
        return cleaned, ""
    if data.kind == EhrConnectionKind.SFTP:
        return _sftp_options(options)
    raise ConnectionInvalid("kind", "Choose FHIR, HL7 v2 over MLLP or an SFTP drop folder.")


def _http_url(field_name: str, value: str, what: str) -> str:
    value = (value or "").strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectionInvalid(field_name, f"{what} must start with https:// (or http:// for a server on this network).")
    if parts.username or parts.password:
        raise ConnectionInvalid(field_name, f"{what} holds a user name or password: enter those in the credentials instead.")
    return value.rstrip("/")


def _fhir_options(options: dict[str, Any]) -> dict[str, Any]:
    auth = options.get(ConnectionOption.AUTH) or FhirAuth.BEARER
    if auth not in FhirAuth.values:
        raise ConnectionInvalid("auth", "Choose a bearer token or SMART backend services.")
    adapter = options.get(ConnectionOption.BALANCE_ADAPTER) or BalanceAdapter.NONE
    if adapter not in BalanceAdapter.values:
        raise ConnectionInvalid("balance_adapter", "Choose where the server keeps balances.")
    window = options.get(ConnectionOption.APPOINTMENT_WINDOW_DAYS)
    window = DEFAULT_APPOINTMENT_WINDOW_DAYS if window in (None, "") else int(window)
    if not 1 <= window <= MAX_APPOINTMENT_WINDOW_DAYS:
        raise ConnectionInvalid("appointment_window_days", f"Read between 1 and {MAX_APPOINTMENT_WINDOW_DAYS} days of appointments ahead.")
    cleaned: dict[str, Any] = {
        ConnectionOption.AUTH: auth,
        ConnectionOption.BALANCE_ADAPTER: adapter,
        ConnectionOption.APPOINTMENT_WINDOW_DAYS: window,
    }
    if auth == FhirAuth.SMART:
        client_id = str(options.get(ConnectionOption.CLIENT_ID, "")).strip()
        if not client_id:
            raise ConnectionInvalid("client_id", "Enter the client id the EHR registered for LumaPay.")
        algorithm = options.get(ConnectionOption.JWT_ALGORITHM) or SmartJwtAlgorithm.RS384
        if algorithm not in SmartJwtAlgorithm.values:
            raise ConnectionInvalid("jwt_algorithm", "Choose RS384 or ES384.")
        cleaned[ConnectionOption.CLIENT_ID] = client_id
        cleaned[ConnectionOption.TOKEN_URL] = _http_url("token_url", options.get(ConnectionOption.TOKEN_URL, ""), "The token URL")
        cleaned[ConnectionOption.JWT_ALGORITHM] = algorithm
        cleaned[ConnectionOption.KEY_ID] = str(options.get(ConnectionOption.KEY_ID) or "").strip()[:200]
    if options.get(ConnectionOption.SMS_CONSENT_EXTENSION_URL):
        cleaned[ConnectionOption.SMS_CONSENT_EXTENSION_URL] = _http_url(
            "sms_consent_extension_url", options[ConnectionOption.SMS_CONSENT_EXTENSION_URL], "The SMS consent extension's URL"
        )
    # Oracle Health's balance extension URL is not published where we could confirm it: it is asked for.
    if adapter in (BalanceAdapter.CUSTOM, BalanceAdapter.ORACLE_HEALTH):
        cleaned[ConnectionOption.BALANCE_EXTENSION_URL] = _http_url(
            "balance_extension_url", options.get(ConnectionOption.BALANCE_EXTENSION_URL, ""), "The balance extension's URL"
        )
    cleaned.update(_posting_options(EhrConnectionKind.FHIR, options))
    return cleaned


def _posting_options(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """Posting back to the EHR (ehr_sync/posting.py): on or off, and how. Nothing is stored for a
    connection that never posts but what was typed. ``posting_since`` is kept as it was;
    ``_posting_since_set`` stamps it when posting is turned on."""
    enabled = bool(options.get(ConnectionOption.POSTING_ENABLED))
    cleaned: dict[str, Any] = {ConnectionOption.POSTING_ENABLED: True} if enabled else {}
    if enabled and options.get(ConnectionOption.POSTING_SINCE):
        cleaned[ConnectionOption.POSTING_SINCE] = str(options[ConnectionOption.POSTING_SINCE])
    if kind == EhrConnectionKind.FHIR:
        adapter = options.get(ConnectionOption.POSTING_ADAPTER) or PostingAdapter.PAYMENT_RECONCILIATION
        if adapter not in PostingAdapter.values:
            raise ConnectionInvalid("posting_adapter", "Choose the resource the EHR takes payments as.")
        if enabled or adapter != PostingAdapter.PAYMENT_RECONCILIATION:
            cleaned[ConnectionOption.POSTING_ADAPTER] = adapter
        system = str(options.get(ConnectionOption.POSTING_IDENTIFIER_SYSTEM) or "").strip()
        if system:
            if not (system.startswith(("http://", "https://", "urn:")) and " " not in system and "|" not in system):
                raise ConnectionInvalid("posting_identifier_system", "The identifier system is a URI, e.g. https://ehr.example/lumapay.")
            cleaned[ConnectionOption.POSTING_IDENTIFIER_SYSTEM] = system[:300]
    if kind == EhrConnectionKind.HL7_MLLP:
        address = str(options.get(ConnectionOption.OUTBOUND_ADDRESS) or "").strip()
        if address:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConnectionInvalid("outbound_address", "Enter the EHR's MLLP address as host:port, e.g. ehr.clinic.example:6661.")
            cleaned[ConnectionOption.OUTBOUND_ADDRESS] = address
        elif enabled:
            raise ConnectionInvalid("outbound_address", "Enter where the EHR receives postings (host:port) to turn posting on.")
    return cleaned


def _posting_since_set(options: dict[str, Any], before: dict[str, Any] | None) -> None:
    """Posting turned on now (off before): nothing older than now is posted, so turning it on does
    not send the EHR every payment LumaPay ever took."""
    was_on = bool((before or {}).get(ConnectionOption.POSTING_ENABLED))
    if options.get(ConnectionOption.POSTING_ENABLED) and not (was_on and options.get(ConnectionOption.POSTING_SINCE)):
        options[ConnectionOption.POSTING_SINCE] = timezone.now().isoformat()


def _sftp_options(options: dict[str, Any]) -> tuple[dict[str, Any], str]:
    host = str(options.get("host", "")).strip()
    if not host or any(character in host for character in "/@: \t"):
        raise ConnectionInvalid("host", "Enter the SFTP server's host name or address, without sftp:// or a port.")
    port = options.get("port") or SFTP_DEFAULT_PORT
    if not 1 <= int(port) <= 65535:
        raise ConnectionInvalid("port", "The port is a number between 1 and 65535 (SFTP's is usually 22).")
    username = str(options.get(ConnectionOption.USERNAME, "")).strip()
    if not username:
        raise ConnectionInvalid("username", "Enter the user name LumaPay signs in to the SFTP server with.")
    host_key = _host_key_clean(str(options.get(ConnectionOption.HOST_KEY, "")))
    folder = str(options.get(ConnectionOption.FOLDER, "")).strip() or "/"
    cleaned = {ConnectionOption.USERNAME: username, ConnectionOption.HOST_KEY: host_key, ConnectionOption.FOLDER: folder}
    return cleaned, f"sftp://{host}:{int(port)}"


def _host_key_clean(value: str) -> str:
    """A known_hosts line ("host ssh-ed25519 AAAA…" or "ssh-ed25519 AAAA…"): the key itself, which
    the SFTP drop folder (uploads.sftp_drop) trusts and nothing else. A fingerprint is refused with
    how to get the key: the client checks the key, not its digest. Required: LumaPay never trusts
    whatever key the server first shows."""
    value = value.strip()
    if not value:
        raise ConnectionInvalid(
            "host_key",
            "Enter the server's host key (the line ssh-keyscan prints, or the server's public key file): "
            "without it LumaPay cannot tell the clinic's server from an impostor.",
        )
    if _FINGERPRINT.match(value):
        raise ConnectionInvalid(
            "host_key",
            "This is the key's fingerprint: paste the key itself (the line “ssh-keyscan -t ed25519 host” prints, "
            "or the server's /etc/ssh/ssh_host_ed25519_key.pub), and check that its fingerprint is this one.",
        )
    parts = value.split()
    key_at = next((index for index, part in enumerate(parts) if part.startswith(("ssh-", "ecdsa-", "sk-"))), None)
    if key_at is not None and key_at + 1 < len(parts):
        import asyncssh

        try:
            asyncssh.import_public_key(f"{parts[key_at]} {parts[key_at + 1]}")
        except (asyncssh.KeyImportError, ValueError, binascii.Error):
            pass
        else:
            return " ".join(parts)
    raise ConnectionInvalid(
        "host_key", "This is not a host key: paste a line like “sftp.clinic.example ssh-ed25519 AAAA…”, as ssh-keyscan prints it."
    )


def _secrets_check(kind: str, options: dict[str, Any], secrets: dict[str, str]) -> None:
    if kind == EhrConnectionKind.FHIR and options.get(ConnectionOption.AUTH) == FhirAuth.SMART:
        pem = secrets.get(ConnectionSecret.PRIVATE_KEY_PEM)
        if not pem:
            raise ConnectionInvalid("private_key_pem", "Paste the private key (PEM) whose public key the EHR has for this client.")
        _private_key_check(pem, options[ConnectionOption.JWT_ALGORITHM])
    if kind == EhrConnectionKind.SFTP:
        if not (secrets.get(ConnectionSecret.PASSWORD) or secrets.get(ConnectionSecret.PRIVATE_KEY)):
            raise ConnectionInvalid("password", "Enter the SFTP password or a private key.")
        if secrets.get(ConnectionSecret.PRIVATE_KEY):
            import asyncssh

            try:
                asyncssh.import_private_key(secrets[ConnectionSecret.PRIVATE_KEY])
            except (asyncssh.KeyImportError, ValueError):
                raise ConnectionInvalid(
                    "private_key", "This is not a private key LumaPay can read (OpenSSH or PEM, without a passphrase)."
                ) from None


def _private_key_check(pem: str, algorithm: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem.strip().encode(), password=None)
    except (ValueError, TypeError):
        raise ConnectionInvalid(
            "private_key_pem", "This is not a PEM private key without a passphrase (“-----BEGIN PRIVATE KEY-----…”)."
        ) from None
    expected = rsa.RSAPrivateKey if algorithm == SmartJwtAlgorithm.RS384 else ec.EllipticCurvePrivateKey
    if not isinstance(key, expected):
        raise ConnectionInvalid(
            "private_key_pem", f"This key does not sign {algorithm}: RS384 needs an RSA key, ES384 an elliptic-curve (P-384) key."
        )


# -- syncing ----------------------------------------------------------------------------------------


def ehr_connection_sync_request(
    *, organization: Organization, actor, connection: EhrConnection, ip_address: str | None = None
) -> EhrConnection:
    """"Sync now": queue the connection's sync for the administrator, once the request commits."""
    staff_access(organization=organization, actor=actor, roles=ADMINISTRATORS, denied=_DENIED)
    if connection.kind not in POLLED_KINDS:
        raise ApplicationError("An HL7 feed is not synced: the EHR sends each message as it happens.")
    if not connection.is_active:
        raise ApplicationError("This connection is paused: make it active to sync it.")
    now = timezone.now()
    if connection.sync_lease_until and connection.sync_lease_until > now:
        raise ApplicationError("A sync of this connection is running now: its run appears below when it ends.")
    actor_type, actor_user = actor_from(actor)
    with transaction.atomic():
        EhrConnection.objects.filter(pk=connection.pk, organization=organization).update(sync_requested_at=now)
        audit_event_record(
            organization=organization,
            action=AuditAction.EHR_SYNC_REQUESTED,
            actor_type=actor_type,
            actor_user=actor_user,
            changes={"connection_id": connection.pk, "connection": connection.name},
            ip_address=ip_address,
        )
        task_enqueue_on_commit(SYNC_TASK, connection.pk, getattr(actor_user, "pk", None))
    connection.sync_requested_at = now
    return connection


def ehr_connections_sync_due(*, now: datetime.datetime | None = None) -> list[int]:
    """Queue the sync of every active, scheduled, polled connection whose next sync is due (every
    organization: the beat's sweep). Each one's next sync moves a period on as it is queued, so a
    sync that runs longer than the sweep's minute is not queued again meanwhile; the run sets it
    again when it ends. Returns the connections queued."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            EhrConnection.objects.select_for_update(of=("self",), skip_locked=True)
            .filter(Q(next_sync_at__lte=now), is_active=True, sync_every_minutes__gt=0, kind__in=POLLED_KINDS)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        EhrConnection.objects.filter(pk__in=due).update(
            next_sync_at=now + datetime.timedelta(minutes=1) * F("sync_every_minutes")
        )
        for connection_id in due:
            task_enqueue_on_commit(SYNC_TASK, connection_id, None)
    return due
