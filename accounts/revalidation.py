"""Silent re-validation of Entra ID sign-ins: every ``ENTRA_REVALIDATE_SECONDS`` a signed-in user's next page is
reached through Entra ID's authorize endpoint with ``prompt=none`` and their ``login_hint``.

While their Entra ID session lasts and the app still accepts them, Entra ID answers at once with a code: the
sign-in is recorded again (the roles of its claims, so a role removed in Entra ID is gone within that time) and
the page opens. Otherwise the portal session ends: when Entra ID needs the user (their session there ended), they
sign in again and land on that page; when the organisation refuses them (AADSTS50105, taken off the app) they read
why, and the claims of their earlier sign-in are dropped, which ends their other sessions and their personal API
tokens too. While Entra ID cannot be reached the user carries on, asked again a few minutes later, within
``ENTRA_SIGN_IN_MAX_AGE`` as before.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from allauth.socialaccount.providers.base.constants import AuthProcess
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET

from accounts.access import authenticated_only
from accounts.config import ENTRA_PROVIDER_ID

logger = logging.getLogger(__name__)

# What a re-validation's sign-in state carries (allauth keeps it as the state's ``data``): the portal user it is for.
STATE_KEY = "revalidate"
# After Entra ID could not be reached, the session is not asked again for this long (seconds).
RETRY_KEY = "_revalidate_after"
RETRY_SECONDS = 300
# Entra ID's answers to ``prompt=none`` that need the user: sign in interactively.
NEEDS_USER = frozenset({"login_required", "interaction_required", "consent_required", "account_selection_required"})
# The refusal that takes the user off the app everywhere: not assigned to it (not a Conditional Access refusal,
# which may hold for this device or place only).
NOT_ASSIGNED = "AADSTS50105"


def due(request: HttpRequest) -> bool:
    """Whether this request is a page a signed-in Entra ID user opens (a GET the browser navigates to, not an htmx
    poll or an API call) while their latest sign-in is older than ``ENTRA_REVALIDATE_SECONDS``."""
    seconds = settings.ENTRA_REVALIDATE_SECONDS
    user = request.user
    if not seconds or request.method != "GET" or not user.is_authenticated or not user.entra_tenant_id:
        return False
    if request.headers.get("HX-Request") or request.headers.get("Sec-Fetch-Dest", "document") != "document":
        return False
    if "text/html" not in request.headers.get("Accept", "") or request.path_info.startswith("/api/"):
        return False
    if time.time() < request.session.get(RETRY_KEY, 0):
        return False
    claims = getattr(user, "sign_in_claims", None)
    return claims is not None and claims.signed_in_at < timezone.now() - timedelta(seconds=seconds)


def next_check(claims) -> datetime | None:
    """When the sign-in of ``claims`` is re-validated: at the first page after it (``None``: never)."""
    seconds = settings.ENTRA_REVALIDATE_SECONDS
    return claims.signed_in_at + timedelta(seconds=seconds) if seconds and claims is not None else None


def revalidate_url(request: HttpRequest) -> str:
    """Where a page that is ``due`` sends the browser: the silent sign-in, then back to this page."""
    return f"{reverse('revalidate')}?{urlencode({'next': request.get_full_path()})}"


def _next(request: HttpRequest) -> str:
    target = request.GET.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("dashboard")


def login_hint(user) -> str:
    """The username Entra ID knows the user by: the portal's, without the ``#<object id>`` it adds when another
    portal user holds the same name (``services._free_username``)."""
    suffix = f"#{user.entra_object_id[:8]}"
    return user.username.removesuffix(suffix) if user.entra_object_id else user.username


@authenticated_only
@require_GET
def revalidate(request: HttpRequest) -> HttpResponse:
    """Send the signed-in user to Entra ID's authorize endpoint with ``prompt=none`` and their username as
    ``login_hint``; its answer comes back to the sign-in callback (``adapters``). Back to ``next`` when nothing is
    due, or when Entra ID cannot be reached (asked again after ``RETRY_SECONDS``)."""
    from accounts.oidc import EntraOAuth2Adapter, SignInRefused

    target = _next(request)
    if not due(request):
        return redirect(target)
    adapter = EntraOAuth2Adapter(request, ENTRA_PROVIDER_ID)
    try:
        provider = adapter.get_provider()
        auth_params = {**provider.get_auth_params(), "prompt": "none", "login_hint": login_hint(request.user)}
        return provider.redirect(request, AuthProcess.LOGIN, next_url=target, data={STATE_KEY: request.user.pk},
                                 auth_params=auth_params)
    except (SignInRefused, OSError, KeyError, ValueError) as exc:
        logger.warning("Entra ID sign-in re-validation of %s postponed: %s", request.user, exc)
        request.session[RETRY_KEY] = int(time.time()) + RETRY_SECONDS
        return redirect(target)


def revalidating(state: dict | None) -> int | None:
    """The portal user a sign-in's state re-validates, or ``None`` for a sign-in of its own."""
    value = ((state or {}).get("data") or {}).get(STATE_KEY)
    return value if type(value) is int else None


def end_session(request: HttpRequest, *, refused: str = "") -> None:
    """End the portal session of a failed re-validation. ``refused``: Entra ID's description of the organisation's
    refusal; when it says the user is not assigned to the app, their claims go too (every session and personal API
    token of theirs stops acting)."""
    from accounts.models import SignInClaims

    user = request.user
    if NOT_ASSIGNED in refused and user.is_authenticated:
        SignInClaims.objects.filter(user=user).delete()
    logout(request)


def needs_user(request: HttpRequest, next_url: str | None) -> HttpResponse:
    """Entra ID needs the user (``NEEDS_USER``): the portal session ends, and the sign-in page leads back."""
    from accounts.oidc import retry_url

    end_session(request)
    messages.info(request, "Your Entra ID session has ended. Sign in again to continue.")
    return redirect(retry_url(request, next_url))
