"""Local development and the demo (`make run`): debug on, embedded defaults."""
from accounts.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_TENANT_ID, entra_socialaccount_providers

from .base import *  # noqa: F403
from .base import VAR_DIR, env, env_bool, env_port, env_secret

DEBUG = env_bool("DJANGO_DEBUG", default=True)
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
# Webhooks to a receiver on this machine over plain http are fine in the demo.
WEBHOOK_ALLOW_HTTP = env_bool("WEBHOOK_ALLOW_HTTP", default=True)
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", default=True)
# The local emulator serves Resource Manager and Entra ID on this machine.
CLOUD_ENDPOINT_HOSTS = env.list("CLOUD_ENDPOINT_HOSTS", default=["127.0.0.1", "localhost"])
# The demo's Azure emulator: `make run` (Procfile) starts it on EMULATOR_PORT and seed_demo registers the demo there.
DEMO_EMULATOR_URL = f"https://127.0.0.1:{env_port('EMULATOR_PORT', default=8443)}"
# Links in e-mails and webhooks point at the port `make run` serves the portal on (PORTAL_PORT).
_portal_port = env_port("PORTAL_PORT", default=8000)
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default=f"http://127.0.0.1:{_portal_port}").rstrip("/")
if _portal_port != 8000:  # browsers share cookies across ports: a second demo on this host keeps its own
    SESSION_COOKIE_NAME = f"sessionid-{_portal_port}"
    CSRF_COOKIE_NAME = f"csrftoken-{_portal_port}"

# Serve static files from the apps directly (no collectstatic needed outside production).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Sign-in: the local emulator's Entra ID (started by `make run` on EMULATOR_PORT, 8443), its Contoso tenant and the
# demo app registration, trusting the emulator's CA. Any ENTRA_* variable overrides.
ENTRA_AUTHORITY = env.str("ENTRA_AUTHORITY", default=DEMO_EMULATOR_URL).rstrip("/")
ENTRA_TENANT_ID = env.str("ENTRA_TENANT_ID", default=DEMO_TENANT_ID)
ENTRA_CLIENT_ID = env.str("ENTRA_CLIENT_ID", default=DEMO_CLIENT_ID)
ENTRA_CLIENT_SECRET = env_secret("ENTRA_CLIENT_SECRET", default=DEMO_CLIENT_SECRET)
ENTRA_ALLOWED_TENANTS = env.list("ENTRA_ALLOWED_TENANTS", default=[ENTRA_TENANT_ID])
ENTRA_CA_BUNDLE = env.str("ENTRA_CA_BUNDLE", default=str(VAR_DIR / "emulator" / "ca.pem"))
ENTRA_GRAPH_URL = env.str("ENTRA_GRAPH_URL", default=ENTRA_AUTHORITY).rstrip("/")  # the emulator serves Graph too
SOCIALACCOUNT_PROVIDERS = entra_socialaccount_providers(
    authority=ENTRA_AUTHORITY, tenant_id=ENTRA_TENANT_ID, client_id=ENTRA_CLIENT_ID, secret=ENTRA_CLIENT_SECRET
)

# The REST API also renders as HTML pages in the browser (signed-in session) unless API_BROWSABLE=false.
if env_bool("API_BROWSABLE", default=True):
    REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_RENDERER_CLASSES": [  # noqa: F405
        "api.renderers.ApiJsonRenderer", "rest_framework.renderers.BrowsableAPIRenderer"]}
