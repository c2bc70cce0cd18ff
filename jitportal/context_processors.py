"""Template context shared by every portal page (the admin look needs a few names)."""
from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from accounts import authz
from accounts.roles import AUDIT_READ, REQUEST_APPROVE, SETTINGS_WRITE, VM_READ

# (URL name, label, the action the user must hold somewhere to see it; ``None``: everyone signed in).
NAVIGATION = [
    ("dashboard", "Dashboard", None),
    ("policies:inventory", "Inventory", VM_READ),
    ("policies:requests", "Requests", None),
    ("policies:approvals", "Approvals", REQUEST_APPROVE),
    ("audit:search", "Audit", AUDIT_READ),
    ("settings", "Settings", SETTINGS_WRITE),
]


# Pages under one section's URL that belong to another (an approver reviews a request at /requests/N/review/).
SECTION_OF = {"policies:request_review": "policies:approvals", "policies:request_decide": "policies:approvals"}


def _current(request: HttpRequest, shown: list[str]) -> str | None:
    """The navigation item of this page: the one ``SECTION_OF`` names, else the longest URL the path starts with."""
    match = getattr(request, "resolver_match", None)
    named = SECTION_OF.get(match.view_name) if match else None
    if named in shown:
        return named
    found = [(len(url), name) for url, name in ((reverse(name), name) for name in shown)
             if request.path == url or (url != "/" and request.path.startswith(url))]
    return max(found)[1] if found else None


def portal(request: HttpRequest) -> dict:
    """Branding and the global navigation (only what the user may open, and which item this page is under)."""
    shown = [(url_name, label) for url_name, label, action in NAVIGATION
             if action is None or authz.holds_anywhere(request.user, action)]
    return {
        "site_header": settings.PORTAL_NAME,
        "site_title": settings.PORTAL_NAME,
        "has_permission": request.user.is_authenticated,
        "portal_nav": shown,
        "portal_nav_current": _current(request, [name for name, _label in shown]) if shown else None,
        "portal_time_zone": settings.TIME_ZONE,  # the zone of times of day without a date (an access rule's hours)
    }
