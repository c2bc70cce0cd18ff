"""The test suite: the same wiring as production-like runs, with fast password hashing."""
from pathlib import Path

from jitportal.lib.broker import broker_options

from .base import *  # noqa: F403
from .base import VAR_DIR, env

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="test-only-secret-key-not-for-production-0123456789abcdef")

# Keep the suite's embedded broker and queue apart from a demo running on the same checkout.
CELERY_FILESYSTEM_FOLDER = Path(env.str("CELERY_FILESYSTEM_FOLDER", default=str(VAR_DIR / "test-broker")))
CELERY_BROKER_TRANSPORT_OPTIONS, _default_result_backend = broker_options(
    CELERY_BROKER_URL, CELERY_FILESYSTEM_FOLDER  # noqa: F405
)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=_default_result_backend)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="jitportal-test")

# Serve static files from the apps directly (no collectstatic needed outside production).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
