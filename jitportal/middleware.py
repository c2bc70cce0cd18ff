"""The Content-Security-Policy header on every response (django-csp), with what the Entra sign-in needs; the
portal's page for a 405."""
from __future__ import annotations

from collections.abc import Callable

from csp.constants import HEADER
from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.http import HttpRequest, HttpResponseNotAllowed
from django.http.response import HttpResponseBase
from django.template.loader import render_to_string

from jitportal.lib.csp import origin_of, reporting_endpoints


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware (``CONTENT_SECURITY_POLICY``), whose ``form-action`` also allows the origin of
    ``ENTRA_AUTHORITY``: "Sign in with Entra ID" posts to the portal, which redirects the browser to the authority's
    sign-in page, and browsers apply ``form-action`` to that redirect too. The setting is read per response, so the
    policy follows it wherever it is set. With a report URL, ``Reporting-Endpoints`` names it for ``report-to``."""

    def get_policy_parts(self, request: HttpRequest, response: HttpResponseBase,
                         report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        sign_in = origin_of(settings.ENTRA_AUTHORITY)
        if sign_in:
            update = dict(parts.update or {})
            update["form-action"] = [*_as_list(update.get("form-action")), sign_in]
            parts.update = update
        return parts

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        response = super().process_response(request, response)
        endpoints = reporting_endpoints(settings.CONTENT_SECURITY_POLICY)
        if endpoints and HEADER in response:
            response.headers.setdefault("Reporting-Endpoints", endpoints)
        return response


def _as_list(value: str | list | tuple | None) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


class MethodNotAllowedPageMiddleware:
    """Gives the bare 405 of a portal page (``require_POST``'s ``HttpResponseNotAllowed``, which Django renders
    through no handler) the portal's look: ``405.html`` says what happened and links back. Only for a browser's
    request (one whose ``Accept`` names HTML) outside the API, which keeps its JSON 405; the status and the ``Allow``
    header stay as the view set them. Listed after the sign-in middleware, so the page has the signed-in user."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if (response.status_code == 405 and isinstance(response, HttpResponseNotAllowed)
                and not request.path_info.startswith("/api/") and _accepts_html(request)):
            response.content = render_to_string("405.html", {"method": request.method,
                                                             "safe": request.method in ("GET", "HEAD")},
                                                 request=request)
            response["Content-Type"] = "text/html; charset=utf-8"
        return response


def _accepts_html(request: HttpRequest) -> bool:
    """Whether the request names HTML in its ``Accept`` header (a browser does; ``*/*`` alone, as curl and monitors
    send, keeps the plain 405)."""
    return any((media.main_type, media.sub_type) in (("text", "html"), ("application", "xhtml+xml"))
               for media in request.accepted_types)
