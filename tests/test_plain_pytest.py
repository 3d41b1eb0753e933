"""`pytest` run directly in a checkout works as `make test` does (tests/environment.py).

Each case runs pytest in a subprocess on one small test file written for it, with the project's
pyproject.toml, in an environment without DEBUG (and without DATABASE_URL for the embedded case).
The small test never touches a test database: the run around this one may share the server.
"""

import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]

PROBE = '''
import os

import psycopg
from django.conf import settings


def test_probe():
    database = settings.DATABASES["default"]
    # The server's own maintenance database: the one in DATABASE_URL need not exist yet.
    with psycopg.connect(
        dbname="postgres", host=database["HOST"], port=database["PORT"] or None, user=database["USER"],
        password=database["PASSWORD"] or None,
    ) as connection:
        (exists,) = connection.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [database["NAME"]]).fetchone()
    print("probe:", os.environ["DEBUG"], database["NAME"], exists, os.environ.get("LUMAPAY_EMBEDDED_PGDATA", "-"))
'''

# What the run around this test put in its environment, which a person's shell would not have.
LEFT_OUT = ("DEBUG", "DATABASE_URL", "LUMAPAY_EMBEDDED_PGDATA", "DJANGO_SETTINGS_MODULE", "PYTEST_ADDOPTS")


def plain_pytest(tmp_path, **variables) -> subprocess.CompletedProcess:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in LEFT_OUT and not name.startswith("PYTEST_")
    }
    env.update(variables)
    # The venv's `pytest` script, as a person types it: the checkout is not on sys.path by itself.
    command = [
        str(Path(sys.executable).parent / "pytest"),
        "-c", str(BASE_DIR / "pyproject.toml"), "--rootdir", str(BASE_DIR),
        "-p", "no:cacheprovider", "-q", "-s", str(probe),
    ]
    return subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300)


def test_pytest_without_debug_in_the_environment_runs_with_debug_on(tmp_path):
    database_url = os.environ["DATABASE_URL"]

    result = plain_pytest(tmp_path, DATABASE_URL=database_url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "probe: true " in result.stdout
    assert "1 passed" in result.stdout
    assert "starting the embedded PostgreSQL" not in result.stdout


def test_pytest_without_database_url_starts_the_embedded_postgresql(tmp_path):
    result = plain_pytest(tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    pgdata = BASE_DIR / ".local" / "pgdata"
    assert f"LumaPay: DATABASE_URL is not set; starting the embedded PostgreSQL in {pgdata}\n" in result.stdout
    assert f"probe: true lumapay 1 {pgdata}\n" in result.stdout
    assert "1 passed" in result.stdout
