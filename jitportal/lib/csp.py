"""The portal's Content-Security-Policy (django-csp's ``CONTENT_SECURITY_POLICY``), read by the settings and by
``jitportal.middleware.ContentSecurityPolicyMiddleware``. No inline script or style on any page: scripts and styles
come from the portal's own static files."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

# The name ``report-to`` gives the report endpoint, which the ``Reporting-Endpoints`` header maps to its URL.
REPORT_GROUP = "csp-endpoint"
# An origin, or a report URL, as a source list may hold it: no space, quote, comma or semicolon (which would end the
# value or the directive). A report URL is also a string of the Reporting-Endpoints header: printable ASCII, no
# backslash (each would need escaping there, or a browser drops the header).
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
_REPORT_URL = re.compile(r"https?://[!-~]+")
_REPORT_URL_REFUSES = set(";,\"'<>\\")


def content_security_policy(*, report_uri: str = "") -> dict:
    """django-csp's setting: the portal's directives, reporting violations to ``report_uri`` when one is given."""
    directives: dict[str, list[str]] = {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        # The middleware adds the origin of ENTRA_AUTHORITY, where "Sign in with Entra ID" is redirected.
        "form-action": [SELF],
    }
    if report_uri:
        if not _is_report_url(report_uri):
            raise ImproperlyConfigured(f"CSP_REPORT_URI={report_uri!r} is not an absolute http(s) URL.")
        directives["report-uri"] = [report_uri]
        directives["report-to"] = [REPORT_GROUP]
    return {"DIRECTIVES": directives}


def _is_report_url(url: str) -> bool:
    if not _REPORT_URL.fullmatch(url) or _REPORT_URL_REFUSES & set(url):
        return False
    try:
        return bool(urlsplit(url).hostname)
    except ValueError:  # an unclosed [IPv6 literal
        return False


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of the absolute http(s) ``url``, as a CSP source; "" for anything else."""
    parts = urlsplit(url.strip())
    found = f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2].lower()}"
    return found if _ORIGIN.fullmatch(found) else ""


def reporting_endpoints(policy: dict) -> str:
    """The ``Reporting-Endpoints`` header naming the report URL of ``policy`` (django-csp's setting), or ""."""
    directives = (policy or {}).get("DIRECTIVES", {})
    urls = directives.get("report-uri") or []
    return f'{REPORT_GROUP}="{urls[0]}"' if urls and REPORT_GROUP in (directives.get("report-to") or []) else ""
