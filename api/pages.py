"""The user's "API tokens" page: list own tokens, create one (its secret shown once), revoke one (after a confirm
page)."""
from __future__ import annotations

from datetime import UTC

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.access import authenticated_only, owner_only
from jitportal.lib import sealing
from jitportal.lib.times import UtcDateTimeField, zoned_text
from policies.access.client_ip import client_ip

from . import selectors, services
from .models import ApiToken

SECRET_SESSION_KEY = "api_token_secret"


def _local_input(moment) -> str:
    """``moment`` as a ``datetime-local`` input shows it, in UTC, to the minute."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, label="Name", help_text="What the token is for, e.g. 'deploy script'.")
    expires_at = UtcDateTimeField(required=False, label="Expires (UTC)")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        now = timezone.now()
        field = self.fields["expires_at"]
        field.initial = _local_input(services.default_expiry(now))
        field.widget = forms.DateTimeInput(attrs={"type": "datetime-local", "min": _local_input(now),
                                                  "max": _local_input(services.latest_expiry(now))})
        field.help_text = (f"{settings.API_TOKEN_DEFAULT_DAYS} days from now unless you change it; at most "
                           f"{settings.API_TOKEN_MAX_DAYS} days. Every token expires.")

    def clean_expires_at(self):
        """The field says UTC (``UtcDateTimeField`` reads it so, whatever the portal's time zone). Left empty, it
        asks for a token that never expires: refused, saying what is allowed."""
        value = self.cleaned_data.get("expires_at")
        if problem := services.expiry_problem(value):
            raise ValidationError(problem)
        return value


@authenticated_only
@never_cache  # it may show a new secret
@require_http_methods(["GET", "HEAD", "POST"])  # a HEAD leaves a new secret for the GET (below)
def api_tokens(request: HttpRequest) -> HttpResponse:
    """List the user's tokens; POST makes one (secret shown once, after a redirect). Revoking is asked on its own
    page (``api_token_revoke``); a list page of before that posting ``revoke`` is sent there, revoking nothing."""
    form = TokenForm()
    address = client_ip(request.META)
    if request.method == "POST" and request.POST.get("revoke"):
        token = selectors.token_get(request.user, request.POST["revoke"])
        return redirect("api_token_revoke", pk=token.pk)
    if request.method == "POST":
        form = TokenForm(request.POST)
        if form.is_valid():
            try:
                issued = services.token_create(actor=request.user, name=form.cleaned_data["name"],
                                               expires_at=form.cleaned_data["expires_at"], client_ip=address)
            except (ValidationError, PermissionDenied) as exc:
                form.add_error(None, getattr(exc, "messages", [str(exc)]))
            else:
                # POST-redirect-GET: a reload shows the list, it does not mint a second token.
                sealing.keep_once(request.session, SECRET_SESSION_KEY, issued.secret)
                return redirect("api_tokens")
    return render(request, "api/tokens.html", {
        "title": "API tokens", "tokens": selectors.tokens_for_user(request.user), "form": form,
        "secret": (sealing.take_once(request.session, SECRET_SESSION_KEY) or {}).get("secret")
        if request.method == "GET" else None,
        "max_days": settings.API_TOKEN_MAX_DAYS, "sign_in_max_days": settings.API_TOKEN_SIGN_IN_MAX_DAYS,
        "docs_url": reverse("api:docs"), "api_url": request.build_absolute_uri(reverse("api:vms")),
    }, status=400 if request.method == "POST" else 200)


@owner_only(object_model=ApiToken, owner_field="user")
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def api_token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Confirm (GET) and revoke (POST) one of the user's own tokens; a token that no longer works has nothing
    to revoke, and the list says why."""
    token = selectors.token_get(request.user, pk)
    if token.status != "active":
        messages.info(request, f"Token '{token.name}' is already {token.status}: it no longer works.")
        return redirect("api_tokens")
    if request.method == "POST":
        services.token_revoke(actor=request.user, token=token, client_ip=client_ip(request.META))
        messages.success(request, f"Token '{token.name}' revoked: it no longer works.")
        return redirect("api_tokens")
    used = f"last used {zoned_text(token.last_used_at)}" if token.last_used_at else "never used"
    return render(request, "generic/confirm.html", {
        "title": f"Revoke token {token.name}", "question": f"Revoke the token “{token.name}” (jit_{token.prefix}…)?",
        "consequence": f"Scripts using it stop working at once: every call with it is refused. It was {used}. "
                       "This cannot be undone; create a new token if you need one again.",
        "confirm_label": "Yes, revoke", "cancel_url": reverse("api_tokens"),
        "crumbs": [(reverse("api_tokens"), "API tokens")]})
