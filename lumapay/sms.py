"""Sending SMS: a small backend interface, chosen with the SMS_BACKEND setting.

- ``dev_outbox``: stores the message so the /dev/outbox/ page can show it (development default);
- ``console``: prints it;
- ``memory``: appends it to ``lumapay.sms.outbox`` (tests);
- ``twilio``: sends it with the ``twilio`` library (production).
"""

from __future__ import annotations

import logging
import sys
import uuid
from dataclasses import dataclass

from django.conf import settings

from .errors import ApplicationError

logger = logging.getLogger(__name__)


class SmsDeliveryError(ApplicationError):
    """The provider refused or could not be reached; the message says which. ``transient``: it may
    pass (the provider was unreachable or busy), so sending again later may work."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class SmsMessage:
    to: str
    body: str


outbox: list[SmsMessage] = []


class SmsBackend:
    def send(self, message: SmsMessage) -> str:
        """Send one message; return the provider's message id. Raise SmsDeliveryError on failure."""
        raise NotImplementedError


class ConsoleSmsBackend(SmsBackend):
    def send(self, message: SmsMessage) -> str:
        sys.stdout.write(f"--- SMS to {message.to} ---\n{message.body}\n")
        sys.stdout.flush()
        return f"console-{uuid.uuid4().hex[:12]}"


class MemorySmsBackend(SmsBackend):
    def send(self, message: SmsMessage) -> str:
        outbox.append(message)
        return f"memory-{len(outbox)}"


class DevOutboxSmsBackend(SmsBackend):
    def send(self, message: SmsMessage) -> str:
        from .models import DevOutboxMessage

        stored = DevOutboxMessage.objects.create(channel="sms", to=message.to, body=message.body)
        ConsoleSmsBackend().send(message)
        return f"dev-outbox-{stored.pk}"


class TwilioSmsBackend(SmsBackend):
    def __init__(self) -> None:
        from twilio.rest import Client

        if not (settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN):
            raise SmsDeliveryError("SMS is not configured: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN.")
        if not (settings.TWILIO_FROM_NUMBER or settings.TWILIO_MESSAGING_SERVICE_SID):
            raise SmsDeliveryError("SMS is not configured: set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID.")
        self.client = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN)

    def send(self, message: SmsMessage) -> str:
        from twilio.base.exceptions import TwilioException, TwilioRestException

        sender = (
            {"messaging_service_sid": settings.TWILIO_MESSAGING_SERVICE_SID}
            if settings.TWILIO_MESSAGING_SERVICE_SID
            else {"from_": settings.TWILIO_FROM_NUMBER}
        )
        try:
            sent = self.client.messages.create(to=message.to, body=message.body, **sender)
        except TwilioRestException as exc:
            # Too many requests, or Twilio's own failure: worth another try; anything else is final.
            busy = exc.status == 429 or exc.status >= 500
            raise SmsDeliveryError(f"Twilio refused the message (error {exc.code}): {exc.msg}", transient=busy) from exc
        except TwilioException as exc:
            raise SmsDeliveryError(f"Twilio could not be reached: {exc}", transient=True) from exc
        return sent.sid


BACKENDS = {
    "console": ConsoleSmsBackend,
    "memory": MemorySmsBackend,
    "dev_outbox": DevOutboxSmsBackend,
    "twilio": TwilioSmsBackend,
}


def sms_backend() -> SmsBackend:
    try:
        return BACKENDS[settings.SMS_BACKEND]()
    except KeyError:
        raise SmsDeliveryError(
            f"Unknown SMS_BACKEND {settings.SMS_BACKEND!r}; use one of {', '.join(sorted(BACKENDS))}."
        ) from None


class SmsOptedOut(SmsDeliveryError):
    """The number replied STOP (``lumapay.models.SmsOptOut``): nothing goes to it until START."""

    def __init__(self) -> None:
        super().__init__("Not sent: this number replied STOP to our text messages.")


def sms_send(*, to: str, body: str) -> str:
    """Send one text. Every sender goes through here, so an opted-out number is refused here, for
    every backend (the outbox checks first, to record the reason on the request or transaction)."""
    from .models import sms_opted_out

    if sms_opted_out(to) is not None:
        raise SmsOptedOut()
    return sms_backend().send(SmsMessage(to=to, body=body))
