"""Reads run as prepared statements of the connection, for the few queries a page runs on every
visit whose planning costs PostgreSQL as much as running them (the dashboard's totals and its
billing items: ~1-2 ms of planning each, on the cores the web workers share).

Django turns psycopg's prepared statements off (``prepare_threshold`` None, so that a pooler in
transaction mode keeps working) and binds parameters on the client. ``prepared_rows`` binds on
the server and prepares the statement explicitly, on this connection only: the next time the same
SQL runs on it, PostgreSQL skips parsing and, once its plan cache settles on a generic plan,
planning. Statements live as long as the connection (``CONN_MAX_AGE``); psycopg keeps at most
100 per connection.

Safe with row-level security (lumapay/tenant_rls.py): a policy's ``current_setting`` is read when
the statement runs, not when it is planned, and PostgreSQL plans again when the role differs.
Transaction-mode pooling is not supported anyway (the organization is a session setting). Only
for SQL whose parameters do not change the best plan much (an organization id, dates over small
tables of cells): a generic plan would be a poor one for a read whose best plan depends on its
values.

Through Django's cursor wrapper, so the query is logged, counted in tests and passes through
``execute_wrapper``s like any other.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections
from psycopg import ClientCursor

try:
    from django.db.backends.postgresql.base import ServerBindingCursor
except ImportError:  # pragma: no cover (psycopg 2: no prepared statements; LumaPay pins psycopg 3)
    ServerBindingCursor = None


_NEVER_BY_COUNT = 2**62

if ServerBindingCursor is not None:

    class _PreparingCursor(ServerBindingCursor):
        # Set by ``prepared_rows`` when Django logs queries (DEBUG, tests capturing queries).
        logs_literal_sql = False

        def execute(self, query, params=None, *, prepare=None, binary=None):
            result = super().execute(query, params, prepare=True, binary=binary)
            if self.logs_literal_sql:
                # Django's query log reads the SQL from here: the statement with its values in
                # place, as Django's own (client-binding) cursors log it, so that a logged query
                # can be run again as it is (the benchmark replays the dashboard's SQL).
                self._query = _LoggedQuery(ClientCursor(self.connection).mogrify(query, params).encode())
            return result


class _LoggedQuery:
    def __init__(self, query: bytes):
        self.query = query


def prepared_rows(sql: str, params, *, using: str = DEFAULT_DB_ALIAS) -> list[tuple]:
    """Every row of ``sql`` (``%s`` or ``%(name)s`` placeholders) with ``params``, as a prepared
    statement of the connection."""
    connection = connections[using]
    if ServerBindingCursor is None:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    connection.ensure_connection()
    database = connection.connection
    if database.prepare_threshold is None:
        # psycopg prepares nothing while it is None; a threshold no count reaches prepares only
        # what asks for it (Django's own cursors bind on the client and never prepare).
        database.prepare_threshold = _NEVER_BY_COUNT
    factory = database.cursor_factory
    # Only the cursor made here binds on the server; if Django reconnects meanwhile (a failed
    # health check), the new connection's ordinary cursor runs the same SQL unprepared.
    database.cursor_factory = _PreparingCursor
    try:
        cursor = connection.cursor()
    finally:
        database.cursor_factory = factory
    with cursor:
        if isinstance(cursor.cursor, _PreparingCursor):
            cursor.cursor.logs_literal_sql = connection.queries_logged
        cursor.execute(sql, params)
        return cursor.fetchall()
