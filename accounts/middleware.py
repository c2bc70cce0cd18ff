"""Sliding sign-in sessions without a database write on every request, and sign-in redirects htmx can follow.

Django's ``SESSION_SAVE_EVERY_REQUEST`` slides the session's expiry by saving it on every response: one write per
page, per API call and per htmx poll (the request page polls several times a second after a change). This
middleware saves the session only when it was last refreshed ``SESSION_REFRESH_SECONDS`` ago or more, so an idle
session still ends ``SESSION_COOKIE_AGE`` after its last use (give or take that interval).
"""
from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django_htmx.http import HttpResponseClientRefresh

from accounts import revalidation

REFRESHED_KEY = "_refreshed_at"


class SessionRefreshMiddleware:
    """Mark a non-empty session modified (so ``SessionMiddleware`` saves it with a new expiry) when due."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if session is None:
            return response
        try:
            refreshed = int(session.get(REFRESHED_KEY, 0))  # loads it: an expired or unknown cookie reads as empty
        except DatabaseError:  # the database is down: the page says so (``/healthz`` answers 503), unrefreshed
            return response
        now = int(time.time())
        if not session.is_empty() and now - refreshed >= settings.SESSION_REFRESH_SECONDS:
            session[REFRESHED_KEY] = now
        return response


class LoginRequiredMiddleware(auth_middleware.LoginRequiredMiddleware):
    """Django's, except for htmx requests (a page's poll once its session ended): these are told to reload the page,
    which then goes to sign in and back to it. A redirect would be followed by the browser and the sign-in page
    swapped into the polled fragment, inside the page."""

    def process_view(self, request: HttpRequest, view_func: Callable, view_args, view_kwargs) -> HttpResponse | None:
        """A public view (``/healthz``) is let through before the user is read, so it answers without loading a
        session: while the database is down it still says so."""
        if not getattr(view_func, "login_required", True):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)

    def handle_no_permission(self, request: HttpRequest, view_func: Callable) -> HttpResponse:
        if request.headers.get("HX-Request") == "true":
            return HttpResponseClientRefresh()
        return super().handle_no_permission(request, view_func)


class RevalidationMiddleware:
    """Send a page that is ``revalidation.due`` through Entra ID's silent sign-in first (public views and the
    re-validation itself excepted)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func: Callable, view_args, view_kwargs) -> HttpResponse | None:
        if not getattr(view_func, "login_required", True) or view_func is revalidation.revalidate:
            return None
        return redirect(revalidation.revalidate_url(request)) if revalidation.due(request) else None
