"""The benchmark database: a sibling of the database ``DATABASE_URL`` names, on the same server.

`make bench` sets ``DATABASE_URL`` (or the embedded-PostgreSQL wrapper does); the benchmark never
touches that database itself, only a sibling named after it with ``_bench`` appended
(``lumapay`` → ``lumapay_bench``), which it creates and migrates. ``BENCH_DATABASE`` in the
environment names another one, so two checkouts sharing a server never load into the same database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo



@dataclass(frozen=True)
class Server:
    url: str  # the DATABASE_URL we were given

    @property
    def bench_database(self) -> str:
        """``BENCH_DATABASE`` if set, otherwise DATABASE_URL's database name + ``_bench``."""
        override = os.environ.get("BENCH_DATABASE", "").strip()
        if override:
            return override
        name = unquote(self._parts().path.lstrip("/")) or "lumapay"
        return name if name.endswith("_bench") else f"{name}_bench"

    def _parts(self):
        return urlsplit(self.url)

    def url_for(self, database: str) -> str:
        parts = self._parts()
        return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))

    def conninfo(self, database: str) -> str:
        # Parsed by hand: a Unix-socket directory arrives percent-encoded in the host (the embedded
        # server uses one), and urlsplit would lower-case it.
        userinfo, _, hostport = self._parts().netloc.rpartition("@")
        host, port = hostport, ""
        if ":" in hostport and hostport.rsplit(":", 1)[1].isdigit():
            host, port = hostport.rsplit(":", 1)
        user, _, password = userinfo.partition(":")
        params = {"host": unquote(host), "port": port, "user": unquote(user), "password": unquote(password)}
        return make_conninfo(dbname=database, **{key: value for key, value in params.items() if value})


def server_from_environment() -> Server:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        raise SystemExit(
            "benchmarks: DATABASE_URL is not set. Run `make bench` (it starts the embedded PostgreSQL), "
            "or set DATABASE_URL=postgres://USER@HOST:PORT/ANY_NAME."
        )
    return Server(url)


def database_exists(server: Server, name: str | None = None) -> bool:
    name = name or server.bench_database
    with psycopg.connect(server.conninfo("postgres"), autocommit=True) as connection:
        return connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def database_create(server: Server, name: str | None = None) -> None:
    name = name or server.bench_database
    with psycopg.connect(server.conninfo("postgres"), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_drop(server: Server, name: str | None = None) -> None:
    name = name or server.bench_database
    with psycopg.connect(server.conninfo("postgres"), autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
