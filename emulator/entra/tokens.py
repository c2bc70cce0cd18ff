"""Issuing and verifying the emulator's tokens: RS256 JWTs shaped like Entra ID's.

Tokens live on the real clock, not the emulator's virtual one: the programs holding them (MSAL's token cache,
the portal checking an ID token's ``iat``/``exp``) use the real clock, and a test that advances the virtual clock
hours ahead to expire JIT access must not find its cached ARM token suddenly refused.
"""
from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import jwt

from emulator.entra.keys import SigningKey, load_or_create
from emulator.entra.models import EntraApp, EntraTenant, EntraUser

ARM_AUDIENCE = "https://management.azure.com"
GRAPH_AUDIENCE = "https://graph.microsoft.com"
LIFETIME = timedelta(hours=1)
GROUPS_CLAIM_LIMIT = 200  # Entra ID lists at most this many groups in a JWT; beyond it, the overage indicator
LEEWAY = timedelta(minutes=1)
_V2_ISSUER = re.compile(r"^https://[^/]+/(?P<tid>[0-9a-fA-F-]{36})/v2\.0$")
_V1_ISSUER = re.compile(r"^https://sts\.windows\.net/(?P<tid>[0-9a-fA-F-]{36})/$")


class InvalidToken(Exception):
    """A token the emulator did not issue, or one that is expired, for another audience, or altered."""


def signing_key(state) -> SigningKey:
    """The signing key kept in the state's certificate folder."""
    return load_or_create(state.cert_dir)


def v2_issuer(base_url: str, tenant_id: str) -> str:
    """The issuer of v2.0 ID tokens: ``https://HOST:PORT/{tenant}/v2.0``."""
    return f"{base_url.rstrip('/')}/{tenant_id}/v2.0"


def v1_issuer(tenant_id: str) -> str:
    """The issuer of v1.0 access tokens (what ARM and Graph receive from Entra ID)."""
    return f"https://sts.windows.net/{tenant_id}/"


def sign(state, claims: dict) -> str:
    """Sign ``claims`` with the emulator key (RS256, ``kid`` in the header)."""
    key = signing_key(state)
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, "typ": "JWT"})


def wall_clock() -> datetime:
    """The clock tokens live on (see the module docstring)."""
    return datetime.now(UTC)


def timing(now: datetime, lifetime: timedelta = LIFETIME) -> dict:
    """``iat``, ``nbf`` and ``exp`` for a token issued at ``now``."""
    iat = int(now.timestamp())
    return {"iat": iat, "nbf": iat, "exp": int((now + lifetime).timestamp())}


def granted_roles(user: EntraUser, app: EntraApp) -> list[str]:
    """The user's app role values that ``app`` defines (the ``roles`` claim)."""
    return [role for role in user.app_roles if role in app.app_roles]


def group_claims(tenant: EntraTenant, user: EntraUser) -> dict:
    """The ``groups`` claim, or, for a user in more than ``GROUPS_CLAIM_LIMIT`` groups, Entra ID's overage
    indicator in its place: ``_claim_names`` pointing at a ``_claim_sources`` entry (the endpoint to ask)."""
    if not user.groups:
        return {}
    if len(user.groups) <= GROUPS_CLAIM_LIMIT:
        return {"groups": list(user.groups)}
    endpoint = f"https://graph.windows.net/{tenant.tenant_id}/users/{user.oid}/getMemberObjects"
    return {"_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": endpoint}}}


def app_token(state, tenant: EntraTenant, app: EntraApp, audience: str) -> str:
    """An application (client credentials) access token for ``audience``."""
    claims = {
        "aud": audience, "iss": v1_issuer(tenant.tenant_id), "tid": tenant.tenant_id,
        "oid": app.service_principal_oid, "sub": app.service_principal_oid, "appid": app.client_id,
        "azp": app.client_id, "app_displayname": app.display_name, "idtyp": "app",
        "roles": list(app.graph_permissions) if audience == GRAPH_AUDIENCE else [], "ver": "1.0",
        "uti": uuid.uuid4().hex, **timing(wall_clock()),
    }
    return sign(state, claims)


def user_token(state, tenant: EntraTenant, app: EntraApp, user: EntraUser, audience: str, scope: str) -> str:
    """A delegated access token for ``user`` signed in to ``app``."""
    claims = {
        "aud": audience, "iss": v1_issuer(tenant.tenant_id), "tid": tenant.tenant_id, "oid": user.oid,
        "sub": user.oid, "upn": user.username, "unique_name": user.username,
        "preferred_username": user.username, "name": user.display_name, "appid": app.client_id,
        "azp": app.client_id, "app_displayname": app.display_name, "scp": scope, "idtyp": "user", "ver": "1.0",
        "uti": uuid.uuid4().hex, **timing(wall_clock()),
    }
    roles = granted_roles(user, app)
    if roles:
        claims["roles"] = roles
    claims.update(group_claims(tenant, user))
    return sign(state, claims)


def verify_access_token(state, token: str, audience: str | None = None) -> dict:
    """The claims of a token the emulator issued, checked for signature, lifetime, issuer and audience.

    Raises ``InvalidToken`` with the reason. ``audience`` compares without a trailing slash, so
    ``https://management.azure.com`` and ``https://management.azure.com/`` are the same resource.
    """
    key = signing_key(state)
    try:
        header = jwt.get_unverified_header(token)
        if header.get("kid") != key.kid:
            raise InvalidToken("the token is not signed by a known key")
        claims = jwt.decode(token, key.public_key, algorithms=["RS256"],
                            options={"verify_aud": False, "verify_exp": False, "verify_nbf": False,
                                     "verify_iat": False, "verify_iss": False})
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"the token cannot be validated ({exc})") from exc
    now = wall_clock().timestamp()
    leeway = LEEWAY.total_seconds()
    if not isinstance(claims.get("exp"), int) or claims["exp"] + leeway < now:
        raise InvalidToken("the token is expired")
    if isinstance(claims.get("nbf"), int) and claims["nbf"] - leeway > now:
        raise InvalidToken("the token is not yet valid")
    issuer = str(claims.get("iss", ""))
    match = _V1_ISSUER.match(issuer) or _V2_ISSUER.match(issuer)
    tenant_id = str(claims.get("tid", ""))
    if not match or match["tid"].lower() != tenant_id.lower():
        raise InvalidToken("the token's issuer is not valid")
    if not any(known.lower() == tenant_id.lower() for known in state.tenants):
        raise InvalidToken(f"the token's tenant {tenant_id} is unknown")
    if audience is not None and str(claims.get("aud", "")).rstrip("/") != audience.rstrip("/"):
        raise InvalidToken(f"the token's audience {claims.get('aud')!r} is not valid for this resource")
    return claims
