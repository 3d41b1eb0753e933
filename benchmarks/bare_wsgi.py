"""What the dashboard throughput benchmark serves with gunicorn: LumaPay's own WSGI application,
and beside it, at ``BARE_PATH`` only, the WSGI floor shown for information: one row read through
Django's database connection and returned as JSON, with no middleware, session, template or view
(the bare one-row Django view the dashboard's target is measured against is in ``benchmarks/urls.py``).

Used only by ``benchmarks/dashboard_throughput.py``; production serves ``lumapay.wsgi``.
"""

from __future__ import annotations

import json

from lumapay.wsgi import application as lumapay_application

BARE_PATH = "/__bench__/one-row"


def application(environ, start_response):
    if environ.get("PATH_INFO") != BARE_PATH:
        return lumapay_application(environ, start_response)
    from urllib.parse import parse_qs

    from django.db import connection

    from lumapay.tenant_rls import organization_scope

    query = parse_qs(environ.get("QUERY_STRING", ""))
    # In the row's organization, as the app's role (row-level security), as a page reads.
    with organization_scope(int(query.get("org", ["0"])[0])), connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, status, amount_cents, created_at FROM transactions_transaction WHERE id = %s",
            [int(query.get("id", ["0"])[0])],
        )
        row = cursor.fetchone()
    body = json.dumps(row, default=str).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
