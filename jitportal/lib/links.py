"""Absolute links to the portal's pages for what leaves it (e-mails, webhooks), built from ``PORTAL_BASE_URL``."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import get_script_prefix, reverse


def portal_url(viewname: str, **kwargs: Any) -> str:
    """The absolute URL of the page ``viewname``: ``PORTAL_BASE_URL`` (the portal's public root, a proxy's prefix
    included) followed by the page's path within the portal. ``reverse`` puts the current script prefix in front of
    that path (a web request's ``SCRIPT_NAME``, a worker's ``FORCE_SCRIPT_NAME``), which the base URL already names,
    so the link is the same wherever it is built."""
    path = reverse(viewname, kwargs=kwargs or None)
    prefix = get_script_prefix()
    return f"{settings.PORTAL_BASE_URL}/{path.removeprefix(prefix) if path.startswith(prefix) else path.lstrip('/')}"
