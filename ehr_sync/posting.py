"""Posting a payment, a refund or a reversal back to the organization's EHR: the wire.

``transactions`` keeps the books (one ``EhrPosting`` row per money event, its status, attempts and
backoff) and hands one ``PostingRecord`` at a time to ``posting_send``, which answers with a
``PostingOutcome``: posted (with the EHR's reference), refused (with the EHR's words) or unanswered
(nothing is known: try again). Nothing here writes to the database, and nothing here imports
``transactions``.

Exactly once on the EHR's side
------------------------------
A posting can be sent more than once: an answer lost on the way back (a timeout, a closed socket)
leaves LumaPay not knowing whether the EHR took it, so it sends again. Each kind of connection
makes the second send harmless:

- **FHIR**: a conditional create, ``POST [base]/<Resource>`` with
  ``If-None-Exist: identifier=<system>|<posting id>``. The server creates the resource only when
  none carries that identifier yet; otherwise it answers 200 with the one it holds. Every send of
  one posting carries the same identifier.
- **HL7 v2**: a DFT^P03 whose MSH-10 (message control id) and FT1-2 (transaction id) are the
  posting's own id, the same on every send: an EHR drops a message whose control id it has
  already processed (HL7's original acknowledgement rules) and holds one financial transaction per
  FT1-2. Posted only on MSA-1 ``AA``; ``AE``/``AR`` are refusals, in the EHR's words (MSA-3, ERR-8).

FHIR: which resource
--------------------
R4 has no resource made for "a patient paid at the front desk". The default adapter writes a
**PaymentReconciliation**: R4's resource for a payment received and how it is allocated (its
``paymentAmount``, ``paymentDate`` and a ``detail`` line of type payment or adjustment), searchable
by ``identifier``, so the conditional create works on any conformant server; R5 widened it to
patient payments at the point of service, so this is where FHIR is going. R4 gives it no patient
or location element: both go in LumaPay extensions (the EHR's own ids, references it holds), and
the visit in ``detail.request`` (``Appointment/<id>``). A **ChargeItem** adapter writes a credit
on the patient's account instead (``subject`` the patient, a negative ``priceOverride`` for a
payment), for EHRs that take postings as charge items. Which one a connection uses, and the
identifier system, are connection options (``PostingAdapter``, ``posting_identifier_system``).

What the EHR receives: the EHR's own ids for the patient, the visit and the location, the
amount, the currency, the moment and LumaPay's ids. No name, birth date, contact or card
detail: nothing the EHR does not already hold. Nothing of a posting is logged but its id.
"""

from __future__ import annotations

import datetime
import logging
import socket
from dataclasses import dataclass
from decimal import Decimal

import hl7
import requests
from hl7apy.core import Message

from .enums import ConnectionOption, EhrConnectionKind, PostingAdapter
from .connectors import ConnectorError
from .fhir_sync import _Authorization
from .models import EhrConnection

logger = logging.getLogger(__name__)

DEFAULT_IDENTIFIER_SYSTEM = "https://lumapay.com/fhir/ehr-posting"
CHARGE_IDENTIFIER_SYSTEM = "https://lumapay.com/fhir/charge"
EXTENSION_BASE = "https://lumapay.com/fhir/StructureDefinition"
PATIENT_EXTENSION_URL = f"{EXTENSION_BASE}/posting-patient"
LOCATION_EXTENSION_URL = f"{EXTENSION_BASE}/posting-location"
KIND_CODE_SYSTEM = f"{EXTENSION_BASE}/posting-kind"
TIMEOUT_SECONDS = 30
# MLLP framing: a vertical tab before the message, a file separator and a carriage return after.
MLLP_START, MLLP_END = b"\x0b", b"\x1c\r"
HL7_SENDING_APPLICATION = "LUMAPAY"
# FT1-7 (transaction code) per kind; FT1-6 (transaction type, HL7 table 0017) is PY for a
# payment, AJ (adjustment) for money going back to the patient.
FT1_CODES = {"payment": ("PY", "LUMAPAY-PAYMENT"), "refund": ("AJ", "LUMAPAY-REFUND"), "reversal": ("AJ", "LUMAPAY-REVERSAL")}


class PostingKind:
    PAYMENT = "payment"
    REFUND = "refund"
    # The bank took a disputed payment back from the clinic for good (a lost chargeback).
    REVERSAL = "reversal"


@dataclass(frozen=True)
class PostingRecord:
    """One posting as the EHR needs it. ``amount_cents`` is positive; ``kind`` says which way the
    money went. ``posting_id`` is stable across retries: the FHIR identifier, the HL7 control id."""

    posting_id: str
    charge_id: str
    kind: str
    amount_cents: int
    currency: str
    occurred_at: datetime.datetime
    patient_ehr_id: str
    appointment_ehr_id: str = ""
    location_ehr_id: str = ""


@dataclass(frozen=True)
class PostingOutcome:
    POSTED, REFUSED, UNANSWERED = "posted", "refused", "unanswered"

    status: str
    message: str = ""
    reference: str = ""

    @property
    def is_posted(self) -> bool:
        return self.status == self.POSTED


def posting_enabled(connection: EhrConnection) -> bool:
    """Whether this connection posts payments back (FHIR or HL7, active, posting on)."""
    options = connection.options or {}
    return (
        connection.is_active
        and connection.kind in (EhrConnectionKind.FHIR, EhrConnectionKind.HL7_MLLP)
        and bool(options.get(ConnectionOption.POSTING_ENABLED))
    )


def posting_send(connection: EhrConnection, record: PostingRecord) -> PostingOutcome:
    """Send one posting through ``connection``; never raises for what the EHR or the network does."""
    if not record.patient_ehr_id:
        return PostingOutcome(PostingOutcome.REFUSED, "The patient has no EHR id: the EHR cannot file the payment.")
    if connection.kind == EhrConnectionKind.FHIR:
        return _fhir_post(connection, record)
    if connection.kind == EhrConnectionKind.HL7_MLLP:
        return _hl7_post(connection, record)
    return PostingOutcome(PostingOutcome.REFUSED, "This kind of connection cannot post payments.")


# -- FHIR ------------------------------------------------------------------------------------------


def _signed(record: PostingRecord, *, payment_sign: int) -> Decimal:
    sign = payment_sign if record.kind == PostingKind.PAYMENT else -payment_sign
    return (Decimal(record.amount_cents) / 100 * sign).quantize(Decimal("0.01"))


def _money(record: PostingRecord, *, payment_sign: int) -> dict:
    return {"value": float(_signed(record, payment_sign=payment_sign)), "currency": record.currency.upper()}


def _kind_coding(record: PostingRecord) -> dict:
    return {"system": KIND_CODE_SYSTEM, "code": record.kind, "display": record.kind.capitalize()}


def payment_reconciliation(record: PostingRecord, *, identifier_system: str = DEFAULT_IDENTIFIER_SYSTEM) -> dict:
    """The PaymentReconciliation of one posting: the money as the clinic received it (a refund or a
    reversal is negative)."""
    day = record.occurred_at.date().isoformat()
    amount = _money(record, payment_sign=1)
    detail = {
        "identifier": {"system": identifier_system, "value": record.posting_id},
        "type": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/payment-type",
                 "code": "payment" if record.kind == PostingKind.PAYMENT else "adjustment"},
                _kind_coding(record),
            ]
        },
        "date": day,
        "amount": amount,
    }
    if record.appointment_ehr_id:
        detail["request"] = {"reference": f"Appointment/{record.appointment_ehr_id}"}
    extensions = [{"url": PATIENT_EXTENSION_URL, "valueReference": {"reference": f"Patient/{record.patient_ehr_id}"}}]
    if record.location_ehr_id:
        extensions.append({"url": LOCATION_EXTENSION_URL, "valueReference": {"reference": f"Location/{record.location_ehr_id}"}})
    return {
        "resourceType": "PaymentReconciliation",
        "extension": extensions,
        "identifier": [{"system": identifier_system, "value": record.posting_id}],
        "status": "active",
        "created": record.occurred_at.isoformat(),
        "paymentDate": day,
        "paymentAmount": amount,
        "paymentIdentifier": {"system": CHARGE_IDENTIFIER_SYSTEM, "value": record.charge_id},
        "outcome": "complete",
        "disposition": f"Patient {record.kind} through LumaPay",
        "detail": [detail],
    }


def charge_item(record: PostingRecord, *, identifier_system: str = DEFAULT_IDENTIFIER_SYSTEM) -> dict:
    """A ChargeItem crediting the patient's account: a payment lowers what they owe (negative)."""
    resource = {
        "resourceType": "ChargeItem",
        "identifier": [{"system": identifier_system, "value": record.posting_id}],
        "status": "billable",
        "code": {"coding": [_kind_coding(record)], "text": f"Patient {record.kind} through LumaPay"},
        "subject": {"reference": f"Patient/{record.patient_ehr_id}"},
        "occurrenceDateTime": record.occurred_at.isoformat(),
        "enteredDate": record.occurred_at.isoformat(),
        "quantity": {"value": 1},
        "priceOverride": _money(record, payment_sign=-1),
        "note": [{"text": f"LumaPay charge {record.charge_id}"}],
    }
    if record.appointment_ehr_id:
        resource["supportingInformation"] = [{"reference": f"Appointment/{record.appointment_ehr_id}"}]
    if record.location_ehr_id:
        resource["extension"] = [
            {"url": LOCATION_EXTENSION_URL, "valueReference": {"reference": f"Location/{record.location_ehr_id}"}}
        ]
    return resource


_BUILDERS = {
    PostingAdapter.PAYMENT_RECONCILIATION: payment_reconciliation,
    PostingAdapter.CHARGE_ITEM: charge_item,
}


def identifier_system_of(connection: EhrConnection) -> str:
    return (connection.options or {}).get(ConnectionOption.POSTING_IDENTIFIER_SYSTEM) or DEFAULT_IDENTIFIER_SYSTEM


def _fhir_post(connection: EhrConnection, record: PostingRecord) -> PostingOutcome:
    options = connection.options or {}
    adapter = options.get(ConnectionOption.POSTING_ADAPTER) or PostingAdapter.PAYMENT_RECONCILIATION
    build = _BUILDERS.get(adapter)
    if build is None:
        return PostingOutcome(PostingOutcome.REFUSED, f"Unknown posting adapter {adapter!r}: choose one on the connection's page.")
    system = identifier_system_of(connection)
    resource = build(record, identifier_system=system)
    url = f"{connection.base_url.rstrip('/')}/{resource['resourceType']}"
    timeout = float(options.get("timeout_seconds") or TIMEOUT_SECONDS)
    with requests.Session() as http:
        try:
            authorization = _Authorization(connection, http, timeout)
            headers = {
                "Content-Type": "application/fhir+json",
                "Accept": "application/fhir+json",
                # The conditional create: a second send finds the first one's resource.
                "If-None-Exist": f"identifier={system}|{record.posting_id}",
                **authorization.header(),
            }
        except ConnectorError as error:
            return PostingOutcome(PostingOutcome.UNANSWERED, error.message)
        try:
            response = http.post(url, json=resource, headers=headers, timeout=timeout)
        except requests.Timeout:
            return PostingOutcome(PostingOutcome.UNANSWERED, f"The FHIR server did not answer within {timeout:.0f} s.")
        except requests.RequestException:
            return PostingOutcome(PostingOutcome.UNANSWERED, "The FHIR server could not be reached.")
    status = response.status_code
    if status in (200, 201):
        reference = _created_reference(response, resource["resourceType"])
        return PostingOutcome(PostingOutcome.POSTED, reference=reference)
    words = _operation_outcome_text(response)
    if status in (401, 403, 408, 429) or status >= 500:
        return PostingOutcome(PostingOutcome.UNANSWERED, f"The FHIR server answered {status}{': ' + words if words else ''}.")
    return PostingOutcome(PostingOutcome.REFUSED, f"The FHIR server refused the posting ({status}){': ' + words if words else ''}.")


def _created_reference(response: requests.Response, resource_type: str) -> str:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if isinstance(body, dict) and body.get("id"):
        return f"{body.get('resourceType', resource_type)}/{body['id']}"
    location = response.headers.get("Location") or response.headers.get("Content-Location") or ""
    parts = location.split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else ""


def _operation_outcome_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    texts = []
    for issue in body.get("issue") or []:
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or issue.get("code") or ""
        if text:
            texts.append(str(text))
    return "; ".join(texts)[:480]


# -- HL7 v2 ----------------------------------------------------------------------------------------


def _hl7_text(value: str) -> str:
    """A value safe inside one HL7 field: no separator or escape character of ours."""
    return "".join(ch for ch in str(value) if ch not in "|^~\\&\r\n")


def control_id_of(record: PostingRecord) -> str:
    """MSH-10 and FT1-2: at most 20 characters, the same on every send of the posting."""
    return _hl7_text(record.posting_id).replace("-", "")[:20]


def dft_p03(record: PostingRecord, *, receiving_facility: str = "") -> str:
    """The DFT^P03 (post detail financial transaction) of one posting, HL7 v2.5, one FT1.

    MSH-7 and EVN-2 are the moment of the money event, not of the send, so every send of a posting
    is the same message. FT1-11 is the amount as the patient's account sees it: a payment is a
    credit (negative), a refund or a reversal puts the amount back (positive)."""
    moment = record.occurred_at.astimezone(datetime.timezone.utc).strftime("%Y%m%d%H%M%S+0000")
    control_id = control_id_of(record)
    message = Message("DFT_P03", version="2.5")
    message.msh.msh_3 = HL7_SENDING_APPLICATION
    message.msh.msh_4 = HL7_SENDING_APPLICATION
    if receiving_facility:
        message.msh.msh_6 = _hl7_text(receiving_facility)
    message.msh.msh_7 = moment
    message.msh.msh_9 = "DFT^P03^DFT_P03"
    message.msh.msh_10 = control_id
    message.msh.msh_11 = "P"
    message.msh.msh_12 = "2.5"
    message.add_segment("EVN")
    message.evn.evn_1 = "P03"
    message.evn.evn_2 = moment
    message.add_segment("PID")
    message.pid.pid_1 = "1"
    message.pid.pid_3 = _hl7_text(record.patient_ehr_id)
    if record.appointment_ehr_id or record.location_ehr_id:
        message.add_segment("PV1")
        message.pv1.pv1_1 = "1"
        message.pv1.pv1_2 = "O"
        if record.location_ehr_id:
            message.pv1.pv1_3 = _hl7_text(record.location_ehr_id)
        if record.appointment_ehr_id:
            message.pv1.pv1_19 = _hl7_text(record.appointment_ehr_id)
    transaction_type, transaction_code = FT1_CODES[record.kind]
    amount = _signed(record, payment_sign=-1)
    ft1 = message.add_segment("FT1")
    ft1.ft1_1 = "1"
    ft1.ft1_2 = control_id
    ft1.ft1_3 = _hl7_text(record.charge_id)
    ft1.ft1_4 = record.occurred_at.strftime("%Y%m%d")
    ft1.ft1_5 = moment
    ft1.ft1_6 = transaction_type
    ft1.ft1_7 = transaction_code
    ft1.ft1_10 = "1"
    ft1.ft1_11 = f"{amount}&{record.currency.upper()}"
    if record.location_ehr_id:
        ft1.ft1_16 = _hl7_text(record.location_ehr_id)
    return message.to_er7()


def outbound_address_parse(value: str) -> tuple[str, int] | None:
    """("host", port) from "host:port", or None when it is not one."""
    host, _, port = str(value or "").strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


def _hl7_post(connection: EhrConnection, record: PostingRecord) -> PostingOutcome:
    options = connection.options or {}
    address = outbound_address_parse(options.get(ConnectionOption.OUTBOUND_ADDRESS, ""))
    if address is None:
        return PostingOutcome(PostingOutcome.REFUSED, "The connection has no outbound address (host:port) for postings.")
    message = dft_p03(record, receiving_facility=options.get(ConnectionOption.SENDING_FACILITY, ""))
    timeout = float(options.get("timeout_seconds") or TIMEOUT_SECONDS)
    try:
        answer = mllp_exchange(address, message, timeout_seconds=timeout)
    except TimeoutError:
        return PostingOutcome(PostingOutcome.UNANSWERED, f"The EHR did not acknowledge within {timeout:.0f} s.")
    except (ConnectionRefusedError, socket.gaierror):
        return PostingOutcome(PostingOutcome.UNANSWERED, "The EHR's MLLP listener could not be reached.")
    except OSError:
        return PostingOutcome(PostingOutcome.UNANSWERED, "The EHR closed the connection before acknowledging.")
    return ack_outcome(answer, control_id=control_id_of(record))


def mllp_exchange(address: tuple[str, int], message: str, *, timeout_seconds: float) -> str:
    """Send one message in an MLLP block and read the one block that answers it. Raises
    ``TimeoutError`` (no answer in time) or another ``OSError`` (refused, closed before the end)."""
    with socket.create_connection(address, timeout=timeout_seconds) as sock:
        sock.settimeout(timeout_seconds)
        sock.sendall(MLLP_START + message.encode("utf-8") + MLLP_END)
        received = b""
        while MLLP_END not in received:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the EHR closed the connection before its acknowledgement ended")
            received += chunk
    start = received.find(MLLP_START)
    return received[start + 1 if start >= 0 else 0 : received.find(MLLP_END)].decode("utf-8", errors="replace")


def ack_outcome(answer: str, *, control_id: str) -> PostingOutcome:
    """What an ACK says: AA (or CA) posted; AE/AR (CE/CR) refused in the EHR's words; anything
    else (not an ACK, another message's ACK) unanswered."""
    try:
        parsed = hl7.parse(answer.replace("\n", "\r"))
        msa = parsed.segment("MSA")
    except (KeyError, IndexError, ValueError, hl7.exceptions.ParseException):
        return PostingOutcome(PostingOutcome.UNANSWERED, "The EHR answered with something that is not an HL7 acknowledgement.")
    code = str(msa(1)).strip().upper()
    acknowledged = str(msa(2)).strip()
    if acknowledged and acknowledged != control_id:
        return PostingOutcome(PostingOutcome.UNANSWERED, "The EHR acknowledged another message.")
    if code in ("AA", "CA"):
        return PostingOutcome(PostingOutcome.POSTED, reference=control_id)
    words = [str(msa(3)).strip()] if len(msa) > 3 else []
    for segment in parsed.segments("ERR") if any(str(s[0]) == "ERR" for s in parsed) else []:
        for index in (8, 1):
            if len(segment) > index and str(segment(index)).strip():
                words.append(str(segment(index)).strip())
                break
    text = "; ".join(dict.fromkeys(word for word in words if word))[:480]
    label = {"AE": "error", "AR": "reject", "CE": "error", "CR": "reject"}.get(code, code or "no code")
    return PostingOutcome(PostingOutcome.REFUSED, f"The EHR answered {code or '?'} ({label}){': ' + text if text else ''}.")
