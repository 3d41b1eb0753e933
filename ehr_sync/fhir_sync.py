"""The FHIR R4 connector: patients, appointments, copays and balances from a clinic's EHR.

Registered for ``EhrConnectionKind.FHIR`` (``apps.py``); ``connectors.connection_sync`` runs it with
the connection's lease and run. One sync:

1. **Patients** changed since the watermark (``_lastUpdated=ge`` watermark minus the overlap).
2. **Appointments** changed since theirs, *and* every appointment in a date window around today
   (``appointment_window_days_back`` / ``_ahead``), so a cancellation arrives even from a server
   that does not move ``_lastUpdated`` when it cancels. An appointment whose patient we do not
   have yet brings its patient (read by ``_id``).
3. **Copays**: ``Coverage.costToBeneficiary`` of type ``copay`` (``valueMoney``), for each upcoming
   appointment of its beneficiary: of the coverages changed since the watermark, and of the
   patients whose upcoming appointments arrived in this sync.
4. **Balances**: R4's Account has no balance, so a vendor keeps it in an extension; the
   connection names which (``balance_adapter`` / ``balance_extension_url``). Without one, no balances.

Every search goes through fhirpy and follows ``Bundle.link[next]`` to the end. Every resource is
checked against fhir.resources' R4B model first (in a small pool of processes, a few chunks ahead
of what is written: ``ehr_sync.fhir_validation``): one that breaks the rules becomes an
``ImportRejection`` (which resource, which element, the value as the EHR wrote it), never a crash.
A resource seen twice in one sync (two searches, a page that shifted) is imported once per
``meta.versionId``; a patient or appointment whose version we already hold (read again by the
overlap or the appointment window) is passed over, uncounted.

Watermarks (``connection.watermarks``, one per resource type) move only when the whole sync
succeeded: a 401, a 429 still refused after ``max_retries`` waits of ``Retry-After``, a 5xx, a
timeout or a page failing halfway fails the run with a ``ConnectorError`` saying which, and the
next sync reads again from where the last good one ended. Records already imported from the
earlier pages stay (the importer keeps the newest, so reading them again changes nothing).

The new watermark is the server's own clock when the search began (the first page's
``Bundle.meta.lastUpdated``), never ours. Each search starts ``watermark_overlap_seconds`` (300)
before it, for clocks and transactions that commit late. When the result set changes while it is
paged (its total moves, or a resource changed after the search began shows up), a server that pages
by offset may have skipped one: that type's watermark then stays where it was.

Options (``connection.options``, none secret; the names are ``ehr_sync.enums.ConnectionOption``)
-----------------------------------------------------------------------------------------------
``auth``: "smart", "bearer" or "none" (default: "smart" when ``client_id`` is set, "bearer"
when the credentials hold a ``bearer_token``, else "none"); SMART: ``token_url``, ``client_id``,
``scope``, ``key_id`` (the ``kid`` of the key registered with the EHR), ``jwt_algorithm``
(RS384 or ES384; default from the key); ``page_size`` (100); ``timeout_seconds`` (30);
``max_retries`` (3) and ``retry_after_max_seconds`` (120) for 429/503; ``watermark_overlap_seconds``
(300); ``appointment_window_days_back`` (1) and ``appointment_window_days`` (ahead, 14);
``sms_consent_extension_url`` (a Patient extension, ``valueBoolean``; without it SMS consent is
left as staff recorded it); ``balance_adapter`` and ``balance_extension_url`` (``BALANCE_ADAPTERS``).

Credentials (encrypted, ``credentials_read``): ``bearer_token``, or ``private_key_pem`` (SMART).
Neither a token nor a patient's data ever goes to a log or an error message.
"""

from __future__ import annotations

import datetime
import email.utils
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from urllib.parse import urlparse

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from fhirpy import SyncFHIRClient

from org_profile.models import Location

from .connectors import ConnectorError
from .credentials import credentials_read
from .enums import DEFAULT_APPOINTMENT_WINDOW_DAYS, AppointmentStatus, ConnectionOption, PreferredLanguage
from .fhir_validation import ResourceChecker
from .fhir_validation import resource_reference as _reference
from .importer import records_import
from .lookups import AnyOf
from .models import Appointment, EhrConnection, ImportRun, Patient
from .records import AppointmentRecord, BalanceRecord, CopayRecord, PatientRecord, RecordBatch, RecordProblem

logger = logging.getLogger(__name__)

DEFAULT_SCOPE = (
    "system/Patient.read system/Appointment.read system/Coverage.read system/Account.read"
)
COPAY_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/coverage-copay-type"
# Records sent to the importer at a time: one transaction each, a few statements per kind.
IMPORT_BATCH = 1000
# Ids per "_id=" or "beneficiary=" search (keeps the URL short).
IDS_PER_SEARCH = 50
TOKEN_EARLY_SECONDS = 60
# Pages fetched ahead of the one being read (one background thread, one request at a time).
PREFETCH_PAGES = 2

APPOINTMENT_STATUSES = {
    "proposed": AppointmentStatus.BOOKED,
    "pending": AppointmentStatus.BOOKED,
    "booked": AppointmentStatus.BOOKED,
    "arrived": AppointmentStatus.ARRIVED,
    "checked-in": AppointmentStatus.ARRIVED,
    "fulfilled": AppointmentStatus.FULFILLED,
    "cancelled": AppointmentStatus.CANCELLED,
    "entered-in-error": AppointmentStatus.CANCELLED,
    "noshow": AppointmentStatus.NO_SHOW,
}
UPCOMING_STATUSES = (AppointmentStatus.BOOKED, AppointmentStatus.ARRIVED)


# -- balance adapters --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BalanceAdapter:
    """Where one vendor keeps a patient's balance on Account."""

    label: str
    # The extension's URL, or None when the connection must give it (balance_extension_url).
    url: str | None
    # Matches an extension's url when the vendor's full URL is not published (its last path segment).
    url_suffix: str | None = None
    note: str = ""


BALANCE_ADAPTERS: dict[str, BalanceAdapter] = {
    # Any vendor: the connection names the extension (valueMoney).
    "custom": BalanceAdapter("An extension named by balance_extension_url", None),
    # HL7's cross-version extension carrying R5's Account.balance into R4 (complex: amount, term);
    # URL confirmed in HL7's xver-r5.r4 package.
    "hl7_r5_balance": BalanceAdapter(
        "HL7 cross-version Account.balance (R5 in R4)", "http://hl7.org/fhir/5.0/StructureDefinition/extension-Account.balance"
    ),
    # ModMed documents an Account extension "outstandingBalance" of type Money
    # (portal.api.modmed.com/reference/account) without its full URL: matched by its last segment.
    "modmed": BalanceAdapter("ModMed outstandingBalance", None, url_suffix="outstandingBalance"),
    # Oracle Health (Cerner) account balance: its extension URL could not be confirmed from Oracle's
    # published documentation here, so none is built in: the connection must set balance_extension_url.
    "oracle_health": BalanceAdapter(
        "Oracle Health account balance", None, note="Oracle Health's extension URL is not built in: set balance_extension_url."
    ),
}


def _balance_matcher(options: dict) -> Callable[[dict], bool] | None:
    """The test for the balance extension, or None when the connection reads no balances."""
    name = options.get(ConnectionOption.BALANCE_ADAPTER) or ("custom" if options.get(ConnectionOption.BALANCE_EXTENSION_URL) else "")
    if not name or name == "none":
        return None
    adapter = BALANCE_ADAPTERS.get(name)
    if adapter is None:
        raise ConnectorError(f"Unknown balance_adapter {name!r}: use one of {', '.join(sorted(BALANCE_ADAPTERS))}.")
    url = options.get(ConnectionOption.BALANCE_EXTENSION_URL) or adapter.url
    if url:
        return lambda extension: extension.get("url") == url
    if adapter.url_suffix:
        suffix = adapter.url_suffix
        return lambda extension: (extension.get("url") or "").rstrip("/").rsplit("/", 1)[-1] == suffix
    raise ConnectorError(adapter.note or f"The {adapter.label} adapter needs balance_extension_url.")


def _balance_amount(extension: dict) -> dict | None:
    """The Money of a balance extension: valueMoney, or (R5's Account.balance) its current
    ``amount`` part."""
    if "valueMoney" in extension:
        return extension["valueMoney"]
    parts = {part.get("url"): part for part in extension.get("extension") or []}
    term = ((parts.get("term") or {}).get("valueCodeableConcept") or {}).get("coding") or [{}]
    if term[0].get("code") not in (None, "current"):
        return None
    return (parts.get("amount") or {}).get("valueMoney")


# -- authorization -----------------------------------------------------------------------------------


_token_cache: dict[tuple, tuple[str, float]] = {}
_token_lock = threading.Lock()


class _Authorization:
    """The Authorization header for each request: a fixed bearer token, a SMART backend-services
    access token (kept in this process until shortly before it expires; never in Redis or the
    database), or none."""

    def __init__(self, connection: EhrConnection, http: requests.Session, timeout: float):
        options = connection.options or {}
        secrets = credentials_read(connection)
        mode = options.get(ConnectionOption.AUTH) or (
            "smart" if options.get(ConnectionOption.CLIENT_ID) else "bearer" if secrets.get("bearer_token") else "none"
        )
        if mode == "bearer" and not secrets.get("bearer_token"):
            # The form's promise: no token, for a server that needs none (a local test server).
            mode = "none"
        self.mode, self.http, self.timeout = mode, http, timeout
        if mode == "bearer":
            self.token = secrets["bearer_token"]
        elif mode == "smart":
            missing = [name for name in (ConnectionOption.TOKEN_URL, ConnectionOption.CLIENT_ID) if not options.get(name)]
            if missing or not secrets.get("private_key_pem"):
                what = ", ".join(missing + ([] if secrets.get("private_key_pem") else ["the private key"]))
                raise ConnectorError(f"SMART backend services needs {what}: complete the connection.")
            try:
                self.key = serialization.load_pem_private_key(secrets["private_key_pem"].encode(), password=None)
            except (ValueError, TypeError):
                raise ConnectorError("The stored SMART private key is not an unencrypted PEM private key.") from None
            if isinstance(self.key, rsa.RSAPrivateKey):
                default_algorithm = "RS384"
            elif isinstance(self.key, ec.EllipticCurvePrivateKey):
                default_algorithm = "ES384"
            else:
                raise ConnectorError("The SMART private key must be RSA (RS384) or EC P-384 (ES384).")
            self.algorithm = options.get(ConnectionOption.JWT_ALGORITHM) or default_algorithm
            if self.algorithm not in ("RS384", "ES384"):
                raise ConnectorError("The signing algorithm must be RS384 or ES384.")
            self.token_url = options[ConnectionOption.TOKEN_URL]
            self.client_id = options[ConnectionOption.CLIENT_ID]
            self.scope = options.get(ConnectionOption.SCOPE) or DEFAULT_SCOPE
            self.key_id = options.get(ConnectionOption.KEY_ID) or ""
            fingerprint = secrets["private_key_pem"][-40:]
            self.cache_key = (connection.pk, self.token_url, self.client_id, self.scope, fingerprint)
        elif mode != "none":
            raise ConnectorError(f"Unknown auth {mode!r}: use smart, bearer or none.")

    def header(self) -> dict[str, str]:
        if self.mode == "bearer":
            return {"Authorization": f"Bearer {self.token}"}
        if self.mode == "smart":
            return {"Authorization": f"Bearer {self._smart_token()}"}
        return {}

    def forget(self) -> bool:
        """Drop a cached access token (the server refused it); true when a fresh one may help."""
        if self.mode != "smart":
            return False
        with _token_lock:
            _token_cache.pop(self.cache_key, None)
        return True

    def _smart_token(self) -> str:
        with _token_lock:
            cached = _token_cache.get(self.cache_key)
        if cached and cached[1] > time.time():
            return cached[0]
        now = int(time.time())
        headers = {"kid": self.key_id} if self.key_id else {}
        assertion = jwt.encode(
            {"iss": self.client_id, "sub": self.client_id, "aud": self.token_url, "exp": now + 240,
             "iat": now, "jti": uuid.uuid4().hex},
            self.key,
            algorithm=self.algorithm,
            headers=headers,
        )
        try:
            response = self.http.post(
                self.token_url,
                data={
                    "grant_type": "client_credentials",
                    "scope": self.scope,
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    "client_assertion": assertion,
                },
                headers={"Accept": "application/json"},
                timeout=self.timeout,
            )
        except requests.Timeout:
            raise ConnectorError(f"The EHR's token endpoint did not answer within {self.timeout:.0f} s.") from None
        except requests.RequestException:
            raise ConnectorError("The EHR's token endpoint could not be reached.") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not body.get("access_token"):
            # The OAuth error code and description name the problem (invalid_client: unknown key…); no secret in them.
            reason = " ".join(str(body.get(name, "")) for name in ("error", "error_description")).strip()[:300]
            raise ConnectorError(
                f"The EHR's token endpoint refused LumaPay's SMART client ({response.status_code}"
                f"{': ' + reason if reason else ''}). Check the client id and the public key registered with the EHR."
            )
        lifetime = int(body.get("expires_in") or 300)
        with _token_lock:
            _token_cache[self.cache_key] = (body["access_token"], time.time() + max(lifetime - TOKEN_EARLY_SECONDS, 1))
        return body["access_token"]


# -- the FHIR client ---------------------------------------------------------------------------------


class _FhirClient(SyncFHIRClient):
    """fhirpy's client over one ``requests`` session, with timeouts, ``Retry-After`` honoured on
    429/503 a bounded number of times, a refused SMART token renewed once, and every failure a
    ``ConnectorError`` in words (fhirpy itself raises on the status without the headers)."""

    def __init__(self, url: str, *, authorization: _Authorization, http: requests.Session, options: dict):
        super().__init__(url)
        self.http = http
        self.auth = authorization
        self.timeout = float(options.get("timeout_seconds") or 30)
        self.max_retries = int(options.get("max_retries", 3))
        self.retry_after_max = float(options.get("retry_after_max_seconds") or 120)
        self.pages = [0]
        self.observer: Callable[[dict], None] | None = None
        self.prefetcher: ThreadPoolExecutor | None = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fhir-page")
        self.prefetched: dict[str, Future] = {}

    def for_search(self, observer: Callable[[dict], None]) -> _FhirClient:
        """The same client (session, authorization, page count, prefetching) that shows each page
        to ``observer``."""
        clone = object.__new__(_FhirClient)
        clone.__dict__.update(self.__dict__)
        clone.observer = observer
        return clone

    def _fetch_resource(self, path, params=None):
        """One page. While the caller works through it, the page its ``link[next]`` names is
        already being fetched (one at a time, in one background thread): the server's time and
        ours overlap instead of adding up. fhirpy still decides which page comes next; a prefetched
        page that fails raises here, when it is asked for, as if it had been fetched then."""
        try:
            url = self._build_request_url(path, params)
        except ValueError:
            url = None
        pending = self.prefetched.pop(url, None) if url else None
        bundle = pending.result() if pending is not None else self._do_request("get", path, params=params)
        if self.observer is not None:
            self.observer(bundle)
        next_url = _next_url(bundle)
        if next_url and self.prefetcher is not None and next_url not in self.prefetched:
            self.prefetched[next_url] = self.prefetcher.submit(self._prefetch, next_url, PREFETCH_PAGES)
        return bundle

    def _prefetch(self, url: str, pages: int) -> dict:
        """Fetch ``url`` and, ``pages`` > 1, queue the page after it: the server keeps working
        while a long write holds the sync up. Queued before this page is handed over, so the
        reader finds it when it gets there."""
        bundle = self._do_request("get", url)
        next_url = _next_url(bundle) if pages > 1 else None
        if next_url and self.prefetcher is not None:
            self.prefetched[next_url] = self.prefetcher.submit(self._prefetch, next_url, pages - 1)
        return bundle

    def close(self) -> None:
        if self.prefetcher is not None:
            self.prefetcher.shutdown(wait=False, cancel_futures=True)
        self.prefetched.clear()

    def _do_request(self, method, path, data=None, params=None, extra_headers=None, *, returning_status=False):
        try:
            url = self._build_request_url(path, params)
        except ValueError:
            raise ConnectorError(
                "The FHIR server's next-page link points to another address than the connection's base URL."
            ) from None
        what = _what(url, self.url)
        renewed, retries = False, 0
        while True:
            headers = {**self._build_request_headers(), **self.auth.header(), **(extra_headers or {})}
            try:
                response = self.http.request(method, url, json=data, headers=headers, timeout=self.timeout)
            except requests.Timeout:
                raise ConnectorError(
                    f"The FHIR server did not answer the {what} within {self.timeout:.0f} s; the next sync tries again."
                ) from None
            except requests.RequestException:
                raise ConnectorError(f"The FHIR server could not be reached for the {what}; the next sync tries again.") from None
            status = response.status_code
            if status == 401 and not renewed and self.auth.forget():
                renewed = True
                continue
            if status in (429, 503) and retries < self.max_retries:
                wait = _retry_after_seconds(response.headers.get("Retry-After"))
                if wait > self.retry_after_max:
                    raise ConnectorError(
                        f"The FHIR server asked LumaPay to wait {wait:.0f} s before the {what} ({status}); "
                        "the next sync tries again."
                    )
                retries += 1
                retry_wait(wait)
                continue
            break
        if 200 <= status < 300:
            self.pages[0] += 1
            try:
                return response.json()
            except ValueError:
                raise ConnectorError(f"The FHIR server's answer to the {what} was cut short or is not JSON.") from None
        if status == 401:
            raise ConnectorError(f"The FHIR server refused LumaPay's credentials for the {what} (401): renew the token or the client registration.")
        if status == 403:
            raise ConnectorError(f"The FHIR server does not allow LumaPay the {what} (403): check the scopes granted to the client.")
        if status in (429, 503):
            raise ConnectorError(
                f"The FHIR server still refused the {what} ({status}) after {self.max_retries} waits; the next sync tries again."
            )
        raise ConnectorError(f"The FHIR server answered {status} to the {what}; the next sync tries again.")


def _next_url(bundle) -> str | None:
    links = bundle.get("link") if isinstance(bundle, dict) else None
    return next((link.get("url") for link in links or [] if link.get("relation") == "next"), None)


def retry_wait(seconds: float) -> None:
    """Wait as the server asked (a test replaces this to see the waits without waiting)."""
    time.sleep(seconds)


def _what(url: str, base_url: str) -> str:
    """"Patient search", "Appointment search page 3": the request in words, with no id or value in it."""
    path = urlparse(url).path
    base = urlparse(base_url).path.rstrip("/")
    resource_type = path[len(base):].strip("/").split("/")[0] if path.startswith(base) else ""
    return f"{resource_type or 'FHIR'} search"


def _retry_after_seconds(value: str | None) -> float:
    if not value:
        return 1.0
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 1.0
    return max((moment - datetime.datetime.now(datetime.UTC)).total_seconds(), 0.0)


def _raw(resource_type: str) -> type:
    """A searchset class that keeps each resource as the plain dict it arrived as (fhirpy would
    otherwise rebuild every nested reference as an object)."""
    return type(f"Raw{resource_type}", (dict,), {"resourceType": resource_type, "id": None})


# -- mapping -----------------------------------------------------------------------------------------


def _moment(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    value = parse_datetime(text)
    if value is None:
        try:
            value = datetime.datetime.combine(datetime.date.fromisoformat(text), datetime.time(), datetime.UTC)
        except ValueError:
            return None
    if timezone.is_naive(value):
        value = value.replace(tzinfo=datetime.UTC)
    return value


def _reference_id(reference: dict | None, resource_type: str) -> str:
    text = (reference or {}).get("reference") or ""
    parts = text.split("/_history/")[0].rstrip("/").split("/")
    return parts[-1] if len(parts) >= 2 and parts[-2] == resource_type else ""


def _cents(money: dict | None) -> tuple[int | None, str]:
    if not money or money.get("value") is None:
        return None, "usd"
    try:
        cents = int((Decimal(str(money["value"])) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except (InvalidOperation, ValueError):
        return None, "usd"
    return cents, (money.get("currency") or "usd").lower()


def _active(item: dict, now: datetime.datetime) -> bool:
    end = _moment(((item.get("period") or {}).get("end")))
    return end is None or end >= now


def patient_record(resource: dict, *, sms_consent_extension_url: str = "") -> PatientRecord:
    meta = resource.get("meta") or {}
    now = timezone.now()
    names = [name for name in resource.get("name") or [] if name.get("use") != "old" and _active(name, now)]
    rank = {"official": 0, "usual": 1, None: 2}
    names.sort(key=lambda name: rank.get(name.get("use"), 3))
    name = names[0] if names else {}
    telecom = [item for item in resource.get("telecom") or [] if item.get("use") != "old" and _active(item, now)]
    telecom.sort(key=lambda item: item.get("rank") or 1_000)
    emails = [item.get("value") or "" for item in telecom if item.get("system") == "email"]
    # A text goes to a mobile; a number without a use may be one; home and work lines are not.
    phones = [item for item in telecom if item.get("system") in ("phone", "sms")]
    mobiles = [item for item in phones if item.get("use") == "mobile" or item.get("system") == "sms"]
    mobiles = mobiles or [item for item in phones if not item.get("use")]
    consent = None
    if sms_consent_extension_url:
        for extension in resource.get("extension") or []:
            if extension.get("url") == sms_consent_extension_url and isinstance(extension.get("valueBoolean"), bool):
                consent = extension["valueBoolean"]
    birth = resource.get("birthDate")
    try:
        birth_date = datetime.date.fromisoformat(birth) if birth and len(birth) == 10 else None
    except ValueError:
        birth_date = None
    return PatientRecord(
        external_id=resource.get("id") or "",
        first_name=((name.get("given") or [""])[0] or "").strip(),
        last_name=(name.get("family") or "").strip(),
        date_of_birth=birth_date,
        source_updated_at=_moment(meta.get("lastUpdated")) or timezone.now(),
        reference=_reference(resource),
        email=emails[0].strip() if emails else "",
        mobile_phone=(mobiles[0].get("value") or "").strip() if mobiles else "",
        preferred_language=_language(resource),
        sms_consent=consent,
        version=str(meta.get("versionId") or ""),
    )


def _language(resource: dict) -> str:
    communications = sorted(resource.get("communication") or [], key=lambda item: not item.get("preferred"))
    for communication in communications:
        language = communication.get("language") or {}
        codes = [coding.get("code") or "" for coding in language.get("coding") or []] + [language.get("text") or ""]
        for code in codes:
            code = code.strip().lower()
            if code.startswith("es") or code in ("spanish", "español", "espanol"):
                return PreferredLanguage.SPANISH
            if code:
                return PreferredLanguage.ENGLISH
    return PreferredLanguage.ENGLISH


def appointment_record(resource: dict) -> AppointmentRecord:
    """The appointment; its ``location`` is the Location's id (matched to a location's EHR id), or
    its display name when the reference carries no id."""
    return _appointment_parts(resource)[0]


def _appointment_parts(resource: dict) -> tuple[AppointmentRecord, str, str]:
    """The appointment, with its Location's id and display name as the EHR gave them."""
    meta = resource.get("meta") or {}
    patient_id = provider = ""
    location: tuple[str, str] | None = None
    # One pass over the participants, each reference read once (20,000 appointments a full sync).
    for participant in resource.get("participant") or []:
        actor = participant.get("actor") or {}
        reference = actor.get("reference") or ""
        if not patient_id and (found := _reference_id(actor, "Patient")):
            patient_id = found
        elif not provider and _reference_id(actor, "Practitioner"):
            provider = actor.get("display") or ""
        if location is None and ((found := _reference_id(actor, "Location")) or reference.startswith("Location")):
            location = (found, actor.get("display") or "")
    location_id, location_name = location or ("", "")
    status = resource.get("status") or ""
    record = AppointmentRecord(
        external_id=resource.get("id") or "",
        patient_external_id=patient_id,
        starts_at=_moment(resource.get("start")),
        status=APPOINTMENT_STATUSES.get(status, status),
        source_updated_at=_moment(meta.get("lastUpdated")) or timezone.now(),
        reference=_reference(resource),
        location=location_id or location_name,
        provider_name=provider[:200],
        version=str(meta.get("versionId") or ""),
    )
    return record, location_id, location_name


def coverage_copay(resource: dict) -> tuple[int | None, str]:
    for cost in resource.get("costToBeneficiary") or []:
        codes = [coding.get("code") for coding in (cost.get("type") or {}).get("coding") or []]
        if "copay" in codes and cost.get("valueMoney"):
            return _cents(cost["valueMoney"])
    return None, "usd"


# -- the sync ----------------------------------------------------------------------------------------


@dataclass
class _Pass:
    """One resource type's searches in this sync: where its watermark goes if all is well."""

    resource_type: str
    started_at: str = ""
    unstable: bool = False
    newest_seen: str = ""


@dataclass
class _Sync:
    connection: EhrConnection
    run: ImportRun
    client: _FhirClient
    options: dict
    now: datetime.datetime
    seen: dict[tuple[str, str], str] = field(default_factory=dict)
    known_patients: set[str] = field(default_factory=set)
    watermarks: dict[str, str] = field(default_factory=dict)
    upcoming_patients: set[str] = field(default_factory=set)
    copays: dict[str, tuple[int, str, datetime.datetime, str]] = field(default_factory=dict)

    # searching

    def search(self, resource_type: str, params: dict, sync_pass: _Pass | None = None) -> Iterator[dict]:
        """Every resource of the search, page after page (fhirpy follows Bundle.link[next]), each
        valid and new in this sync; the invalid ones become rejections."""
        page_size = int(self.options.get("page_size") or 100)
        first_total: list[int] = []
        # What we already hold of this page's patients or appointments: the same version, read again
        # (the overlap, the appointment window), is passed over before it is checked or imported.
        mirror = {"Patient": Patient, "Appointment": Appointment}.get(resource_type)
        stored: dict[str, tuple[str, datetime.datetime | None]] = {}

        def page_seen(bundle) -> None:
            if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                raise ConnectorError(f"The FHIR server answered the {resource_type} search with something other than a Bundle.")
            if mirror is not None:
                ids = [(entry.get("resource") or {}).get("id") for entry in bundle.get("entry") or []]
                stored.update(
                    (external_id, (version, moment))
                    for external_id, version, moment in mirror.objects.filter(
                        AnyOf(F("external_ehr_id"), [i for i in ids if i]), organization_id=self.run.organization_id
                    ).values_list("external_ehr_id", "ehr_version", "ehr_updated_at")
                )
            if sync_pass is None:
                return
            total = bundle.get("total")
            if not first_total:
                first_total.append(total)
                # The server's clock when the search began: the next search starts there (less the overlap).
                sync_pass.started_at = sync_pass.started_at or (bundle.get("meta") or {}).get("lastUpdated") or ""
            elif total is not None and total != first_total[0]:
                sync_pass.unstable = True

        client = self.client.for_search(page_seen)
        searchset = client.resources(_raw(resource_type)).search(**params).limit(page_size)
        if sync_pass is not None:
            searchset = searchset.sort("_lastUpdated")
        problems: list[RecordProblem] = []
        # Checked against the R4B models by a pool of processes, a few chunks ahead of what we map
        # and write here (ehr_sync.fhir_validation): the order and the rejections are unchanged.
        checker = ResourceChecker()

        def checked(*, everything: bool = False) -> Iterator[dict]:
            for resource, problem in checker.ready(everything=everything):
                if problem:
                    problems.append(problem)
                else:
                    yield resource

        try:
            for resource in searchset:
                resource = dict(resource)
                meta = resource.get("meta") or {}
                key = (resource_type, resource.get("id") or "")
                version = f"{meta.get('versionId', '')}|{meta.get('lastUpdated', '')}"
                if self.seen.get(key) == version:
                    continue
                self.seen[key] = version
                if sync_pass is not None and meta.get("lastUpdated"):
                    if sync_pass.started_at and meta["lastUpdated"] > sync_pass.started_at:
                        sync_pass.unstable = True
                    sync_pass.newest_seen = max(sync_pass.newest_seen, meta["lastUpdated"])
                held = stored.get(key[1])
                if held and meta.get("versionId") and held == (str(meta["versionId"]), _moment(meta.get("lastUpdated"))):
                    continue
                checker.add(resource)
                yield from checked()
            yield from checked(everything=True)
        finally:
            checker.cancel()
            # Resources that could not become records: recorded as the run's rejections.
            if problems:
                records_import(run=self.run, batch=RecordBatch(), unreadable=problems)

    def since(self, resource_type: str) -> dict:
        stored = _moment((self.connection.watermarks or {}).get(resource_type))
        if stored is None:
            return {}
        overlap = datetime.timedelta(seconds=int(self.options.get("watermark_overlap_seconds", 300)))
        moment = (stored - overlap).astimezone(datetime.UTC)
        return {"_lastUpdated__ge": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"}

    def finish_pass(self, sync_pass: _Pass) -> None:
        old = (self.connection.watermarks or {}).get(sync_pass.resource_type)
        new = sync_pass.started_at or sync_pass.newest_seen
        if sync_pass.unstable or not new:
            if old:
                self.watermarks[sync_pass.resource_type] = old
            return
        self.watermarks[sync_pass.resource_type] = max(new, old) if old else new

    # importing

    def import_batch(self, batch: RecordBatch) -> None:
        if len(batch):
            records_import(run=self.run, batch=batch)

    def patients_bring(self, batch: RecordBatch, patient_ids: Iterable[str]) -> None:
        """Add to ``batch`` the patients its appointments or balances name that we do not have."""
        wanted = {pid for pid in patient_ids if pid and pid not in self.known_patients}
        wanted -= {record.external_id for record in batch.patients}
        if not wanted:
            return
        stored = set(
            Patient.objects.filter(AnyOf(F("external_ehr_id"), wanted), organization_id=self.run.organization_id)
            .values_list("external_ehr_id", flat=True)
        )
        self.known_patients |= stored
        missing = sorted(wanted - stored)
        for start in range(0, len(missing), IDS_PER_SEARCH):
            ids = ",".join(missing[start : start + IDS_PER_SEARCH])
            for resource in self.search("Patient", {"_id": ids}):
                batch.patients.append(self.patient(resource))

    def patient(self, resource: dict) -> PatientRecord:
        record = patient_record(resource, sms_consent_extension_url=self.options.get(ConnectionOption.SMS_CONSENT_EXTENSION_URL) or "")
        self.known_patients.add(record.external_id)
        return record

    # the passes

    def patients(self) -> None:
        sync_pass = _Pass("Patient")
        batch = RecordBatch()
        for resource in self.search("Patient", self.since("Patient"), sync_pass):
            batch.patients.append(self.patient(resource))
            if len(batch) >= IMPORT_BATCH:
                self.import_batch(batch)
                batch = RecordBatch()
        self.import_batch(batch)
        self.finish_pass(sync_pass)

    def appointments(self) -> None:
        sync_pass = _Pass("Appointment")
        back = int(self.options.get(ConnectionOption.APPOINTMENT_WINDOW_DAYS_BACK, 1))
        ahead = int(self.options.get(ConnectionOption.APPOINTMENT_WINDOW_DAYS, DEFAULT_APPOINTMENT_WINDOW_DAYS))
        window = {
            "date__ge": (self.now - datetime.timedelta(days=back)).date().isoformat(),
            "date__le": (self.now + datetime.timedelta(days=ahead)).date().isoformat(),
        }
        searches = [self.search("Appointment", self.since("Appointment"), sync_pass)]
        if back or ahead:
            searches.append(self.search("Appointment", window))
        batch = RecordBatch()
        for search in searches:
            for resource in search:
                record, location_id, location_name = _appointment_parts(resource)
                if location_id and location_name and location_id not in self._ehr_location_ids():
                    # The clinic has not given this place its EHR id: match it by name instead.
                    record = replace(record, location=location_name)
                batch.appointments.append(record)
                if record.starts_at and record.starts_at >= self.now and record.status in UPCOMING_STATUSES:
                    self.upcoming_patients.add(record.patient_external_id)
                if len(batch) >= IMPORT_BATCH:
                    self.patients_bring(batch, (r.patient_external_id for r in batch.appointments))
                    self.import_batch(batch)
                    batch = RecordBatch()
        self.patients_bring(batch, (r.patient_external_id for r in batch.appointments))
        self.import_batch(batch)
        self.finish_pass(sync_pass)

    def _ehr_location_ids(self) -> set[str]:
        if not hasattr(self, "_location_ids"):
            self._location_ids = set(
                Location.objects.filter(organization_id=self.run.organization_id)
                .exclude(ehr_location_id="")
                .values_list("ehr_location_id", flat=True)
            )
        return self._location_ids

    def coverages(self) -> None:
        sync_pass = _Pass("Coverage")
        self.coverage_read(self.search("Coverage", self.since("Coverage"), sync_pass))
        self.finish_pass(sync_pass)
        # Patients with an upcoming visit that arrived now, whose coverage did not change: read it.
        missing = sorted(self.upcoming_patients - set(self.copays) - {""})
        for start in range(0, len(missing), IDS_PER_SEARCH):
            references = ",".join(f"Patient/{pid}" for pid in missing[start : start + IDS_PER_SEARCH])
            self.coverage_read(self.search("Coverage", {"beneficiary": references}))
        if not self.copays:
            return
        upcoming = (
            Appointment.objects.filter(
                AnyOf(F("patient__external_ehr_id"), self.copays),
                organization_id=self.run.organization_id,
                starts_at__gte=self.now,
                status__in=UPCOMING_STATUSES,
            )
            .exclude(external_ehr_id="")
            .values_list("external_ehr_id", "patient__external_ehr_id")
        )
        batch = RecordBatch()
        for appointment_id, patient_id in upcoming.iterator():
            cents, currency, moment, reference = self.copays[patient_id]
            batch.copays.append(CopayRecord(appointment_id, cents, moment, reference, currency))
            if len(batch) >= IMPORT_BATCH:
                self.import_batch(batch)
                batch = RecordBatch()
        self.import_batch(batch)

    def coverage_read(self, resources: Iterable[dict]) -> None:
        """Each beneficiary's copay from its active coverage (the primary one, lowest ``order``)."""
        chosen: dict[str, tuple[int, dict]] = {}
        for resource in resources:
            if resource.get("status") not in (None, "active"):
                continue
            patient_id = _reference_id(resource.get("beneficiary"), "Patient")
            if not patient_id:
                continue
            order = resource.get("order") or 1_000
            if patient_id not in chosen or order < chosen[patient_id][0]:
                chosen[patient_id] = (order, resource)
        for patient_id, (_, resource) in chosen.items():
            cents, currency = coverage_copay(resource)
            if cents is None:
                continue
            moment = _moment((resource.get("meta") or {}).get("lastUpdated")) or self.now
            self.copays[patient_id] = (cents, currency, moment, _reference(resource))

    def balances(self) -> None:
        matcher = _balance_matcher(self.options)
        if matcher is None:
            return
        sync_pass = _Pass("Account")
        batch = RecordBatch()
        for resource in self.search("Account", self.since("Account"), sync_pass):
            patient_id = next(
                (pid for pid in (_reference_id(subject, "Patient") for subject in resource.get("subject") or []) if pid), ""
            )
            extension = next((ext for ext in resource.get("extension") or [] if matcher(ext)), None)
            if not patient_id or extension is None or resource.get("status") not in (None, "active"):
                continue
            cents, currency = _cents(_balance_amount(extension))
            if cents is None:
                continue
            moment = _moment((resource.get("meta") or {}).get("lastUpdated")) or self.now
            batch.balances.append(BalanceRecord(patient_id, cents, moment, _reference(resource), currency))
            if len(batch) >= IMPORT_BATCH:
                self.patients_bring(batch, (r.patient_external_id for r in batch.balances))
                self.import_batch(batch)
                batch = RecordBatch()
        self.patients_bring(batch, (r.patient_external_id for r in batch.balances))
        self.import_batch(batch)
        self.finish_pass(sync_pass)


def fhir_sync(connection: EhrConnection, run: ImportRun) -> None:
    """One sync of a FHIR connection (see the module's docstring). Raises ConnectorError when the
    server fails; the watermarks then stay where they were."""
    if not connection.base_url:
        raise ConnectorError("The connection has no FHIR base URL.")
    options = connection.options or {}
    http = requests.Session()
    client = None
    try:
        authorization = _Authorization(connection, http, float(options.get("timeout_seconds") or 30))
        client = _FhirClient(connection.base_url.rstrip("/"), authorization=authorization, http=http, options=options)
        sync = _Sync(connection=connection, run=run, client=client, options=options, now=timezone.now())
        _balance_matcher(options)  # an unusable balance setting fails before anything is read
        started = time.monotonic()
        sync.patients()
        sync.appointments()
        sync.coverages()
        sync.balances()
    finally:
        if client is not None:
            client.close()
        http.close()
    EhrConnection.objects.filter(pk=connection.pk).update(watermarks={**(connection.watermarks or {}), **sync.watermarks})
    connection.watermarks = {**(connection.watermarks or {}), **sync.watermarks}
    logger.info(
        "FHIR sync of connection %s: %s pages in %.1f s", connection.pk, client.pages[0], time.monotonic() - started
    )
