"""Listen for the clinics' EHRs' HL7 v2 messages over MLLP: one port for every clinic."""

import asyncio
import signal

from django.core.management.base import BaseCommand

from ehr_sync.hl7_feed import Hl7Listener
from lumapay.tenant_rls import serve_with_tenant_role


class Command(BaseCommand):
    help = (
        "Receive HL7 v2 messages (ADT^A04/A08, SIU^S12-S15/S26) over MLLP from every clinic's EHR; "
        "each is stored, imported into the clinic its sending facility (MSH-4) maps to, and acknowledged."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
        parser.add_argument("--port", type=int, default=2575, help="TCP port (2575 is HL7's registered port)")

    def handle(self, *args, host, port, **options):
        # A serving process, like the web server and the workers: a query outside a clinic's scope
        # sees no clinic's rows.
        serve_with_tenant_role()
        asyncio.run(self._serve(host, port))

    async def _serve(self, host: str, port: int) -> None:
        listener = Hl7Listener(host=host, port=port)
        await listener.start()
        self.stdout.write(f"Listening for HL7 v2 over MLLP on {host}:{listener.port} (Ctrl-C to stop).")
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopped.set)
        await stopped.wait()
        # Messages being imported finish and are acknowledged; then the port closes.
        await listener.stop()
        self.stdout.write("Stopped.")
