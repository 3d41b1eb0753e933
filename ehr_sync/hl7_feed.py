"""HL7 v2 over MLLP: the clinic's EHR pushes patients and appointments to LumaPay as they change.

What happens to a message
-------------------------
1. **Stored first.** The listener reads one MLLP block and stores it whole (``Hl7Message.raw``,
   committed) before anything else, whatever it holds: garbage, an empty block, a message of a
   facility nobody mapped. Nothing the EHR sent is lost, and a rejected message can be replayed
   from the admin once its cause is fixed.
2. **Processed** in the scope of its organization (``organization_scope``): read into records
   (``ehr_sync.records``) and written by the one importer, the whole message or nothing
   (``all_or_nothing``): a message whose patient is rejected writes no appointment either.
3. **Acknowledged** (original mode): ``AA`` imported (or already held, or older than what is held);
   ``AE`` understood but a record was rejected (a date of birth that is not a date, a phone that is
   not one): the EHR's staff fix the chart and the next update goes through; ``AR`` not accepted
   at all (empty, not MLLP, no MSH, a wrong separator, a version other than 2.3-2.8, a truncated
   message, a message type or trigger this feed does not take, a facility mapped to no clinic, a
   patient of another facility). The reason is in MSA-3 and in an ERR segment (ERR-2 where,
   ERR-3 the HL7 error code, ERR-8 the words; ERR-1 for 2.3/2.4).

Which organization: one port, a facility mapping
------------------------------------------------
The issue allowed "one listener port per organization or a facility mapping". LumaPay runs ONE
listener port for every organization and maps the message's sending facility (MSH-4) to a clinic:
each ``EhrConnection`` of kind ``hl7_mllp`` names it in ``options["sending_facility"]`` (and, when
two clinics' EHRs send the same MSH-4, ``options["receiving_facility"]`` to match MSH-6 too).
Why: one port to open in the firewall, put behind one load balancer and secure (TLS/VPN) once; a
new clinic is a row, not a port, a deploy and a firewall change; listener processes are all alike,
so they scale out behind the balancer. A port per clinic would tie each clinic to a process and a
firewall rule, and a message sent to the wrong port would land in the wrong clinic silently,
whereas a facility that maps to nothing is caught: the message is kept (no organization) and
answered ``AR`` "unknown facility". Resolving the facility reads every clinic's connections: it is
a reviewed cross-clinic step (``all_organizations``), like a gateway webhook. Facilities compare
without regard to case; only active connections receive. ``hl7_connection_map`` (the
``hl7_connection`` command) refuses a mapping another clinic's feed already holds, so each message
has one clinic; a clash made otherwise is answered ``AR`` and the message kept.

A patient of another facility: PID-3's assigning facility (CX-6), when given, must be the sending
facility or one listed in ``options["patient_facilities"]`` (a health system whose clinics share
medical record numbers); otherwise ``AR``: importing it would file another facility's record
number under this clinic.

What is read
------------
- MSH-7 → ``source_updated_at`` (in the organization's time zone when it has no offset): the
  importer keeps the newest, so an older message arriving after a newer one changes nothing.
  MSH-10 (control id) → the record's ``version``. MSH-12 2.3 to 2.8 (any patch: 2.5.1, 2.8.2).
- PID-3: the repetition whose identifier type (CX-5) is ``MR`` (medical record number), else the
  first repetition: the EHR's own id for the patient, the same in every message about them.
- PID-5: the legal name (XPN-7 ``L``) when it has a family and a given name, else the first
  repetition that has both, else the first; family name XPN-1 (its surname), given name XPN-2.
- PID-7: date of birth (the date part; a time or an offset after it is ignored).
- PID-13: every repetition; a mobile number is one whose equipment type (XTN-3) is ``CP``
  (XTN-1, or +XTN-5 XTN-6 XTN-7), whatever its use code (PRN, ORN...); an e-mail is XTN-4 of the
  one whose equipment type is ``Internet`` (or use code ``NET``). A number of another type is not
  taken as a mobile: texts go only to numbers the EHR says are mobile.
- PID-15: primary language, ``en``/``eng``/English or ``es``/``spa``/Spanish (code or text);
  any other language is read as English, the product's other language.
- Consent to texts: a CON segment (v2.6+) whose consent type (CON-2) is ``SMS`` (code or text):
  its status (CON-11) ``A`` gives consent, ``R`` (refused) or ``X`` (rescinded) withdraws it; no
  such segment leaves what LumaPay holds unchanged.
- PV1-46 (current patient balance, in dollars) → the patient's balance, when present.
- SIU: the appointment's id is SCH-2 (filler appointment id: the EHR's scheduling system's own),
  else SCH-1 (placer). Start: AIS-4, else AIL-6, else AIP-6, else TQ1-7, else SCH-11's start
  (TQ-4; deprecated since 2.5 but the only timing of many 2.3 feeds). Location AIL-3 (its point of
  care PL-1, else its facility PL-4), matched to a Location by its EHR id, then its name.
  Provider AIP-3 (name, else id). S12 (new), S13 (rescheduled), S14 (modified) take SCH-25's
  status when it names one (Booked, Complete, Cancelled, Noshow...), else booked; S15 cancels;
  S26 marks a no-show. The PID's patient is imported with it; an S15/S26 without a PID finds the
  appointment's patient in what LumaPay holds.

The listener
------------
``Hl7Listener`` serves python-hl7's asyncio MLLP server (``hl7.mllp.start_hl7_server``); the
database work (store, process) runs in one thread of its own (``loop.run_in_executor``), so the
event loop keeps accepting connections and reading while a message is imported. A sender sends its
next message after the ACK of the previous (MLLP original mode), so one connection's messages are
imported in order. One thread per process: scale out with more processes behind the balancer.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import zoneinfo
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import hl7
from django.db import close_old_connections, connections, transaction
from django.db import connection as default_connection
from django.utils import timezone
from hl7.mllp import start_hl7_server

from lumapay.audit import actor_from, audit_event_record
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.tenant_rls import all_organizations, organization_scope

from .enums import AppointmentStatus, EhrConnectionKind, Hl7MessageStatus, ImportSource
from .importer import import_run_finish, import_run_start, records_import
from .models import Appointment, EhrConnection, Hl7Message, Patient
from .records import AppointmentRecord, BalanceRecord, PatientRecord, RecordBatch, RecordProblem

logger = logging.getLogger(__name__)

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
# Far above any ADT or SIU message; a block larger than this is refused (AR) and not stored.
MAX_MESSAGE_BYTES = 1024 * 1024

ACCEPT = "AA"
ERROR = "AE"
REJECT = "AR"

HANDLED = {
    "ADT": ("A04", "A08"),
    "SIU": ("S12", "S13", "S14", "S15", "S26"),
}
HANDLED_TEXT = "ADT^A04, ADT^A08, SIU^S12, SIU^S13, SIU^S14, SIU^S15 and SIU^S26"

# HL7 table 0357 (message error condition codes).
SEGMENT_SEQUENCE_ERROR = ("100", "Segment sequence error")
REQUIRED_FIELD_MISSING = ("101", "Required field missing")
DATA_TYPE_ERROR = ("102", "Data type error")
UNSUPPORTED_MESSAGE_TYPE = ("200", "Unsupported message type")
UNSUPPORTED_EVENT_CODE = ("201", "Unsupported event code")
UNSUPPORTED_VERSION = ("203", "Unsupported version id")
UNKNOWN_KEY = ("204", "Unknown key identifier")
INTERNAL_ERROR = ("207", "Application internal error")

# SCH-25 (filler status code, HL7 table 0278) → our status.
FILLER_STATUS = {
    "booked": AppointmentStatus.BOOKED,
    "pending": AppointmentStatus.BOOKED,
    "waitlist": AppointmentStatus.BOOKED,
    "started": AppointmentStatus.ARRIVED,
    "complete": AppointmentStatus.FULFILLED,
    "cancelled": AppointmentStatus.CANCELLED,
    "deleted": AppointmentStatus.CANCELLED,
    "noshow": AppointmentStatus.NO_SHOW,
}
LANGUAGES = {"en": "en", "eng": "en", "english": "en", "es": "es", "spa": "es", "spanish": "es", "español": "es"}

# Where each record field comes from, to point at it in the ACK's ERR-2.
_FIELD_LOCATIONS = {
    ("patient", "external_id"): ("PID", 3),
    ("patient", "first_name"): ("PID", 5),
    ("patient", "last_name"): ("PID", 5),
    ("patient", "date_of_birth"): ("PID", 7),
    ("patient", "email"): ("PID", 13),
    ("patient", "mobile_phone"): ("PID", 13),
    ("patient", "sms_consent"): ("CON", 11),
    ("patient", "preferred_language"): ("PID", 15),
    ("appointment", "external_id"): ("SCH", 2),
    ("appointment", "patient_external_id"): ("PID", 3),
    ("appointment", "starts_at"): ("AIS", 4),
    ("appointment", "location"): ("AIL", 3),
    ("appointment", "provider_name"): ("AIP", 3),
    ("balance", "amount_due_cents"): ("PV1", 46),
    ("balance", "patient_external_id"): ("PV1", 46),
}
_FIELD_NAMES = {
    "external_id": "id",
    "first_name": "given name",
    "last_name": "family name",
    "date_of_birth": "date of birth",
    "mobile_phone": "mobile phone",
    "email": "e-mail",
    "preferred_language": "primary language",
    "sms_consent": "consent to texts",
    "patient_external_id": "patient",
    "starts_at": "start",
    "amount_due_cents": "balance",
    "provider_name": "provider",
}

_DTM = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,4}))?)?([+-]\d{4})?$")


class Hl7Rejected(ApplicationError):
    """The message is not accepted (``AR``) or a record in it was rejected (``AE``): ``message``
    says why in words the EHR's staff can act on; ``location`` (segment, field) and ``condition``
    (HL7 table 0357) go to the ACK's ERR segment."""

    def __init__(self, ack_code: str, message: str, *, condition=INTERNAL_ERROR, location=("MSH", 0)):
        super().__init__(message)
        self.ack_code = ack_code
        self.condition = condition
        self.location = location


@dataclass(frozen=True)
class Acknowledgement:
    code: str
    text: str = ""
    # (segment, field, error code, text) per problem
    errors: tuple = ()


# -- reading ---------------------------------------------------------------------------------------


def raw_decode(raw: bytes) -> str:
    """The block as text: UTF-8 (HL7 2.8's preferred set, ASCII's superset), else Latin-1 (the
    8859/1 of older feeds; every byte decodes, so nothing is lost). NUL bytes, which PostgreSQL's
    text cannot hold, are written as ``\\x00``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\x00", "\\x00")


def _segments_text(text: str) -> str:
    # Segments end with CR; a file saved on Unix or Windows ends them with LF or CRLF.
    return text.replace("\r\n", "\r").replace("\n", "\r").strip("\r\n\t \x0b\x1c")


def _header_fields(text: str) -> list[str]:
    """MSH's fields split by its own separator, leniently (for storing and routing a message that
    may not parse): [] when it does not begin with MSH."""
    text = _segments_text(text)
    if not text.startswith("MSH") or len(text) < 4:
        return []
    separator = text[3]
    first = text.split("\r", 1)[0]
    return ["MSH", separator, *first[4:].split(separator)]


def _component(value: str, header: list[str], index: int = 0) -> str:
    components = header[2][0] if len(header) > 2 and header[2] else "^"
    parts = value.split(components)
    return parts[index].strip() if index < len(parts) else ""


def _msh(header: list[str], number: int) -> str:
    """MSH-n as written (MSH-1 is the separator itself)."""
    return header[number] if number < len(header) else ""


def _value(segment, field: int, component: int = 1, subcomponent: int = 1, repetition: int = 1) -> str:
    try:
        return str(segment.extract_field(1, field, repetition, component, subcomponent) or "").strip()
    except (IndexError, TypeError):
        return ""


def _repetitions(segment, field: int) -> int:
    if field >= len(segment):
        return 0
    value = segment(field)
    if value and isinstance(value[0], hl7.Repetition):
        return len(value)
    return 1 if str(value) else 0


def _first(message, segment_id: str):
    try:
        return message.segment(segment_id)
    except KeyError:
        return None


@dataclass
class _Parsed:
    message: hl7.Message
    message_type: str
    trigger: str
    control_id: str
    version: str
    sent_at_text: str


def message_parse(text: str) -> _Parsed:
    """The message's structure checked: an MLLP block that is an HL7 v2 message of a version
    and a type this feed takes, with the segments its type needs. Hl7Rejected (AR) otherwise."""
    text = _segments_text(text)
    if not text:
        raise Hl7Rejected(REJECT, "The message is empty.", condition=SEGMENT_SEQUENCE_ERROR)
    if not text.startswith("MSH"):
        raise Hl7Rejected(
            REJECT, "The message does not begin with an MSH segment (not an HL7 v2 message).",
            condition=SEGMENT_SEQUENCE_ERROR,
        )
    if len(text) < 8:
        raise Hl7Rejected(REJECT, "The MSH segment is truncated: it ends before its encoding characters.",
                          condition=SEGMENT_SEQUENCE_ERROR, location=("MSH", 2))
    separator, encoding = text[3], text[4:8]
    if separator != "|":
        shown = separator if separator.isprintable() else repr(separator)
        raise Hl7Rejected(
            REJECT, f"MSH-1 (field separator) is '{shown}': this feed takes '|', the separator HL7 recommends.",
            condition=DATA_TYPE_ERROR, location=("MSH", 1),
        )
    if len(set(encoding)) != 4 or "|" in encoding or any(c.isalnum() or c.isspace() for c in encoding):
        raise Hl7Rejected(
            REJECT, "MSH-2 (encoding characters) must be four distinct symbols, such as ^~\\&.",
            condition=DATA_TYPE_ERROR, location=("MSH", 2),
        )
    header = _header_fields(text)
    message_type, trigger = _component(_msh(header, 9), header, 0), _component(_msh(header, 9), header, 1)
    control_id, version = _msh(header, 10).strip(), _component(_msh(header, 12), header, 0)
    if len(header) <= 12:
        raise Hl7Rejected(
            REJECT, f"The MSH segment is truncated: it has {len(header) - 1} fields, HL7 requires 12 (up to MSH-12, the version).",
            condition=REQUIRED_FIELD_MISSING, location=("MSH", 12),
        )
    if not version:
        raise Hl7Rejected(REJECT, "MSH-12 (version) is empty.", condition=REQUIRED_FIELD_MISSING, location=("MSH", 12))
    if not _version_accepted(version):
        raise Hl7Rejected(
            REJECT, f"HL7 version {version} is not accepted: this feed takes versions 2.3 to 2.8.",
            condition=UNSUPPORTED_VERSION, location=("MSH", 12),
        )
    if not message_type:
        raise Hl7Rejected(REJECT, "MSH-9 (message type) is empty.", condition=REQUIRED_FIELD_MISSING, location=("MSH", 9))
    if message_type not in HANDLED:
        raise Hl7Rejected(
            REJECT, f"Message type {message_type} is not taken by this feed: it takes {HANDLED_TEXT}.",
            condition=UNSUPPORTED_MESSAGE_TYPE, location=("MSH", 9),
        )
    if trigger not in HANDLED[message_type]:
        raise Hl7Rejected(
            REJECT, f"Trigger event {message_type}^{trigger or '(none)'} is not taken by this feed: it takes {HANDLED_TEXT}.",
            condition=UNSUPPORTED_EVENT_CODE, location=("MSH", 9),
        )
    if not control_id:
        raise Hl7Rejected(
            REJECT, "MSH-10 (message control id) is empty.", condition=REQUIRED_FIELD_MISSING, location=("MSH", 10)
        )
    sent_at_text = _component(_msh(header, 7), header, 0)
    if not sent_at_text:
        raise Hl7Rejected(
            REJECT, "MSH-7 (date/time of message) is empty: without it a newer update cannot be told from an older one.",
            condition=REQUIRED_FIELD_MISSING, location=("MSH", 7),
        )
    try:
        message = hl7.parse(text)
    except Exception as error:  # noqa: BLE001 - python-hl7 raises assorted errors on malformed text
        raise Hl7Rejected(
            REJECT, f"The message could not be read as HL7 v2 ({type(error).__name__}).", condition=SEGMENT_SEQUENCE_ERROR
        ) from error
    for number, segment in enumerate(message, start=1):
        name = str(segment[0])
        if not re.fullmatch(r"[A-Z][A-Z0-9]{2}", name):
            raise Hl7Rejected(
                REJECT, f"Segment {number} is not an HL7 segment (its name is not three capitals): the message is garbled or truncated.",
                condition=SEGMENT_SEQUENCE_ERROR, location=("MSH", 0),
            )
    required = ("PID",) if message_type == "ADT" else ("SCH",)
    for name in required:
        if _first(message, name) is None:
            raise Hl7Rejected(
                REJECT, f"{message_type}^{trigger} has no {name} segment: the message is truncated or incomplete.",
                condition=SEGMENT_SEQUENCE_ERROR, location=(name, 0),
            )
    return _Parsed(message, message_type, trigger, control_id, version, sent_at_text)


def _version_accepted(version: str) -> bool:
    match = re.fullmatch(r"2\.(\d)(?:\.\d+)?", version)
    return bool(match) and 3 <= int(match.group(1)) <= 8


def hl7_datetime(text: str, tz: datetime.tzinfo, *, what: str, location) -> datetime.datetime:
    """An HL7 DTM (YYYYMMDD[HH[MM[SS[.S]]]][+/-ZZZZ]) as an aware datetime; without an offset, in ``tz``."""
    match = _DTM.match(text.strip())
    if not match:
        raise Hl7Rejected(ERROR, f"{what} is not an HL7 date/time (YYYYMMDDHHMM[SS][+/-ZZZZ]).",
                          condition=DATA_TYPE_ERROR, location=location)
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        moment = datetime.datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
            int((fraction or "0").ljust(6, "0")[:6]),
        )
    except ValueError as error:
        raise Hl7Rejected(ERROR, f"{what} is not a real date/time ({error}).", condition=DATA_TYPE_ERROR,
                          location=location) from error
    if offset:
        sign = -1 if offset[0] == "-" else 1
        minutes = sign * (int(offset[1:3]) * 60 + int(offset[3:5]))
        return moment.replace(tzinfo=datetime.timezone(datetime.timedelta(minutes=minutes)))
    return timezone.make_aware(moment, tz)


def _date_of_birth(text: str) -> datetime.date | None:
    if not text:
        return None
    match = _DTM.match(text)
    if not match:
        raise Hl7Rejected(ERROR, "PID-7 (date of birth) is not a date written YYYYMMDD.",
                          condition=DATA_TYPE_ERROR, location=("PID", 7))
    try:
        return datetime.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError as error:
        raise Hl7Rejected(ERROR, f"PID-7 (date of birth) is not a real date ({error}).",
                          condition=DATA_TYPE_ERROR, location=("PID", 7)) from error


# -- records ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    parsed: _Parsed
    connection: EhrConnection
    tz: datetime.tzinfo
    sent_at: datetime.datetime
    reference: str


def _patient_id(pid, connection: EhrConnection) -> str:
    count = _repetitions(pid, 3)
    chosen = next((n for n in range(1, count + 1) if _value(pid, 3, 5, repetition=n).upper() == "MR"), 1)
    external_id = _value(pid, 3, 1, repetition=chosen)
    assigning_facility = _value(pid, 3, 6, repetition=chosen)
    if assigning_facility:
        own = {connection.options.get("sending_facility", "")} | set(connection.options.get("patient_facilities") or [])
        if assigning_facility.casefold() not in {name.casefold() for name in own if name}:
            raise Hl7Rejected(
                REJECT,
                f"The patient is from another facility: PID-3's assigning facility is '{assigning_facility}', "
                f"not this connection's '{connection.options.get('sending_facility', '')}'.",
                condition=UNKNOWN_KEY, location=("PID", 3),
            )
    return external_id


def _patient_record(context: _Context, pid, message) -> PatientRecord:
    # The legal name (XPN-7 "L") with both names, else the first with both, else the first.
    names = [n for n in range(1, _repetitions(pid, 5) + 1) if _value(pid, 5, 1, repetition=n) and _value(pid, 5, 2, repetition=n)]
    name = next((n for n in names if _value(pid, 5, 7, repetition=n).upper() == "L"), names[0] if names else 1)
    email = mobile = ""
    for n in range(1, _repetitions(pid, 13) + 1):
        use, equipment = _value(pid, 13, 2, repetition=n).upper(), _value(pid, 13, 3, repetition=n).upper()
        if not email and (equipment == "INTERNET" or use == "NET"):
            email = _value(pid, 13, 4, repetition=n) or (_value(pid, 13, 1, repetition=n) if "@" in _value(pid, 13, 1, repetition=n) else "")
        elif not mobile and equipment == "CP":
            mobile = _value(pid, 13, 1, repetition=n)
            if not mobile and _value(pid, 13, 7, repetition=n):
                country = _value(pid, 13, 5, repetition=n)
                mobile = f"{'+' + country if country else ''}{_value(pid, 13, 6, repetition=n)}{_value(pid, 13, 7, repetition=n)}"
    return PatientRecord(
        external_id=_patient_id(pid, context.connection),
        first_name=_value(pid, 5, 2, repetition=name),
        last_name=_value(pid, 5, 1, 1, repetition=name),
        date_of_birth=_date_of_birth(_value(pid, 7)),
        source_updated_at=context.sent_at,
        reference=context.reference,
        email=email,
        mobile_phone=mobile,
        preferred_language=_language(pid),
        sms_consent=_sms_consent(message),
        version=context.parsed.control_id,
    )


def _language(pid) -> str:
    for component in (1, 2, 4, 5):
        code = _value(pid, 15, component).casefold()
        if code in LANGUAGES:
            return LANGUAGES[code]
        if code[:2] in ("en", "es") and code[2:3] in ("-", "_"):
            return code[:2]
    return "en"


def _sms_consent(message) -> bool | None:
    try:
        segments = message.segments("CON")
    except KeyError:
        return None
    for con in segments:
        kind = {_value(con, 2, 1).upper(), _value(con, 2, 2).upper()}
        if "SMS" in kind or "TEXT MESSAGES" in kind:
            status = _value(con, 11, 1).upper()
            if status == "A":
                return True
            if status in ("R", "X"):
                return False
    return None


def _balance_record(context: _Context, patient_id: str, message) -> BalanceRecord | None:
    pv1 = _first(message, "PV1")
    text = _value(pv1, 46) if pv1 is not None else ""
    if not text:
        return None
    try:
        amount = Decimal(text.replace(",", "").replace("$", ""))
    except InvalidOperation as error:
        raise Hl7Rejected(ERROR, "PV1-46 (current patient balance) is not an amount such as 125.50.",
                          condition=DATA_TYPE_ERROR, location=("PV1", 46)) from error
    if not amount.is_finite():
        raise Hl7Rejected(ERROR, "PV1-46 (current patient balance) is not an amount such as 125.50.",
                          condition=DATA_TYPE_ERROR, location=("PV1", 46))
    return BalanceRecord(
        patient_external_id=patient_id,
        amount_due_cents=int((amount * 100).to_integral_value()),
        source_updated_at=context.sent_at,
        reference=context.reference,
    )


def _appointment_record(context: _Context, message, patient_id: str) -> AppointmentRecord:
    sch = _first(message, "SCH")
    external_id = _value(sch, 2, 1) or _value(sch, 1, 1)
    if not external_id:
        raise Hl7Rejected(REJECT, "SCH-2 (filler appointment id) and SCH-1 (placer appointment id) are both empty.",
                          condition=REQUIRED_FIELD_MISSING, location=("SCH", 2))
    trigger = context.parsed.trigger
    if trigger == "S15":
        status = AppointmentStatus.CANCELLED
    elif trigger == "S26":
        status = AppointmentStatus.NO_SHOW
    else:
        status = FILLER_STATUS.get(_value(sch, 25, 1).casefold().replace("-", "").replace(" ", ""), AppointmentStatus.BOOKED)
    starts_text, where = "", ("SCH", 11)
    for segment_id, field in (("AIS", 4), ("AIL", 6), ("AIP", 6), ("TQ1", 7)):
        segment = _first(message, segment_id)
        if segment is not None and _value(segment, field):
            starts_text, where = _value(segment, field), (segment_id, field)
            break
    else:
        starts_text = _value(sch, 11, 4)
    starts_at = (
        hl7_datetime(starts_text, context.tz, what=f"{where[0]}-{where[1]} (appointment start)", location=where)
        if starts_text else None
    )
    ail, aip = _first(message, "AIL"), _first(message, "AIP")
    location = (_value(ail, 3, 1) or _value(ail, 3, 4)) if ail is not None else ""
    provider = ""
    if aip is not None:
        prefix, given, family = _value(aip, 3, 6), _value(aip, 3, 3), _value(aip, 3, 2)
        provider = " ".join(part for part in (prefix, given, family) if part) or _value(aip, 3, 1)
    if not patient_id:
        # An S15 or S26 may name only the appointment: its patient is the one we hold.
        patient_id = (
            Appointment.objects.filter(organization=context.connection.organization, external_ehr_id=external_id)
            .values_list("patient__external_ehr_id", flat=True)
            .first()
        ) or ""
        if not patient_id:
            raise Hl7Rejected(
                ERROR, f"The message has no PID segment and no appointment with id {external_id} is held: "
                "send the patient (PID) with it.",
                condition=UNKNOWN_KEY, location=("SCH", 2),
            )
    return AppointmentRecord(
        external_id=external_id,
        patient_external_id=patient_id,
        starts_at=starts_at,
        status=status,
        source_updated_at=context.sent_at,
        reference=context.reference,
        location=location,
        provider_name=provider[:200],
        version=context.parsed.control_id,
    )


def message_records(parsed: _Parsed, connection: EhrConnection) -> RecordBatch:
    """What the message says, as records for the importer (in the connection's organization)."""
    tz = zoneinfo.ZoneInfo(connection.organization.timezone)
    context = _Context(
        parsed=parsed,
        connection=connection,
        tz=tz,
        sent_at=hl7_datetime(parsed.sent_at_text, tz, what="MSH-7 (date/time of message)", location=("MSH", 7)),
        reference=f"message {parsed.control_id} ({parsed.message_type}^{parsed.trigger})"[:300],
    )
    message = parsed.message
    batch = RecordBatch()
    pid = _first(message, "PID")
    patient_id = ""
    if pid is not None:
        patient = _patient_record(context, pid, message)
        patient_id = patient.external_id
        batch.patients.append(patient)
        balance = _balance_record(context, patient_id, message) if parsed.message_type == "ADT" else None
        if balance is not None:
            batch.balances.append(balance)
    if parsed.message_type == "SIU":
        batch.appointments.append(_appointment_record(context, message, patient_id))
    return batch


# -- facilities ------------------------------------------------------------------------------------


def connection_for_facility(*, sending_facility: str, receiving_facility: str) -> EhrConnection | None:
    """The active HL7 connection whose ``sending_facility`` is MSH-4 (and ``receiving_facility``,
    when it names one, MSH-6). Reads every clinic's connections: call it in ``all_organizations``.
    Hl7Rejected when two connections claim the message."""
    if not sending_facility:
        return None
    candidates = [
        connection
        for connection in EhrConnection.objects.select_related("organization").filter(
            kind=EhrConnectionKind.HL7_MLLP, is_active=True, options__sending_facility__iexact=sending_facility
        )
        if not connection.options.get("receiving_facility")
        or connection.options["receiving_facility"].casefold() == receiving_facility.casefold()
    ]
    specific = [c for c in candidates if c.options.get("receiving_facility")]
    chosen = specific or candidates
    if len(chosen) > 1:
        raise Hl7Rejected(
            REJECT, f"Facility '{sending_facility}' is mapped by {len(chosen)} connections: set each one's receiving facility (MSH-6).",
            condition=UNKNOWN_KEY, location=("MSH", 4),
        )
    return chosen[0] if chosen else None


class FacilityMappingError(ApplicationError):
    pass


def hl7_connection_map(
    *,
    organization,
    actor,
    sending_facility: str,
    receiving_facility: str = "",
    patient_facilities: Sequence[str] = (),
    name: str = "HL7 feed",
) -> EhrConnection:
    """Map a sending facility (MSH-4; and MSH-6, when given) to ``organization``: create its HL7
    connection named ``name``, or change the facilities of the one it has. Audited. Refused when
    another active connection, of any clinic, already maps the same facilities: each message must
    belong to one clinic. Checking that reads every clinic's connections (``all_organizations``);
    an advisory lock makes two mappings at once wait for each other instead of both passing."""
    sending, receiving = sending_facility.strip(), receiving_facility.strip()
    if not sending:
        raise FacilityMappingError("The sending facility (MSH-4) is required: it is how a message finds its clinic.")
    options = {"sending_facility": sending}
    if receiving:
        options["receiving_facility"] = receiving
    others = sorted({facility.strip() for facility in patient_facilities if facility.strip()})
    if others:
        options["patient_facilities"] = others
    with transaction.atomic():
        with default_connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('lumapay.hl7_facility_map'))")
        with all_organizations():
            claimed = [
                other
                for other in EhrConnection.objects.select_related("organization").filter(
                    kind=EhrConnectionKind.HL7_MLLP, is_active=True, options__sending_facility__iexact=sending
                ).exclude(organization=organization, name=name)
                if (other.options.get("receiving_facility") or "").casefold() == receiving.casefold()
            ]
        if claimed:
            raise FacilityMappingError(
                # Which clinic, and its connection's name, stay unsaid: the caller may be another clinic.
                f"Facility '{sending}'{f' (receiving {receiving})' if receiving else ''} is already mapped by "
                "another connection: give each clinic's feed its own receiving facility (MSH-6)."
            )
        with organization_scope(organization.pk):
            connection = EhrConnection.objects.select_for_update(of=("self",)).filter(
                organization=organization, name=name
            ).first()
            actor_type, actor_user = actor_from(actor)
            if connection is None:
                connection = EhrConnection.objects.create(
                    organization=organization, name=name, kind=EhrConnectionKind.HL7_MLLP, options=options,
                    sync_every_minutes=0,
                )
                action, changes = AuditAction.EHR_CONNECTION_CREATED, {"connection": connection.pk, "options": options}
            else:
                if connection.kind != EhrConnectionKind.HL7_MLLP:
                    raise FacilityMappingError(f"The connection '{name}' is not an HL7 v2 feed: choose another name.")
                old = dict(connection.options)
                connection.options = {**old, **options}
                for key in ("receiving_facility", "patient_facilities"):
                    if key not in options:
                        connection.options.pop(key, None)
                connection.is_active = True
                connection.save(update_fields=["options", "is_active", "updated_at"])
                action, changes = AuditAction.EHR_CONNECTION_CHANGED, {
                    "connection": connection.pk, "options": [old, connection.options],
                }
            audit_event_record(
                organization=organization, action=action, actor_type=actor_type, actor_user=actor_user, changes=changes
            )
    return connection


def _facilities(text: str) -> tuple[str, str]:
    header = _header_fields(text)
    if not header or header[1] != "|":
        return "", ""
    return _component(_msh(header, 4), header, 0), _component(_msh(header, 6), header, 0)


# -- services --------------------------------------------------------------------------------------


def hl7_message_store(*, raw: bytes | str) -> int:
    """Keep the message as it arrived, committed, with the organization its facility maps to (none
    when it maps to none): before anything else, so nothing the EHR sent is lost. Returns its id."""
    text = raw if isinstance(raw, str) else raw_decode(raw)
    header = _header_fields(text)
    sending, receiving = _facilities(text)
    message_type = "^".join(part for part in (_component(_msh(header, 9), header, 0), _component(_msh(header, 9), header, 1)) if part)
    # A reviewed cross-clinic step: which clinic a message belongs to is known only once it is read.
    with all_organizations():
        try:
            connection = connection_for_facility(sending_facility=sending, receiving_facility=receiving)
        except Hl7Rejected:
            connection = None  # processing says why
        message = Hl7Message.objects.create(
            organization=connection.organization if connection else None,
            connection=connection,
            control_id=_msh(header, 10).strip()[:200] if header else "",
            message_type=message_type[:20],
            sending_facility=sending[:200],
            raw=text,
        )
    return message.pk


def hl7_message_process(*, message_id: int) -> Acknowledgement:
    """Read the stored message and import it in its organization's scope, the whole message or
    nothing; record the outcome on the message. Returns the acknowledgement to send."""
    with all_organizations():
        message = Hl7Message.objects.select_related("connection__organization").get(pk=message_id)
    try:
        parsed = message_parse(message.raw)
        if message.organization_id is None:
            sending, receiving = _facilities(message.raw)
            with all_organizations():
                connection_for_facility(sending_facility=sending, receiving_facility=receiving)  # ambiguity says so
            raise Hl7Rejected(
                REJECT,
                f"Unknown facility: MSH-4 (sending facility) '{sending}' maps to no clinic's HL7 connection."
                if sending else "Unknown facility: MSH-4 (sending facility) is empty.",
                condition=UNKNOWN_KEY, location=("MSH", 4),
            )
    except Hl7Rejected as rejection:
        ack = _ack_of(rejection)
        with all_organizations():
            _outcome_record(message, ack, run=None)
        return ack

    connection = message.connection
    if connection is None:
        ack = Acknowledgement(REJECT, "The HL7 connection this message arrived for was deleted; it is kept, not imported.",
                              (("MSH", 4, UNKNOWN_KEY, "Connection deleted"),))
        with all_organizations():
            _outcome_record(message, ack, run=None)
        return ack
    with organization_scope(message.organization_id), transaction.atomic():
        try:
            batch = message_records(parsed, connection)
        except Hl7Rejected as rejection:
            ack = _ack_of(rejection)
            _outcome_record(message, ack, run=None)
            return ack
        run = import_run_start(
            organization=connection.organization, source=ImportSource.HL7, connection=connection,
            label=f"HL7 {parsed.message_type}^{parsed.trigger} {parsed.control_id}",
        )
        outcome = records_import(run=run, batch=batch, all_or_nothing=True)
        run = import_run_finish(run=run)
        if outcome.problems:
            ack = Acknowledgement(
                ERROR,
                "Not imported: " + "; ".join(_problem_text(problem) for problem in outcome.problems),
                tuple(_problem_error(problem) for problem in outcome.problems),
            )
        elif outcome.total("older") and not (outcome.total("created") or outcome.total("updated")):
            ack = Acknowledgement(ACCEPT, "Accepted; LumaPay already holds a newer update of these records and keeps it.")
        else:
            ack = Acknowledgement(ACCEPT)
        _outcome_record(message, ack, run=run)
    return ack


def _ack_of(rejection: Hl7Rejected) -> Acknowledgement:
    segment, field = rejection.location
    return Acknowledgement(rejection.ack_code, rejection.message, ((segment, field, rejection.condition, rejection.message),))


def _problem_text(problem: RecordProblem) -> str:
    segment, field = _FIELD_LOCATIONS.get((problem.kind, problem.field), ("", 0))
    where = f"{segment}-{field} " if segment else ""
    return f"{problem.kind} {where}({_FIELD_NAMES.get(problem.field, problem.field)}): {problem.reason}"


def _problem_error(problem: RecordProblem) -> tuple:
    segment, field = _FIELD_LOCATIONS.get((problem.kind, problem.field), ("MSH", 0))
    condition = REQUIRED_FIELD_MISSING if not problem.value else DATA_TYPE_ERROR
    return (segment, field, condition, _problem_text(problem))


def _outcome_record(message: Hl7Message, ack: Acknowledgement, *, run) -> None:
    message.status = Hl7MessageStatus.IMPORTED if ack.code == ACCEPT else Hl7MessageStatus.REJECTED
    message.ack_code = ack.code
    message.error = ack.text if ack.code != ACCEPT else ""
    message.import_run = run
    message.processed_at = timezone.now()
    message.save(update_fields=["status", "ack_code", "error", "import_run", "processed_at"])
    # The connection's health badge: the feed works while its messages are accepted; a refused
    # message (AE, AR) is the data's problem, not the feed's: it is named as the last error.
    if message.connection_id is not None:
        if ack.code == ACCEPT:
            EhrConnection.objects.filter(pk=message.connection_id).update(
                last_success_at=timezone.now(), failing_since=None, last_error=""
            )
        else:
            # Its reason can quote a patient's value: the badge names the message, the admin says why.
            EhrConnection.objects.filter(pk=message.connection_id).update(
                last_error=f"HL7 message {message.control_id or '(no control id)'} ({message.message_type or 'unknown type'}) "
                f"was not imported ({ack.code}); the operators' admin shows why (HL7 messages)."[:2000]
            )


def hl7_message_patient_ids(message: Hl7Message) -> list[int]:
    """The ids of the patients a kept message is about (its PID's, in its organization): whose
    data an operator sees on the message's page."""
    try:
        parsed = message_parse(message.raw)
    except Hl7Rejected:
        return []
    pid = _first(parsed.message, "PID")
    if pid is None or message.organization_id is None:
        return []
    count = _repetitions(pid, 3)
    ids = {_value(pid, 3, 1, repetition=n) for n in range(1, count + 1)} - {""}
    return list(
        Patient.objects.filter(organization_id=message.organization_id, external_ehr_id__in=ids).values_list("id", flat=True)
    )


class Hl7ReplayRefused(ApplicationError):
    pass


def hl7_message_replay(*, message_id: int, actor=None) -> Acknowledgement:
    """Process a kept message again, for an operator (the admin's Replay): its facility is mapped
    again first (a connection added since for an unknown facility now claims it), then it is
    imported like a new arrival. Harmless for a message already imported: the importer changes
    nothing for what it already holds. Audited in the message's organization."""
    with all_organizations(), transaction.atomic():
        message = Hl7Message.objects.select_for_update(of=("self",)).get(pk=message_id)
        old = {"status": message.status, "ack_code": message.ack_code}
        if message.organization_id is None:
            sending, receiving = _facilities(message.raw)
            try:
                connection = connection_for_facility(sending_facility=sending, receiving_facility=receiving)
            except Hl7Rejected:
                connection = None
            if connection is not None:
                message.organization, message.connection = connection.organization, connection
                message.save(update_fields=["organization", "connection"])
        elif message.connection_id is None:
            raise Hl7ReplayRefused(f"Message {message.pk}: its HL7 connection was deleted; it cannot be imported again.")
        if message.organization_id is not None:
            actor_type, actor_user = actor_from(actor)
            audit_event_record(
                organization=message.organization,
                action=AuditAction.HL7_MESSAGE_REPLAYED,
                actor_type=actor_type,
                actor_user=actor_user,
                changes={"hl7_message": message.pk, "control_id": message.control_id, **old},
            )
    return hl7_message_process(message_id=message_id)


# -- acknowledgements -----------------------------------------------------------------------------


def _escape(text: str) -> str:
    """Text inside a field: HL7's escapes for its delimiters (the escape character first)."""
    for char, escape in (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\")):
        text = text.replace(char, escape)
    return text.replace("\r", " ").replace("\n", " ")


def ack_message(text: str, ack: Acknowledgement, *, control_id: str | None = None) -> str:
    """The ACK for ``text`` (the message as received): MSH answering the sender (its sending and
    receiving application and facility swapped, its trigger, processing id and version echoed),
    MSA (code, the message's control id, the reason) and one ERR per problem. A message without a
    readable MSH gets an ACK of our own (version 2.5) with an empty MSA-2."""
    header = _header_fields(text)
    usable = bool(header) and header[1] == "|" and len(header) > 2 and header[2][:4] == "^~\\&"
    version = _component(_msh(header, 12), header, 0) if usable else ""
    if not _version_accepted(version):
        version = "2.5"
    trigger = _component(_msh(header, 9), header, 1) if usable else ""
    now = timezone.now().strftime("%Y%m%d%H%M%S+0000")
    control_id = control_id or f"LP{timezone.now():%Y%m%d%H%M%S%f}"
    msh = [
        _msh(header, 5) if usable else "LUMAPAY", _msh(header, 6) if usable else "LUMAPAY",
        _msh(header, 3) if usable else "", _msh(header, 4) if usable else "",
        now, "", f"ACK^{_escape(trigger)}^ACK" if trigger else "ACK", control_id,
        (_msh(header, 11) if usable else "") or "P", version,
    ]
    lines = ["MSH|^~\\&|" + "|".join(msh)]
    message_control_id = _msh(header, 10).strip() if usable else ""
    lines.append("|".join(["MSA", ack.code, _escape(message_control_id), _escape(ack.text[:2000])]))
    old_style = version in ("2.3", "2.3.1") or version.startswith("2.4")
    for segment, field, (code, name), words in ack.errors:
        if old_style:
            lines.append(f"ERR|{segment}^1^{field or ''}^{code}&{_escape(name)}&HL70357")
        else:
            severity = "E"
            lines.append(
                f"ERR||{segment}^1^{field or ''}|{code}^{_escape(name)}^HL70357|{severity}||||{_escape(words[:250])}"
            )
    return "\r".join(lines) + "\r"


# -- the listener ---------------------------------------------------------------------------------


class Hl7Listener:
    """One MLLP port for every clinic (see the module's docstring). ``start`` binds it (port 0: a
    free port, read back from ``port``); ``stop`` closes it and the database connection of its
    worker thread."""

    def __init__(self, *, host: str, port: int):
        self.host, self.requested_port = host, port
        self.port: int | None = None
        self.server: asyncio.AbstractServer | None = None
        # All database work of this listener, one message at a time, off the event loop.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hl7-database")
        self.clients: set[asyncio.Task] = set()

    async def start(self) -> None:
        self.server = await start_hl7_server(
            self._client_connected, self.host, self.requested_port, limit=MAX_MESSAGE_BYTES
        )
        self.port = self.server.sockets[0].getsockname()[1]
        logger.info("HL7 listener on %s:%s", self.host, self.port)

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await self.server.serve_forever()
        finally:
            await self.stop()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for task in list(self.clients):
            task.cancel()
        if self.clients:
            await asyncio.gather(*self.clients, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.executor, connections.close_all)
        self.executor.shutdown(wait=True)

    async def _database(self, function, **kwargs):
        def work():
            close_old_connections()
            try:
                return function(**kwargs)
            finally:
                close_old_connections()

        return await asyncio.get_running_loop().run_in_executor(self.executor, work)

    async def _client_connected(self, reader, writer) -> None:
        task = asyncio.current_task()
        self.clients.add(task)
        try:
            while True:
                try:
                    block = await reader.readuntil(END_BLOCK)
                except asyncio.IncompleteReadError as error:
                    if error.partial.strip():
                        # The sender hung up mid-message: keep what came, say why; no one to answer.
                        await self._database(self._truncated_keep, raw=error.partial)
                    return
                except asyncio.LimitOverrunError:
                    text = f"The message is larger than {MAX_MESSAGE_BYTES // 1024} KiB and was not read."
                    ack = Acknowledgement(REJECT, text, (("MSH", 0, SEGMENT_SEQUENCE_ERROR, text),))
                    writer.writeblock(ack_message("", ack).encode())
                    await writer.drain()
                    return  # the rest of it is still on the wire: start again on a new connection
                raw = block[: -len(END_BLOCK)]
                framed = raw.startswith(START_BLOCK)
                raw = raw[1:] if framed else raw
                try:
                    message_id = await self._database(hl7_message_store, raw=raw)
                except Exception:  # noqa: BLE001 - not kept, so not acknowledged: the EHR sends it again
                    logger.exception("an HL7 message could not be stored; closing its connection without an ACK")
                    return
                if framed:
                    ack = await self._database(self._process, message_id=message_id)
                else:
                    ack = await self._database(self._unframed, message_id=message_id)
                text = raw_decode(raw)
                writer.writeblock(ack_message(text, ack).encode("utf-8"))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self.clients.discard(task)
            writer.close()

    @staticmethod
    def _process(*, message_id: int) -> Acknowledgement:
        try:
            return hl7_message_process(message_id=message_id)
        except Exception:  # noqa: BLE001 - the message is kept; the sender is told, an operator replays it
            logger.exception("HL7 message %s could not be processed", message_id)
            text = "LumaPay could not process the message; it is kept and will be replayed."
            ack = Acknowledgement(ERROR, text, (("MSH", 0, INTERNAL_ERROR, text),))
            with all_organizations():
                Hl7Message.objects.filter(pk=message_id).update(ack_code=ERROR, error=ack.text)
            return ack

    @staticmethod
    def _unframed(*, message_id: int) -> Acknowledgement:
        text = "The block does not begin with MLLP's start character <VT> (0x0B): it is not an MLLP message."
        ack = Acknowledgement(REJECT, text, (("MSH", 0, SEGMENT_SEQUENCE_ERROR, text),))
        with all_organizations():
            _outcome_record(Hl7Message.objects.get(pk=message_id), ack, run=None)
        return ack

    @staticmethod
    def _truncated_keep(*, raw: bytes) -> None:
        message_id = hl7_message_store(raw=raw[1:] if raw.startswith(START_BLOCK) else raw)
        ack = Acknowledgement(REJECT, "The connection closed before the end of the message (MLLP's <FS><CR>): it is truncated.")
        with all_organizations():
            _outcome_record(Hl7Message.objects.get(pk=message_id), ack, run=None)
