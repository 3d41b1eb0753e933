"""A real SFTP server on 127.0.0.1 for the drop folder's tests (asyncssh, in a thread of its own).

Its host key is made here; it signs in one user by password or by a client key made here too; its
root is a temporary directory the test reads and writes directly. Two hooks stand in for the other
side of the server: ``on_listing`` runs each time a client lists a folder (an EHR still writing a
file), ``refuse_renames`` makes every move fail (a full disk, a permission taken away).
"""

from __future__ import annotations

import asyncio
import posixpath
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

USERNAME = "clinic-drop"
PASSWORD = "correct horse battery staple"


@dataclass
class SftpServer:
    root: Path
    host_key: asyncssh.SSHKey = field(default_factory=lambda: asyncssh.generate_private_key("ssh-ed25519"))
    client_key: asyncssh.SSHKey = field(default_factory=lambda: asyncssh.generate_private_key("ssh-ed25519"))
    port: int = 0
    on_listing: Callable[[], None] | None = None
    refuse_renames: bool = False
    # What clients did: sign-in attempts, and the files they opened, in order.
    connections: int = 0
    opened: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"sftp://127.0.0.1:{self.port}"

    @property
    def host_key_line(self) -> str:
        """The server's public host key, as the clinic's administrator would hand it over."""
        return self.host_key.export_public_key().decode().strip()

    @property
    def client_private_key(self) -> str:
        return self.client_key.export_private_key().decode()


class _SshServer(asyncssh.SSHServer):
    def __init__(self, harness: SftpServer):
        self.harness = harness

    def connection_made(self, conn) -> None:
        self.harness.connections += 1

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USERNAME and password == PASSWORD

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        expected = self.harness.client_key.convert_to_public()
        return username == USERNAME and key.public_data == expected.public_data


class _Sftp(asyncssh.SFTPServer):
    def __init__(self, chan, harness: SftpServer):
        super().__init__(chan, chroot=str(harness.root).encode())
        self.harness = harness

    async def scandir(self, path):
        if self.harness.on_listing is not None:
            self.harness.on_listing()
        async for name in super().scandir(path):
            yield name

    def open(self, path, pflags, attrs):
        self.harness.opened.append(posixpath.basename(path.decode()))
        return super().open(path, pflags, attrs)

    def rename(self, oldpath, newpath):
        if self.harness.refuse_renames:
            raise asyncssh.SFTPPermissionDenied("Renames are refused on this server.")
        return super().rename(oldpath, newpath)


@contextmanager
def sftp_server_running(root: Path) -> Iterator[SftpServer]:
    harness = SftpServer(root=root)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-sftp-server", daemon=True)
    thread.start()

    async def start():
        return await asyncssh.create_server(
            lambda: _SshServer(harness),
            "127.0.0.1",
            0,
            server_host_keys=[harness.host_key],
            sftp_factory=lambda chan: _Sftp(chan, harness),
            allow_scp=False,
        )

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    harness.port = server.sockets[0].getsockname()[1]
    try:
        yield harness
    finally:

        async def stop():
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
