"""Sign-in with Entra ID through django-allauth's OpenID Connect provider, with the checks it lacks.

allauth's generic provider validates the ID token's signature only when the token did not come straight
from the token endpoint, does not check ``nonce``, and knows nothing of tenants. The portal's provider and
adapter add: a nonce per sign-in (stored in the one-time state, compared to the token's, and recorded so
a token can be used once), signature verification against the tenant's JWKS always, ``tid`` in the allowed
tenants, and the issuer equal to that tenant's issuer. Every refusal raises ``SignInRefused`` with a reason
in plain words, which the sign-in-failed page shows.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import jwt
from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.base.constants import AuthProcess
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView, OAuth2LoginView
from allauth.socialaccount.providers.openid_connect.provider import OpenIDConnectProvider
from allauth.socialaccount.providers.openid_connect.views import OpenIDConnectOAuth2Adapter
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods

from accounts.config import ENTRA_PROVIDER_ID
from jitportal.lib.text import without_nul

logger = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(minutes=2)
NONCE_RETENTION = timedelta(days=2)
SIGNING_ALGORITHMS = ("RS256",)


class SignInRefused(OAuth2Error):
    """A sign-in the portal refuses; ``reason`` is shown to the person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def https_url(value: object) -> bool:
    """Whether ``value`` is an ``https://host/…`` URL (keys fetched over plain http could be anyone's)."""
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname)


# What a sign-in reads from the discovery document: where to send the browser, where to redeem the code (with the
# client secret), where the keys are; each an https URL.
SIGN_IN_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")


def discovery_problem(config: dict) -> str | None:
    """Why the discovery document ``config`` cannot carry a sign-in (an endpoint not https, no issuer), or ``None``."""
    for name in SIGN_IN_ENDPOINTS:
        if not https_url(config.get(name)):
            return f"its {name} {config.get(name)!r} is not an https URL"
    if not isinstance(config.get("issuer"), str):
        return f"its issuer {config.get('issuer')!r} is not a string"
    return None


def key_set_problem(jwks: dict) -> str | None:
    """Why ``jwks`` is no JWK Set (``keys`` a list of objects), or ``None``."""
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        return "it has no keys" if keys is None else f"its keys are a JSON {type(keys).__name__}, not a list"
    for key in keys:
        if not isinstance(key, dict):
            return f"one of its keys is a JSON {type(key).__name__}, not an object"
    return None


def _unusable(document: str, problem: str) -> SignInRefused:
    """The refusal of a sign-in whose Entra ID ``document`` (discovery document or key set) is unusable; the
    ``problem`` goes to the log, for the operator, not to the page."""
    logger.warning("Entra ID's %s is unusable: %s", document, problem)
    return SignInRefused("Entra ID's sign-in metadata is unusable, so the portal cannot check this sign-in. "
                         "Tell the portal's operator (its log says why), then try again.")


def _json_object(url: str, document: str) -> dict:
    """The JSON object Entra ID publishes at ``url``; anything else is ``SignInRefused`` with the reason logged."""
    with get_adapter().get_requests_session() as session:
        response = session.get(url)
        response.raise_for_status()
    try:
        body = response.json()
    except ValueError:
        content_type = response.headers.get("Content-Type") or "no content type"
        raise _unusable(f"{document} at {url}", f"not JSON ({content_type})") from None
    if not isinstance(body, dict):
        raise _unusable(f"{document} at {url}", f"a JSON {type(body).__name__}, not an object")
    return body


def _refuse_for(error: jwt.PyJWTError) -> SignInRefused:
    if isinstance(error, jwt.ExpiredSignatureError):
        return SignInRefused("The sign-in token from Entra ID has expired. Sign in again.")
    if isinstance(error, jwt.InvalidSignatureError):
        return SignInRefused("The sign-in token's signature does not verify: it was altered or not issued "
                             "by your organization's Entra ID.")
    if isinstance(error, jwt.InvalidAudienceError):
        return SignInRefused("The sign-in token was issued for another application, not this portal.")
    if isinstance(error, jwt.MissingRequiredClaimError):
        return SignInRefused(f"The sign-in token lacks the '{error.claim}' claim.")
    if isinstance(error, (jwt.ImmatureSignatureError, jwt.InvalidIssuedAtError)):
        return SignInRefused("The sign-in token is not valid yet; the portal's clock and Entra ID's disagree.")
    return SignInRefused("The sign-in token from Entra ID is not a valid ID token.")


def verify_id_token(
    id_token: str,
    *,
    jwks: dict,
    issuer: str,
    client_id: str,
    allowed_tenants: list[str],
    expected_nonce: str | None,
) -> dict:
    """Verify an Entra ID token completely and return its claims, or raise ``SignInRefused``.

    ``jwks`` is a JWK Set whose ``keys`` are a list of objects (see ``key_set_problem``); ``issuer`` is the
    discovery document's issuer; a multi-tenant one contains ``{tenantid}``.
    """
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError as exc:
        raise SignInRefused("Entra ID returned something that is not an ID token.") from exc
    if header.get("alg") not in SIGNING_ALGORITHMS:
        raise SignInRefused(f"The sign-in token is signed with {header.get('alg')!r}, which the portal refuses.")
    key = None
    for jwk in jwks["keys"]:
        if jwk.get("kid") == header.get("kid"):
            try:
                key = jwt.PyJWK(jwk, algorithm=header["alg"])
            except (jwt.PyJWKError, jwt.InvalidKeyError) as exc:
                raise _unusable("key set", f"its key {jwk['kid']!r} cannot be read as {header['alg']}: {exc}") from None
    if key is None:
        raise SignInRefused("The sign-in token is signed with a key your organization's Entra ID does not publish.")
    try:
        claims = jwt.decode(
            id_token,
            key=key,
            algorithms=list(SIGNING_ALGORITHMS),
            audience=client_id,
            leeway=CLOCK_SKEW,
            options={"require": ["exp", "iat", "iss", "aud", "tid", "oid"], "verify_iss": False},
        )
    except jwt.PyJWTError as exc:
        raise _refuse_for(exc) from exc

    tenant = str(claims["tid"]).lower()
    if tenant not in {t.lower() for t in allowed_tenants}:
        raise SignInRefused(
            f"Your organization (tenant {claims['tid']}) is not allowed to sign in to this portal. "
            "Ask the portal's administrators to add it."
        )
    expected_issuer = issuer.replace("{tenantid}", str(claims["tid"]))
    if claims["iss"] != expected_issuer or f"/{tenant}/" not in str(claims["iss"]).lower() + "/":
        raise SignInRefused(
            f"The sign-in token was issued by {claims['iss']!r}, not by your tenant's Entra ID "
            f"({expected_issuer!r})."
        )
    if not expected_nonce:
        raise SignInRefused("This sign-in was not started by the portal in this browser.")
    token_nonce = claims.get("nonce")
    if not token_nonce:
        raise SignInRefused("The sign-in token carries no nonce, so the portal cannot tell it belongs to this "
                            "sign-in.")
    if not hmac.compare_digest(str(token_nonce), expected_nonce):
        raise SignInRefused("The sign-in token belongs to a different sign-in (its nonce does not match). "
                            "It may have been replayed.")
    return claims


# The claims allauth and the portal read a person's name, user name and e-mail address from, as text.
PROFILE_CLAIMS = ("name", "given_name", "family_name", "preferred_username", "upn", "email", "picture", "user_id")


def profile_as_text(claims: dict) -> dict:
    """``claims`` without the profile claims (``PROFILE_CLAIMS``) that are not text: a token holding a list or an
    object there signs its user in with the others (at worst named by object id), not a 500."""
    return {name: value for name, value in claims.items() if name not in PROFILE_CLAIMS or isinstance(value, str)}


def consume_nonce(nonce: str) -> None:
    """Record that a token with ``nonce`` was accepted; a second one is refused as a replay."""
    digest = hashlib.sha256(nonce.encode()).hexdigest()
    from accounts.models import UsedSignInNonce

    try:
        with transaction.atomic():
            UsedSignInNonce.objects.create(digest=digest)
    except IntegrityError as exc:
        raise SignInRefused("This sign-in token has already been used once (a replayed nonce).") from exc
    UsedSignInNonce.objects.filter(used_at__lt=timezone.now() - NONCE_RETENTION).delete()


class EntraOAuth2Adapter(OpenIDConnectOAuth2Adapter):
    """allauth's OIDC adapter, verifying the ID token with ``verify_id_token`` and the sign-in's state."""

    state: dict | None = None

    @property
    def openid_config(self) -> dict:
        """The discovery document with the app's overrides, as allauth reads it, refused (``SignInRefused``)
        unless it is a JSON object with https endpoints and an issuer (``discovery_problem``); read once per request,
        never kept longer."""
        if not hasattr(self, "_openid_config"):
            provider = self.get_provider()
            config = _json_object(provider.server_url, "discovery document")
            config.update(provider.app.settings.get("openid_configuration_overrides", {}))
            if problem := discovery_problem(config):
                raise _unusable(f"discovery document at {provider.server_url}", problem)
            self._openid_config = config
        return self._openid_config

    def complete_login(self, request: HttpRequest, app, token, **kwargs):
        if not kwargs["response"].get("id_token"):
            raise SignInRefused("Entra ID returned no ID token.")
        return super().complete_login(request, app, token, **kwargs)

    def _decode_id_token(self, app: SocialApp, id_token: str) -> dict:
        config = self.openid_config
        jwks = _json_object(config["jwks_uri"], "key set")
        if problem := key_set_problem(jwks):
            raise _unusable(f"key set at {config['jwks_uri']}", problem)
        claims = verify_id_token(
            id_token,
            jwks=jwks,
            issuer=config["issuer"],
            client_id=app.client_id,
            allowed_tenants=settings.ENTRA_ALLOWED_TENANTS,
            expected_nonce=(self.state or {}).get("nonce"),
        )
        consume_nonce(str(claims["nonce"]))
        # allauth keeps the claims (the account's uid and extra data, its e-mail addresses): none with a NUL, which
        # PostgreSQL refuses; a ``tid`` or ``oid`` that held one is then refused as not Entra ID's.
        return without_nul(profile_as_text(claims))


class EntraProvider(OpenIDConnectProvider):
    """allauth's OIDC provider, sending a nonce and ignoring scope/params/process taken from the URL."""

    oauth2_adapter_class = EntraOAuth2Adapter

    def get_auth_params_from_request(self, request: HttpRequest, action):
        return self.get_auth_params()

    def get_scope_from_request(self, request: HttpRequest):
        return self.get_scope()

    def get_redirect_from_request_kwargs(self, request: HttpRequest) -> dict:
        kwargs = super().get_redirect_from_request_kwargs(request)
        kwargs["process"] = AuthProcess.LOGIN
        return kwargs

    def redirect(self, request: HttpRequest, process, next_url=None, data=None, **kwargs):
        nonce = secrets.token_urlsafe(32)
        auth_params = dict(kwargs.pop("auth_params", None) or self.get_auth_params())
        auth_params["nonce"] = nonce
        return super().redirect(request, process, next_url, data, auth_params=auth_params, nonce=nonce, **kwargs)


class EntraCallbackView(OAuth2CallbackView):
    """allauth's callback, handing the sign-in's one-time state (and so its nonce) to the adapter."""

    def _get_state(self, request: HttpRequest, provider):
        state, response = super()._get_state(request, provider)
        self.adapter.state = state
        return state, response


def retry_url(request: HttpRequest, next_url: str | None = None) -> str:
    """The sign-in page, which takes the user on to ``next_url`` (where the failed sign-in was to lead) once they
    are signed in, when that is a page of this site."""
    login = reverse("login")
    if next_url and url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()},
                                                    require_https=request.is_secure()):
        return f"{login}?{urlencode({'next': next_url})}"
    return login


def render_sign_in_failed(request: HttpRequest, reason: str, *, status: int = 401, next_url: str | None = None
                          ) -> HttpResponse:
    """The clear page a failed sign-in lands on: what happened and a way to try again (on to ``next_url``)."""
    logger.warning("Entra ID sign-in refused: %s", reason)
    return render(
        request,
        "accounts/sign_in_failed.html",
        {"title": "Sign-in failed", "reason": reason, "retry_url": retry_url(request, next_url)},
        status=status,
    )


def render_sign_in_cancelled(request: HttpRequest, *, next_url: str | None = None) -> HttpResponse:
    """The page a cancelled sign-in lands on (Try again leads on to ``next_url``)."""
    return render(request, "accounts/sign_in_cancelled.html", {"title": "Sign-in cancelled",
                                                               "retry_url": retry_url(request, next_url)})


def _run(view_class, request: HttpRequest, provider_id: str) -> HttpResponse:
    if provider_id != ENTRA_PROVIDER_ID:
        raise Http404("No such sign-in provider.")
    adapter = EntraOAuth2Adapter(request, provider_id)
    try:
        return view_class.adapter_view(adapter)(request)
    except SocialApp.DoesNotExist as exc:
        raise Http404("Sign-in with Entra ID is not configured.") from exc
    # Try again leads where the sign-in was to: the callback's state names it, the start's form sends it.
    except SignInRefused as exc:  # an unusable discovery document, read before allauth's own handling
        return render_sign_in_failed(request, exc.reason, next_url=_next_of(request, adapter))
    except OSError as exc:  # requests' errors, and an unreadable ENTRA_CA_BUNDLE
        return render_sign_in_failed(request, f"The portal could not reach Entra ID ({type(exc).__name__}). "
                                              "Try again in a moment.", status=502,
                                     next_url=_next_of(request, adapter))
    except (KeyError, ValueError) as exc:
        return render_sign_in_failed(request, "Entra ID's configuration document is not usable "
                                              f"({type(exc).__name__}: {exc}).", status=502,
                                     next_url=_next_of(request, adapter))


def _next_of(request: HttpRequest, adapter: EntraOAuth2Adapter) -> str | None:
    """Where the sign-in was to lead: the callback's state, else the start's ``next`` field."""
    return (adapter.state or {}).get("next") or request.POST.get("next") or None


# No HEAD: allauth shows its confirmation for a GET only and takes any other method as the POST that starts a sign-in
# (a state kept in the session, Entra ID's discovery document read, a redirect to Entra ID).
@require_http_methods(["GET", "POST"])
def entra_login(request: HttpRequest, provider_id: str) -> HttpResponse:
    """Start a sign-in: POST redirects to Entra ID (GET shows a confirmation button, as allauth does)."""
    return _run(OAuth2LoginView, request, provider_id)


@require_GET  # no HEAD: it redeems the sign-in's one-time state and code, which a HEAD would spend
def entra_callback(request: HttpRequest, provider_id: str) -> HttpResponse:
    """Finish a sign-in: redeem the code (with PKCE), verify the ID token, sign the user in."""
    return _run(EntraCallbackView, request, provider_id)
