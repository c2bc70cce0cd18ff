"""django-allauth adapters: no local sign-ups, Entra ID users found by tenant and object id, clear failures."""
from __future__ import annotations

import ast
import functools
import json
import re
import unicodedata

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.providers.base.constants import AuthError
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.providers.openid_connect.provider import OpenIDConnectProvider
from django.conf import settings
from django.http import HttpRequest
from requests import RequestException

from accounts import revalidation, services
from accounts.backends import ENTRA_BACKEND
from accounts.config import ENTRA_PROVIDER_ID
from accounts.oidc import EntraProvider, SignInRefused, render_sign_in_cancelled, render_sign_in_failed
from policies.access.client_ip import client_ip

STATE_LOST = (
    "This sign-in response does not belong to a sign-in started in this browser, or it was already used, or "
    "it is more than 10 minutes old."
)


class PortalAccountAdapter(DefaultAccountAdapter):
    """Local accounts are never created through the site; the break-glass superuser is made by command."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False


def _printable(text: str) -> str:
    """``text`` from a query parameter with its control characters (NUL, line breaks) as single spaces, trimmed."""
    return " ".join("".join(" " if unicodedata.category(c).startswith("C") else c for c in text).split())


# What Entra ID's ``access_denied`` carries when the user, not the organisation, said no: Cancel on its sign-in page
# (``error_subcode=cancel``), or declining the app's consent (AADSTS65004, the whole code: not AADSTS650049).
USER_DECLINED = re.compile(r"\bAADSTS65004\b")
# Room for Entra ID's longest descriptions with the Trace ID, Correlation ID and Timestamp it appends, which its
# administrator needs to find the sign-in in the sign-in logs (AADSTS50105's runs to about 600 characters).
DESCRIPTION_LIMIT = 1000


# What allauth's OAuth2Error says when the token endpoint refuses the code: its prefix, then the body's bytes literal.
TOKEN_ERROR_PREFIX = "Error retrieving access token: "
# AADSTS codes with which Entra ID's token endpoint refuses a sign-in code for the organisation's reasons, not the
# code's: the user is not assigned to the app (AADSTS50105, when taken off it after the code was issued), a
# Conditional Access policy blocks them (AADSTS53003).
ORGANISATION_REFUSALS = frozenset({50105, 53003})


def token_error(exception: BaseException | None) -> dict | None:
    """Entra ID's JSON error (``error``, ``error_description``, ``error_codes``) from the token endpoint's refusal of
    the sign-in code, which allauth raises as ``OAuth2Error`` with the body in its message; ``None`` for anything
    else."""
    if not isinstance(exception, OAuth2Error) or not str(exception).startswith(TOKEN_ERROR_PREFIX):
        return None
    try:
        body = ast.literal_eval(str(exception).removeprefix(TOKEN_ERROR_PREFIX))
        error = json.loads(body) if isinstance(body, bytes) else None
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return error if isinstance(error, dict) and isinstance(error.get("error"), str) else None


def organisation_refused(error: dict | None) -> int | None:
    """The AADSTS code with which the token endpoint's ``error`` refuses the user for the organisation's reasons
    (``ORGANISATION_REFUSALS``), or ``None``."""
    codes = (error or {}).get("error_codes")
    if not isinstance(codes, list):
        return None
    return next((code for code in codes if type(code) is int and code in ORGANISATION_REFUSALS), None)


def _organisation_refusal(description: str) -> str:
    return (f"Your organisation's Entra ID refused to sign you in: {description.rstrip('.')}. Give this message to "
            "your Entra ID administrator.")


def user_cancelled(request: HttpRequest) -> bool:
    """Whether an ``access_denied`` answer says the user cancelled or declined (or says nothing more); otherwise the
    organisation's Entra ID refused them (AADSTS50105, not assigned to the app; a Conditional Access policy; ...).
    The description is judged as the page would show it (``_printable``): control characters alone say nothing."""
    if request.GET.get("error_subcode", "").strip().lower() == "cancel":
        return True
    description = _printable(request.GET.get("error_description", ""))
    return not description or USER_DECLINED.search(description) is not None


def describe_failure(request: HttpRequest, error: str, exception: BaseException | None, extra_context: dict) -> str:
    """A plain-words reason for a failed sign-in."""
    if isinstance(exception, SignInRefused):
        return exception.reason
    if isinstance(exception, RequestException):
        return f"The portal could not reach Entra ID ({type(exception).__name__}). Try again in a moment."
    if "state_id" in extra_context and extra_context.get("state") is None:
        return STATE_LOST
    if "error" in request.GET:
        code = _printable(request.GET.get("error", ""))[:100]
        description = _printable(request.GET.get("error_description", ""))[:DESCRIPTION_LIMIT]
        if not (code or description):
            return "Entra ID did not sign you in, and did not say why."
        if code == "access_denied" and description:
            return _organisation_refusal(description)
        return f"Entra ID did not sign you in: {' — '.join(part for part in (code, description) if part)}."
    if "code" not in request.GET:
        return ("Entra ID's answer carried neither a sign-in code nor an error, so nothing was signed in. "
                "Try again.")
    refused = token_error(exception)
    description = _printable(str((refused or {}).get("error_description") or ""))[:DESCRIPTION_LIMIT]
    if code := organisation_refused(refused):
        return _organisation_refusal(description or f"AADSTS{code}")
    if exception is not None and "access token" in str(exception):
        return ("Entra ID refused to complete the sign-in (the one-time sign-in code was rejected, for example "
                "because it was already used)." + (f" Entra ID said: {description}" if description else ""))
    if error == AuthError.DENIED:
        return "Entra ID denied the sign-in."
    return "The sign-in did not complete."


class EntraSocialAccountAdapter(DefaultSocialAccountAdapter):
    """Ties Entra ID sign-ins to portal users and turns every failure into the sign-in-failed page."""

    def get_requests_session(self):
        """allauth's HTTP session, trusting ``ENTRA_CA_BUNDLE`` (a private authority) when it is set."""
        session = super().get_requests_session()
        if settings.ENTRA_CA_BUNDLE:
            # Per request, so that REQUESTS_CA_BUNDLE in the environment cannot take precedence.
            session.verify = str(settings.ENTRA_CA_BUNDLE)
            session.request = functools.partial(session.request, verify=session.verify)
        return session

    def get_provider(self, request: HttpRequest, provider, client_id=None):
        instance = super().get_provider(request, provider, client_id=client_id)
        if type(instance) is OpenIDConnectProvider and instance.app.provider_id == ENTRA_PROVIDER_ID:
            instance = EntraProvider(request, app=instance.app)
        return instance

    def is_open_for_signup(self, request: HttpRequest, sociallogin) -> bool:
        return True

    def is_auto_signup_allowed(self, request: HttpRequest, sociallogin) -> bool:
        return True

    def pre_social_login(self, request: HttpRequest, sociallogin) -> None:
        """Record the sign-in on the user the token names (by tenant and object id) and link the account."""
        claims = sociallogin.account.extra_data.get("id_token") or {}
        try:
            user = services.user_sign_in_record(claims=claims, client_ip=client_ip(request.META))
        except services.SignInClaimsError as exc:
            raise ImmediateHttpResponse(render_sign_in_failed(
                request, str(exc), next_url=sociallogin.state.get("next"))) from exc
        except services.SignInAccountDisabled as exc:
            raise ImmediateHttpResponse(render_sign_in_failed(
                request, str(exc), status=403, next_url=sociallogin.state.get("next"))) from exc
        for_user = revalidation.revalidating(sociallogin.state)
        if for_user is not None and (for_user != user.pk or request.user.pk != user.pk):
            # Entra ID signed in someone else than the user it was asked to re-validate (login_hint)
            revalidation.end_session(request)
            raise ImmediateHttpResponse(render_sign_in_failed(
                request, "Entra ID answered for another account than yours: the portal session has ended. Sign in "
                         "again.", status=403, next_url=sociallogin.state.get("next")))
        if sociallogin.is_existing:
            if sociallogin.user.pk != user.pk:
                raise ImmediateHttpResponse(
                    render_sign_in_failed(request, "This Entra ID account is linked to another portal user.",
                                          status=403, next_url=sociallogin.state.get("next"))
                )
            sociallogin.user = user
        else:
            sociallogin.connect(request, user)
        sociallogin.user.backend = ENTRA_BACKEND

    def on_authentication_error(self, request: HttpRequest, provider, error=None, exception=None,
                                extra_context=None) -> None:
        state = (extra_context or {}).get("state")
        next_url = (state or {}).get("next")
        if revalidation.revalidating(state) is not None:
            return self._revalidation_failed(request, error, exception, extra_context or {}, next_url)
        if error == AuthError.CANCELLED and user_cancelled(request):
            raise ImmediateHttpResponse(render_sign_in_cancelled(request, next_url=next_url))
        reason = describe_failure(request, error, exception, extra_context or {})
        # access_denied by the organisation, or its refusal of the sign-in code at the token endpoint
        refused = error == AuthError.CANCELLED or organisation_refused(token_error(exception)) is not None
        status = 403 if refused else 401
        raise ImmediateHttpResponse(render_sign_in_failed(request, reason, status=status, next_url=next_url))

    def _revalidation_failed(self, request: HttpRequest, error, exception, extra_context: dict,
                             next_url: str | None) -> None:
        """A silent re-validation Entra ID did not complete ends the portal session: back to sign in when Entra ID
        needs the user, else the failure page (the organisation's refusal: 403)."""
        if request.GET.get("error") in revalidation.NEEDS_USER:
            raise ImmediateHttpResponse(revalidation.needs_user(request, next_url))
        reason = describe_failure(request, error, exception, extra_context)
        refusal = request.GET.get("error_description", "") if request.GET.get("error") == "access_denied" else ""
        refused = bool(refusal) or organisation_refused(token_error(exception)) is not None
        revalidation.end_session(request, refused=(refusal or reason) if refused else "")
        raise ImmediateHttpResponse(render_sign_in_failed(request, reason, status=403 if refused else 401,
                                                          next_url=next_url))
