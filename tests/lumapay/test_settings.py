"""lumapay/settings.py read in a fresh interpreter with an environment the test controls.

Each case runs ``python -c`` in a subprocess: settings are read once per process, and the
environment of the test run (DEBUG=true from the Makefile, DATABASE_URL, REDIS_URL) must not leak
in. Variables are set to "" rather than left out so that a developer's own ``.env`` file (read
with overwrite=False) cannot fill them in either.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
GOOD_SECRET_KEY = "k3Jx9vQm2LwZr8TnYp4HsBd6FgCe1UaVo7NiMtRy5XqWj0Kl-8fPz"
GOOD_DATABASE_URL = "postgres://lumapay_app:db-password@db.internal:5432/lumapay"
GOOD_REDIS_URL = "redis://redis.internal:6379/0"

PROBE = """
import json, django
from django.core.exceptions import ImproperlyConfigured
try:
    django.setup()
except ImproperlyConfigured as exc:
    print(json.dumps({"error": str(exc)}))
    raise SystemExit(3)
from django.conf import settings
from lumapay.celery import app
db = settings.DATABASES["default"]
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "ENGINE": db["ENGINE"], "NAME": db["NAME"], "HOST": db["HOST"], "PORT": db["PORT"], "USER": db["USER"],
    "SESSION_COOKIE_SECURE": getattr(settings, "SESSION_COOKIE_SECURE", False),
    "CELERY_TASK_ALWAYS_EAGER": settings.CELERY_TASK_ALWAYS_EAGER,
    "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    "celery_app_eager": app.conf.task_always_eager,
    "celery_app_broker": app.conf.broker_url,
    "CACHE_BACKEND": settings.CACHES["default"]["BACKEND"],
    "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
    "SITE_URL": settings.SITE_URL,
    "tunables": {name: getattr(settings, name) for name in (
        "EXPORT_SYNC_MAX_ROWS", "EXPORT_TTL_HOURS", "PAYMENT_REQUEST_MAX_CENTS", "PAYMENT_LINK_TTL_DAYS",
        "PAY_LINK_MAX_FAILED_DOB_ATTEMPTS", "PAY_LINK_LOCKOUT_MINUTES", "PAY_PAGE_MAX_FAILED_DOB_ATTEMPTS_PER_ADDRESS",
        "PATIENT_MESSAGE_MAX_ATTEMPTS",
        "GATEWAY_EVENTS_SWEEP_AFTER_SECONDS", "GATEWAY_EVENT_MAX_ATTEMPTS", "CELERY_VISIBILITY_TIMEOUT_SECONDS",
        "EHR_POSTING_CLAIM_LEASE_SECONDS", "EHR_POSTING_MAX_ATTEMPTS",
        "COPAY_REQUEST_EXPIRES_AFTER_VISIT_HOURS", "PAYOUTS_RECONCILE_LOOKBACK_DAYS", "PAYOUTS_RECONCILE_BATCH",
    )},
    "EMAIL_TIMEOUT": settings.EMAIL_TIMEOUT,
    "visibility_timeout": app.conf.broker_transport_options["visibility_timeout"],
    "beat": {name: entry["schedule"] for name, entry in settings.CELERY_BEAT_SCHEDULE.items()},
    "SESSION_ENGINE": settings.SESSION_ENGINE,
}))
"""

# What settings.py reads that the cases below care about, blank unless a case sets it. (Not
# CELERY_BROKER_URL: settings read a blank one as a broker URL, so it is left out instead.)
CONTROLLED = ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL")
UNSET = object()


def read_settings(**variables) -> tuple[int, dict]:
    """Variables given as UNSET are left out of the environment altogether."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "DJANGO_SETTINGS_MODULE": "lumapay.settings",
        "PYTHONPATH": str(BASE_DIR),
        **{name: "" for name in CONTROLLED},
        **variables,
    }
    env = {name: value for name, value in env.items() if value is not UNSET}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip(), f"no output; stderr:\n{result.stderr}"
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1])


def production(**overrides: str) -> dict[str, str]:
    return {
        "DEBUG": "false",
        "SECRET_KEY": GOOD_SECRET_KEY,
        "ALLOWED_HOSTS": "pay.clinic.example,www.pay.clinic.example",
        "DATABASE_URL": GOOD_DATABASE_URL,
        "REDIS_URL": GOOD_REDIS_URL,
        **overrides,
    }


def test_production_without_secrets_refuses_to_start_and_names_each_missing_variable():
    code, out = read_settings(DEBUG="false")

    assert code == 3
    assert out["error"] == (
        "DEBUG is off, so LumaPay will not start without: SECRET_KEY (at least 50 random characters), "
        "ALLOWED_HOSTS, DATABASE_URL, REDIS_URL (the rate limits every process shares). Set them in the "
        "environment (see the README), or set DEBUG=true for development."
    )


def test_debug_defaults_to_off():
    code, out = read_settings()

    assert code == 3
    assert out["error"].startswith("DEBUG is off, so LumaPay will not start without: SECRET_KEY")


@pytest.mark.parametrize(
    "missing, named",
    [
        ("SECRET_KEY", "SECRET_KEY (at least 50 random characters)"),
        ("ALLOWED_HOSTS", "ALLOWED_HOSTS"),
        ("DATABASE_URL", "DATABASE_URL"),
        ("REDIS_URL", "REDIS_URL (the rate limits every process shares)"),
    ],
)
def test_each_missing_variable_is_named_alone(missing, named):
    code, out = read_settings(**production(**{missing: ""}))

    assert code == 3
    assert out["error"].startswith(f"DEBUG is off, so LumaPay will not start without: {named}. ")


@pytest.mark.parametrize(
    "secret_key",
    ["too-short-secret", "dev-only-insecure-key-never-use-in-production"],
    ids=["short", "the development key"],
)
def test_a_weak_secret_key_is_refused(secret_key):
    code, out = read_settings(**production(SECRET_KEY=secret_key))

    assert code == 3
    assert "SECRET_KEY (at least 50 random characters)" in out["error"]


def test_production_with_its_variables_starts():
    code, out = read_settings(**production())

    assert code == 0, out
    assert out["DEBUG"] is False
    assert out["ALLOWED_HOSTS"] == ["pay.clinic.example", "www.pay.clinic.example"]
    assert out["ENGINE"] == "django.db.backends.postgresql"
    assert (out["NAME"], out["HOST"], out["PORT"], out["USER"]) == ("lumapay", "db.internal", 5432, "lumapay_app")
    assert out["SESSION_COOKIE_SECURE"] is True


@pytest.mark.parametrize(
    "url",
    ["sqlite:////tmp/lumapay.sqlite3", "mysql://root@127.0.0.1:3306/lumapay"],
    ids=["sqlite", "mysql"],
)
def test_a_database_other_than_postgresql_is_refused(url):
    code, out = read_settings(**production(DATABASE_URL=url))

    assert code == 3
    assert out["error"] == "LumaPay runs on PostgreSQL only: DATABASE_URL must be postgres://…"


def test_a_database_other_than_postgresql_is_refused_in_development_too():
    code, out = read_settings(DEBUG="true", DATABASE_URL="sqlite:////tmp/lumapay.sqlite3")

    assert code == 3
    assert out["error"].startswith("LumaPay runs on PostgreSQL only")


def test_development_starts_with_safe_defaults():
    if (BASE_DIR / ".env").exists():
        pytest.skip("a .env file in the checkout would fill in the variables this case needs unset")

    code, out = read_settings(DEBUG="true", SECRET_KEY=UNSET, ALLOWED_HOSTS=UNSET, DATABASE_URL=UNSET)

    assert code == 0, out
    assert out["DEBUG"] is True
    assert out["ALLOWED_HOSTS"] == ["127.0.0.1", "localhost", "testserver"]
    assert (out["NAME"], out["HOST"], out["PORT"], out["USER"]) == ("lumapay", "127.0.0.1", 5432, "postgres")
    assert out["SESSION_COOKIE_SECURE"] is False


def test_a_unix_socket_directory_in_the_url_becomes_the_host():
    code, out = read_settings(DEBUG="true", DATABASE_URL="postgres://postgres@%2Ftmp%2Flumapay%20pg:5432/lumapay")

    assert code == 0, out
    assert out["HOST"] == "/tmp/lumapay pg"


def test_without_redis_url_celery_tasks_run_eagerly_in_development():
    code, out = read_settings(DEBUG="true")

    assert code == 0, out
    assert out["CELERY_TASK_ALWAYS_EAGER"] is True
    assert out["celery_app_eager"] is True
    assert out["CELERY_BROKER_URL"] == "memory://"
    assert out["CACHE_BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"


def test_with_redis_url_celery_uses_redis_as_broker_and_cache():
    code, out = read_settings(**production())

    assert code == 0, out
    assert out["CELERY_TASK_ALWAYS_EAGER"] is False
    assert out["celery_app_eager"] is False
    assert out["CELERY_BROKER_URL"] == out["celery_app_broker"] == "redis://redis.internal:6379/0"
    assert out["CACHE_BACKEND"] == "django.core.cache.backends.redis.RedisCache"


def test_production_keeps_its_rate_limits_in_redis_and_a_prefix_keeps_deployments_apart():
    _, shared = read_settings(**production(CACHE_KEY_PREFIX="clinic-a"))

    assert (shared["CACHE_BACKEND"], shared["CACHE_KEY_PREFIX"]) == ("django.core.cache.backends.redis.RedisCache", "clinic-a")
    assert read_settings(**production())[1]["CACHE_KEY_PREFIX"] == ""


def test_celery_broker_url_alone_also_turns_eager_mode_off():
    code, out = read_settings(DEBUG="true", CELERY_BROKER_URL="amqp://guest:guest@rabbitmq.internal:5672//")

    assert code == 0, out
    assert out["CELERY_TASK_ALWAYS_EAGER"] is False
    assert out["CELERY_BROKER_URL"] == "amqp://guest:guest@rabbitmq.internal:5672//"


def _variables_read_by_settings() -> set[str]:
    """Every NAME in an ``env.<cast>("NAME", …)`` call in lumapay/settings.py."""
    import ast

    tree = ast.parse((BASE_DIR / "lumapay" / "settings.py").read_text())
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "env"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


def test_every_variable_settings_read_is_in_the_readme_table_and_env_example():
    variables = _variables_read_by_settings()
    readme = (BASE_DIR / "README.md").read_text()
    env_example_lines = (BASE_DIR / ".env.example").read_text().splitlines()

    # A sanity floor, so that a broken parse cannot pass as "nothing to document".
    assert {"DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "SMS_BACKEND"} <= variables
    assert sorted(v for v in variables if f"| `{v}` |" not in readme) == []
    assert sorted(
        v for v in variables if not any(line.lstrip("# ").startswith(f"{v}=") for line in env_example_lines)
    ) == []


TUNABLE_DEFAULTS = {
    "EXPORT_SYNC_MAX_ROWS": 5000,
    "EXPORT_TTL_HOURS": 24,
    "PAYMENT_REQUEST_MAX_CENTS": 100_000_00,
    "PAYMENT_LINK_TTL_DAYS": 30,
    "PAY_LINK_MAX_FAILED_DOB_ATTEMPTS": 5,
    "PAY_LINK_LOCKOUT_MINUTES": 30,
    "PAY_PAGE_MAX_FAILED_DOB_ATTEMPTS_PER_ADDRESS": 20,
    "PATIENT_MESSAGE_MAX_ATTEMPTS": 8,
    "GATEWAY_EVENTS_SWEEP_AFTER_SECONDS": 180,
    "GATEWAY_EVENT_MAX_ATTEMPTS": 20,
    "CELERY_VISIBILITY_TIMEOUT_SECONDS": 900,
    "EHR_POSTING_CLAIM_LEASE_SECONDS": 120,
    "EHR_POSTING_MAX_ATTEMPTS": 10,
    "COPAY_REQUEST_EXPIRES_AFTER_VISIT_HOURS": 72,
    "PAYOUTS_RECONCILE_LOOKBACK_DAYS": 14,
    "PAYOUTS_RECONCILE_BATCH": 200,
}


def test_tunables_keep_their_defaults():
    code, out = read_settings(**production())

    assert code == 0, out
    assert out["tunables"] == TUNABLE_DEFAULTS
    assert out["beat"] == {
        "payment-requests-expire": 15 * 60,
        "stripe-events-recover": 10 * 60,
        "transaction-exports-expire": 60 * 60,
        "authorizations-release-for-missed-visits": 60,
        "holds-place-before-visits": 60,
        "holds-renew": 60,
        "holds-capture-at-check-in": 60,
        "sandbox-holds-lapse": 60,
        "payment-plan-instalments-charge": 15 * 60,
        "patient-messages-resend-stuck": 2 * 60,
        "gateway-events-requeue-stalled": 60,
        "ehr-connections-sync-due": 60,
        "ehr-postings-sweep": 60,
        "collection-schedule-run": 60,
        "sandbox-payouts-advance": 10 * 60,
        "payouts-reconcile-sweep": 30 * 60,
    }
    assert out["EMAIL_TIMEOUT"] == 30


def test_every_tunable_is_read_from_the_environment():
    variables = {name: str(value + 7) for name, value in TUNABLE_DEFAULTS.items()}

    code, out = read_settings(
        **production(
            **variables,
            PAYMENT_REQUESTS_EXPIRE_EVERY_MINUTES="5",
            STRIPE_EVENTS_RECOVER_EVERY_MINUTES="2",
            TRANSACTION_EXPORTS_EXPIRE_EVERY_MINUTES="30",
            AUTHORIZATIONS_RELEASE_EVERY_MINUTES="20",
            PATIENT_MESSAGES_RESEND_EVERY_MINUTES="3",
            EMAIL_TIMEOUT_SECONDS="12",
            GATEWAY_EVENTS_SWEEP_EVERY_SECONDS="30",
            EHR_SYNC_SWEEP_EVERY_SECONDS="45",
            EHR_POSTINGS_SWEEP_EVERY_SECONDS="40",
            COLLECTION_SCHEDULE_EVERY_SECONDS="90",
            SANDBOX_PAYOUTS_EVERY_MINUTES="4",
            PAYOUTS_RECONCILE_EVERY_MINUTES="11",
        )
    )

    assert code == 0, out
    assert out["tunables"] == {name: value + 7 for name, value in TUNABLE_DEFAULTS.items()}
    assert out["visibility_timeout"] == 907  # what Celery's Redis transport is given
    assert out["beat"] == {
        "payment-requests-expire": 5 * 60,
        "stripe-events-recover": 2 * 60,
        "transaction-exports-expire": 30 * 60,
        "authorizations-release-for-missed-visits": 20 * 60,
        "holds-place-before-visits": 60,
        "holds-renew": 60,
        "holds-capture-at-check-in": 60,
        "sandbox-holds-lapse": 20 * 60,
        "payment-plan-instalments-charge": 15 * 60,
        "patient-messages-resend-stuck": 3 * 60,
        "gateway-events-requeue-stalled": 30,
        "ehr-connections-sync-due": 45,
        "ehr-postings-sweep": 40,
        "collection-schedule-run": 90,
        "sandbox-payouts-advance": 4 * 60,
        "payouts-reconcile-sweep": 11 * 60,
    }
    assert out["EMAIL_TIMEOUT"] == 12


def test_site_url_defaults_to_the_development_server_on_port():
    if (BASE_DIR / ".env").exists():
        pytest.skip("a .env file in the checkout would fill in SITE_URL")

    assert read_settings(DEBUG="true", SITE_URL=UNSET)[1]["SITE_URL"] == "http://127.0.0.1:8000"
    assert read_settings(DEBUG="true", SITE_URL=UNSET, PORT="8123")[1]["SITE_URL"] == "http://127.0.0.1:8123"
    assert read_settings(DEBUG="true", SITE_URL="http://localhost:9000/", PORT="8123")[1]["SITE_URL"] == "http://localhost:9000"


def test_sessions_are_read_through_the_cache_only_when_every_process_shares_it():
    _, without_redis = read_settings(DEBUG="true")
    _, with_redis = read_settings(**production())

    assert without_redis["SESSION_ENGINE"] == "django.contrib.sessions.backends.db"
    assert with_redis["SESSION_ENGINE"] == "django.contrib.sessions.backends.cached_db"


@pytest.mark.parametrize(
    "variables",
    [
        {"SMS_BACKEND": "console"},
        {"SMS_BACKEND": "dev_outbox"},
        {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"},
        {"EMAIL_BACKEND": "lumapay.dev_outbox.EmailBackend"},
        {"EMAIL_URL": "consolemail://"},
    ],
)
def test_production_refuses_a_backend_that_prints_patients_messages(variables):
    code, out = read_settings(**production(**variables))

    assert code == 3
    assert out["error"].startswith("DEBUG is off, so LumaPay will not print messages to patients:")


def test_the_compose_file_defaults_sms_to_a_backend_production_accepts():
    compose = (BASE_DIR / "docker-compose.yml").read_text()

    assert "SMS_BACKEND: ${SMS_BACKEND:-twilio}" in compose
    assert '"--config", "gunicorn.conf.py"' in compose and "--access-logformat" not in compose
