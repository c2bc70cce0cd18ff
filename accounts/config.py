"""Build the django-allauth provider settings for Entra ID (imported by the settings modules; no models)."""
from __future__ import annotations

ENTRA_PROVIDER_ID = "entra"
DEMO_TENANT_ID = "8a0e7c31-4a8e-4d8b-9d2a-6f6a1b2c3d4e"
DEMO_CLIENT_ID = "0d3b6a9e-5c1f-4e2a-9b7d-1a2b3c4d5e6f"
DEMO_CLIENT_SECRET = "demo-portal-secret"


def entra_server_url(authority: str, tenant_id: str) -> str:
    """The OpenID Connect issuer base of the tenant: ``{authority}/{tenant}/v2.0``."""
    return f"{authority.rstrip('/')}/{tenant_id}/v2.0"


def entra_socialaccount_providers(*, authority: str, tenant_id: str, client_id: str, secret: str) -> dict:
    """``SOCIALACCOUNT_PROVIDERS`` with one OpenID Connect app, ``entra``, or none when not configured."""
    if not (tenant_id and client_id):
        return {}
    return {
        "openid_connect": {
            "APPS": [
                {
                    "provider_id": ENTRA_PROVIDER_ID,
                    "name": "Entra ID",
                    "client_id": client_id,
                    "secret": secret,
                    "settings": {
                        "server_url": entra_server_url(authority, tenant_id),
                        "oauth_pkce_enabled": True,
                        "token_auth_method": "client_secret_post",
                        # The ID token carries what the portal needs (oid, tid, roles, groups).
                        "fetch_userinfo": False,
                        "uid_field": "oid",
                        "scope": ["openid", "profile", "email"],
                        "auth_params": {"prompt": "select_account"},
                    },
                }
            ]
        }
    }
