"""Issuing and verifying the emulator's tokens (RS256 JWTs, shaped like Entra ID's)."""
from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import jwt

from emulator.entra.keys import SigningKey, load_or_create

ARM_AUDIENCE = "https://management.azure.com"
GRAPH_AUDIENCE = "https://graph.microsoft.com"
LIFETIME = timedelta(hours=1)
LEEWAY = timedelta(minutes=1)
_V2_ISSUER = re.compile(r"^https://[^/]+/(?P<tid>[0-9a-fA-F-]{36})/v2\.0$")
_V1_ISSUER = re.compile(r"^https://sts\.windows\.net/(?P<tid>[0-9a-fA-F-]{36})/$")


class InvalidToken(Exception):
    """A token the emulator did not issue, or one that is expired, for another audience, or altered."""


def signing_key(state) -> SigningKey:
    """The state's signing key, loaded once per state object."""
    key = getattr(state, "_entra_signing_key", None)
    if key is None:
        key = load_or_create(state.cert_dir)
        state._entra_signing_key = key
    return key


def v2_issuer(base_url: str, tenant_id: str) -> str:
    return f"{base_url.rstrip('/')}/{tenant_id}/v2.0"


def v1_issuer(tenant_id: str) -> str:
    return f"https://sts.windows.net/{tenant_id}/"


def sign(state, claims: dict) -> str:
    """Sign ``claims`` with the emulator key (RS256, ``kid`` in the header)."""
    key = signing_key(state)
    return jwt.encode(claims, key.private_pem, algorithm="RS256", headers={"kid": key.kid, "typ": "JWT"})


def wall_clock() -> datetime:
    """Tokens live on real time: advancing the emulator's virtual clock (for JIT expiry) must not expire them."""
    return datetime.now(UTC)


def timing(now: datetime, lifetime: timedelta = LIFETIME) -> dict:
    iat = int(now.timestamp())
    return {"iat": iat, "nbf": iat, "exp": int((now + lifetime).timestamp())}


def app_token(state, tenant, app, audience: str) -> str:
    """An application (client credentials) access token."""
    claims = {
        "aud": audience, "iss": v1_issuer(tenant.tenant_id), "tid": tenant.tenant_id,
        "oid": app.service_principal_oid, "sub": app.service_principal_oid, "appid": app.client_id,
        "azp": app.client_id, "idtyp": "app", "roles": [], "ver": "1.0", "uti": uuid.uuid4().hex,
        **timing(wall_clock()),
    }
    return sign(state, claims)


def user_token(state, tenant, app, user, audience: str, scope: str) -> str:
    """A delegated access token for ``user`` signed in to ``app``."""
    claims = {
        "aud": audience, "iss": v1_issuer(tenant.tenant_id), "tid": tenant.tenant_id, "oid": user.oid,
        "sub": user.oid, "upn": user.username, "preferred_username": user.username, "name": user.display_name,
        "appid": app.client_id, "azp": app.client_id, "scp": scope, "idtyp": "user", "ver": "1.0",
        "uti": uuid.uuid4().hex, **timing(wall_clock()),
    }
    roles = [r for r in user.app_roles if r in app.app_roles]
    if roles:
        claims["roles"] = roles
    if user.groups:
        claims["groups"] = list(user.groups)
    return sign(state, claims)


def verify_access_token(state, token: str, audience: str | None = None) -> dict:
    """Verify a token the emulator issued: signature, lifetime (wall clock), issuer, audience."""
    key = signing_key(state)
    try:
        header = jwt.get_unverified_header(token)
        if header.get("kid") != key.kid:
            raise InvalidToken("the token is not signed by a known key")
        claims = jwt.decode(token, key.public_pem, algorithms=["RS256"],
                            options={"verify_aud": False, "verify_exp": False, "verify_nbf": False,
                                     "verify_iat": False})
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"the token cannot be validated ({exc})") from exc
    now = wall_clock().timestamp()
    if claims.get("exp", 0) + LEEWAY.total_seconds() < now:
        raise InvalidToken("the token is expired")
    if claims.get("nbf", 0) - LEEWAY.total_seconds() > now:
        raise InvalidToken("the token is not yet valid")
    issuer = str(claims.get("iss", ""))
    match = _V1_ISSUER.match(issuer) or _V2_ISSUER.match(issuer)
    if not match or match["tid"].lower() != str(claims.get("tid", "")).lower():
        raise InvalidToken("the token's issuer is not valid")
    if claims["tid"] not in state.tenants:
        raise InvalidToken("the token's tenant is unknown")
    if audience is not None and str(claims.get("aud", "")).rstrip("/") != audience.rstrip("/"):
        raise InvalidToken("the token's audience is not valid for this resource")
    return claims
