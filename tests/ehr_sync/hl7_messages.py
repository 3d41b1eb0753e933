"""HL7 v2 messages for the tests, built here (segments end with CR), and the listener on a real
socket: python-hl7's asyncio MLLP server in a thread of its own, reached with python-hl7's client."""

from __future__ import annotations

import asyncio
import threading

import hl7
from hl7.client import MLLPClient

from ehr_sync.hl7_feed import Hl7Listener

FACILITY = "RIVERSIDE"
SB, EB = b"\x0b", b"\x1c\x0d"


def segment(name: str, fields: dict[int, str]) -> str:
    return "|".join([name, *(fields.get(number, "") for number in range(1, max(fields) + 1))])


def msh(kind: str, *, control="MSG0001", sent="20261120093000", facility=FACILITY, version="2.5", receiving="LUMAPAY"):
    message_type, trigger = kind.split("^")
    return f"MSH|^~\\&|EPIC|{facility}|LUMAPAY|{receiving}|{sent}||{message_type}^{trigger}|{control}|P|{version}"


def pid(**fields) -> str:
    values = {
        1: "1",
        3: f"99-11-2222^^^USSSA^SS~P-100^^^{FACILITY}^MR^{FACILITY}",
        5: "García^Ana^^^^^L~Garcia^Annie^^^^^N",
        7: "19840309",
        8: "F",
        13: "^PRN^PH^^1^217^5550100~^PRN^CP^^1^217^5550134~^NET^Internet^ana@example.org",
        15: "es^Spanish^ISO6391",
    }
    values.update({int(name[1:]): value for name, value in fields.items()})
    return segment("PID", values)


def adt(trigger="A04", *, pid_segment=None, pv1_balance="125.50", extra=(), **header) -> str:
    segments = [msh(f"ADT^{trigger}", **header), f"EVN|{trigger}|20261120093000", pid_segment or pid()]
    segments += list(extra)
    if pv1_balance is not None:
        segments.append(segment("PV1", {1: "1", 2: "O", 46: pv1_balance}))
    return "\r".join(segments) + "\r"


def siu(trigger="S12", *, appointment="A-500", start="202612011030", location="DT-1", provider="D-7^Kim^Maria^^^Dr.",
        with_pid=True, pid_segment=None, filler_status="Booked", **header) -> str:
    segments = [
        msh(f"SIU^{trigger}", **header),
        segment("SCH", {1: "PL-9", 2: appointment, 6: "ROUTINE", 11: f"^^30^{start}", 25: filler_status}),
    ]
    if with_pid:
        segments.append(pid_segment or pid())
    segments += [
        "RGS|1",
        segment("AIS", {1: "1", 3: "99213^Office visit", 4: start}),
        segment("AIL", {1: "1", 3: f"{location}^^^RIVERSIDE", 6: start}),
        segment("AIP", {1: "1", 3: provider, 6: start}),
    ]
    return "\r".join(segments) + "\r"


class ListenerThread:
    """The listener serving on 127.0.0.1 (a free port) from an event loop in a thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="hl7-listener-test", daemon=True)
        self.listener = Hl7Listener(host="127.0.0.1", port=0)

    def start(self) -> ListenerThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.listener.start(), self.loop).result(timeout=10)
        return self

    @property
    def port(self) -> int:
        return self.listener.port

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.listener.stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def send(self, message: str | bytes) -> hl7.Message:
        """One message through python-hl7's MLLP client; its acknowledgement, parsed."""
        return hl7.parse(self.send_raw(SB + (message.encode() if isinstance(message, str) else message) + EB))

    def send_raw(self, data: bytes) -> str:
        with MLLPClient("127.0.0.1", self.port) as client:
            client.socket.settimeout(30)
            received = client.send(data)
            while EB not in received:
                chunk = client.socket.recv(4096)
                if not chunk:
                    break
                received += chunk
        return received.strip(SB + EB).decode()


def msa(ack: hl7.Message) -> tuple[str, str, str]:
    segment = ack.segment("MSA")
    return str(segment(1)), str(segment(2)), ack.unescape(str(segment(3)))
