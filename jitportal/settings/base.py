"""Settings shared by every mode. Every value comes from the environment (see ``.env.example``)."""
import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from accounts.config import entra_socialaccount_providers
from jitportal.lib.broker import broker_options, notification_routes
from jitportal.lib.csp import content_security_policy

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
# A variable set to nothing (``DATABASE_URL=`` in an env file, as ``.env.example`` lists them) has no value: its
# default applies, as if it were unset.
env.ENVIRON = {name: value for name, value in os.environ.items() if value.strip()}


def env_secret(name: str, default: str | None = None) -> str | None:
    """Read a secret from ``NAME`` or from the file named by ``NAME_FILE`` (mounted secrets)."""
    path = env.str(f"{name}_FILE", default="")
    if path:
        return Path(path).read_text().strip()
    return env.str(name, default=default)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean strictly: a value that is neither true nor false stops start-up."""
    raw = env.str(name, default=str(default)).strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no, on/off).")


def env_port(name: str, default: int) -> int:
    """Read a TCP port (1-65535) strictly: anything else stops start-up."""
    raw = env.str(name, default=str(default)).strip()
    if raw.isdigit() and 1 <= int(raw) <= 65535:
        return int(raw)
    raise ImproperlyConfigured(f"{name}={raw!r} is not a TCP port (1-65535).")


DEBUG = env_bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY", default="insecure-local-development-key-do-not-use")
# Previous keys, still accepted while rotating: signed sessions and links, and sealed webhook secrets
# (``manage.py reseal_webhook_secrets`` moves those to the new key).
SECRET_KEY_FALLBACKS = [key.strip() for key in (env_secret("DJANGO_SECRET_KEY_FALLBACKS") or "").split(",")
                        if key.strip()]
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_filters",
    "django_tables2",
    "django_htmx",
    "csp",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "jitportal",
    "accounts",
    "policies",
    "audit",
    "notifications",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "jitportal.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "accounts.middleware.SessionRefreshMiddleware",
    "api.middleware.ApiNotFoundMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.LoginRequiredMiddleware",
    "accounts.middleware.RevalidationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "jitportal.middleware.MethodNotAllowedPageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]
# Django's default storage, except that a HEAD queues no message (it is never shown with the HEAD).
MESSAGE_STORAGE = "jitportal.lib.messages.HeadlessFallbackStorage"

ROOT_URLCONF = "jitportal.urls"
WSGI_APPLICATION = "jitportal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "jitportal.context_processors.portal",
            ],
        },
    },
]

# Database: SQLite by default, any DATABASE_URL (postgres://…) switches.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    # Web, worker and beat share the file: wait for locks instead of failing, and use WAL.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
         # BEGIN IMMEDIATE: a writer waits (timeout) instead of failing with "database is locked" when a read
         # transaction would have to upgrade to a write while web, worker and beat share the file.
         "transaction_mode": "IMMEDIATE"}
    )
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if "postgresql" in DATABASES["default"]["ENGINE"] and not env_bool("DATABASE_JIT", default=False):
        # PostgreSQL's JIT compiles a query whose estimated cost is high (a count over a year of requests, a search
        # of a million audit events) for longer than it then runs: off at connection, unless DATABASE_URL's
        # ?options= says otherwise (or DATABASE_JIT keeps the server's setting and sends no options).
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", "-c jit=off")
# Keep connections between requests and between tasks (``CELERY_DB_REUSE_MAX`` below): for SQLite a new one
# re-runs the PRAGMAs and re-registers Django's functions, for PostgreSQL it is a new session.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
# Entra ID sessions, and local passwords for break-glass superusers only (accounts.backends).
AUTHENTICATION_BACKENDS = ["accounts.backends.EntraBackend", "accounts.backends.BreakGlassPasswordBackend"]

# Sign-in with Entra ID: django-allauth's OpenID Connect provider, app "entra" (callback
# /accounts/oidc/entra/login/callback/), configured from these values, never from database rows.
ENTRA_AUTHORITY = env.str("ENTRA_AUTHORITY", default="https://login.microsoftonline.com").rstrip("/")
ENTRA_TENANT_ID = env.str("ENTRA_TENANT_ID", default="")
ENTRA_CLIENT_ID = env.str("ENTRA_CLIENT_ID", default="")
ENTRA_CLIENT_SECRET = env_secret("ENTRA_CLIENT_SECRET", default="")
ENTRA_ALLOWED_TENANTS = env.list("ENTRA_ALLOWED_TENANTS", default=[]) or ([ENTRA_TENANT_ID] if ENTRA_TENANT_ID else [])
ENTRA_CA_BUNDLE = env.str("ENTRA_CA_BUNDLE", default="")
# Microsoft Graph, read with the app's own credential when a token says its user is in too many groups to list.
ENTRA_GRAPH_URL = env.str("ENTRA_GRAPH_URL", default="https://graph.microsoft.com").rstrip("/")
ENTRA_APP_ROLES = env.list(
    "ENTRA_APP_ROLES", default=["JIT.Reader", "JIT.Requester", "JIT.PolicyAdmin", "JIT.Auditor", "JIT.Approver"]
)
SOCIALACCOUNT_PROVIDERS = entra_socialaccount_providers(
    authority=ENTRA_AUTHORITY, tenant_id=ENTRA_TENANT_ID, client_id=ENTRA_CLIENT_ID, secret=ENTRA_CLIENT_SECRET
)
# The demo's Azure emulator, where seed_demo registers the demo; the demo's settings (local) read EMULATOR_PORT.
DEMO_EMULATOR_URL = "https://127.0.0.1:8443"
ACCOUNT_ADAPTER = "accounts.adapters.PortalAccountAdapter"
SOCIALACCOUNT_ADAPTER = "accounts.adapters.EntraSocialAccountAdapter"
ACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_REQUESTS_TIMEOUT = 10
SOCIALACCOUNT_OPENID_CONNECT_URL_PREFIX = "oidc"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Counters of the API's rate limits and the break-glass lockout. The default keeps them per process; with several
# web processes or hosts set CACHE_URL=redis://host:6379/1 (or dbcache://table after createcachetable) so they
# count every request.
CACHES = {"default": environ.Env.cache_url_config(env.str("CACHE_URL", default="") or "locmemcache://")}

# Failed break-glass passwords per client address before its password sign-ins are refused for a while.
BREAK_GLASS_MAX_FAILURES = env.int("BREAK_GLASS_MAX_FAILURES", default=10)
BREAK_GLASS_LOCKOUT_SECONDS = env.int("BREAK_GLASS_LOCKOUT_SECONDS", default=15 * 60)

SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
# An Entra session ends this long after its sign-in, however busy (roles come from that sign-in's claims).
ENTRA_SIGN_IN_MAX_AGE = env.int("ENTRA_SIGN_IN_MAX_AGE", default=SESSION_COOKIE_AGE)
# A signed-in Entra user's next page after this long goes through a silent sign-in (prompt=none): their latest
# roles, or the session ends when Entra ID no longer signs them in (accounts.revalidation). 0: never.
ENTRA_REVALIDATE_SECONDS = env.int("ENTRA_REVALIDATE_SECONDS", default=3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# Sliding expiry: a session is saved again (new expiry) at most once a minute, not on every request
# (accounts.middleware.SessionRefreshMiddleware).
SESSION_REFRESH_SECONDS = env.int("SESSION_REFRESH_SECONDS", default=60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# The most fields a form or query may send (Django's 1,000 by default): the largest form the portal shows must fit.
# That is a request over 100 VMs (policies.access.views.REQUEST_MAX_VMS), each sending its id and a box per port
# ticked, up to 100 ports (the most the portal writes to a policy: the API's MAX_LIST; the editor's 50), and the 8
# other fields of the form: 100 x (1 + 100) + 8 = 10,108. Django's default refused a 100-VM request of 10 ports a
# VM. Past it (a policy made in Azure with more ports), the 400 page says to select fewer (jitportal.views).
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_200
# Content-Security-Policy on every response, in every mode (django-csp; jitportal.lib.csp has the directives): the
# portal's own scripts, styles and images only, no inline script or style, no plugins, no framing, forms posted to
# the portal (and the Entra sign-in redirected to ENTRA_AUTHORITY). CSP_REPORT_URI: where browsers report violations.
CONTENT_SECURITY_POLICY = content_security_policy(report_uri=env.str("CSP_REPORT_URI", default=""))

LANGUAGE_CODE = "en-us"
FORMAT_MODULE_PATH = ["jitportal.formats"]  # dates as 2026-11-26 09:32 on every page
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# Relative: static files sit under the script prefix of each request (a reverse proxy's /jit/, see the README). The
# storages give their URLs under the prefix of the request being answered (jitportal.lib.staticfiles): Django itself
# would add the prefix of the first read of STATIC_URL and keep it for the life of the process.
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "jitportal.lib.staticfiles.ScriptPrefixedCompressedStaticFilesStorage"},
}
# whitenoise matches the path after the script prefix (the request's path_info), whatever prefix it came under.
WHITENOISE_STATIC_PREFIX = f"/{STATIC_URL}"

# Celery: an embedded broker (kombu's filesystem transport, shared by processes on one host) by default;
# CELERY_BROKER_URL=redis://… or amqp://… switches to a real server.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_FILESYSTEM_FOLDER = Path(env.str("CELERY_FILESYSTEM_FOLDER", default=str(VAR_DIR / "broker")))
CELERY_BROKER_TRANSPORT_OPTIONS, _default_result_backend = broker_options(
    CELERY_BROKER_URL, CELERY_FILESYSTEM_FOLDER
)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=_default_result_backend)
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 120
CELERY_TASK_TIME_LIMIT = 180
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery closes the database connection around every task unless told to reuse it; ``jitportal.celery`` then
# applies CONN_MAX_AGE and health checks per task, as Django does per request (a reconnect per task costs
# milliseconds on every open).
CELERY_DB_REUSE_MAX = 1_000_000
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="jitportal")
# E-mail and webhooks have their own queue and worker (Procfile ``notifier``): an open never waits behind them.
CELERY_NOTIFICATIONS_QUEUE, CELERY_TASK_ROUTES = notification_routes(
    CELERY_TASK_DEFAULT_QUEUE, env.str("CELERY_NOTIFICATIONS_QUEUE", default=""))
CELERY_IMPORTS = ["jitportal.tasks"]
CELERY_BEAT_SCHEDULE: dict = {}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

PORTAL_NAME = env.str("PORTAL_NAME", default="JIT Portal")
# Whom a signed-in user without a role should ask for access (free text: an e-mail address, a team, a URL);
# empty: the portal names the users who manage its role mappings for a whole subscription.
PORTAL_ACCESS_CONTACT = env.str("PORTAL_ACCESS_CONTACT", default="").strip()

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"client_errors": {"()": "jitportal.lib.logfilters.ClientErrorsWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "azure": {"level": "WARNING"},
        # Through the root handler only (Django's own console handler printed each line a second time).
        "django": {"handlers": [], "propagate": True},
        "django.request": {"filters": ["client_errors"]},
    },
}

# List filters: an unset choice reads "All" (django-filter's default is a row of dashes).
FILTERS_EMPTY_CHOICE_LABEL = "All"

# --- Audit -------------------------------------------------------------------
# Activity Log ingestion (per subscription, every AUDIT_INGEST_INTERVAL_SECONDS) and retention (daily).
AUDIT_INGEST_INTERVAL_SECONDS = env.int("AUDIT_INGEST_INTERVAL_SECONDS", default=300)
AUDIT_INGEST_OVERLAP_MINUTES = env.int("AUDIT_INGEST_OVERLAP_MINUTES", default=15)
AUDIT_INGEST_STALE_SECONDS = env.int("AUDIT_INGEST_STALE_SECONDS", default=900)
AUDIT_INGEST_TIME_BUDGET_SECONDS = env.int("AUDIT_INGEST_TIME_BUDGET_SECONDS", default=90)
AUDIT_BACKFILL_DAYS = env.int("AUDIT_BACKFILL_DAYS", default=90)
AUDIT_ACTIVITY_RETENTION_DAYS = env.int("AUDIT_ACTIVITY_RETENTION_DAYS", default=365)
AUDIT_TRAIL_RETENTION_DAYS = env.int("AUDIT_TRAIL_RETENTION_DAYS", default=0)  # 0: keep the trail forever
AUDIT_PAGE_SIZE = env.int("AUDIT_PAGE_SIZE", default=50)
CELERY_BEAT_SCHEDULE["audit-ingest-activity"] = {
    "task": "audit.ingest_all",
    "schedule": float(AUDIT_INGEST_INTERVAL_SECONDS),
}
CELERY_BEAT_SCHEDULE["audit-retention"] = {"task": "audit.prune", "schedule": 24 * 3600.0}
# --- end Audit ---------------------------------------------------------------

# --- Inventory and policies ---------------------------------------------------
# Credentials the portal calls Azure with, by reference: a subscription names one (credential_ref), the values
# come from the environment. PORTAL_CREDENTIALS lists the references; for each REF, PORTAL_CREDENTIAL_<REF>_
# KIND (client_secret, certificate, managed_identity, workload_identity, default), _TENANT_ID, _CLIENT_ID,
# _CLIENT_SECRET (or _CLIENT_SECRET_FILE), _CERTIFICATE_PATH, _CERTIFICATE_PASSWORD. PORTAL_DEMO_CREDENTIAL
# adds "demo", the demo tenant's portal app (for the local emulator).
PORTAL_CREDENTIALS: dict[str, dict] = {}
for _ref in env.list("PORTAL_CREDENTIALS", default=[]):
    _prefix = f"PORTAL_CREDENTIAL_{_ref.upper().replace('-', '_')}"
    PORTAL_CREDENTIALS[_ref] = {
        "kind": env.str(f"{_prefix}_KIND", default="client_secret"),
        "tenant_id": env.str(f"{_prefix}_TENANT_ID", default=""),
        "client_id": env.str(f"{_prefix}_CLIENT_ID", default=""),
        "client_secret": env_secret(f"{_prefix}_CLIENT_SECRET", default=""),
        "certificate_path": env.str(f"{_prefix}_CERTIFICATE_PATH", default=""),
        "certificate_password": env_secret(f"{_prefix}_CERTIFICATE_PASSWORD", default=""),
    }
if env_bool("PORTAL_DEMO_CREDENTIAL", default=True):
    from accounts.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_TENANT_ID

    PORTAL_CREDENTIALS.setdefault(
        "demo", {"tenant_id": DEMO_TENANT_ID, "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET}
    )
# Hosts besides Azure's own clouds (``host`` or ``host:port``) that a subscription's ARM endpoint and authority may
# name, e.g. Azure Stack Hub's: the portal sends its credential and tokens there, so an admin who may edit a
# subscription cannot point them elsewhere.
CLOUD_ENDPOINT_HOSTS = env.list("CLOUD_ENDPOINT_HOSTS", default=[])
INVENTORY_SYNC_INTERVAL_SECONDS = env.int("INVENTORY_SYNC_INTERVAL_SECONDS", default=900)
# The syncs of subscriptions sharing a credential (tenant, ARM endpoint) share what one read of the virtual hubs in
# the other subscriptions it can read for this long (0: every sync reads them); it bounds how stale they may be.
INVENTORY_REMOTE_HUBS_MAX_AGE_SECONDS = env.int("INVENTORY_REMOTE_HUBS_MAX_AGE_SECONDS", default=900)
CELERY_BEAT_SCHEDULE["policies-sync-inventory"] = {
    "task": "policies.sync_all",
    "schedule": float(INVENTORY_SYNC_INTERVAL_SECONDS),
}
# Policy changes stored while the broker was down (or held by a lost worker) are sent again by this beat.
CELERY_BEAT_SCHEDULE["policies-resend-changes"] = {"task": "policies.resend_changes", "schedule": 60.0}
# --- end Inventory and policies -----------------------------------------------

# --- Access requests -----------------------------------------------------------
# "My IP": X-Forwarded-For is honoured only when the connecting peer is one of these proxies (CIDRs).
ACCESS_TRUSTED_PROXIES = env.list("ACCESS_TRUSTED_PROXIES", default=[])
# Known shared egress addresses (corporate proxies, NAT gateways): requesting "my IP" from one warns.
ACCESS_SHARED_EGRESS_PREFIXES = env.list("ACCESS_SHARED_EGRESS_PREFIXES", default=[])
# The widest source range a request may name (prefix length), IPv4 and IPv6.
ACCESS_WIDEST_PREFIX_V4 = env.int("ACCESS_WIDEST_PREFIX_V4", default=8)
ACCESS_WIDEST_PREFIX_V6 = env.int("ACCESS_WIDEST_PREFIX_V6", default=32)
# A port queued or opening longer than this is re-sent by the reconciler; after ACCESS_MAX_ATTEMPTS it fails.
ACCESS_STUCK_SECONDS = env.int("ACCESS_STUCK_SECONDS", default=120)
ACCESS_MAX_ATTEMPTS = env.int("ACCESS_MAX_ATTEMPTS", default=8)
ACCESS_RECONCILE_INTERVAL_SECONDS = env.int("ACCESS_RECONCILE_INTERVAL_SECONDS", default=60)
# "Close now" behind an Azure Firewall: the unroutable source (RFC 5737) of the 5-minute replacement request.
ACCESS_CLOSE_PLACEHOLDER_SOURCE = env.str("ACCESS_CLOSE_PLACEHOLDER_SOURCE", default="192.0.2.1/32")
# A request waiting for approval expires after this (an access rule may set its own time).
ACCESS_APPROVAL_PENDING_MINUTES = env.int("ACCESS_APPROVAL_PENDING_MINUTES", default=240)
# How far ahead a window may be scheduled.
ACCESS_SCHEDULE_MAX_DAYS = env.int("ACCESS_SCHEDULE_MAX_DAYS", default=30)
CELERY_IMPORTS = [*CELERY_IMPORTS, "policies.access.tasks"]
CELERY_BEAT_SCHEDULE["access-reconcile"] = {
    "task": "access.reconcile",
    "schedule": float(ACCESS_RECONCILE_INTERVAL_SECONDS),
}
# --- end Access requests -------------------------------------------------------

# --- Notifications ---------------------------------------------------------------
# E-mail and webhooks on access events. The receiver stores the event; a task on the notifications queue turns it
# into outbox rows and sends them; the beat expands what the broker never carried and retries what is due
# (exponential backoff from NOTIFY_RETRY_BASE_SECONDS, a receiver's Retry-After honoured) and gives up after
# NOTIFY_MAX_ATTEMPTS, the reason kept on the row.
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="jitportal@localhost")
NOTIFY_EXPIRY_WARNING_MINUTES = env.int("NOTIFY_EXPIRY_WARNING_MINUTES", default=10)
NOTIFY_MAX_ATTEMPTS = env.int("NOTIFY_MAX_ATTEMPTS", default=8)
NOTIFY_RETRY_BASE_SECONDS = env.int("NOTIFY_RETRY_BASE_SECONDS", default=30)
NOTIFY_RETRY_MAX_SECONDS = env.int("NOTIFY_RETRY_MAX_SECONDS", default=3600)
NOTIFY_STUCK_SECONDS = env.int("NOTIFY_STUCK_SECONDS", default=300)
NOTIFY_BATCH_SIZE = env.int("NOTIFY_BATCH_SIZE", default=100)
NOTIFY_TIME_BUDGET_SECONDS = env.int("NOTIFY_TIME_BUDGET_SECONDS", default=60)
NOTIFY_INTERVAL_SECONDS = env.int("NOTIFY_INTERVAL_SECONDS", default=30)
NOTIFY_WEBHOOK_TIMEOUT_SECONDS = env.int("NOTIFY_WEBHOOK_TIMEOUT_SECONDS", default=10)
# Webhook URLs must be https and reach a public address unless these allow otherwise (local and tests do).
WEBHOOK_ALLOW_HTTP = env_bool("WEBHOOK_ALLOW_HTTP", default=False)
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", default=False)
CELERY_IMPORTS = [*CELERY_IMPORTS, "notifications.tasks"]
CELERY_BEAT_SCHEDULE["notifications-deliver-due"] = {
    "task": "notifications.deliver_due",
    "schedule": float(NOTIFY_INTERVAL_SECONDS),
}
CELERY_BEAT_SCHEDULE["notifications-warn-expiring"] = {"task": "notifications.warn_expiring", "schedule": 60.0}
# --- end Notifications -------------------------------------------------------------

# --- REST API ------------------------------------------------------------------
# /api/v1/: personal API tokens (Authorization: Bearer jit_...) and Entra ID access tokens for this app
# (audience ENTRA_CLIENT_ID or api://ENTRA_CLIENT_ID), then the browser session. JSON only unless
# API_BROWSABLE (local development). Rates per user (token or session) and per anonymous address.
API_BROWSABLE = env_bool("API_BROWSABLE", default=False)
API_THROTTLE_USER = env.str("API_THROTTLE_USER", default="1200/min")
API_THROTTLE_ANON = env.str("API_THROTTLE_ANON", default="60/min")
# Failed authentications per client address before 429 (counted before any token is checked).
API_THROTTLE_FAILED_AUTH = env.str("API_THROTTLE_FAILED_AUTH", default="30/min")
# The delegated scope an Entra access token must carry (api://<client id>/<scope>).
API_ENTRA_SCOPE = env.str("API_ENTRA_SCOPE", default="access_as_user")
# Personal API tokens: a new one expires after API_TOKEN_DEFAULT_DAYS unless its owner picks another date, at most
# API_TOKEN_MAX_DAYS away (none never expires, and none works longer than that after it was made). It acts with the
# roles of its owner's latest Entra sign-in only while that sign-in is at most API_TOKEN_SIGN_IN_MAX_DAYS old.
API_TOKEN_DEFAULT_DAYS = env.int("API_TOKEN_DEFAULT_DAYS", default=90)
API_TOKEN_MAX_DAYS = env.int("API_TOKEN_MAX_DAYS", default=365)
API_TOKEN_SIGN_IN_MAX_DAYS = env.int("API_TOKEN_SIGN_IN_MAX_DAYS", default=30)
API_TOKEN_LONGEST_DAYS = 3650  # what API_TOKEN_MAX_DAYS may be: ten years (and far from the calendar's end)
if (not 1 <= API_TOKEN_DEFAULT_DAYS <= API_TOKEN_MAX_DAYS <= API_TOKEN_LONGEST_DAYS
        or not 1 <= API_TOKEN_SIGN_IN_MAX_DAYS <= API_TOKEN_LONGEST_DAYS):
    raise ImproperlyConfigured(
        f"API_TOKEN_DEFAULT_DAYS={API_TOKEN_DEFAULT_DAYS} must be at least 1 and at most API_TOKEN_MAX_DAYS="
        f"{API_TOKEN_MAX_DAYS}, itself at most {API_TOKEN_LONGEST_DAYS}, and API_TOKEN_SIGN_IN_MAX_DAYS="
        f"{API_TOKEN_SIGN_IN_MAX_DAYS} from 1 to {API_TOKEN_LONGEST_DAYS}.")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.ApiTokenAuthentication",
        "api.authentication.EntraBearerAuthentication",
        "api.authentication.PortalSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["api.renderers.ApiJsonRenderer",
                                 *(["rest_framework.renderers.BrowsableAPIRenderer"] if API_BROWSABLE else [])],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.JsonParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "api.negotiation.ContentNegotiation",  # an unknown ?format= is a 406
    # DRF's user and anon throttles, reading X-Forwarded-For only from ACCESS_TRUSTED_PROXIES.
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.UserThrottle", "api.throttling.AnonThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": API_THROTTLE_USER, "anon": API_THROTTLE_ANON},
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "jitportal API",
    "VERSION": "1.0.0",
    "DESCRIPTION": (
        "Just-in-time network access to Azure VMs. Shapes follow the Azure JIT resource "
        "(ports, number, protocol, allowedSourceAddressPrefix(es), maxRequestAccessDuration, endTimeUtc). "
        "Authenticate with a personal API token (Authorization: Bearer jit_...) or an Entra ID access token "
        "for this portal; every call is checked against your portal roles at the object's scope."
    ),
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "APPEND_COMPONENTS": {"securitySchemes": {
        "apiToken": {"type": "http", "scheme": "bearer", "description": "A personal API token: jit_..."},
        "entra": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                  "description": "An Entra ID access token for api://<portal client id>."},
    }},
    "SECURITY": [{"apiToken": []}, {"entra": []}],
    "AUTHENTICATION_WHITELIST": [],
    "PATH_CONVERTER_OVERRIDES": {"object_id": int},
}
# --- end REST API ----------------------------------------------------------------
