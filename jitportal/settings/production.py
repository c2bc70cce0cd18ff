"""Production: secrets have no default, cookies and transport are secure (`check --deploy` is clean)."""
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env, env_bool, env_secret

DEBUG = False
SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set in production.")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")

SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_NAME = "__Host-sessionid"
CSRF_COOKIE_NAME = "__Host-csrftoken"
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# Load balancers probe the health check over plain http and count a redirect as "up", hiding a 503. Matched against
# the request's path, which holds the script prefix behind a proxy at /jit/ (jit/healthz).
SECURE_REDIRECT_EXEMPT = [r"(?:^|/)healthz$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if env_bool("DJANGO_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Sign-in with Entra ID: once a client id is configured, its secret must be too (no default).
if ENTRA_CLIENT_ID and not ENTRA_CLIENT_SECRET:  # noqa: F405
    raise ImproperlyConfigured("ENTRA_CLIENT_SECRET (or ENTRA_CLIENT_SECRET_FILE) must be set with ENTRA_CLIENT_ID.")

# The demo credential (the local emulator's portal app) exists in production only when asked for explicitly.
if not env_bool("PORTAL_DEMO_CREDENTIAL", default=False):
    PORTAL_CREDENTIALS.pop("demo", None)  # noqa: F405
