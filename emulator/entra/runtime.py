"""What the emulated Entra ID keeps between calls, and how a path's ``{tenant}`` segment is resolved.

Authorization codes, refresh tokens and the secret that signs SSO session cookies live in
``current_app.extensions["entra"]`` (not in the saved state: they are short-lived, and a restarted Entra ID would
not honour them either).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app, request

from emulator.entra.errors import EntraError
from emulator.entra.models import EntraApp, EntraTenant, EntraUser

CODE_LIFETIME = timedelta(minutes=10)
REFRESH_LIFETIME = timedelta(days=90)
MULTI_TENANT = ("organizations", "common")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass
class AuthCode:
    """An authorization code: one use, ``CODE_LIFETIME`` on the emulator's virtual clock."""

    tenant_id: str
    client_id: str
    redirect_uri: str
    user_oid: str
    scope: str
    nonce: str | None
    code_challenge: str
    expires: datetime


@dataclass
class RefreshGrant:
    """What a refresh token stands for; it is replaced by a new one each time it is redeemed."""

    tenant_id: str
    client_id: str
    user_oid: str
    scope: str
    expires: datetime


@dataclass
class EntraRuntime:
    """Outstanding codes and refresh tokens, the SSO cookies' HMAC secret, and the spoil knobs; one per Flask app,
    changed under ``state.lock``."""

    codes: dict[str, AuthCode] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshGrant] = field(default_factory=dict)
    sso_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))  # signs the SSO session cookies
    next_id_token: str | None = None  # how to spoil the next ID token of a code exchange (a test knob)
    # Claims to set (a null removes one) in the next ID token of a code exchange, signed as usual (a test knob).
    next_id_token_claims: dict | None = None
    spoiled: dict[str, str] = field(default_factory=dict)  # "discovery"/"jwks": how to spoil it until cleared (knobs)

    def forget_expired(self, now: datetime) -> None:
        self.codes = {k: v for k, v in self.codes.items() if v.expires > now}
        self.refresh_tokens = {k: v for k, v in self.refresh_tokens.items() if v.expires > now}


def current_state():
    """The emulator state (identities live in ``state.tenants``)."""
    return current_app.config["EMULATOR_STATE"]


def runtime() -> EntraRuntime:
    return current_app.extensions["entra"]


def base_url() -> str:
    """``https://HOST:PORT`` as the caller addressed the emulator."""
    return request.host_url.rstrip("/")


def tenant_not_found(key: str, error: str = "invalid_request") -> EntraError:
    return EntraError(400, error, 90002,
                      f"AADSTS90002: Tenant '{key}' not found. Check to make sure you have the correct tenant ID and "
                      "are signing into the correct cloud. Check with your subscription administrator, this may "
                      "happen if there are no active subscriptions for the tenant.")


def find_tenant(key: str) -> EntraTenant | None:
    """A tenant by id (any case) or by its domain."""
    tenants = current_state().tenants
    if key in tenants:
        return tenants[key]
    lowered = key.lower()
    return next((t for t in tenants.values() if lowered in (t.tenant_id.lower(), t.domain.lower())), None)


def tenants_of(key: str, error: str = "invalid_request") -> list[EntraTenant]:
    """The tenants a path's ``{tenant}`` stands for: one, or all of them for ``organizations``/``common``."""
    if key.lower() in MULTI_TENANT:
        return list(current_state().tenants.values())
    tenant = find_tenant(key)
    if tenant is None:
        raise tenant_not_found(key, error)
    return [tenant]


def one_tenant(key: str, error: str = "invalid_request") -> EntraTenant:
    """The single tenant a tenant-specific request (client credentials, logout) names."""
    if key.lower() in MULTI_TENANT:
        raise EntraError(400, "invalid_request", 90009,
                         f"AADSTS90009: Application is requesting a token for itself through '{key}'. This scenario "
                         "is supported only with a tenant-specific endpoint.")
    return tenants_of(key, error)[0]


def user_in(tenants: list[EntraTenant], oid: str) -> tuple[EntraTenant, EntraUser] | None:
    for tenant in tenants:
        user = tenant.user(oid)
        if user is not None:
            return tenant, user
    return None


def redirect_uri_allowed(app: EntraApp, uri: str) -> bool:
    """Exact match, or a loopback http(s) URI with any port and the same scheme and path as a registered one."""
    if uri in app.redirect_uris:
        return True
    try:
        asked = urlsplit(uri)
        asked_host = asked.hostname
    except ValueError:
        return False
    if asked.scheme not in ("http", "https") or asked_host not in LOOPBACK_HOSTS or asked.fragment:
        return False
    for registered in app.redirect_uris:
        known = urlsplit(registered)
        if (known.hostname in LOOPBACK_HOSTS and known.scheme == asked.scheme and known.path == asked.path
                and known.query == asked.query):
            return True
    return False
