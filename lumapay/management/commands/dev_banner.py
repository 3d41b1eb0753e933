"""Print what a person trying LumaPay needs before `make dev` starts the server.

The address, the demo sign-ins that exist in the database, the dev outbox, which database is in
use and whether background tasks run in the web process or through a broker and a worker.
Reads settings and the database; changes nothing.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.management.base import BaseCommand
from django.urls import reverse

from lumapay.dev_server import listen_address
from org_profile.models import Membership
from org_profile.demo import PASSWORD as DEMO_PASSWORD
from org_profile.demo import USERS as DEMO_USERS
from org_profile.demo import demo_two_step_lines

# The users `seed_demo_clinic` creates; the banner lists those the database really holds.
DEMO_EMAILS = tuple(email for email, *_ in DEMO_USERS)
EAGER_NOTE = (
    "REDIS_URL is not set: the web server runs its tasks itself, and a Celery worker with beat runs the "
    "schedule (EHR syncs, copay requests, holds, reminders, instalments) through files under .local/ "
    "(Procfile.dev-without-redis)."
)
# lumapay.embedded_database sets this for the command it runs against the embedded server.
EMBEDDED_MARKER = "LUMAPAY_EMBEDDED_PGDATA"


def url_without_password(url: str) -> str:
    """``scheme://user:secret@host/…`` → ``scheme://user:***@host/…``; other URLs unchanged."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    userinfo = f"{parts.username or ''}:***"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def database_description(database: dict) -> str:
    """Which PostgreSQL ``database`` (a DATABASES entry) is: never its password."""
    name = database.get("NAME") or ""
    host = database.get("HOST") or ""
    port = database.get("PORT") or ""
    user = database.get("USER") or ""
    embedded_pgdata = os.environ.get(EMBEDDED_MARKER)
    if embedded_pgdata:
        return (
            f"embedded PostgreSQL, database {name!r}, data in {embedded_pgdata} "
            f"(DATABASE_URL is not set; the server stops when this command ends)"
        )
    where = host or "the default local socket"
    if host.startswith("/"):
        where = f"Unix socket {host}"
    if port:
        where = f"{where} port {port}"
    who = f" as {user}" if user else ""
    return f"PostgreSQL database {name!r} at {where}{who} (from DATABASE_URL)"


def broker_reachable(url: str) -> bool | None:
    """True/False for a Redis broker that answers or not; None when it cannot be checked here."""
    if urlsplit(url).scheme not in ("redis", "rediss"):
        return None
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def tasks_description() -> list[str]:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return [EAGER_NOTE]
    broker = settings.CELERY_BROKER_URL
    kind = "Redis" if urlsplit(broker).scheme in ("redis", "rediss") else "the broker"
    lines = [f"Celery tasks go through {kind} at {url_without_password(broker)}."]
    lines.append("honcho runs the web server, a Celery worker and beat together (Procfile.dev).")
    if broker_reachable(broker) is False:
        lines.append(f"WARNING: the broker at {url_without_password(broker)} does not answer; tasks will wait.")
    return lines


class Command(BaseCommand):
    help = "Print the development start-up banner: address, demo sign-ins, outbox, database, tasks."

    def add_arguments(self, parser):
        parser.add_argument(
            "--url", default=None, help="the address to print (default: SITE_URL, where `make dev` runs the server)"
        )

    def handle(self, *args, url: str | None, **options):
        url = (url or settings.SITE_URL).rstrip("/")
        listening = listen_address(url, os.environ.get("PORT"))
        memberships = {
            m.user.email.lower(): m
            for m in Membership.objects.filter(user__email__in=DEMO_EMAILS, is_active=True).select_related(
                "user", "organization"
            )
        }
        out = self.stdout
        rule = "=" * 72
        out.write(rule)
        out.write(f"LumaPay is starting at {url}")
        if urlsplit(url).netloc != listening:
            out.write(f"  The server listens on http://{listening}; links in e-mails and SMS start with {url}.")
        out.write("")
        if memberships:
            organizations = sorted({m.organization.name for m in memberships.values()})
            out.write(f"Sign in as one of the demo users of {', '.join(organizations)}:")
            for email in DEMO_EMAILS:
                membership = memberships.get(email)
                if membership is not None:
                    out.write(f"  {membership.get_role_display():<18} {email}")
            out.write(f"  password for each:  {DEMO_PASSWORD}")
            for line in demo_two_step_lines():
                out.write(line)
        else:
            out.write("No demo users in this database: run `DEBUG=true .venv/bin/python manage.py seed_demo_clinic`.")
        out.write("")
        if settings.DEV_OUTBOX_ENABLED:
            out.write(f"E-mails and SMS the app sends are listed at {url}{reverse('dev_outbox')}")
        else:
            out.write(f"The dev outbox is off (DEV_OUTBOX_ENABLED=false); e-mail goes to {settings.EMAIL_BACKEND}.")
        out.write(f"Database: {database_description(settings.DATABASES['default'])}")
        tasks = tasks_description()
        out.write(f"Background tasks: {tasks[0]}")
        for line in tasks[1:]:
            out.write(f"  {line}")
        if os.environ.get("DEMO_FHIR_URL"):
            out.write(f"Demo EHR: a FHIR R4 server at {os.environ['DEMO_FHIR_URL']} (EHR connections page).")
            out.write("  Change a patient there: .venv/bin/python -m ehr_sync.demo_fhir_server change-patient "
                      "demo-p-000001 --email new@example.org, then press Sync now.")
            out.write("  Book a visit (automatic collection, README): .venv/bin/python -m ehr_sync.demo_fhir_server "
                      "book-appointment demo-p-000004 --hours-from-now 30, then press Sync now.")
            port = os.environ.get("HL7_LISTENER_PORT", "2575")
            out.write(f"  HL7 v2 listener on 127.0.0.1:{port}: "
                      f"DEBUG=true .venv/bin/python manage.py hl7_send --port {port} ehr_sync/hl7_examples/book-appointment.hl7")
        out.write(rule)
