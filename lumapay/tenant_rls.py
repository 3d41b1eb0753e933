"""The database enforces the tenant: PostgreSQL row-level security on every table that carries an
organization.

Why
---
Every selector filters by organization, and a probe found them holding. Row-level security is the
second lock: a query that forgets its filter (a new view, a report, an admin-less shortcut) gets no
other clinic's rows, because PostgreSQL adds the filter itself. It guards against our own mistakes
in Python, not against someone running SQL of their choosing in our process (that code could set
the organization, or reset the role, as we do): it is a safety net under the app, not a wall around it.

The two roles
-------------
PostgreSQL never applies row-level security to a superuser or to a table's owner. So:

- **the owner** is the role in ``DATABASE_URL`` (``postgres`` in development and the tests; a
  dedicated owner role in production). It runs migrations, the operators' admin (``/admin/``),
  management commands, and the few reviewed places that legitimately span clinics (below).
- **``lumapay_app``** (``APP_ROLE``): NOLOGIN, NOSUPERUSER, NOBYPASSRLS, owns nothing. Migration
  ``lumapay.0011`` creates it if it is missing (it is cluster-wide; creating it needs CREATEROLE,
  otherwise a DBA creates it first), grants it to the owner so the owner's sessions may take it
  with ``SET ROLE``, grants it SELECT/INSERT/UPDATE/DELETE on every table (now and, through default
  privileges, the tables later migrations create), and puts one policy on each tenant table::

      USING / WITH CHECK (organization_id = NULLIF(current_setting('lumapay.organization', true), '')::bigint)

  With no organization set, that is ``organization_id = NULL``: no row is visible and none can be
  written (fail closed). Rows without an organization (a gateway event not yet matched to a clinic)
  are visible only to the owner.

One login, two roles: the app keeps one ``DATABASE_URL`` (the owner) and every web request and
every Celery task switches its connection to ``lumapay_app`` with the request's organization. The
alternative, a second login role and a second ``DATABASES`` alias for the owner, would put the
cross-clinic steps (a webhook storing an event, then processing it) on another connection and
outside the caller's database transaction, which the ledger's idempotency relies on.

Per request, not per transaction
--------------------------------
The organization is a session setting (``set_config(..., false)``), set when a scope is entered
and set back to the enclosing one when it is left, not a transaction-local one (``true``). Django
runs in autocommit: a transaction-local setting would last one statement unless every request ran
in one transaction (``ATOMIC_REQUESTS``), which would hold row locks across gateway calls, delay
every ``on_commit`` e-mail and task to the end of the page, and make the webhook atomic as a
whole: all of which the house rules forbid. What makes the session setting safe:

- every request and every task *enters* a scope, which sets both the role and the organization, so
  nothing is inherited from the connection's previous user (``CONN_MAX_AGE`` reuses connections);
- leaving a scope sets back the enclosing scope; inside a failed transaction the rollback does it
  (PostgreSQL rolls a setting back with the transaction that set it);
- a connection opened inside a scope gets that scope on connect (``connection_created``), and in
  the serving processes (gunicorn/runserver through ``lumapay.wsgi``, Celery workers) a connection
  outside any scope starts as ``lumapay_app`` with no organization: it sees nothing;
- not supported: a connection pooler in *transaction* mode (PgBouncer) in front of PostgreSQL,
  which would hand a session's setting to another client. Session mode is fine.

Scopes (all greppable; each cross-clinic one is a reviewed exception)
--------------------------------------------------------------------
- ``organization_scope(organization_id)``: ``lumapay_app`` with that organization. The signed-in
  request's (``org_profile.middleware``), a pay page's (after its token is resolved), a task's (read
  from the row it works on, ``organization_scope_of``).
- ``no_organization()``: ``lumapay_app`` with none: anonymous requests, the start of every task.
- ``owner_query()``: the owner for one query that names its organization itself: patient
  search's id lookup only (see "Cost" below).
- ``all_organizations()``: the owner, no row-level security. Only: resolving which organization a
  request acts for (the user's memberships, "switch organization", a pay link's token, an invalid
  link's clinic), the operators' admin, gateway webhooks and their processing (the event says
  which clinic it concerns only once parsed), the Sandbox processor's hosted pages (an outside
  processor's site), and the beat sweeps that span clinics.

Cost: PostgreSQL uses an index for a condition under row-level security only when its operator is
LEAKPROOF (``=``, ``IN``, ranges are; ``ILIKE``/``LIKE`` are not). Patient search's trigram indexes
are therefore not used by ``lumapay_app``: measured 5 ms as the owner, 150 ms as the app, for a
clinic of 160,000 patients. The remedy: patient search finds its patients' *ids* as the owner
(``owner_query``), in one ORM query that names its organization itself
(``ehr_sync.selectors.patient_ids_search``: ``Patient.objects.filter(organization=…)``), and the
Hub and the dashboard then read the patients and transactions by id under row-level security. The
organization in that query is the request's own (``request.organization``), never one typed in.

A new table with an ``organization`` gets its policy in its migration (``tenant_policy_sql``);
``tests/test_row_level_security.py`` fails for any model with an organization foreign key whose
table has no policy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from celery import Task
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.signals import connection_created

logger = logging.getLogger(__name__)

APP_ROLE = "lumapay_app"
ORGANIZATION_SETTING = "lumapay.organization"
POLICY_NAME = "tenant_isolation"
CURRENT_ORGANIZATION_SQL = f"NULLIF(current_setting('{ORGANIZATION_SETTING}', true), '')::bigint"
# What the session role is called when no SET ROLE is in force: the login role (the owner).
_OWNER = "none"


@dataclass(frozen=True)
class Scope:
    role: str
    organization_id: int | None


OWNER = Scope(_OWNER, None)
NO_ORGANIZATION = Scope(APP_ROLE, None)

# Where a connection outside any scope starts: the owner for management commands and tests'
# own set-up; lumapay_app with no organization in the serving processes (``serve_with_tenant_role``).
_base = OWNER


def serve_with_tenant_role() -> None:
    """Make every connection of this process start as ``lumapay_app`` with no organization: the web
    server (``lumapay.wsgi``) and Celery workers (``lumapay.celery``) call it, management commands
    do not (``migrate`` must run as the owner)."""
    global _base
    _base = NO_ORGANIZATION


def _effective(connection) -> Scope:
    return getattr(connection, "lumapay_scope", None) or _base


def _apply(connection, scope: Scope) -> None:
    organization = "" if scope.organization_id is None else str(int(scope.organization_id))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('role', %s, false), set_config(%s, %s, false)",
            [scope.role, ORGANIZATION_SETTING, organization],
        )


def _on_connection_created(sender, connection, **kwargs) -> None:
    scope = _effective(connection)
    if scope != OWNER:
        _apply(connection, scope)


connection_created.connect(_on_connection_created, dispatch_uid="lumapay.tenant_rls")


def _transaction_failed(connection) -> bool:
    if connection.needs_rollback:
        return True
    try:
        from psycopg.pq import TransactionStatus

        return connection.connection.info.transaction_status == TransactionStatus.INERROR
    except AttributeError:
        return False


@contextmanager
def _scope(scope: Scope, using: str) -> Iterator[None]:
    connection = connections[using]
    previous = getattr(connection, "lumapay_scope", None)
    before = _effective(connection)
    # Stored first: a connection opened from here on gets it on connect.
    connection.lumapay_scope = scope
    changed = scope != before and connection.connection is not None
    try:
        if changed:
            _apply(connection, scope)
    except BaseException:
        connection.lumapay_scope = previous
        raise
    try:
        yield
    finally:
        connection.lumapay_scope = previous
        if _effective(connection) != scope:
            _restore(connection, _effective(connection))


def _restore(connection, scope: Scope) -> None:
    if connection.connection is None:
        return  # closed meanwhile: the next connection is set up on connect
    if _transaction_failed(connection):
        return  # the rollback sets back what this transaction set
    try:
        _apply(connection, scope)
    except DatabaseError:
        # Never leave a connection in a scope nobody is in: drop it (outside a transaction) or
        # make its transaction roll back, which undoes the setting.
        logger.exception("could not set the database scope back; closing the connection")
        if connection.in_atomic_block:
            connection.set_rollback(True)
        else:
            connection.close()


def organization_scope(organization_id: int | None, *, using: str = DEFAULT_DB_ALIAS):
    """Queries see and write only ``organization_id``'s rows (none when it is None)."""
    return _scope(Scope(APP_ROLE, organization_id), using)


def no_organization(*, using: str = DEFAULT_DB_ALIAS):
    """Queries see no tenant rows at all: where a request or a task starts."""
    return _scope(NO_ORGANIZATION, using)


def all_organizations(*, using: str = DEFAULT_DB_ALIAS):
    """The owner, without row-level security. Only for the reviewed cross-clinic steps listed in
    this module's docstring; grep for it when reviewing."""
    return _scope(OWNER, using)


def owner_query(*, using: str = DEFAULT_DB_ALIAS):
    """The owner, for ONE ORM query that filters by its organization explicitly
    (``organization=``) and that row-level security would make slow (its operator is not
    LEAKPROOF, so PostgreSQL would not use its index): patient search's id lookup,
    ``ehr_sync.selectors.patient_ids_search``, and nothing else. Safe because the query's own
    filter keeps it inside one clinic; whatever it returns (ids) is read again under row-level
    security. Grep for it when reviewing, as for ``all_organizations``."""
    return _scope(OWNER, using)


def current_scope(*, using: str = DEFAULT_DB_ALIAS) -> Scope:
    return _effective(connections[using])


@contextmanager
def organization_scope_of(model, pk, *, using: str = DEFAULT_DB_ALIAS) -> Iterator[int | None]:
    """The scope of the organization that row ``pk`` of ``model`` belongs to, for a task that is
    given the row's id (a missing row gives the empty scope, where the service finds nothing)."""
    with all_organizations(using=using):
        organization_id = model._default_manager.filter(pk=pk).values_list("organization_id", flat=True).first()
    with organization_scope(organization_id, using=using):
        yield organization_id


class TenantTask(Task):
    """Celery's task class for LumaPay (``lumapay.celery``): every task starts with no
    organization; it opens the scope of the row it works on, or ``all_organizations`` for a sweep."""

    def __call__(self, *args, **kwargs):
        with no_organization():
            return super().__call__(*args, **kwargs)


# -- migrations ------------------------------------------------------------------------------------


def tenant_policy_sql(table: str) -> str:
    """Row-level security on ``table`` (which has an ``organization_id`` column), for a migration."""
    return (
        f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY;\n'
        f'DROP POLICY IF EXISTS {POLICY_NAME} ON "{table}";\n'
        f'CREATE POLICY {POLICY_NAME} ON "{table}" TO {APP_ROLE}\n'
        f"    USING (organization_id = {CURRENT_ORGANIZATION_SQL})\n"
        f"    WITH CHECK (organization_id = {CURRENT_ORGANIZATION_SQL});\n"
    )


def tenant_policy_reverse_sql(table: str) -> str:
    return f'DROP POLICY IF EXISTS {POLICY_NAME} ON "{table}";\nALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY;\n'


APP_ROLE_SQL = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END
$$;
-- The owner's sessions take the role with SET ROLE (a superuser may anyway).
DO $$
BEGIN
    IF NOT pg_has_role(current_user, '{APP_ROLE}', 'MEMBER') THEN
        EXECUTE format('GRANT {APP_ROLE} TO %I', current_user);
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO {APP_ROLE};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE};
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {APP_ROLE};
"""

APP_ROLE_REVERSE_SQL = f"""
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {APP_ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT, UPDATE ON SEQUENCES FROM {APP_ROLE};
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE};
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE};
REVOKE USAGE ON SCHEMA public FROM {APP_ROLE};
"""
