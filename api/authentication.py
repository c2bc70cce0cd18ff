"""How API callers prove who they are: a personal API token, or an Entra ID access token for the portal's API.

Both resolve to a portal user, whose current roles (``accounts.authz``) then decide every call, exactly as
for that user's browser session: a token never does more than its user.

- ``Authorization: Bearer jit_…`` (or ``Token jit_…``): a personal API token, compared by SHA-256 hash.
  Unknown, revoked or expired tokens, tokens of deactivated users, and tokens whose user's latest Entra sign-in is
  older than ``API_TOKEN_SIGN_IN_MAX_DAYS`` (its roles may have changed since) are refused with 401.
- ``Authorization: Bearer <JWT>``: an Entra ID access token for the portal's app registration (audience the
  client id or ``api://<client id>``, delegated scope ``API_ENTRA_SCOPE``; ID tokens are refused), signed with a
  key of the tenant's JWKS, issued by an allowed tenant
  (v1 ``https://sts.windows.net/<tid>/`` or v2 ``<authority>/<tid>/v2.0``), not expired, and delegated (a user's,
  not an application's). It maps to the portal user by (tenant id, object id) as the sign-in does. A user who
  never signed in to the portal is refused with 401 and told to sign in once: the roles applied are those of
  the user's last portal sign-in (its app roles and groups), so the API and the pages always agree.
"""
from __future__ import annotations

import logging
from datetime import UTC, timedelta

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication

from accounts.backends import claims_fresh
from accounts.oidc import CLOCK_SKEW, SIGNING_ALGORITHMS, https_url, key_set_problem

from . import selectors, services

log = logging.getLogger(__name__)
SCHEMES = ("bearer", "token")
JWKS_CACHE_SECONDS = 600
JWKS_REFRESH_SECONDS = 300
HTTP_TIMEOUT = 10


def _credentials(request) -> tuple[str, str] | None:
    """(scheme, value) of the ``Authorization`` header, lower-case scheme, or ``None``."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None
    parts = header.split()
    if not parts or parts[0].lower() not in SCHEMES:
        return None
    if len(parts) != 2:
        raise exceptions.AuthenticationFailed("Malformed Authorization header: use 'Bearer <token>'.")
    return parts[0].lower(), parts[1]


def _sign_in_recent_enough(user) -> bool:
    """Whether a token may act with the roles of ``user``'s latest Entra sign-in: one at most
    ``API_TOKEN_SIGN_IN_MAX_DAYS`` old (a role taken away in Entra ID is gone at the next sign-in only); none for an
    Entra ID user whose claims were dropped (taken off the app: ``accounts.revalidation``). A user who never signed
    in with Entra ID (a break-glass account) holds no role from it to check."""
    if not user.entra_tenant_id and getattr(user, "sign_in_claims", None) is None:
        return True
    return claims_fresh(user, max_age=timedelta(days=settings.API_TOKEN_SIGN_IN_MAX_DAYS))


class ApiTokenAuthentication(BaseAuthentication):
    """Personal API tokens: ``Authorization: Bearer jit_…`` or ``Token jit_…``."""

    keyword = "Bearer"

    def authenticate(self, request):
        found = _credentials(request)
        if found is None:
            return None
        scheme, value = found
        if not value.startswith(services.TOKEN_PREFIX):
            if scheme == "token":
                raise exceptions.AuthenticationFailed("Not a personal API token (they start with 'jit_').")
            return None  # a JWT: the Entra authenticator's
        token = selectors.token_for_secret(value)
        if token is None:
            raise exceptions.AuthenticationFailed("Unknown API token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API token was revoked.")
        if not token.is_active:
            raise exceptions.AuthenticationFailed(
                f"This API token expired on {token.expires.astimezone(UTC):%Y-%m-%d %H:%M} UTC: create a new one on "
                "the portal's API tokens page.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("The token's user is deactivated.")
        if not _sign_in_recent_enough(token.user):
            if getattr(token.user, "sign_in_claims", None) is None:
                raise exceptions.AuthenticationFailed(
                    "Entra ID refused your latest sign-in to the portal, so this token holds no roles: sign in again "
                    "in the browser, then this token works again.")
            raise exceptions.AuthenticationFailed(
                f"Your latest sign-in to the portal is more than {settings.API_TOKEN_SIGN_IN_MAX_DAYS} days old, too "
                "old for its roles to stand: sign in again in the browser, then this token works again.")
        services.token_touch(token)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


def _unusable(url: str, reason: str) -> exceptions.AuthenticationFailed:
    log.warning("Entra ID metadata at %s is unusable: %s", url, reason)
    return exceptions.AuthenticationFailed(
        "The portal cannot check Entra ID tokens: its Entra ID metadata is unusable; tell the portal's operator.")


def _get_json(url: str) -> dict:
    """The JSON object at ``url`` (Entra ID's metadata), or ``AuthenticationFailed`` with the reason logged."""
    verify = settings.ENTRA_CA_BUNDLE or True
    try:
        response = requests.get(url, timeout=HTTP_TIMEOUT, verify=verify)
        response.raise_for_status()
    except requests.RequestException as exc:
        log.warning("Entra ID metadata at %s unavailable: %s", url, exc)
        raise exceptions.AuthenticationFailed(
            "The portal cannot reach Entra ID to check this token right now; try again.") from exc
    try:
        body = response.json()
    except ValueError:
        raise _unusable(url, f"not JSON ({response.headers.get('Content-Type') or 'no content type'})") from None
    if not isinstance(body, dict):
        raise _unusable(url, f"a JSON {type(body).__name__}, not an object")
    return body


def _discovery() -> tuple[str, str]:
    """(cache key, URL) of the configured tenant's OpenID discovery document and the metadata read from it."""
    tenant = settings.ENTRA_TENANT_ID or "organizations"
    return (f"api:entra-metadata:{settings.ENTRA_AUTHORITY}:{tenant}",
            f"{settings.ENTRA_AUTHORITY}/{tenant}/v2.0/.well-known/openid-configuration")


def _metadata(refresh: bool = False) -> tuple[dict, str]:
    """(JWKS, v2 issuer template) of the configured tenant, cached for ``JWKS_CACHE_SECONDS`` once both are
    usable; a discovery document without an https ``jwks_uri``, or a JWKS whose ``keys`` is not a list of
    objects, is ``AuthenticationFailed`` (and not kept)."""
    key, url = _discovery()
    cached = None if refresh else cache.get(key)
    if cached is None:
        discovery = _get_json(url)
        jwks_uri = discovery.get("jwks_uri")
        if not https_url(jwks_uri):
            raise _unusable(url, f"its jwks_uri {jwks_uri!r} is not an https URL")
        jwks = _get_json(jwks_uri)
        if problem := key_set_problem(jwks):
            raise _unusable(jwks_uri, problem)
        cached = {"jwks": jwks, "issuer": str(discovery.get("issuer", ""))}
        cache.set(key, cached, JWKS_CACHE_SECONDS)
    return cached["jwks"], cached["issuer"]


def _may_refresh_keys() -> bool:
    """At most one forced refetch of the tenant's keys per ``JWKS_REFRESH_SECONDS`` (an unknown key id in a
    stranger's token must not make every request fetch Entra's metadata)."""
    return cache.add(f"api:entra-metadata-refreshed:{settings.ENTRA_AUTHORITY}", True, JWKS_REFRESH_SECONDS)


def _signing_key(kid: str | None, alg: str) -> jwt.PyJWK:
    """The tenant's key ``kid`` for ``alg``; a published key the portal cannot read is ``AuthenticationFailed``,
    and the cached metadata is dropped so the next token fetches it again."""
    for refresh in (False, True):  # a key not in the cached set: Entra may have rolled its keys
        if refresh and not _may_refresh_keys():
            break
        jwks, _issuer = _metadata(refresh)
        for jwk in jwks["keys"]:
            if jwk.get("kid") == kid:
                try:
                    return jwt.PyJWK(jwk, algorithm=alg)
                except (jwt.PyJWKError, jwt.InvalidKeyError) as exc:
                    cache_key, url = _discovery()
                    cache.delete(cache_key)
                    raise _unusable(url, f"its key {kid!r} cannot be read as {alg}: {exc}") from None
    raise exceptions.AuthenticationFailed("The token is signed with a key your Entra ID tenant does not publish.")


def verify_access_token(token: str) -> dict:
    """The claims of an Entra ID access token for the portal's API, or ``AuthenticationFailed`` with the reason."""
    client_id = settings.ENTRA_CLIENT_ID
    if not client_id:
        raise exceptions.AuthenticationFailed("Entra ID bearer tokens are not configured on this portal.")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise exceptions.AuthenticationFailed("The bearer token is neither an API token nor a JWT.") from exc
    if header.get("alg") not in SIGNING_ALGORITHMS:
        raise exceptions.AuthenticationFailed(f"Tokens signed with {header.get('alg')!r} are refused.")
    key = _signing_key(header.get("kid"), header["alg"])
    try:
        claims = jwt.decode(token, key=key, algorithms=list(SIGNING_ALGORITHMS),
                            audience=[client_id, f"api://{client_id}"], leeway=CLOCK_SKEW,
                            options={"require": ["exp", "iat", "iss", "aud", "tid", "oid"], "verify_iss": False})
    except jwt.ExpiredSignatureError as exc:
        raise exceptions.AuthenticationFailed("The Entra ID token has expired.") from exc
    except jwt.InvalidAudienceError as exc:
        raise exceptions.AuthenticationFailed(
            f"The Entra ID token is for another application; ask for a token for api://{client_id}.") from exc
    except jwt.InvalidSignatureError as exc:
        raise exceptions.AuthenticationFailed("The Entra ID token's signature does not verify.") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise exceptions.AuthenticationFailed(f"The Entra ID token lacks the '{exc.claim}' claim.") from exc
    except jwt.PyJWTError as exc:
        raise exceptions.AuthenticationFailed("The Entra ID token is not valid.") from exc
    tenant = str(claims["tid"]).lower()
    if tenant not in {t.lower() for t in settings.ENTRA_ALLOWED_TENANTS}:
        raise exceptions.AuthenticationFailed(f"Tenant {claims['tid']} may not use this portal.")
    _jwks, issuer = _metadata()
    allowed_issuers = {f"https://sts.windows.net/{tenant}/", f"{settings.ENTRA_AUTHORITY}/{tenant}/v2.0",
                       issuer.replace("{tenantid}", tenant).lower()}
    if str(claims["iss"]).lower() not in allowed_issuers:
        raise exceptions.AuthenticationFailed(f"The Entra ID token was issued by {claims['iss']!r}, not by your "
                                              "tenant's Entra ID.")
    if claims.get("idtyp") == "app" or not (claims.get("scp") or claims.get("upn") or
                                            claims.get("preferred_username")):
        raise exceptions.AuthenticationFailed(
            "Application tokens are not accepted: use a user's delegated token or a personal API token.")
    if settings.API_ENTRA_SCOPE not in str(claims.get("scp", "")).split() or "nonce" in claims:
        raise exceptions.AuthenticationFailed(
            f"Only access tokens for the portal's API are accepted (scope api://{client_id}/"
            f"{settings.API_ENTRA_SCOPE}); a sign-in ID token is not one.")
    return claims


class EntraBearerAuthentication(BaseAuthentication):
    """Entra ID access tokens (JWT) for the portal's API: ``Authorization: Bearer eyJ…``."""

    def authenticate(self, request):
        found = _credentials(request)
        if found is None or found[0] != "bearer" or found[1].startswith(services.TOKEN_PREFIX):
            return None
        claims = verify_access_token(found[1])
        user = get_user_model().objects.select_related("sign_in_claims").filter(
            entra_tenant_id=str(claims["tid"]).lower(), entra_object_id=str(claims["oid"]).lower()).first()
        if user is None:
            raise exceptions.AuthenticationFailed(
                "You have not signed in to the portal yet: sign in once in the browser, then use the API.")
        if not user.is_active:
            raise exceptions.AuthenticationFailed("Your portal account is deactivated.")
        if not claims_fresh(user):  # roles come from that sign-in, as for a browser session
            raise exceptions.AuthenticationFailed(
                "Your latest sign-in to the portal is too old for its roles to stand: sign in again in the browser, "
                "then use the API.")
        return user, claims

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class PortalSessionAuthentication(SessionAuthentication):
    """The browser session (the docs page and the browsable API), CSRF-checked on writes as DRF does."""
