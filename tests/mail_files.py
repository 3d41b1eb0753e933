"""An e-mail backend for LumaPay's processes in tests: each message sent is one file in the
directory ``LUMAPAY_TEST_MAIL_DIR`` names, written whole (a temporary name, then renamed), so a test counts what every
worker process actually handed to the provider, whatever happened to the database afterwards.

Django's own file backend appends every message of a connection to one file named by the time and
the backend's ``id()``: prefork children forked from one parent can share that name, and their
appends of large messages (a receipt carries a PDF) interleave.
"""

from __future__ import annotations

import email
import os
import uuid
from pathlib import Path

from django.core.mail.backends.base import BaseEmailBackend

DIRECTORY_VARIABLE = "LUMAPAY_TEST_MAIL_DIR"


class EmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages) -> int:
        directory = Path(os.environ[DIRECTORY_VARIABLE])
        directory.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            name = uuid.uuid4().hex
            partial = directory / f".{name}.part"
            partial.write_bytes(message.message().as_bytes())
            os.replace(partial, directory / f"{name}.eml")
        return len(email_messages)


def messages_sent(directory: Path) -> list[tuple[float, email.message.Message]]:
    """Every message written to ``directory`` (headers and body, attachments included), with the
    time it was handed over (its file's modification time, seconds since the epoch)."""
    if not directory.exists():
        return []
    return [
        (path.stat().st_mtime, email.message_from_bytes(path.read_bytes())) for path in sorted(directory.glob("*.eml"))
    ]
