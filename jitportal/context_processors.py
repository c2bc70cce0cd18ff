"""Template context shared by every portal page (the admin look needs a few names)."""
from django.conf import settings
from django.http import HttpRequest

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


def portal(request: HttpRequest) -> dict:
    """Branding and the global navigation (only what the user may open)."""
    return {
        "site_header": settings.PORTAL_NAME,
        "site_title": settings.PORTAL_NAME,
        "has_permission": request.user.is_authenticated,
        "portal_nav": [(url_name, label) for url_name, label, action in NAVIGATION
                       if action is None or authz.holds_anywhere(request.user, action)],
    }
