"""Support tickets: every write (opening a ticket, a member's reply on the page or by e-mail, an
operator's answer in the admin) and the reads with rules (who sees which ticket).

Who sees a ticket: the member who opened it, and the administrators of its organization. Nobody
else in the clinic, and never another clinic (row-level security, and the organization comes from
the session's membership). Operators see every ticket in the admin.

What never leaves: a ticket marked as holding patient information is never quoted in an e-mail
(the e-mail says an answer is waiting, with a link), and our log lines name tickets by id only.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.urls import Resolver404, resolve

from lumapay.audit import actor_from, audit_event_record
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import ActorType
from lumapay.task_queue import task_enqueue_on_commit
from lumapay.tenant_rls import all_organizations, organization_scope
from org_profile.access import ADMINISTRATORS, EVERYONE, staff_access
from org_profile.models import Membership, Organization

from .help_enums import MessageAuthor, MessageChannel, TicketStatus
from .help_models import SupportTicket, TicketAttachment, TicketMessage

logger = logging.getLogger(__name__)

BODY_MAX_CHARS = 20_000


class TicketRefused(ApplicationError):
    """The ticket or reply cannot be accepted as sent; the message says why. Nothing was saved."""


# -- attachments ---------------------------------------------------------------------------------

# What a file's first bytes say it is. Only these are accepted: documents and screenshots.
_SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
ACCEPTED_KINDS = "PDF, PNG, JPEG, GIF, WebP or plain text"


def attachment_content_type(data: bytes) -> str | None:
    """The type of ``data`` recognized from its content, or None when it is none we accept."""
    for signature, content_type in _SIGNATURES:
        if data.startswith(signature):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if b"\x00" not in data:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return "text/plain"
    return None


@dataclass(frozen=True)
class AttachmentIn:
    file_name: str
    content_type: str
    content: bytes


def attachments_check(files) -> list[AttachmentIn]:
    """Uploaded files checked by size (from the upload's size, before reading) and by content.
    Raises TicketRefused naming the file and the reason."""
    files = list(files or [])
    most = settings.HELP_TICKET_MAX_ATTACHMENTS
    limit = settings.HELP_TICKET_ATTACHMENT_MAX_BYTES
    if len(files) > most:
        raise TicketRefused(f"Attach at most {most} files.")
    checked = []
    for upload in files:
        name = _file_name(getattr(upload, "name", ""))
        if upload.size > limit:
            raise TicketRefused(f"{name} is too large: attach files of at most {_megabytes(limit)}.")
        checked.append(_attachment_check(name, upload.read()))
    return checked


def _file_name(name: str | None) -> str:
    return (name or "file").replace("/", "_").replace("\\", "_")[-200:]


def _attachment_check(name: str, data: bytes) -> AttachmentIn:
    """One file's size and kind (by content). Raises TicketRefused naming it and the reason."""
    limit = settings.HELP_TICKET_ATTACHMENT_MAX_BYTES
    if not data:
        raise TicketRefused(f"{name} is empty.")
    if len(data) > limit:
        raise TicketRefused(f"{name} is too large: attach files of at most {_megabytes(limit)}.")
    content_type = attachment_content_type(data)
    if content_type is None:
        raise TicketRefused(f"{name} cannot be attached: LumaPay accepts {ACCEPTED_KINDS} files.")
    return AttachmentIn(file_name=name, content_type=content_type, content=data)


def _inbound_attachments(files) -> tuple[list[AttachmentIn], list[str]]:
    """An e-mailed reply's files: those LumaPay accepts, and why each other one was left out (the
    reply itself is never refused for a file; the reasons go on the message, so nothing is lost
    silently)."""
    accepted, left_out = [], []
    for name, data in files or ():
        name = _file_name(name)
        if len(accepted) >= settings.HELP_TICKET_MAX_ATTACHMENTS:
            left_out.append(f"{name}: at most {settings.HELP_TICKET_MAX_ATTACHMENTS} files are kept.")
            continue
        try:
            accepted.append(_attachment_check(name, data))
        except TicketRefused as refusal:
            left_out.append(refusal.message)
    return accepted, left_out


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB" if size >= 1024 * 1024 else f"{size // 1024} KB"


def _attachments_store(*, message: TicketMessage, attachments: list[AttachmentIn]) -> None:
    TicketAttachment.objects.bulk_create(
        TicketAttachment(
            organization_id=message.organization_id,
            message=message,
            file_name=item.file_name,
            content_type=item.content_type,
            size_bytes=len(item.content),
            content=item.content,
        )
        for item in attachments
    )


# -- the page the member was on --------------------------------------------------------------------


# Not kept as a ticket's page: the Help Center itself, and the patients' pages, whose addresses
# carry a link's token (a bearer credential that must not sit in a ticket operators read).
_NOT_STAFF_PAGES = {"helpcenter", "pay", "form", "sandbox", "webhooks", "inbound_email"}


def page_path_clean(value: str | None) -> str:
    """The path of a LumaPay staff page from a URL or a path (the query string and fragment
    dropped), or "" when it is not one (another site, a help or patient page, nonsense)."""
    if not value:
        return ""
    parts = urlsplit(value.strip())
    path = parts.path
    if not path.startswith("/") or path.startswith("//") or len(path) > 300:
        return ""
    if parts.netloc and parts.netloc not in {urlsplit(settings.SITE_URL).netloc, *settings.ALLOWED_HOSTS}:
        return ""
    try:
        match = resolve(path)
    except Resolver404:
        return ""
    if match.namespace in _NOT_STAFF_PAGES:
        return ""
    return path


# -- reads -----------------------------------------------------------------------------------------


def tickets_visible(*, membership: Membership) -> QuerySet[SupportTicket]:
    """The tickets this member may see: administrators their organization's, others their own."""
    tickets = SupportTicket.objects.filter(organization_id=membership.organization_id).select_related("created_by")
    if membership.role not in ADMINISTRATORS:
        tickets = tickets.filter(created_by_id=membership.user_id)
    return tickets


def ticket_get(*, membership: Membership, pk: int) -> SupportTicket | None:
    return tickets_visible(membership=membership).filter(pk=pk).first()


def attachment_get(*, membership: Membership, pk: int) -> TicketAttachment | None:
    return (
        TicketAttachment.objects.filter(
            pk=pk, message__ticket__in=tickets_visible(membership=membership), organization_id=membership.organization_id
        )
        .select_related("message__ticket")
        .first()
    )


# -- writes ----------------------------------------------------------------------------------------


def _body_clean(body: str) -> str:
    body = (body or "").strip()
    if not body:
        raise TicketRefused("Write a message.")
    if len(body) > BODY_MAX_CHARS:
        raise TicketRefused(f"Keep the message under {BODY_MAX_CHARS:,} characters.")
    return body


def _reply_token_new() -> str:
    # Lower-case hex: e-mail systems may change the case of an address's local part.
    return secrets.token_hex(12)


def ticket_create(
    *,
    organization: Organization,
    actor,
    subject: str,
    body: str,
    category: str,
    contains_patient_information: bool,
    page_path: str = "",
    files=(),
) -> SupportTicket:
    """Open a ticket for ``actor``, a member of ``organization`` (any role)."""
    staff_access(organization=organization, actor=actor, roles=EVERYONE)
    subject = (subject or "").strip()
    if not subject:
        raise TicketRefused("Give the ticket a subject.")
    body = _body_clean(body)
    attachments = attachments_check(files)
    with transaction.atomic():
        ticket = SupportTicket.objects.create(
            organization=organization,
            created_by=actor,
            subject=subject[:200],
            category=category,
            contains_patient_information=contains_patient_information,
            page_path=page_path_clean(page_path),
            reply_token=_reply_token_new(),
        )
        message = TicketMessage.objects.create(
            organization=organization,
            ticket=ticket,
            author_kind=MessageAuthor.MEMBER,
            author=actor,
            channel=MessageChannel.WEB,
            body=body,
        )
        _attachments_store(message=message, attachments=attachments)
        _operators_notify(message)
        actor_type, actor_user = actor_from(actor)
        audit_event_record(
            organization=organization,
            action=AuditAction.SUPPORT_TICKET_OPENED,
            actor_type=actor_type,
            actor_user=actor_user,
            # Never the subject or the body: they may hold what the member typed about a patient.
            changes={
                "ticket": ticket.pk,
                "category": category,
                "contains_patient_information": contains_patient_information,
                "attachments": len(attachments),
            },
        )
    logger.info("Support ticket %s opened", ticket.pk)
    return ticket


def ticket_reply_by_member(*, ticket: SupportTicket, actor, body: str, files=()) -> TicketMessage:
    """A member's reply on the ticket's page. Only someone who may see the ticket may reply."""
    membership = staff_access(organization=ticket.organization, actor=actor, roles=EVERYONE)
    if ticket_get(membership=membership, pk=ticket.pk) is None:
        raise TicketRefused("This ticket is not yours to answer.")
    body = _body_clean(body)
    attachments = attachments_check(files)
    with transaction.atomic():
        message = _member_message(ticket=ticket, author=actor, body=body, channel=MessageChannel.WEB)
        _attachments_store(message=message, attachments=attachments)
    return message


def _member_message(*, ticket: SupportTicket, author, body: str, channel: str, email_message_id: str = "") -> TicketMessage:
    message = TicketMessage.objects.create(
        organization_id=ticket.organization_id,
        ticket=ticket,
        author_kind=MessageAuthor.MEMBER,
        author=author,
        channel=channel,
        body=body,
        email_message_id=email_message_id[:300],
    )
    _operators_notify(message)
    old = ticket.status
    ticket.status = TicketStatus.OPEN
    ticket.save(update_fields=["status", "updated_at"])
    audit_event_record(
        organization=ticket.organization,
        action=AuditAction.SUPPORT_TICKET_REPLIED,
        actor_type=ActorType.STAFF,
        actor_user=author,
        changes={"ticket": ticket.pk, "channel": channel, "status": [old, ticket.status]},
    )
    return message


def ticket_answer(*, ticket: SupportTicket, operator, body: str, status: str = TicketStatus.ANSWERED) -> TicketMessage:
    """An operator's answer from the admin: added to the thread, the status set, and the member
    e-mailed after commit (with a Reply-To that brings their answer back to this ticket)."""
    if not getattr(operator, "is_staff", False):
        raise TicketRefused("Only LumaPay's operators answer tickets.")
    body = _body_clean(body)
    with transaction.atomic():
        message = TicketMessage.objects.create(
            organization_id=ticket.organization_id,
            ticket=ticket,
            author_kind=MessageAuthor.OPERATOR,
            author=operator,
            channel=MessageChannel.ADMIN,
            body=body,
        )
        old = ticket.status
        ticket.status = status
        ticket.save(update_fields=["status", "updated_at"])
        audit_event_record(
            organization=ticket.organization,
            action=AuditAction.SUPPORT_TICKET_ANSWERED,
            actor_type=ActorType.STAFF,
            actor_user=operator,
            changes={"ticket": ticket.pk, "status": [old, status]},
        )
        task_enqueue_on_commit("helpcenter.ticket_tasks.ticket_answer_email_send", message.pk)
    return message


def ticket_status_set(*, ticket: SupportTicket, operator, status: str) -> None:
    """An operator changes a ticket's status without answering (closing it, say)."""
    if ticket.status == status:
        return
    with transaction.atomic():
        old = ticket.status
        ticket.status = status
        ticket.save(update_fields=["status", "updated_at"])
        audit_event_record(
            organization=ticket.organization,
            action=AuditAction.SUPPORT_TICKET_STATUS_CHANGED,
            actor_type=ActorType.STAFF,
            actor_user=operator,
            changes={"ticket": ticket.pk, "status": [old, status]},
        )


# -- e-mail both ways ------------------------------------------------------------------------------


def ticket_reply_address(ticket: SupportTicket) -> str:
    """support+<token>@domain: the address the member's e-mail client answers to."""
    local, _, domain = settings.HELP_CENTER_REPLY_ADDRESS.partition("@")
    return f"{local}+{ticket.reply_token}@{domain}"


_TOKEN_IN_ADDRESS = re.compile(r"\+([0-9a-f]{24})@", re.I)


def reply_token_of(addresses) -> str | None:
    """The ticket token in the first of ``addresses`` that carries one (the reply address)."""
    domain = settings.HELP_CENTER_REPLY_ADDRESS.partition("@")[2].lower()
    for address in addresses:
        address = (address or "").strip().lower()
        match = _TOKEN_IN_ADDRESS.search(address)
        if match and address.endswith("@" + domain):
            return match.group(1)
    return None


def ticket_answer_email(message_id: int):
    """The e-mail telling the member about an operator's answer (an EmailMessage, not sent)."""
    from django.core.mail import EmailMessage
    from django.template.loader import render_to_string
    from django.urls import reverse

    message = TicketMessage.objects.select_related("ticket__created_by", "ticket__organization").get(pk=message_id)
    ticket = message.ticket
    context = {
        "ticket": ticket,
        "message": message,
        "ticket_url": settings.SITE_URL + reverse("helpcenter:ticket_detail", args=[ticket.pk]),
        "reply_address": ticket_reply_address(ticket),
    }
    subject = (
        f"[LumaPay support #{ticket.pk}] An answer to your ticket"
        if ticket.contains_patient_information
        else f"[LumaPay support #{ticket.pk}] {ticket.subject}"
    )
    return EmailMessage(
        subject=subject,
        body=render_to_string("helpcenter/help/email/ticket_answered.txt", context),
        to=[ticket.created_by.email],
        reply_to=[ticket_reply_address(ticket)],
    )


def _operators_notify(message: TicketMessage) -> None:
    """Tell LumaPay's operators (``HELP_CENTER_OPERATOR_EMAILS``) of a member's new ticket or
    reply, once the caller's transaction commits."""
    if settings.HELP_CENTER_OPERATOR_EMAILS:
        task_enqueue_on_commit("helpcenter.ticket_tasks.ticket_operator_notice_send", message.pk)


def ticket_operator_notice(message_id: int):
    """The notice to operators of a member's message (an EmailMessage, not sent): the ticket's
    number, clinic, category and the admin's link. Never the message, which may name a patient
    whatever the box says; the subject only when the ticket is not marked as holding patient
    information."""
    from django.core.mail import EmailMessage
    from django.template.loader import render_to_string
    from django.urls import reverse

    message = TicketMessage.objects.select_related("ticket__organization").get(pk=message_id)
    ticket = message.ticket
    first = not ticket.messages.filter(pk__lt=message.pk).exists()
    what = "New ticket" if first else f"Reply {'by e-mail' if message.channel == MessageChannel.EMAIL else 'in LumaPay'}"
    subject = f"[LumaPay support #{ticket.pk}] {what} from {ticket.organization.name}"
    if not ticket.contains_patient_information:
        subject += f": {ticket.subject}"
    context = {
        "ticket": ticket,
        "first": first,
        "what": what,
        "admin_url": settings.SITE_URL + reverse("admin:helpcenter_supportticket_change", args=[ticket.pk]),
    }
    return EmailMessage(
        subject=subject,
        body=render_to_string("helpcenter/help/email/ticket_operator_notice.txt", context),
        to=list(settings.HELP_CENTER_OPERATOR_EMAILS),
    )


def ticket_operator_notice_send(*, message_id: int) -> None:
    ticket_operator_notice(message_id).send()
    logger.info("Operators told of support ticket message %s", message_id)


def ticket_answer_email_send(*, message_id: int) -> None:
    ticket_answer_email(message_id).send()
    logger.info("Support ticket message %s e-mailed to its member", message_id)


class InboundOutcome:
    APPENDED = "appended"
    NO_TOKEN = "no_token"
    UNKNOWN_TICKET = "unknown_ticket"
    WRONG_SENDER = "wrong_sender"
    DUPLICATE = "duplicate"
    EMPTY = "empty"


_QUOTE_START = re.compile(r"^(On .{0,200}wrote:|-----\s*Original Message\s*-----|El .{0,200}escribió:)\s*$", re.M | re.I)


def reply_text_of(text: str) -> str:
    """The new part of an e-mailed reply: the text above the quoted message."""
    text = (text or "").replace("\r\n", "\n")
    match = _QUOTE_START.search(text)
    if match:
        text = text[: match.start()]
    lines = [line for line in text.split("\n") if not line.startswith(">")]
    return "\n".join(lines).strip()


def ticket_reply_inbound(*, recipients, sender: str, text: str, message_id: str = "", files=()) -> str:
    """A member's e-mailed reply, as the e-mail provider's inbound webhook delivered it: appended
    to the ticket its address's token names, when it comes from the member who opened the ticket.
    Returns one of ``InboundOutcome``; anything but APPENDED leaves every ticket as it was."""
    token = reply_token_of(recipients)
    if token is None:
        return InboundOutcome.NO_TOKEN
    # Reviewed cross-clinic step: the token, not a session, names the clinic (as a pay link does).
    with all_organizations():
        organization_id = SupportTicket.objects.filter(reply_token=token).values_list("organization_id", flat=True).first()
    if organization_id is None:
        logger.info("Inbound support e-mail for an unknown ticket token")
        return InboundOutcome.UNKNOWN_TICKET
    with organization_scope(organization_id):
        ticket = SupportTicket.objects.select_related("created_by", "organization").get(reply_token=token)
        if (sender or "").strip().lower() != ticket.created_by.email.strip().lower() or not ticket.created_by.memberships.filter(
            organization_id=organization_id, is_active=True
        ).exists() or not ticket.created_by.is_active:
            # Not from the member, or from one who has left the clinic since.
            logger.info("Inbound support e-mail for ticket %s refused: not from an active member who opened it", ticket.pk)
            return InboundOutcome.WRONG_SENDER
        body = reply_text_of(text)
        attachments, left_out = _inbound_attachments(files)
        if not body and not attachments and not left_out:
            return InboundOutcome.EMPTY
        if left_out:
            body = "\n\n".join(part for part in (body, "Files not added to the ticket:\n" + "\n".join(left_out)) if part)
        try:
            with transaction.atomic():
                message = _member_message(
                    ticket=ticket, author=ticket.created_by, body=body[:BODY_MAX_CHARS],
                    channel=MessageChannel.EMAIL, email_message_id=message_id or "",
                )
                _attachments_store(message=message, attachments=attachments)
        except IntegrityError:
            return InboundOutcome.DUPLICATE
    logger.info("Inbound support e-mail appended to ticket %s", ticket.pk)
    return InboundOutcome.APPENDED
