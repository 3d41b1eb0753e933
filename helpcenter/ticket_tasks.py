"""Celery tasks of the support tickets: each takes an id and calls one service in the ticket's
organization (``lumapay.tenant_rls``). Services queue them by name."""

from smtplib import SMTPException

from celery import shared_task

from lumapay.tenant_rls import organization_scope_of

from . import tickets
from .help_models import TicketMessage


# An e-mail about a ticket: retried with backoff while the mail server is away, for about 2 hours.
_EMAIL_RETRIES = {
    "acks_late": True,
    "autoretry_for": (SMTPException, ConnectionError, TimeoutError),
    "retry_backoff": 30,
    "retry_backoff_max": 3600,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(name="helpcenter.ticket_tasks.ticket_answer_email_send", **_EMAIL_RETRIES)
def ticket_answer_email_send(message_id: int) -> None:
    """E-mail the member an operator's answer (queued after the answer commits)."""
    with organization_scope_of(TicketMessage, message_id):
        tickets.ticket_answer_email_send(message_id=message_id)


@shared_task(name="helpcenter.ticket_tasks.ticket_operator_notice_send", **_EMAIL_RETRIES)
def ticket_operator_notice_send(message_id: int) -> None:
    """Tell the operators of a member's new ticket or reply (queued after it commits)."""
    with organization_scope_of(TicketMessage, message_id):
        tickets.ticket_operator_notice_send(message_id=message_id)
