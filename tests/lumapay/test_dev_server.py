"""lumapay/dev_server.py: the address `make dev` runs the server at, from SITE_URL and PORT."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lumapay.dev_server import listen_address

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "site_url, port, expected",
    [
        ("http://127.0.0.1:8000", None, "127.0.0.1:8000"),
        ("http://127.0.0.1:8123", None, "127.0.0.1:8123"),
        ("http://localhost:8123/", None, "localhost:8123"),
        ("http://192.168.1.20:8080", None, "192.168.1.20:8080"),
        ("http://[::1]:8001", None, "[::1]:8001"),
        ("http://127.0.0.1:8123", "9000", "127.0.0.1:9000"),
        # A tunnel or proxy in front: its address is not this machine's, so 127.0.0.1.
        ("https://clinic-demo.example.test", None, "127.0.0.1:8000"),
        ("https://clinic-demo.example.test:8443", None, "127.0.0.1:8000"),
        ("https://clinic-demo.example.test", "8200", "127.0.0.1:8200"),
        ("http://localhost", None, "localhost:8000"),
    ],
)
def test_the_server_listens_where_site_url_and_port_say(site_url, port, expected):
    assert listen_address(site_url, port) == expected


def _run(**variables) -> str:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": str(BASE_DIR),
        "DEBUG": "true",
        "SITE_URL": "",
        "PORT": "",
        **variables,
    }
    env = {name: value for name, value in env.items() if value != ""}
    result = subprocess.run(
        [sys.executable, "-m", "lumapay.dev_server"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_make_dev_listens_on_site_urls_port():
    if (BASE_DIR / ".env").exists():
        pytest.skip("a .env file in the checkout would fill in SITE_URL or PORT")

    assert _run() == "127.0.0.1:8000"
    assert _run(SITE_URL="http://127.0.0.1:8123") == "127.0.0.1:8123"
    assert _run(PORT="9000") == "127.0.0.1:9000"
