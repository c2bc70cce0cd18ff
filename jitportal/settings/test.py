"""The test suite: the same wiring as production-like runs, with fast password hashing."""
import os
from pathlib import Path

from accounts.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_TENANT_ID, entra_socialaccount_providers
from jitportal.lib.broker import broker_options, notification_routes

from .base import *  # noqa: F403
from .base import VAR_DIR, env

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Tests run webhook receivers on 127.0.0.1 over http; the SSRF guard tests switch these off.
WEBHOOK_ALLOW_HTTP = True
WEBHOOK_ALLOW_PRIVATE = True
# The local emulator serves Resource Manager and Entra ID on this machine.
CLOUD_ENDPOINT_HOSTS = env.list("CLOUD_ENDPOINT_HOSTS", default=["127.0.0.1", "localhost"])
PORTAL_BASE_URL = "http://testserver"
# The authorization matrix calls every API URL anonymously from one address; the throttle's own test lowers it.
API_THROTTLE_FAILED_AUTH = "100000/min"
BREAK_GLASS_MAX_FAILURES = 100000  # likewise; tests/accounts/test_break_glass.py lowers it
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "jitportal.lib.staticfiles.ScriptPrefixedStaticFilesStorage"},
}
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="test-only-secret-key-not-for-production-0123456789abcdef")

# Keep the suite's embedded broker and queue apart from a demo running on the same checkout.
CELERY_FILESYSTEM_FOLDER = Path(env.str("CELERY_FILESYSTEM_FOLDER", default=str(VAR_DIR / "test-broker")))
CELERY_BROKER_TRANSPORT_OPTIONS, _default_result_backend = broker_options(
    CELERY_BROKER_URL, CELERY_FILESYSTEM_FOLDER  # noqa: F405
)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=_default_result_backend)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="jitportal-test")
CELERY_NOTIFICATIONS_QUEUE, CELERY_TASK_ROUTES = notification_routes(
    CELERY_TASK_DEFAULT_QUEUE, env.str("CELERY_NOTIFICATIONS_QUEUE", default=""))

# Serve static files from the apps directly (no collectstatic needed outside production).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Sign-in: the demo tenant and app registration; tests point ENTRA_AUTHORITY, ENTRA_GRAPH_URL and ENTRA_CA_BUNDLE at the
# emulator they start (tests/plugins/personas.py) and rebuild SOCIALACCOUNT_PROVIDERS.
ENTRA_AUTHORITY = "https://127.0.0.1:9"
ENTRA_TENANT_ID = DEMO_TENANT_ID
ENTRA_CLIENT_ID = DEMO_CLIENT_ID
ENTRA_CLIENT_SECRET = DEMO_CLIENT_SECRET
ENTRA_ALLOWED_TENANTS = [DEMO_TENANT_ID]
ENTRA_CA_BUNDLE = ""
ENTRA_GRAPH_URL = "https://127.0.0.1:9"
SOCIALACCOUNT_PROVIDERS = entra_socialaccount_providers(
    authority=ENTRA_AUTHORITY, tenant_id=ENTRA_TENANT_ID, client_id=ENTRA_CLIENT_ID, secret=ENTRA_CLIENT_SECRET
)

# SQLite's test database lives in a file (one per test process), not in memory, so the Celery worker
# subprocesses of the integration tests open the same database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"].setdefault("TEST", {}).setdefault(  # noqa: F405
        "NAME", str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")
    )
