"""`manage.py dev_banner`: what `make dev` prints before the server starts."""

import os
import socket
from io import StringIO

import pytest
from django.core.management import call_command

from lumapay.management.commands.dev_banner import EAGER_NOTE, EMBEDDED_MARKER, database_description
from org_profile.enums import Role
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

LOCAL_REDIS = "redis://127.0.0.1:6379/15"


def banner(*args) -> str:
    out = StringIO()
    call_command("dev_banner", *args, stdout=out)
    return out.getvalue()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def eager(settings, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_BROKER_URL = "memory://"


@pytest.fixture
def demo_clinic(db):
    clinic = OrganizationFactory(name="Demo Family Clinic")
    for email, role in [
        ("admin@demo.lumapay.test", Role.ADMINISTRATOR),
        ("manager@demo.lumapay.test", Role.MANAGER),
        ("staff@demo.lumapay.test", Role.STAFF),
    ]:
        MembershipFactory(organization=clinic, role=role, user=UserFactory(email=email))
    return clinic


@pytest.fixture(autouse=True)
def _no_port(monkeypatch):
    monkeypatch.delenv("PORT", raising=False)


def test_banner_gives_the_address_the_demo_sign_ins_and_the_outbox(demo_clinic, eager, settings):
    settings.DEV_OUTBOX_ENABLED = True
    settings.SITE_URL = "http://127.0.0.1:8000"

    text = banner()

    assert "LumaPay is starting at http://127.0.0.1:8000\n" in text
    assert "Sign in as one of the demo users of Demo Family Clinic:\n" in text
    assert "  Administrator      admin@demo.lumapay.test\n" in text
    assert "  Manager            manager@demo.lumapay.test\n" in text
    assert "  Sub-account user   staff@demo.lumapay.test\n" in text
    assert "  password for each:  demo-clinic-2026\n" in text
    assert "E-mails and SMS the app sends are listed at http://127.0.0.1:8000/dev/outbox/\n" in text


def test_banner_lists_only_the_demo_users_that_exist(eager, db):
    clinic = OrganizationFactory(name="Demo Family Clinic")
    MembershipFactory(organization=clinic, role=Role.MANAGER, user=UserFactory(email="manager@demo.lumapay.test"))

    text = banner()

    assert "manager@demo.lumapay.test" in text
    assert "admin@demo.lumapay.test" not in text
    assert "staff@demo.lumapay.test" not in text


def test_banner_without_demo_users_says_how_to_seed(eager, db):
    MembershipFactory(user=UserFactory(email="someone@riverside.example"))

    text = banner()

    assert "No demo users in this database: run `DEBUG=true .venv/bin/python manage.py seed_demo_clinic`." in text
    assert "demo-clinic-2026" not in text
    assert "someone@riverside.example" not in text


def test_banner_gives_the_address_site_url_names(demo_clinic, eager, settings):
    settings.DEV_OUTBOX_ENABLED = True
    settings.SITE_URL = "http://localhost:8123"

    text = banner()

    assert "LumaPay is starting at http://localhost:8123\n" in text
    assert "listed at http://localhost:8123/dev/outbox/\n" in text
    assert "8000" not in text
    assert "The server listens on" not in text


def test_banner_says_where_the_server_listens_when_site_url_is_a_tunnel(eager, settings, db):
    settings.SITE_URL = "https://clinic-demo.example.test"

    text = banner()

    assert "LumaPay is starting at https://clinic-demo.example.test\n" in text
    assert (
        "  The server listens on http://127.0.0.1:8000; links in e-mails and SMS start with "
        "https://clinic-demo.example.test.\n"
    ) in text


def test_banner_says_when_port_moves_the_server_away_from_site_url(eager, settings, monkeypatch, db):
    settings.SITE_URL = "http://127.0.0.1:8000"
    monkeypatch.setenv("PORT", "9000")

    text = banner()

    assert "LumaPay is starting at http://127.0.0.1:8000\n" in text
    assert "  The server listens on http://127.0.0.1:9000; links in e-mails and SMS start with http://127.0.0.1:8000.\n" in text


def test_banner_takes_another_address(demo_clinic, eager, settings):
    settings.DEV_OUTBOX_ENABLED = True

    text = banner("--url", "http://127.0.0.1:8123/")

    assert "LumaPay is starting at http://127.0.0.1:8123\n" in text
    assert "listed at http://127.0.0.1:8123/dev/outbox/\n" in text


def test_banner_says_when_the_outbox_is_off(eager, settings, db):
    settings.DEV_OUTBOX_ENABLED = False
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"

    text = banner()

    assert "/dev/outbox/" not in text
    assert "The dev outbox is off (DEV_OUTBOX_ENABLED=false); e-mail goes to django.core.mail.backends.smtp.EmailBackend." in text


def test_without_redis_the_web_runs_its_tasks_and_a_worker_runs_the_schedule_through_files(eager, db):
    text = banner()

    assert f"Background tasks: {EAGER_NOTE}\n" in text
    assert "the web server runs its tasks itself" in EAGER_NOTE
    assert "Procfile.dev-without-redis" in EAGER_NOTE
    assert "Procfile.dev)" not in text


def test_with_redis_tasks_go_through_a_worker_and_beat(settings, monkeypatch, db):
    if not redis_answers(LOCAL_REDIS):
        if os.environ.get("CI"):
            pytest.fail(f"Redis does not answer at {LOCAL_REDIS}; CI starts it before the tests (.ci/run)")
        pytest.skip(f"Redis does not answer at {LOCAL_REDIS}")
    monkeypatch.setenv("REDIS_URL", LOCAL_REDIS)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = LOCAL_REDIS

    text = banner()

    assert f"Background tasks: Celery tasks go through Redis at {LOCAL_REDIS}.\n" in text
    assert "  honcho runs the web server, a Celery worker and beat together (Procfile.dev).\n" in text
    assert "WARNING" not in text
    assert "inside the web process" not in text


def test_a_broker_that_does_not_answer_is_called_out_without_its_password(settings, monkeypatch, db):
    url = f"redis://:s3cret-token@127.0.0.1:{closed_port()}/0"
    monkeypatch.setenv("REDIS_URL", url)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = url

    text = banner()

    assert "s3cret-token" not in text
    masked = url.replace("s3cret-token", "***")
    assert f"Celery tasks go through Redis at {masked}.\n" in text
    assert f"  WARNING: the broker at {masked} does not answer; tasks will wait.\n" in text


def test_a_broker_without_redis_url_gets_its_own_worker_and_beat(settings, monkeypatch, db):
    monkeypatch.delenv("REDIS_URL", raising=False)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"

    text = banner()

    assert "Celery tasks go through the broker at amqp://guest:***@127.0.0.1:5672//.\n" in text
    assert "  honcho runs the web server, a Celery worker and beat together (Procfile.dev).\n" in text


def test_database_from_database_url_shows_host_and_user_but_no_password(monkeypatch):
    monkeypatch.delenv(EMBEDDED_MARKER, raising=False)
    database = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "lumapay",
        "HOST": "db.internal",
        "PORT": 6432,
        "USER": "lumapay_app",
        "PASSWORD": "hunter2-secret",
    }

    description = database_description(database)

    assert description == "PostgreSQL database 'lumapay' at db.internal port 6432 as lumapay_app (from DATABASE_URL)"


def test_database_on_a_unix_socket(monkeypatch):
    monkeypatch.delenv(EMBEDDED_MARKER, raising=False)
    database = {"NAME": "lumapay", "HOST": "/run/postgresql", "PORT": "", "USER": ""}

    assert database_description(database) == (
        "PostgreSQL database 'lumapay' at Unix socket /run/postgresql (from DATABASE_URL)"
    )


def test_banner_names_the_database_in_use(eager, settings, monkeypatch, db):
    monkeypatch.delenv(EMBEDDED_MARKER, raising=False)

    text = banner()

    assert f"Database: PostgreSQL database {settings.DATABASES['default']['NAME']!r} at " in text


def test_embedded_database_is_named_as_such(eager, monkeypatch, db):
    monkeypatch.setenv(EMBEDDED_MARKER, "/srv/lumapay/.local/pgdata")

    text = banner()

    assert "Database: embedded PostgreSQL, database " in text
    assert "data in /srv/lumapay/.local/pgdata (DATABASE_URL is not set; the server stops when this command ends)" in text


def test_banner_changes_nothing(demo_clinic, eager):
    from org_profile.models import Membership, User

    before = (User.objects.count(), Membership.objects.count())

    banner()

    assert (User.objects.count(), Membership.objects.count()) == before
