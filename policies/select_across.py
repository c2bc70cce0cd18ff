"""What the pages acting on "all VMs that match" (the inventory's select-across) tell when they cannot act."""
from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest

from .selectors import Matching


def refused(request: HttpRequest, found: Matching, *, cap: int, may: str, limit: str, nothing: str,
            posted: bool = False) -> bool:
    """Add the error messages of a filter ``found`` cannot be acted on (its own errors, past ``cap``, nothing left
    but on a ``posted`` form) and say whether the page must go back to the list. ``may``: what the user may do to
    the VMs counted ("request access to"); ``limit``: what one action takes at most ("one request names")."""
    if found.errors:
        messages.error(request, "Correct the inventory's filter before acting on every VM it matches: "
                                + "; ".join(found.errors))
        return True
    if found.over_cap:
        messages.error(request, f"The filter matches {found.count:,} VMs you may {may}: {limit} at most {cap:,}. "
                                "Narrow the filter (subscription, resource group, location, search) and select all "
                                "again.")
        return True
    if not found.count and not posted:
        for message in found.left_out:
            messages.error(request, message)
        messages.error(request, nothing)
        return True
    return False
