"""Members' e-mailed replies to support tickets, from the e-mail provider's inbound webhook.

django-anymail receives the provider's post (``/webhooks/email/<provider>/inbound/``, basic
auth with ``ANYMAIL["WEBHOOK_SECRET"]``), turns it into an ``AnymailInboundMessage`` and sends
its ``inbound`` signal; this receiver hands the message to ``tickets.ticket_reply_inbound``.
"""

from anymail.signals import inbound
from django.dispatch import receiver

from . import tickets


def inbound_message_recipients(message) -> list[str]:
    addresses = [message.envelope_recipient or ""]
    for header in ("To", "Cc", "Delivered-To", "X-Original-To"):
        addresses += [address.addr_spec for address in message.get_address_header(header)]
    return addresses


@receiver(inbound, dispatch_uid="helpcenter.support_ticket_reply")
def support_ticket_reply_received(sender, event, esp_name, **kwargs):
    message = event.message
    if message is None:
        return
    from_address = message.from_email.addr_spec if message.from_email else ""
    tickets.ticket_reply_inbound(
        recipients=inbound_message_recipients(message),
        sender=from_address,
        text=message.text or "",
        message_id=message.get("Message-ID", "") or event.event_id or "",
        # Attached files (inline images too), checked and kept as the ticket page's are.
        files=[(part.get_filename() or "file", part.get_content_bytes() or b"") for part in message.attachments],
    )
