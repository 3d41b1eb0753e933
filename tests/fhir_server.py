"""A real FHIR server for the FHIR sync's tests: sekmet-fhir (ehr_sync/demo_fhir_server.py) on
127.0.0.1, behind a tiny HTTP proxy of our own, also on 127.0.0.1.

Why the proxy: sekmet answers every well-formed request well. It cannot be told to refuse a page
with 429 and a Retry-After, to fail with a 500 on page 3, to answer too late, or to cut an answer
short, and those are exactly the EHR failures the sync must survive. The proxy passes everything
through to sekmet unchanged, and a test arms it to inject one of those failures into the requests it
names (``proxy.fail(...)``). It also keeps the path and query of each request, so a test can see
what the sync asked for. sekmet is told the proxy's address as its public one, so its next-page
links and the SMART token audience point at the proxy.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from ehr_sync.demo_fhir_server import DemoFhirServer, demo_fhir_server_start

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


@dataclass
class Fault:
    """Requests whose path and query contain ``match`` get ``status`` (with ``headers``) instead of
    sekmet's answer, ``times`` times (0: always). ``delay_seconds`` answers late; ``truncate``
    forwards sekmet's answer cut in half, as a connection dropped mid-page would."""

    match: str
    status: int = 500
    headers: dict | None = None
    times: int = 1
    delay_seconds: float = 0.0
    truncate: bool = False
    hits: int = 0


class FaultProxy:
    def __init__(self):
        self.faults: list[Fault] = []
        self.requests: list[str] = []
        self.target_port: int | None = None
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # the test output stays quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy.lock:
                    proxy.requests.append(f"{self.command} {self.path}")
                    fault = next((f for f in proxy.faults if f.match in self.path and (f.times == 0 or f.hits < f.times)), None)
                    if fault:
                        fault.hits += 1
                if fault and fault.delay_seconds:
                    time.sleep(fault.delay_seconds)
                if fault and not fault.truncate and not fault.delay_seconds:
                    payload = b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient"}]}'
                    self.send_response(fault.status)
                    for name, value in (fault.headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/fhir+json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                answer = requests.request(
                    self.command, f"http://127.0.0.1:{proxy.target_port}{self.path}", data=body, headers=headers, timeout=120
                )
                content = answer.content
                if fault and fault.truncate:
                    content = content[: len(content) // 2]
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in HOP_HEADERS:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                try:
                    self.wfile.write(content)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (a timeout test)
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, match: str, **kwargs) -> Fault:
        fault = Fault(match=match, **kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def heal(self) -> None:
        with self.lock:
            self.faults.clear()

    def asked(self, text: str) -> list[str]:
        with self.lock:
            return [request for request in self.requests if text in request]

    def forget(self) -> None:
        with self.lock:
            self.requests.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class FhirTestServer:
    server: DemoFhirServer
    proxy: FaultProxy

    @property
    def base_url(self) -> str:
        """Where the connection points: through the proxy."""
        return f"{self.proxy.url}/fhir"

    @property
    def local_url(self) -> str:
        """sekmet itself, for seeding and changing data behind the sync's back."""
        return self.server.local_url


def fhir_test_server_start(**options) -> FhirTestServer:
    proxy = FaultProxy()
    try:
        server = demo_fhir_server_start(public_base_url=f"{proxy.url}/fhir", **options)
    except Exception:
        proxy.stop()
        raise
    proxy.target_port = server.port
    return FhirTestServer(server=server, proxy=proxy)


def fhir_test_server_stop(test_server: FhirTestServer) -> None:
    test_server.proxy.stop()
    test_server.server.stop()
