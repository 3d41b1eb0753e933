"""LumaPay settings, all from the environment (django-environ).

Development gets safe defaults; with ``DEBUG`` off the process refuses to start without a real
``SECRET_KEY``, ``ALLOWED_HOSTS``, ``DATABASE_URL`` and ``REDIS_URL``. Every variable is listed in the README.
"""

import datetime
import re
from pathlib import Path
from urllib.parse import unquote

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

_DEV_SECRET_KEY = "dev-only-insecure-key-never-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"] if DEBUG else [])

if not DEBUG:
    missing = []
    if not SECRET_KEY or SECRET_KEY == _DEV_SECRET_KEY or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        missing.append("SECRET_KEY (at least 50 random characters)")
    if not ALLOWED_HOSTS:
        missing.append("ALLOWED_HOSTS")
    if not env.str("DATABASE_URL", default=""):
        missing.append("DATABASE_URL")
    # The rate limits (and the cache) must be shared by every process: per-process memory would let
    # each gunicorn worker count on its own, so N workers would allow N times the limit.
    if not env.str("REDIS_URL", default=""):
        missing.append("REDIS_URL (the rate limits every process shares)")
    if missing:
        raise ImproperlyConfigured(
            "DEBUG is off, so LumaPay will not start without: "
            + ", ".join(missing)
            + ". Set them in the environment (see the README), or set DEBUG=true for development."
        )

# Links in e-mails and SMS are absolute: the address patients and staff reach this site on.
# `make dev` runs the server at this address (lumapay/dev_server.py); PORT moves the default one.
SITE_URL = env.str("SITE_URL", default=f"http://127.0.0.1:{env.int('PORT', default=8000)}").rstrip("/")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[SITE_URL])

INSTALLED_APPS = [
    # Django's admin with LumaPay's site as ``admin.site``: operators need a verified second step.
    "lumapay.apps.OperatorsAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "django_filters",
    "django_htmx",
    "axes",
    # Two-step sign-in: authenticator-app codes (TOTP) and single-use backup codes.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "csp",
    "lumapay",
    "org_profile",
    "ehr_sync",
    "transactions",
    "uploads",
    "payouts",
    "intake_forms",
    "helpcenter",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): whether this session passed the second step (django-otp).
    "django_otp.middleware.OTPMiddleware",
    # After authentication: it tells a signed-in page (no-store) from a public one.
    "lumapay.security_headers.SecurityHeadersMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "org_profile.middleware.CurrentOrganizationMiddleware",
    # Every page but signing in needs a verified session from whoever must use two-step sign-in.
    "org_profile.middleware.TwoStepSignInMiddleware",
    # After the organization is known (its idle timeout): signs out idle and too-old sessions.
    "org_profile.sessions.SessionTimeoutMiddleware",
    # Last: turns a sign-in refused for too many failures into the sign-in page saying so.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "lumapay.urls"
WSGI_APPLICATION = "lumapay.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The Sandbox processor's hosted pages live with it, in a module of the transactions app.
        "DIRS": [BASE_DIR / "templates", BASE_DIR / "transactions" / "sandbox" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "org_profile.context_processors.current_organization",
                # The header's "Help for this page" (helpcenter/help_link.py).
                "helpcenter.help_link.help_for_this_page",
            ],
        },
    },
]

# PostgreSQL only. `make dev` and `make test` start an embedded server and set DATABASE_URL
# when it is not set; see lumapay/embedded_database.py.
DATABASES = {
    "default": env.db_url_config(
        env.str("DATABASE_URL", default="") or "postgres://postgres@127.0.0.1:5432/lumapay"
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("LumaPay runs on PostgreSQL only: DATABASE_URL must be postgres://…")
# A Unix-socket directory arrives percent-encoded in the URL's host (the embedded server uses one).
DATABASES["default"]["HOST"] = unquote(DATABASES["default"].get("HOST") or "")
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0 if DEBUG else 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "org_profile.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "transactions:dashboard"
LOGOUT_REDIRECT_URL = "login"
# Sign-in lockout (django-axes, org_profile/lockout.py). Wrong passwords are counted per account
# (any address: a password guessed from many machines) and per address (any account: one password
# tried across many accounts); either reaching its limit refuses that account, or that address,
# even the right password, until the cool-off has passed or someone unlocks it. The address limit
# is higher because a clinic's staff often share one office address. The right password does not
# wipe the count (a guesser holding one valid account would otherwise clear their address's count).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
SIGN_IN_MAX_FAILURES_PER_ACCOUNT = env.int("SIGN_IN_MAX_FAILURES_PER_ACCOUNT", default=10)
SIGN_IN_MAX_FAILURES_PER_ADDRESS = env.int("SIGN_IN_MAX_FAILURES_PER_ADDRESS", default=30)
SIGN_IN_LOCKOUT_MINUTES = env.int("SIGN_IN_LOCKOUT_MINUTES", default=30)
AXES_HANDLER = "org_profile.lockout.SignInLockoutHandler"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_FAILURE_LIMIT = SIGN_IN_MAX_FAILURES_PER_ACCOUNT
AXES_COOLOFF_TIME = datetime.timedelta(minutes=SIGN_IN_LOCKOUT_MINUTES)
AXES_RESET_ON_SUCCESS = False
# Both sign-in forms (ours and /admin/'s) name the e-mail field "username".
AXES_USERNAME_FORM_FIELD = "username"
AXES_USERNAME_CALLABLE = "org_profile.lockout.username_of"
AXES_CLIENT_IP_CALLABLE = "lumapay.audit.client_ip"
# Behind a TLS proxy every request comes from the proxy's address: the caller's is the one the
# proxy appends to X-Forwarded-For (lumapay.audit.client_ip, used by the audit trail, the pay
# page's limits and the sign-in lockout alike). Without this, one address would be locked for all.
USE_X_FORWARDED_FOR = env.bool("USE_X_FORWARDED_FOR", default=False)
FORWARDED_PROXY_COUNT = env.int("FORWARDED_PROXY_COUNT", default=1)
AXES_LOCKOUT_CALLABLE = "org_profile.lockout.lockout_response"
# Sessions: a sign-in ends after the organization's idle timeout without activity (operators
# outside an organization: SESSION_IDLE_TIMEOUT_MINUTES), and SESSION_MAX_AGE_HOURS after it began
# however active (org_profile/sessions.py). The page warns SESSION_IDLE_WARNING_SECONDS before.
SESSION_IDLE_TIMEOUT_MINUTES = env.int("SESSION_IDLE_TIMEOUT_MINUTES", default=15)
SESSION_MAX_AGE_HOURS = env.int("SESSION_MAX_AGE_HOURS", default=12)
SESSION_IDLE_WARNING_SECONDS = 60
# Tests only: an idle timeout in seconds that overrides every organization's (a browser test cannot
# wait five minutes). Never set from the environment.
SESSION_IDLE_TIMEOUT_SECONDS_OVERRIDE = None
SESSION_COOKIE_AGE = SESSION_MAX_AGE_HOURS * 3600
# Re-authentication before the most sensitive actions (org_profile.access.reauthentication_required).
REAUTHENTICATION_MAX_AGE_MINUTES = env.int("REAUTHENTICATION_MAX_AGE_MINUTES", default=5)
# Two-step sign-in (django-otp): the name authenticator apps show, a wait that doubles after each
# wrong code (1 s, 2 s, 4 s ...), and no TOTP keys shown to operators in the admin.
OTP_TOTP_ISSUER = "LumaPay"
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("es", _("Español"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="America/New_York")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
MEDIA_URL = "media/"

# Redis is optional in development only: without it tasks run eagerly and the cache, with the rate
# limits counted in it (lumapay/rate_limits.py), is per process. With DEBUG off it is required (above).
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Keeps this deployment's cache keys (rate-limit counters among them) apart from another's on the
# same Redis database.
CACHES["default"]["KEY_PREFIX"] = env.str("CACHE_KEY_PREFIX", default="")
# Sessions are kept in PostgreSQL. With Redis, a cache every process shares, they are read through
# it, so a signed-in page does not query the session table; a per-process cache would keep a
# session another process has ended (signed out), so without Redis each request reads the table.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db" if REDIS_URL else "django.contrib.sessions.backends.db"

# An empty CELERY_BROKER_URL counts as unset (Celery would otherwise fall back to amqp://localhost).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL == "memory://"
CELERY_TASK_EAGER_PROPAGATES = True
# A task is acknowledged when it finishes, not when a worker takes it, and a task whose worker
# process died under it (SIGKILL, out of memory) is handed back to the queue instead of being
# recorded as failed: every task checks the current state first, so running it again is harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The queue tasks are sent to and workers take from: two deployments (or test runs) can share one
# Redis, each on a queue of its own.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
# On Redis, a task taken but not acknowledged is handed to another worker only after the
# visibility timeout (Celery's default: one hour). A task held by a worker that was killed waits
# that long; a task still running (or a retry still waiting for its countdown) past it is handed
# out a second time. So it is the longest any task needs: the Excel export of a million
# transactions, about 4.5 minutes at the benchmark's 27 s per 100,000 rows (README, Benchmarks),
# and a gateway event's retry, which waits up to 10 minutes (transactions/tasks.py), with room to
# spare. Gateway events do not wait for it: the sweep below queues them again within minutes.
CELERY_VISIBILITY_TIMEOUT_SECONDS = env.int("CELERY_VISIBILITY_TIMEOUT_SECONDS", default=15 * 60)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT_SECONDS}
# `make dev` without Redis: the web server runs its tasks itself (eager, above), and a Celery worker
# with beat beside it runs the schedule (EHR syncs, copay requests, holds, reminders, instalments)
# through a queue kept in files under .local/ (kombu's filesystem transport), so the automation
# works with no service to install. For development only: it is neither shared between machines
# nor safe against a worker killed mid-task.
if CELERY_BROKER_URL.startswith("filesystem://"):
    if not DEBUG:
        raise ImproperlyConfigured("CELERY_BROKER_URL=filesystem:// is for development (DEBUG on) only; use Redis or RabbitMQ.")
    _QUEUE_FOLDER = BASE_DIR / ".local" / "celery-queue"
    (_QUEUE_FOLDER / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_QUEUE_FOLDER),
        "data_folder_out": str(_QUEUE_FOLDER),
        "processed_folder": str(_QUEUE_FOLDER / "processed"),
        "store_processed": False,
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
# How often Celery beat runs each periodic task, in minutes.
PAYMENT_REQUESTS_EXPIRE_EVERY_MINUTES = env.int("PAYMENT_REQUESTS_EXPIRE_EVERY_MINUTES", default=15)
STRIPE_EVENTS_RECOVER_EVERY_MINUTES = env.int("STRIPE_EVENTS_RECOVER_EVERY_MINUTES", default=10)
TRANSACTION_EXPORTS_EXPIRE_EVERY_MINUTES = env.int("TRANSACTION_EXPORTS_EXPIRE_EVERY_MINUTES", default=60)
AUTHORIZATIONS_RELEASE_EVERY_MINUTES = env.int("AUTHORIZATIONS_RELEASE_EVERY_MINUTES", default=1)
# Holds by rule (transactions.services.holds): how often copays are held before visits (and holds
# about to lapse renewed), and how often held copays of patients who checked in are captured.
# Fixed, not tunables: each pass is a few queries per organization holding copays, and a patient
# checking in, or a visit cancelled, should show on the card within a minute.
HOLDS_PLACE_EVERY_SECONDS = 60
HOLDS_CAPTURE_EVERY_SECONDS = 60
# Payment plans: the beat task that charges the instalments due looks this often (an instalment is
# due from the end of the quiet hours on its date, so it is charged within this of it); a declined
# instalment is tried again this many days after each decline, then staff are asked to step in.
# Fixed, not read from the environment: the retry schedule is what the patient agreed to.
PAYMENT_PLANS_CHARGE_EVERY_MINUTES = 15
PAYMENT_PLAN_RETRY_DAYS = [1, 3, 7]
PATIENT_MESSAGES_RESEND_EVERY_MINUTES = env.float("PATIENT_MESSAGES_RESEND_EVERY_MINUTES", default=2)
# How often the beat looks for EHR connections whose scheduled sync is due (each connection has
# its own period, "every N minutes", set on its page).
EHR_SYNC_SWEEP_EVERY_SECONDS = env.int("EHR_SYNC_SWEEP_EVERY_SECONDS", default=60)
# Gateway events stored but not processed (the worker was killed, the queue lost the task) are
# queued again GATEWAY_EVENTS_SWEEP_AFTER_SECONDS after their processing was last queued; the sweep
# looks every GATEWAY_EVENTS_SWEEP_EVERY_SECONDS, so an event waits at most about the sum (4
# minutes). After GATEWAY_EVENT_MAX_ATTEMPTS attempts it is marked failed, with the reason, for an
# operator to replay.
GATEWAY_EVENTS_SWEEP_EVERY_SECONDS = env.int("GATEWAY_EVENTS_SWEEP_EVERY_SECONDS", default=60)
GATEWAY_EVENTS_SWEEP_AFTER_SECONDS = env.int("GATEWAY_EVENTS_SWEEP_AFTER_SECONDS", default=3 * 60)
GATEWAY_EVENT_MAX_ATTEMPTS = env.int("GATEWAY_EVENT_MAX_ATTEMPTS", default=20)
# Payments, refunds and reversals posted back to the EHR (transactions/services/ehr_postings.py):
# a worker's lease on a posting it sends (longer than an EHR's 30 s timeout), how many sends a
# posting gets before only staff's "Post again" sends it, and how often the beat queues postings
# whose task was lost and owes those of events that have none.
EHR_POSTING_CLAIM_LEASE_SECONDS = env.int("EHR_POSTING_CLAIM_LEASE_SECONDS", default=120)
EHR_POSTING_MAX_ATTEMPTS = env.int("EHR_POSTING_MAX_ATTEMPTS", default=10)
EHR_POSTINGS_SWEEP_EVERY_SECONDS = env.int("EHR_POSTINGS_SWEEP_EVERY_SECONDS", default=60)
# The collection rules' scheduler (transactions/services/collection_schedule.py): how often it
# looks for copay requests, balance requests and reminders that are due, and how long after the
# visit an automatic copay request's link keeps working.
COLLECTION_SCHEDULE_EVERY_SECONDS = env.int("COLLECTION_SCHEDULE_EVERY_SECONDS", default=60)
COPAY_REQUEST_EXPIRES_AFTER_VISIT_HOURS = env.int("COPAY_REQUEST_EXPIRES_AFTER_VISIT_HOURS", default=72)
# Payouts (payouts/): how often the beat catches what payout events missed (recent payouts listed
# from the gateway, payouts whose lines are not fetched or do not add up reconciled again, lines
# whose transaction arrived late linked, balances refreshed), how far back it lists, and how many
# payouts one run reconciles again per clinic at most.
PAYOUTS_RECONCILE_EVERY_MINUTES = env.int("PAYOUTS_RECONCILE_EVERY_MINUTES", default=30)
PAYOUTS_RECONCILE_LOOKBACK_DAYS = env.int("PAYOUTS_RECONCILE_LOOKBACK_DAYS", default=14)
PAYOUTS_RECONCILE_BATCH = env.int("PAYOUTS_RECONCILE_BATCH", default=200)
# How often the Sandbox processor runs its payout schedule (makes the day's payouts, moves them on).
SANDBOX_PAYOUTS_EVERY_MINUTES = env.int("SANDBOX_PAYOUTS_EVERY_MINUTES", default=10)
CELERY_BEAT_SCHEDULE = {
    # Copay requests before visits, balance requests and their reminders, as each clinic's
    # collection rules say (nothing while every rule is off).
    "collection-schedule-run": {
        "task": "transactions.tasks.collection_schedule_run",
        "schedule": COLLECTION_SCHEDULE_EVERY_SECONDS,
    },
    "payment-requests-expire": {
        "task": "transactions.tasks.payment_requests_expire_overdue",
        "schedule": PAYMENT_REQUESTS_EXPIRE_EVERY_MINUTES * 60,
    },
    # Stripe events that never reached the webhook (endpoint down, delivery given up) are
    # listed from Stripe and stored like delivered ones.
    "stripe-events-recover": {
        "task": "transactions.tasks.stripe_events_recover",
        "schedule": STRIPE_EVENTS_RECOVER_EVERY_MINUTES * 60,
    },
    # Excel exports past their expiry lose their file.
    "transaction-exports-expire": {
        "task": "transactions.tasks.transaction_exports_expire",
        "schedule": TRANSACTION_EXPORTS_EXPIRE_EVERY_MINUTES * 60,
    },
    # Gateway events stored but still unprocessed a few minutes later are queued again.
    "gateway-events-requeue-stalled": {
        "task": "transactions.tasks.gateway_events_requeue_stalled",
        "schedule": GATEWAY_EVENTS_SWEEP_EVERY_SECONDS,
    },
    # Copays held on a card for a visit the EHR now reports cancelled or a no-show are let go.
    "authorizations-release-for-missed-visits": {
        "task": "transactions.tasks.authorizations_release_for_missed_visits",
        "schedule": AUTHORIZATIONS_RELEASE_EVERY_MINUTES * 60,
    },
    # Holds by rule: copays held on the card on file before visits, holds about to lapse renewed…
    "holds-place-before-visits": {
        "task": "transactions.tasks.holds_place_before_visits",
        "schedule": HOLDS_PLACE_EVERY_SECONDS,
    },
    "holds-renew": {
        "task": "transactions.tasks.holds_renew",
        "schedule": HOLDS_PLACE_EVERY_SECONDS,
    },
    # …and captured when the EHR says the patient arrived.
    "holds-capture-at-check-in": {
        "task": "transactions.tasks.holds_capture_at_check_in",
        "schedule": HOLDS_CAPTURE_EVERY_SECONDS,
    },
    # The Sandbox processor lets holds past 7 days lapse (as a card network does).
    "sandbox-holds-lapse": {
        "task": "transactions.tasks.sandbox_holds_lapse",
        "schedule": AUTHORIZATIONS_RELEASE_EVERY_MINUTES * 60,
    },
    # The Sandbox processor makes its daily payouts and moves them along (pending, in transit, paid
    # or returned by the bank), posting their events to the webhook path.
    "sandbox-payouts-advance": {
        "task": "transactions.tasks.sandbox_payouts_advance",
        "schedule": SANDBOX_PAYOUTS_EVERY_MINUTES * 60,
    },
    # Payouts: what their events missed is listed from the gateway and reconciled.
    "payouts-reconcile-sweep": {
        "task": "payouts.tasks.payouts_reconcile_sweep",
        "schedule": PAYOUTS_RECONCILE_EVERY_MINUTES * 60,
    },
    # Payment plans' instalments due (and declined ones due for a retry) are charged.
    "payment-plan-instalments-charge": {
        "task": "transactions.tasks.payment_plan_instalments_charge_due",
        "schedule": PAYMENT_PLANS_CHARGE_EVERY_MINUTES * 60,
    },
    # E-mails and SMS a patient is owed whose task was lost (a broker down at commit, a killed
    # worker) or whose retry is overdue are queued again.
    "patient-messages-resend-stuck": {
        "task": "transactions.tasks.patient_messages_resend_stuck",
        "schedule": PATIENT_MESSAGES_RESEND_EVERY_MINUTES * 60,
    },
    # Postings to the EHR whose task was lost or whose retry is due are queued again; money events
    # without a posting get one.
    "ehr-postings-sweep": {
        "task": "transactions.tasks.ehr_postings_sweep",
        "schedule": EHR_POSTINGS_SWEEP_EVERY_SECONDS,
    },
    # EHR connections (FHIR servers, SFTP drop folders) whose scheduled sync is due are synced.
    "ehr-connections-sync-due": {
        "task": "ehr_sync.tasks.ehr_connections_sync_due_sweep",
        "schedule": EHR_SYNC_SWEEP_EVERY_SECONDS,
    },
}

# E-mail: the dev outbox in development (a page lists what was "sent"), SMTP or an
# anymail ESP in production.
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default=vars().get("EMAIL_BACKEND")
    or ("lumapay.dev_outbox.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend"),
)
ANYMAIL = env.json("ANYMAIL", default={})
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="LumaPay <no-reply@lumapay.localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Seconds an SMTP connection may block: a send must end well inside the outbox's claim on its row
# (transactions/services/patient_messages.py), or a second sender could take it over.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT_SECONDS", default=30)
# How long a sender holds an owed message it claimed. A sender killed mid-send (a killed worker)
# leaves its message to wait this out, then the next resend sweep sends it: with the defaults, a
# patient's receipt goes out within about 4 minutes (2 + 2) of the worker's death.
PATIENT_MESSAGE_CLAIM_LEASE_SECONDS = env.int("PATIENT_MESSAGE_CLAIM_LEASE_SECONDS", default=120)
if PATIENT_MESSAGE_CLAIM_LEASE_SECONDS <= 3 * EMAIL_TIMEOUT:
    raise ImproperlyConfigured(
        "PATIENT_MESSAGE_CLAIM_LEASE_SECONDS must exceed three times EMAIL_TIMEOUT_SECONDS: a sender "
        "still talking to the mail server would be taken over and the message sent twice."
    )
# Attempts at sending one e-mail or SMS a patient is owed before it is given up, with the reason
# on the timeline (about an hour and a half of retries, doubling from 30 seconds, at the default).
PATIENT_MESSAGE_MAX_ATTEMPTS = env.int("PATIENT_MESSAGE_MAX_ATTEMPTS", default=8)

# -- Help Center support tickets (helpcenter/tickets.py) --
# Operators' answers are e-mailed with Reply-To <local>+<ticket token>@<domain> of this address;
# the e-mail provider's inbound route for that domain posts replies to /webhooks/email/<provider>/inbound/.
HELP_CENTER_REPLY_ADDRESS = env.str("HELP_CENTER_REPLY_ADDRESS", default="support@lumapay.localhost")
# Who hears of a new ticket or a member's reply (a short notice with the admin's link, never the
# message): LumaPay's support team.
HELP_CENTER_OPERATOR_EMAILS = env.list("HELP_CENTER_OPERATOR_EMAILS", default=[])
HELP_TICKET_ATTACHMENT_MAX_BYTES = env.int("HELP_TICKET_ATTACHMENT_MAX_BYTES", default=5 * 1024 * 1024)
HELP_TICKET_MAX_ATTACHMENTS = env.int("HELP_TICKET_MAX_ATTACHMENTS", default=5)

# SMS: "dev_outbox", "console", "memory" or "twilio".
SMS_BACKEND = env.str("SMS_BACKEND", default="dev_outbox" if DEBUG else "twilio")

# Backends that print a message (its recipient, its body with the payment link) to the process's
# output, which a log collector keeps: development only.
PRINTING_EMAIL_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
    "lumapay.dev_outbox.EmailBackend",
}
PRINTING_SMS_BACKENDS = {"console", "dev_outbox"}
if not DEBUG and (EMAIL_BACKEND in PRINTING_EMAIL_BACKENDS or SMS_BACKEND in PRINTING_SMS_BACKENDS):
    raise ImproperlyConfigured(
        f"DEBUG is off, so LumaPay will not print messages to patients: EMAIL_BACKEND={EMAIL_BACKEND!r} and "
        f"SMS_BACKEND={SMS_BACKEND!r} must send them (SMTP or an ESP through EMAIL_URL; SMS_BACKEND=twilio)."
    )
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM_NUMBER = env.str("TWILIO_FROM_NUMBER", default="")
TWILIO_MESSAGING_SERVICE_SID = env.str("TWILIO_MESSAGING_SERVICE_SID", default="")

# The dev outbox page (/dev/outbox/) exists only when this is on.
DEV_OUTBOX_ENABLED = env.bool("DEV_OUTBOX_ENABLED", default=DEBUG)

# Payment links.
PAYMENT_LINK_TTL_DAYS = env.int("PAYMENT_LINK_TTL_DAYS", default=30)
# Intake form links: days a patient may open an unfinished form from its link.
INTAKE_FORM_LINK_TTL_DAYS = env.int("INTAKE_FORM_LINK_TTL_DAYS", default=30)
PAY_LINK_MAX_FAILED_DOB_ATTEMPTS = env.int("PAY_LINK_MAX_FAILED_DOB_ATTEMPTS", default=5)
PAY_LINK_LOCKOUT_MINUTES = env.int("PAY_LINK_LOCKOUT_MINUTES", default=30)
PAY_PAGE_MAX_FAILED_DOB_ATTEMPTS_PER_ADDRESS = env.int("PAY_PAGE_MAX_FAILED_DOB_ATTEMPTS_PER_ADDRESS", default=20)
# The largest amount one payment request (or one charge of a card on file) may ask for, in cents.
PAYMENT_REQUEST_MAX_CENTS = env.int("PAYMENT_REQUEST_MAX_CENTS", default=100_000_00)

# Excel exports of the dashboard: up to this many rows download at once; more are written in the
# background (with a progress bar) and kept this many hours for the member who asked.
EXPORT_SYNC_MAX_ROWS = env.int("EXPORT_SYNC_MAX_ROWS", default=5000)
EXPORT_TTL_HOURS = env.int("EXPORT_TTL_HOURS", default=24)

# The Sandbox gateway signs the events it delivers to the webhook path with this secret. Empty: a
# random one this database was given (lumapay.models.Installation), never one made from SECRET_KEY,
# whose development value is public.
# EHR connection credentials are encrypted with these Fernet keys, newest first (ehr_sync/credentials.py).
EHR_CREDENTIALS_KEYS = env.list("EHR_CREDENTIALS_KEYS", default=[])
# The organization profile's tax ID (EIN) and its owners' dates of birth and SSN digits are
# encrypted with these Fernet keys, newest first (org_profile/profile_secrets.py).
ORGANIZATION_PROFILE_KEYS = env.list("ORGANIZATION_PROFILE_KEYS", default=[])
# The largest logo an administrator may upload, in bytes; it is stored resized (org_profile/logo.py).
ORGANIZATION_LOGO_MAX_BYTES = env.int("ORGANIZATION_LOGO_MAX_BYTES", default=2 * 1024 * 1024)

# The Upload Center's limits (uploads/file_reading.py): a file's size, its rows, and what a workbook
# (a zip) may unpack to, in all and per part, before it is opened.
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=50 * 1024 * 1024)
UPLOAD_MAX_ROWS = env.int("UPLOAD_MAX_ROWS", default=200_000)
UPLOAD_XLSX_MAX_UNCOMPRESSED_BYTES = env.int("UPLOAD_XLSX_MAX_UNCOMPRESSED_BYTES", default=500 * 1024 * 1024)
UPLOAD_XLSX_MAX_RATIO = env.int("UPLOAD_XLSX_MAX_RATIO", default=200)
# The address an EHR sends HL7 v2 messages to (host:port of the MLLP listener as the EHR reaches
# it, e.g. behind a load balancer or VPN), shown on an HL7 connection's page.
EHR_HL7_LISTENER_ADDRESS = env.str("EHR_HL7_LISTENER_ADDRESS", default="")
SANDBOX_WEBHOOK_SECRET = env.str("SANDBOX_WEBHOOK_SECRET", default="")

# Stripe: the platform's keys (each clinic's connected account id is on its Organization).
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
# Signing secrets of the webhook endpoints that deliver to /webhooks/stripe/, comma-separated.
STRIPE_WEBHOOK_SECRET = env.list("STRIPE_WEBHOOK_SECRET", default=[])
# The one place the Stripe API version is pinned: every request and every event parsed uses it.
STRIPE_API_VERSION = env.str("STRIPE_API_VERSION", default="2026-10-28.endive")
# Another address for Stripe's API (a test server such as localstripe); empty means Stripe's own.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="").rstrip("/")
# What makes this installation's Idempotency-Keys its own when several installations share one
# platform account (transactions.gateways.stripe.client.idempotency_key). Empty: the random id
# this database was given when it was created (lumapay.models.Installation), which is neither a
# secret nor derived from one, and stays with the rows whose ids the keys carry.
STRIPE_IDEMPOTENCY_NAMESPACE = env.str("STRIPE_IDEMPOTENCY_NAMESPACE", default="")
if STRIPE_IDEMPOTENCY_NAMESPACE and not re.fullmatch(r"[a-z0-9-]{1,40}", STRIPE_IDEMPOTENCY_NAMESPACE):
    raise ImproperlyConfigured(
        "STRIPE_IDEMPOTENCY_NAMESPACE must be 1 to 40 lowercase letters, digits or hyphens."
    )

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    # Subdomains of LumaPay's host get HTTPS-only too; "preload" lets the host be submitted to the
    # browsers' built-in list (hstspreload.org): turning it off makes `check --deploy` warn.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp): scripts, styles, images and requests from LumaPay's own
# origin only; no inline <script>, <style>, style="" or on* attribute anywhere (behaviour lives in
# static/js, looks in static/css). The development outbox alone allows inline styles, for the
# e-mails it previews (lumapay/dev_outbox.py). No form-action: the pay page's and Stripe Connect's
# forms are answered with a redirect to Stripe, which form-action would also have to allow.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
    }
}
# Powerful browser features no page of LumaPay uses, refused for it and anything it embeds.
PERMISSIONS_POLICY = env.str(
    "PERMISSIONS_POLICY",
    default="accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), "
    "payment=(), usb=()",
)

# No patient's details in any log (lumapay/log_redaction.py, README "What never reaches a log"):
# tracebacks without exception messages (kept in development), request lines without query
# strings, Celery's task failures without the exception's text.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "lumapay.log_redaction.PhiSafeFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "exception_messages": DEBUG,
        }
    },
    "filters": {
        "request_paths": {"()": "lumapay.log_redaction.RequestPathFilter"},
        "task_exceptions": {"()": "lumapay.log_redaction.CeleryTaskExceptionFilter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_paths", "task_exceptions"]}
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # WeasyPrint reports every step of every PDF at INFO; axes every sign-in (masked) at INFO.
    # Django's own lines (a request's 404 or 500, the development server's request lines) go through
    # the root's handler and its filters, not Django's default handlers (its console one, and
    # mail_admins, which e-mails the request).
    "loggers": {
        "django": {"handlers": [], "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        "weasyprint": {"level": "WARNING"},
        # The Stripe library logs request bodies at DEBUG ("Post details"): they carry the clinic's
        # EIN and its owners' dates of birth and SSN digits (the profile's push). Never below INFO.
        "stripe": {"level": "INFO"},
        "axes": {"level": "WARNING"},
        "django.server": {"handlers": [], "propagate": True},
    },
}
# Celery's worker and beat log through the handler above instead of installing their own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
