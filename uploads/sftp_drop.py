"""The SFTP drop folder: a connection (``EhrConnection``, kind "sftp") that picks up the CSV and XLSX
files an EHR or a billing system leaves in a folder on the clinic's own SFTP server, on the
connection's schedule, and reads them the Upload Center's way (``uploads.file_reading``) into the
one importer (``ehr_sync.importer.records_import``).

One sync
--------
1. Connect to ``base_url`` ("sftp://host:port", port 22 if none), checking the server's host key
   against ``options["host_key"]`` (required: a server whose key is not the one saved is refused,
   never trusted on first use), as ``options["username"]`` with the "password" or "private_key"
   credential.
2. List ``options["folder"]`` twice, ``options["settle_seconds"]`` apart (5 by default). A file is
   taken only if its size and modification time are the same in both looks: one the EHR is still
   writing is left for the next sync. Only ``.csv`` and ``.xlsx`` files count, and none whose name
   starts with "." (many uploaders write to a hidden or ``.part`` name and rename when done).
3. Oldest first (modification time, then name), each file:
   - its kind comes from the start of its name, case aside: ``patients…``, ``appointments…``,
     ``balances…`` or ``copays…`` (both read as the Upload Center's balances file). Any other name
     goes to ``failed/``;
   - it is read whole (at most the Upload Center's ``UPLOAD_MAX_BYTES``, 50 MB), then imported
     into the run in one database transaction: the valid rows, or with
     ``options["all_or_nothing"]`` nothing if any row has a problem;
   - only after that transaction committed, it moves to ``done/`` (imported) or ``failed/``
     (rejected whole, or all-or-nothing with problems), folders made when missing. A crash between
     the two leaves the file where it was; the next sync imports it again, which changes nothing
     (the importer is idempotent). A name already taken there gets the time as a suffix
     (``patients-20261129T160422Z.csv``).
   - beside it, ``<file>.problems.txt`` lists each problem by row, column, value and reason,
     whenever a row or the file was rejected.

Valid rows by default: a drop folder runs unattended, often on a nightly export of thousands of
rows, and one mistyped birth date should not hold back every other patient's balance until someone
fixes it. Nothing is lost: each rejected row is in the run (``ImportRejection``) and in the problems
file. ``all_or_nothing`` is for clinics whose files must land whole.

The problems file gives the row, the column, the value as the file has it and the reason. Values
are PHI, and they go in: the problems file sits beside the file it describes, on the clinic's own
server, for the same people, so it holds nothing that is not already there; the value is what finds
the cell once someone has sorted the sheet; and the Upload Center's reasons quote it anyway. Nothing
of it goes to LumaPay's logs.

Every SSH or SFTP failure (refused, timed out, unknown host, host key mismatch, login refused,
folder missing) ends the run with a ``ConnectorError`` in words an administrator can act on; the
files imported before it stay imported and moved.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import posixpath
import socket
import stat
import threading
import time
import urllib.parse
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager

import asyncssh
from django.conf import settings
from django.utils import timezone

from ehr_sync.connectors import ConnectorError
from ehr_sync.credentials import credentials_read
from ehr_sync.importer import records_import
from ehr_sync.models import EhrConnection, ImportRun
from ehr_sync.records import RecordBatch, RecordProblem

from .file_reading import FileProblem, UploadFileRejected, UploadKind, file_problems_from_records, upload_file_read

# The start of a file's name says what it holds (lower case compared).
KIND_OF_NAME_START = (
    ("patients", UploadKind.PATIENTS),
    ("appointments", UploadKind.APPOINTMENTS),
    ("balances", UploadKind.BALANCES),
    ("copays", UploadKind.BALANCES),
)
FILE_SUFFIXES = (".csv", ".xlsx")
DONE_FOLDER = "done"
FAILED_FOLDER = "failed"
PROBLEMS_SUFFIX = ".problems.txt"
# The largest file taken, unless the Upload Center's UPLOAD_MAX_BYTES setting says otherwise.
MAX_FILE_BYTES = 50 * 1024 * 1024
SETTLE_SECONDS_DEFAULT = 5.0
TIMEOUT_SECONDS_DEFAULT = 30.0
DEFAULT_PORT = 22
# Reading a file may take the usual wait plus its size at this speed (50 MB: about 8 more minutes).
READ_BYTES_PER_SECOND_AT_LEAST = 100_000

# Rejections of a file's rows are of this kind of record; a whole file's of kind "file".
_RECORD_KIND = {UploadKind.PATIENTS: "patient", UploadKind.APPOINTMENTS: "appointment", UploadKind.BALANCES: "balance"}


@dataclasses.dataclass(frozen=True)
class _Server:
    """Where and how to sign in, from the connection's settings; checked before any connection."""

    host: str
    port: int
    username: str
    folder: str
    host_keys: tuple[asyncssh.SSHKey, ...]
    password: str | None
    client_key: asyncssh.SSHKey | None
    timeout_seconds: float

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class _Entry:
    name: str
    size: int
    modified: float | None


def drop_folder_sync(connection: EhrConnection, run: ImportRun) -> None:
    """The connector of SFTP drop folder connections (registered in ``uploads.apps``)."""
    server = _server_of(connection)
    options = connection.options or {}
    settle_seconds = _number(options.get("settle_seconds"), SETTLE_SECONDS_DEFAULT, "settle_seconds")
    all_or_nothing = bool(options.get("all_or_nothing", False))
    time_zone = _time_zone(connection.organization.timezone)
    with _drop_folder_opened(server) as folder:
        for entry in folder.settled_files(settle_seconds):
            _file_take(folder, entry, run=run, all_or_nothing=all_or_nothing, time_zone=time_zone)


def kind_of_file_name(name: str) -> str | None:
    lowered = name.lower()
    for start, kind in KIND_OF_NAME_START:
        if lowered.startswith(start):
            return kind
    return None


# -- one file --------------------------------------------------------------------------------------


def _file_take(folder: _DropFolder, entry: _Entry, *, run: ImportRun, all_or_nothing: bool, time_zone) -> None:
    kind = kind_of_file_name(entry.name)
    if kind is None:
        starts = ", ".join(f"{start}…" for start, _kind in KIND_OF_NAME_START)
        return _file_reject(
            folder, entry, run, f"The file's name does not say what it holds: it must start with {starts}."
        )
    limit = int(getattr(settings, "UPLOAD_MAX_BYTES", MAX_FILE_BYTES))
    too_big = (
        f"The file is larger than {limit / (1024 * 1024):.1f} MB: split it into smaller files (each with the header row)."
    )
    if entry.size > limit:
        return _file_reject(folder, entry, run, too_big)
    data = folder.read(entry.name, limit)
    if len(data) > limit:  # it grew after the two looks
        return _file_reject(folder, entry, run, too_big)
    try:
        read = upload_file_read(
            kind=kind, file_name=entry.name, data=data, received_at=_received_at(entry), time_zone=time_zone
        )
    except UploadFileRejected as rejected:
        return _file_reject(folder, entry, run, rejected.message)

    # References name the file: one run holds every file of the sync, and "row 7" alone is ambiguous.
    prefix = f"{entry.name}, "
    unreadable = [
        RecordProblem(
            kind=_RECORD_KIND[kind],
            reference=f"{prefix}row {problem.row}" if problem.row is not None else entry.name,
            field=problem.column,
            value=problem.value,
            reason=problem.reason,
        )
        for problem in read.problems
    ]
    outcome = records_import(
        run=run, batch=_batch_named(read.batch, prefix), all_or_nothing=all_or_nothing, unreadable=unreadable
    )
    # records_import committed (it runs outside any transaction here): the file may move now.
    record_problems = [
        dataclasses.replace(problem, reference=problem.reference.removeprefix(prefix)) for problem in outcome.problems
    ]
    # The reader's problems of form and the importer's, each at its row and column, in row order.
    problems = file_problems_from_records(read, record_problems)
    if not outcome.written:
        folder.file_place(entry.name, FAILED_FOLDER, _problems_text(entry.name, problems, imported=False))
    elif problems:
        folder.file_place(entry.name, DONE_FOLDER, _problems_text(entry.name, problems, imported=True))
    else:
        folder.file_place(entry.name, DONE_FOLDER, None)


def _file_reject(folder: _DropFolder, entry: _Entry, run: ImportRun, reason: str) -> None:
    """The whole file is refused: recorded in the run, then moved to failed/ with the reason."""
    records_import(
        run=run,
        batch=RecordBatch(),
        unreadable=[RecordProblem(kind="file", reference=entry.name, field="", value="", reason=reason)],
    )
    folder.file_place(
        entry.name,
        FAILED_FOLDER,
        f"LumaPay did not import {entry.name}: nothing in it was imported.\n\n{reason}\n",
    )


def _batch_named(batch: RecordBatch, prefix: str) -> RecordBatch:
    def named(records):
        return [dataclasses.replace(record, reference=f"{prefix}{record.reference}") for record in records]

    return RecordBatch(
        patients=named(batch.patients),
        appointments=named(batch.appointments),
        copays=named(batch.copays),
        balances=named(batch.balances),
    )


def _problems_text(file_name: str, problems: list[FileProblem], *, imported: bool) -> str:
    rows = len({problem.row for problem in problems})
    if imported:
        heading = (
            f"LumaPay imported {file_name}, except {rows} row{'s' if rows != 1 else ''} with the problems below."
        )
    else:
        heading = (
            f"LumaPay did not import {file_name}: the connection imports a file whole or not at all, "
            "and it has the problems below. Fix them and drop the file again."
        )
    lines = [
        heading,
        "Each line gives the row (the header is row 1), the column, the value as written and the reason.",
        "",
    ]
    for problem in problems:
        where = f"row {problem.row}" if problem.row is not None else "the file"
        column = f", column {problem.column}" if problem.column else ""
        # The reader's reasons often quote the cell already; say it once.
        value = f" (“{problem.value}”)" if problem.value and problem.value not in problem.reason else ""
        lines.append(f"{where}{column}{value}: {problem.reason}")
    return "\n".join(lines) + "\n"


def _received_at(entry: _Entry) -> datetime.datetime:
    """When the file was written on the server, as the moment of rows that carry none: a file
    written earlier, picked up later, still loses to a newer record. Never later than now: a
    server clock running ahead must not make rows newer than a correction made here."""
    now = timezone.now()
    if entry.modified is None:
        return now
    return min(datetime.datetime.fromtimestamp(entry.modified, tz=datetime.UTC), now)


# -- the connection's settings ---------------------------------------------------------------------


def _server_of(connection: EhrConnection) -> _Server:
    url = urllib.parse.urlsplit((connection.base_url or "").strip())
    try:
        port = url.port or DEFAULT_PORT
    except ValueError:
        raise ConnectorError(f"The server address {connection.base_url} has a port that is not a number.") from None
    if url.scheme != "sftp" or not url.hostname:
        raise ConnectorError("The server address must look like sftp://host or sftp://host:port.")
    options = connection.options or {}
    username = str(options.get("username") or "").strip()
    if not username:
        raise ConnectorError("The connection has no username for the SFTP server.")
    credentials = credentials_read(connection)
    password = credentials.get("password") or None
    client_key = None
    if credentials.get("private_key"):
        try:
            client_key = asyncssh.import_private_key(credentials["private_key"])
        except (asyncssh.KeyImportError, ValueError):
            raise ConnectorError(
                "The private key saved for this connection cannot be read: paste an OpenSSH or PEM private "
                "key without a passphrase (it is stored encrypted)."
            ) from None
    if password is None and client_key is None:
        raise ConnectorError("The connection has no password or private key for the SFTP server.")
    folder = posixpath.normpath(str(options.get("folder") or "").strip() or ".")
    return _Server(
        host=url.hostname,
        port=port,
        username=username,
        folder=folder,
        host_keys=_host_keys(str(options.get("host_key") or "")),
        password=password,
        client_key=client_key,
        timeout_seconds=_number(options.get("timeout_seconds"), TIMEOUT_SECONDS_DEFAULT, "timeout_seconds"),
    )


def _host_keys(text: str) -> tuple[asyncssh.SSHKey, ...]:
    """The server's public host keys, from a key ("ssh-ed25519 AAAA… comment") or known_hosts lines
    ("host ssh-ed25519 AAAA…", as ``ssh-keyscan`` prints them), one per line. The connection is to
    one server, so a line's host names are not matched: its key is what is trusted."""
    keys = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            raise ConnectorError(
                "The saved host key is a @cert-authority or @revoked line: paste the server's own host key."
            )
        fields = line.split()
        for start in (0, 1):
            try:
                keys.append(asyncssh.import_public_key(" ".join(fields[start:])))
                break
            except (asyncssh.KeyImportError, ValueError):
                continue
        else:
            raise ConnectorError(
                "The saved host key cannot be read: paste the server's public host key "
                "(a line like \"ssh-ed25519 AAAA…\", as ssh-keyscan prints it)."
            )
    if not keys:
        raise ConnectorError(
            "The connection has no host key for the SFTP server. Paste the server's public host key "
            "(ask its administrator, or run ssh-keyscan on a trusted network): LumaPay never trusts "
            "a server it has not been told about."
        )
    return tuple(keys)


def _number(value, default: float, name: str) -> float:
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConnectorError(f"The connection's {name} must be a number of seconds.") from None
    if number < 0:
        raise ConnectorError(f"The connection's {name} cannot be negative.")
    return number


def _time_zone(name: str):
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConnectorError(f"The organization's time zone {name} is unknown: fix it in Settings.") from None


# -- the folder on the server ----------------------------------------------------------------------


@contextmanager
def _drop_folder_opened(server: _Server) -> Iterator[_DropFolder]:
    """asyncssh runs on an event loop of its own in a helper thread; this thread waits for each
    answer. The database work stays here: its connection carries the organization's row-level
    security scope, and Django refuses database calls from inside an event loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="sftp-drop-folder", daemon=True)
    thread.start()
    folder = _DropFolder(server, loop)
    try:
        folder.open()
        yield folder
    finally:
        folder.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


class _DropFolder:
    def __init__(self, server: _Server, loop: asyncio.AbstractEventLoop):
        self.server = server
        self.loop = loop
        self.ssh: asyncssh.SSHClientConnection | None = None
        self.sftp: asyncssh.SFTPClient | None = None

    def _call(self, coroutine, action: str, *, timeout_seconds: float | None = None):
        timeout_seconds = timeout_seconds or self.server.timeout_seconds
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coroutine, timeout_seconds), self.loop)
        try:
            return future.result()
        except (asyncssh.Error, OSError, asyncio.TimeoutError) as error:
            raise _connector_error(error, self.server, action, timeout_seconds) from None

    def _path(self, *parts: str) -> str:
        return posixpath.join(self.server.folder, *parts)

    # connecting

    def open(self) -> None:
        self._call(self._open(), "connect")

    async def _open(self) -> None:
        server = self.server
        self.ssh = await asyncssh.connect(
            server.host,
            server.port,
            username=server.username,
            password=server.password,
            client_keys=[server.client_key] if server.client_key else None,
            # Only the saved key is trusted; never None, which would trust any server.
            known_hosts=(list(server.host_keys), [], []),
            # Nothing from this machine's ~/.ssh or ssh-agent: only the connection's own settings.
            config=None,
            agent_path=None,
            connect_timeout=server.timeout_seconds,
            login_timeout=server.timeout_seconds,
        )
        self.sftp = await self.ssh.start_sftp_client()

    def close(self) -> None:
        if self.ssh is None:
            return
        ssh, self.ssh, self.sftp = self.ssh, None, None

        async def closed():
            ssh.close()
            await ssh.wait_closed()

        try:
            asyncio.run_coroutine_threadsafe(asyncio.wait_for(closed(), 5), self.loop).result()
        except (asyncssh.Error, OSError, asyncio.TimeoutError):
            pass  # the sync's outcome is decided; a connection that closes badly changes nothing of it

    # reading the folder

    def settled_files(self, settle_seconds: float) -> list[_Entry]:
        """The files to take now, oldest first: those the same in two looks ``settle_seconds`` apart."""
        first = self._call(self._listing(), "list")
        if settle_seconds:
            time.sleep(settle_seconds)
        second = self._call(self._listing(), "list")
        settled = [entry for name, entry in second.items() if first.get(name) == entry]
        return sorted(settled, key=lambda entry: (entry.modified or 0, entry.name))

    async def _listing(self) -> dict[str, _Entry]:
        entries = {}
        for name in await self.sftp.readdir(self.server.folder):
            attrs = name.attrs
            if attrs.permissions is not None and not stat.S_ISREG(attrs.permissions):
                continue
            if name.filename.startswith(".") or not name.filename.lower().endswith(FILE_SUFFIXES):
                continue
            entries[name.filename] = _Entry(name=name.filename, size=attrs.size or 0, modified=attrs.mtime)
        return entries

    def read(self, name: str, limit: int) -> bytes:
        """The file's bytes, at most ``limit + 1`` of them (one more than allowed says it is too big).
        A big file gets more time: ``READ_BYTES_PER_SECOND_AT_LEAST`` more than the usual wait."""
        timeout_seconds = self.server.timeout_seconds + limit / READ_BYTES_PER_SECOND_AT_LEAST
        return self._call(self._read(self._path(name), limit), f"read {name}", timeout_seconds=timeout_seconds)

    async def _read(self, path: str, limit: int) -> bytes:
        async with self.sftp.open(path, "rb") as remote:
            return await remote.read(limit + 1)

    # moving a file away

    def file_place(self, name: str, into: str, problems: str | None) -> str:
        """Move ``name`` into the subfolder ``into`` (made if missing), its problems file beside it;
        the name it got there."""
        try:
            return self._call(self._file_place(name, into, problems), f"move {name} to {into}/")
        except ConnectorError as error:
            raise ConnectorError(
                f"{error.message} The file stays in the folder: the next sync takes it again, which changes "
                "nothing of what it already imported."
            ) from None

    async def _file_place(self, name: str, into: str, problems: str | None) -> str:
        folder = self._path(into)
        if not await self.sftp.isdir(folder):
            await self.sftp.mkdir(folder)
        target = await self._free_name(folder, name)
        if problems is not None:
            async with self.sftp.open(posixpath.join(folder, target + PROBLEMS_SUFFIX), "w") as remote:
                await remote.write(problems)
        # SFTP's plain rename never overwrites: a name taken meanwhile fails here, and nothing is lost.
        await self.sftp.rename(self._path(name), posixpath.join(folder, target))
        return target

    async def _free_name(self, folder: str, name: str) -> str:
        if not await self.sftp.exists(posixpath.join(folder, name)):
            return name
        stem, dot, suffix = name.rpartition(".")
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        for attempt in range(1, 100):
            candidate = f"{stem}-{stamp}{f'-{attempt}' if attempt > 1 else ''}{dot}{suffix}"
            if not await self.sftp.exists(posixpath.join(folder, candidate)):
                return candidate
        raise asyncssh.SFTPFailure(f"{folder}/ already holds {name} under every timestamped name tried")


def _connector_error(error: Exception, server: _Server, action: str, timeout_seconds: float) -> ConnectorError:
    where = f"The SFTP server at {server.address}"
    if isinstance(error, asyncio.TimeoutError):
        return ConnectorError(f"{where} did not answer within {timeout_seconds:g} seconds ({action}).")
    if isinstance(error, ConnectionRefusedError):
        return ConnectorError(f"{where} refused the connection: check that it runs and that the port is right.")
    if isinstance(error, socket.gaierror):
        return ConnectorError(f"The SFTP server's host name {server.host} cannot be found.")
    if isinstance(error, asyncssh.HostKeyNotVerifiable):
        return ConnectorError(
            f"{where} presented a host key that is not the one saved for this connection, so LumaPay did not "
            "sign in. If its administrator changed the key, paste the new one in the connection's settings; "
            "if not, someone may be impersonating the server."
        )
    if isinstance(error, asyncssh.PermissionDenied):
        return ConnectorError(f"{where} refused to sign in {server.username} with the saved password or private key.")
    if isinstance(error, asyncssh.SFTPNoSuchFile) and action == "list":
        return ConnectorError(f"{where} has no folder {server.folder}: check the connection's folder.")
    if isinstance(error, asyncssh.SFTPPermissionDenied):
        return ConnectorError(f"{where} does not let {server.username} {action} in {server.folder}: {error.reason}")
    if isinstance(error, asyncssh.SFTPError):
        return ConnectorError(f"{where} could not {action} in {server.folder}: {error.reason}")
    if isinstance(error, asyncssh.DisconnectError):
        return ConnectorError(f"{where} closed the connection ({action}): {error.reason}")
    if isinstance(error, OSError):
        return ConnectorError(f"{where} cannot be reached ({action}): {error.strerror or error}.")
    return ConnectorError(f"{where} failed ({action}): {error}")
