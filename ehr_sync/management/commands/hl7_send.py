"""Send the HL7 v2 message(s) of a file to an MLLP listener and print each acknowledgement: for
trying the feed (``manage.py hl7_send --port 2575 cancel.hl7``), not for production traffic."""

import re
import socket
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from hl7.client import MLLPClient

SB, EB = b"\x0b", b"\x1c\x0d"


def file_messages(text: str) -> list[str]:
    """The messages of a file: each starts at a line beginning with MSH; segments end with CR
    (a file saved with LF or CRLF line ends is read the same)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    parts = re.split(r"\n(?=MSH)", text.strip("\n"))
    return ["\r".join(line for line in part.split("\n") if line.strip()) + "\r" for part in parts if part.strip()]


class Command(BaseCommand):
    help = "Send the HL7 v2 message(s) in FILE over MLLP and print the acknowledgement of each."

    def add_arguments(self, parser):
        parser.add_argument("file", help="a text file of one or more HL7 v2 messages (each starting with MSH)")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=2575)
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each acknowledgement")

    def handle(self, *args, file, host, port, timeout, **options):
        try:
            messages = file_messages(Path(file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"Cannot read {file}: {error}") from error
        if not messages:
            raise CommandError(f"{file} holds no HL7 message.")
        try:
            with MLLPClient(host, port) as client:
                client.socket.settimeout(timeout)
                for message in messages:
                    client.socket.sendall(SB + message.encode("utf-8") + EB)
                    self.stdout.write(_ack_text(_read_block(client.socket)))
        except (OSError, socket.timeout) as error:
            raise CommandError(f"No acknowledgement from {host}:{port}: {error}") from error


def _read_block(sock) -> bytes:
    data = b""
    while EB not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise OSError("the listener closed the connection")
        data += chunk
    return data


def _ack_text(block: bytes) -> str:
    return block.strip(SB + EB + b"\n").decode("utf-8", errors="replace").replace("\r", "\n").strip() + "\n"
