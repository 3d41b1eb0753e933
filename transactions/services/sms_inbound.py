"""Texts patients send to LumaPay's number (Twilio's inbound-message webhook): STOP, START, HELP.

Twilio's standard keywords, matched as Twilio matches them (the whole message, trimmed, any case):

- opt-out: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT;
- opt-in: START, YES, UNSTOP;
- help: HELP, INFO.

An opt-out covers the number across every clinic (see ``lumapay.models.SmsOptOut`` for why). It is
recorded in the audit trail of each organization that has a patient with that mobile number, on
that patient, with the patient as actor, so staff see it on the profile and in the history.
Anything else gets no reply (an empty TwiML response): staff do not read this inbox.

Never logs the number or the message: a count and the keyword class only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction as db_transaction
from django.utils import timezone, translation
from django.utils.translation import gettext

from ehr_sync.models import Patient
from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction
from lumapay.models import ActorType, SmsOptOut

logger = logging.getLogger(__name__)

OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})

OPT_OUT, OPT_IN, HELP, OTHER = "opt_out", "opt_in", "help", "other"


def sms_keyword_kind(body: str) -> tuple[str, str]:
    """(kind, keyword) of an inbound message: the keyword in capitals, "" for anything else."""
    keyword = " ".join((body or "").split()).upper()
    if keyword in OPT_OUT_KEYWORDS:
        return OPT_OUT, keyword
    if keyword in OPT_IN_KEYWORDS:
        return OPT_IN, keyword
    if keyword in HELP_KEYWORDS:
        return HELP, keyword
    return OTHER, ""


@dataclass(frozen=True)
class SmsReply:
    kind: str
    text: str  # "" for no reply


def sms_inbound_receive(*, from_number: str, received_on: str, body: str) -> SmsReply:
    """Act on one inbound text (already verified as Twilio's) and say what to answer. Spans clinics:
    the caller runs it with ``all_organizations()`` (a reviewed exception, lumapay/tenant_rls.py)."""
    kind, keyword = sms_keyword_kind(body)
    patients = list(
        Patient.objects.filter(mobile_phone=from_number).select_related("organization").order_by("organization_id", "pk")
    ) if from_number else []
    if kind in (OPT_OUT, OPT_IN) and from_number:
        _opt_out_record(from_number=from_number, received_on=received_on, keyword=keyword, opted_out=kind == OPT_OUT, patients=patients)
    logger.info("inbound SMS: %s, %s known patient record(s)", kind, len(patients))
    if kind == OTHER:
        return SmsReply(kind, "")
    with translation.override(_language_of(patients)):
        return SmsReply(kind, _reply_text(kind, patients))


def _opt_out_record(*, from_number: str, received_on: str, keyword: str, opted_out: bool, patients: list[Patient]) -> None:
    now = timezone.now()
    with db_transaction.atomic():
        try:
            with db_transaction.atomic():
                row, _ = SmsOptOut.objects.select_for_update().get_or_create(
                    phone_number=from_number,
                    defaults={"is_opted_out": opted_out, "keyword": keyword, "received_on": received_on[:40]},
                )
        except IntegrityError:
            # Two texts from one number at once: the other request created it.
            row = SmsOptOut.objects.select_for_update().get(phone_number=from_number)
        changed = row.is_opted_out != opted_out or row.opted_out_at is None and row.opted_in_at is None
        row.is_opted_out = opted_out
        row.keyword = keyword
        row.received_on = received_on[:40]
        if opted_out:
            row.opted_out_at = now
        else:
            row.opted_in_at = now
        row.save()
        if not changed:
            return  # a second STOP (or START) changes nothing and is not audited again
        for patient in patients:
            audit_event_record(
                organization=patient.organization,
                action=AuditAction.SMS_OPTED_OUT if opted_out else AuditAction.SMS_OPTED_IN,
                actor_type=ActorType.PATIENT,
                patient=patient,
                changes={"keyword": keyword, "how": "text message"},
            )


def _language_of(patients: list[Patient]) -> str:
    """The patients' language when every record of this number agrees on one; English otherwise."""
    languages = {patient.preferred_language for patient in patients if patient.preferred_language}
    return languages.pop() if len(languages) == 1 else "en"


def _reply_text(kind: str, patients: list[Patient]) -> str:
    organizations = {patient.organization_id: patient.organization for patient in patients}
    if kind == OPT_OUT:
        return gettext(
            "LumaPay: You will get no more text messages from us. Reply START to get them again."
        )
    if kind == OPT_IN:
        return gettext(
            "LumaPay: You will get text messages about your payments again. Reply STOP to stop, HELP for help."
        )
    if len(organizations) == 1:
        organization = next(iter(organizations.values()))
        contact = ", ".join(
            part for part in (organization.support_phone, organization.support_email) if part
        )
        if contact:
            return gettext(
                "%(clinic)s sends payment messages through LumaPay. For help, contact %(contact)s. "
                "Reply STOP to stop texts, START to get them again."
            ) % {"clinic": organization.display_name, "contact": contact}
    return gettext(
        "LumaPay sends payment messages for your clinic. For help, call the clinic that sent you the link. "
        "Reply STOP to stop texts, START to get them again."
    )
