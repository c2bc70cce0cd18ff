"""Template context shared by every portal page (the admin look needs a few names)."""
from django.conf import settings
from django.http import HttpRequest

from accounts import authz
from accounts.roles import REQUEST_APPROVE


def portal(request: HttpRequest) -> dict:
    """Branding and the global navigation."""
    return {
        "site_header": settings.PORTAL_NAME,
        "site_title": settings.PORTAL_NAME,
        "has_permission": request.user.is_authenticated,
        "portal_nav": [
            ("dashboard", "Dashboard"),
            ("policies:inventory", "Inventory"),
            ("policies:requests", "Requests"),
            *([("policies:approvals", "Approvals")] if authz.holds_anywhere(request.user, REQUEST_APPROVE) else []),
            ("audit:search", "Audit"),
            ("settings", "Settings"),
        ],
    }
