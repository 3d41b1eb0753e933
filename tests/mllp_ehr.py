"""A small EHR that takes DFT^P03 postings over MLLP on 127.0.0.1, for the posting tests.

It behaves as an EHR's inbound interface does: it keeps every message it receives
(``received``), files the payment of each FT1 once, by its transaction id (FT1-2), and a message
whose control id (MSH-10) it has filed already is acknowledged again without filing anything (the
duplicate detection HL7's original acknowledgement mode relies on). A test scripts its answers, one
per message received, in order (then ``default``): ``"AA"``, ``"AE"`` or ``"AR"`` with the words in
MSA-3 and ERR-8, or ``"drop"``: the message is filed (the EHR took it) but the ACK is lost, the
connection closed without an answer, as when a network drops the way back. ``ack_delay_seconds``
holds each answer back (two senders at once overlap).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import hl7

START, END = b"\x0b", b"\x1c\r"


@dataclass
class Filed:
    control_id: str
    transaction_id: str
    transaction_type: str
    amount: str
    patient_id: str


@dataclass
class MllpEhr:
    script: list[str] = field(default_factory=list)
    default: str = "AA"
    words: str = "Patient account is closed"
    ack_delay_seconds: float = 0.0
    received: list[str] = field(default_factory=list)
    payments: dict[str, Filed] = field(default_factory=dict)

    def __post_init__(self):
        self.lock = threading.Lock()
        self.filed_control_ids: set[str] = set()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.running = False
        self.sock.close()

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while END not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            text = data[data.find(START) + 1 : data.find(END)].decode()
            message = hl7.parse(text)
            control_id = str(message.segment("MSH")(10))
            with self.lock:
                self.received.append(text)
                answer = self.script[len(self.received) - 1] if len(self.received) <= len(self.script) else self.default
                if answer in ("AA", "drop") and control_id not in self.filed_control_ids:
                    self.filed_control_ids.add(control_id)
                    for ft1 in message.segments("FT1"):
                        self.payments.setdefault(
                            str(ft1(2)),
                            Filed(control_id, str(ft1(2)), str(ft1(6)), str(ft1(11)), str(message.segment("PID")(3))),
                        )
            if self.ack_delay_seconds:
                time.sleep(self.ack_delay_seconds)
            if answer == "drop":
                return  # filed, but the acknowledgement never reaches the sender
            ack = f"MSH|^~\\&|EHR|CLINIC|LUMAPAY|LUMAPAY|20261129120000||ACK^P03|ACK{control_id}|P|2.5\rMSA|{answer}|{control_id}"
            if answer != "AA":
                ack += f"|{self.words}\rERR||FT1^1|207|E||||{self.words}"
            conn.sendall(START + ack.encode() + END)
