"""Callers of the Activity Log in words: the portal's own identity (the client id of a credential in
``PORTAL_CREDENTIALS``, which Azure logs as the caller of every write the portal makes) reads
"jitportal (service principal 0d3b6a9e…)"; any other caller stays as Azure wrote it."""
from __future__ import annotations

from django.conf import settings

PORTAL_NAME = "jitportal"  # as the portal's own rows of the audit trail name it


def portal_identities() -> dict[str, str]:
    """Lower-case client id of each configured credential → how the search names the portal calling with it."""
    named: dict[str, str] = {}
    for config in getattr(settings, "PORTAL_CREDENTIALS", {}).values():
        client_id = str(config.get("client_id") or "").strip().lower()
        if client_id:
            kind = "managed identity" if config.get("kind") == "managed_identity" else "service principal"
            named.setdefault(client_id, f"{PORTAL_NAME} ({kind} {client_id[:8]}…)")
    return named


def caller_label(caller: str, identities: dict[str, str] | None = None) -> str:
    """``caller`` as the search shows it: the portal's name for one of its own identities, else as it is."""
    if not caller:
        return ""
    return (portal_identities() if identities is None else identities).get(caller.lower(), caller)
