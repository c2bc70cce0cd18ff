"""What the token endpoint hands out: ID tokens (spoiled on request, for sign-in tests) and token responses."""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from datetime import timedelta

from emulator.entra import tokens
from emulator.entra.errors import EntraError
from emulator.entra.models import EntraApp, EntraTenant, EntraUser
from emulator.entra.runtime import REFRESH_LIFETIME, RefreshGrant, base_url, current_state, runtime

SPOIL_MODES = ("tampered", "expired", "wrong_tenant", "wrong_audience", "wrong_issuer", "no_nonce", "bad_nonce")
OIDC_SCOPES = {"openid", "profile", "email", "offline_access"}
ARM_RESOURCES = {"https://management.azure.com", "https://management.core.windows.net"}
GRAPH_RESOURCES = {"https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"}
UNKNOWN_TENANT = "00000000-dead-4bad-8bad-000000000bad"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier``."""
    return _b64url(hashlib.sha256(verifier.encode()).digest())


def pairwise_sub(user: EntraUser, app: EntraApp) -> str:
    """``sub``: stable for one user and one app, different across apps (as Entra's pairwise subject)."""
    return _b64url(hashlib.sha256(f"{user.oid}:{app.client_id}".encode()).digest())[:43]


def resource_of(scope: str, tenant: EntraTenant, app: EntraApp) -> str:
    """The audience a scope list asks for: ARM, Graph (also for bare OIDC scopes) or the app's own API.

    The emulator's own origin is a Graph resource too: it serves Graph there, as a national cloud's Graph host
    (``https://graph.microsoft.us``) is that cloud's Graph resource."""
    resources = set()
    for item in scope.split():
        if item in OIDC_SCOPES or "/" not in item:
            continue  # bare scopes (User.Read) are Graph's
        resource = item.rsplit("/", 1)[0].rstrip("/")
        if resource in ARM_RESOURCES:
            resources.add(tokens.ARM_AUDIENCE)
        elif resource in GRAPH_RESOURCES or resource.lower() == base_url().lower():
            resources.add(tokens.GRAPH_AUDIENCE)
        elif resource in (f"api://{app.client_id}", app.client_id):
            resources.add(f"api://{app.client_id}")
        else:
            raise EntraError(400, "invalid_resource", 500011,
                             f"AADSTS500011: The resource principal named {resource} was not found in the tenant "
                             f"named {tenant.display_name}. This can happen if the application has not been "
                             "installed by the administrator of the tenant or consented to by any user in the "
                             "tenant.")
    if len(resources) > 1:
        raise EntraError(400, "invalid_scope", 28000,
                         "AADSTS28000: Provided value for the input parameter scope is not valid because it contains "
                         "more than one resource.")
    return resources.pop() if resources else tokens.GRAPH_AUDIENCE


def _spoil(state, claims: dict, mode: str | None, tenant: EntraTenant) -> None:
    now = tokens.wall_clock()
    if mode == "expired":
        claims.update(tokens.timing(now - timedelta(hours=3)))
    elif mode == "wrong_tenant":
        other = next((t for t in state.tenants if t != tenant.tenant_id), UNKNOWN_TENANT)
        claims.update(tid=other, iss=claims["iss"].replace(tenant.tenant_id, other))
    elif mode == "wrong_audience":
        claims["aud"] = str(uuid.uuid4())
    elif mode == "wrong_issuer":
        claims["iss"] = f"https://login.attacker.example/{tenant.tenant_id}/v2.0"
    elif mode == "no_nonce":
        claims.pop("nonce", None)
    elif mode == "bad_nonce":
        claims["nonce"] = secrets.token_urlsafe(16)


def id_token(base_url: str, tenant: EntraTenant, app: EntraApp, user: EntraUser, scope: str, nonce: str | None,
             spoil: str | None = None, extra_claims: dict | None = None) -> str:
    """A v2.0 ID token for ``user`` signed in to ``app``, spoiled in the way ``spoil`` names and with
    ``extra_claims`` set (``None`` removes one): test knobs."""
    state = current_state()
    scopes = scope.split()
    claims = {
        "aud": app.client_id, "iss": tokens.v2_issuer(base_url, tenant.tenant_id), "tid": tenant.tenant_id,
        "oid": user.oid, "sub": pairwise_sub(user, app), "ver": "2.0", "uti": uuid.uuid4().hex,
        **tokens.timing(tokens.wall_clock()),
    }
    if "profile" in scopes:
        claims.update(name=user.display_name, preferred_username=user.username)
    if "email" in scopes:
        claims["email"] = user.username
    roles = tokens.granted_roles(user, app)
    if roles:
        claims["roles"] = roles
    claims.update(tokens.group_claims(tenant, user))
    if nonce:
        claims["nonce"] = nonce
    _spoil(state, claims, spoil, tenant)
    for name, value in (extra_claims or {}).items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    token = tokens.sign(state, claims)
    if spoil == "tampered":  # change the payload after signing: the signature no longer matches
        header, _payload, signature = token.split(".")
        claims["roles"] = sorted({*claims.get("roles", []), *app.app_roles})
        token = ".".join([header, _b64url(json.dumps(claims, separators=(",", ":")).encode()), signature])
    return token


def user_token_response(base_url: str, tenant: EntraTenant, app: EntraApp, user: EntraUser, scope: str,
                        nonce: str | None, spoil: str | None = None, extra_claims: dict | None = None) -> dict:
    """The token endpoint's answer for a user: access token, ID token, and a refresh token for offline_access."""
    state = current_state()
    audience = resource_of(scope, tenant, app)
    scopes = scope.split()
    granted = [s for s in scopes if s != "offline_access"]
    if audience == tokens.GRAPH_AUDIENCE and "User.Read" not in granted:
        granted.append("User.Read")
    lifetime = int(tokens.LIFETIME.total_seconds())
    body = {
        "token_type": "Bearer", "scope": " ".join(granted + (["offline_access"] if "offline_access" in scopes else [])),
        "expires_in": lifetime, "ext_expires_in": lifetime,
        # As Entra ID does, ``scp`` names the scopes without their resource (api://x/access_as_user → access_as_user).
        "access_token": tokens.user_token(state, tenant, app, user, audience,
                                          " ".join(s.rsplit("/", 1)[-1] for s in granted if s not in OIDC_SCOPES)),
    }
    if "openid" in scopes:
        body["id_token"] = id_token(base_url, tenant, app, user, scope, nonce, spoil, extra_claims)
    if "offline_access" in scopes:
        refresh = secrets.token_urlsafe(48)
        runtime().refresh_tokens[refresh] = RefreshGrant(tenant.tenant_id, app.client_id, user.oid, scope,
                                                         state.now() + REFRESH_LIFETIME)
        body["refresh_token"] = refresh
    return body


def app_token_response(tenant: EntraTenant, app: EntraApp, scope: str) -> dict:
    """The token endpoint's answer for client credentials (``scope`` is one ``<resource>/.default``)."""
    items = scope.split()
    if not items or any(not item.endswith("/.default") for item in items):
        raise EntraError(400, "invalid_scope", 1002012,
                         f"AADSTS1002012: The provided value for scope {scope} is not valid. Client credential flows "
                         "must have a scope value with /.default suffixed to the resource identifier "
                         "(application ID URI).")
    lifetime = int(tokens.LIFETIME.total_seconds())
    return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
            "access_token": tokens.app_token(current_state(), tenant, app, resource_of(scope, tenant, app))}
