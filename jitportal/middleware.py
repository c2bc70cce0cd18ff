"""The Content-Security-Policy header on every response (django-csp), with what the Entra sign-in needs."""
from __future__ import annotations

from csp.constants import HEADER
from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase

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
