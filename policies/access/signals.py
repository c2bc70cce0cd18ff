"""``access_event``: what happened to an access request, sent after the change commits.

Receivers (notifications, for one) get ``request`` (the ``AccessRequest``), ``event`` (one of ``EVENTS``),
``actor`` (the user who caused it, or ``None`` for the portal itself) and ``detail`` (a JSON-able dict: the
comment of a decision, Azure's reason of a failure, ...). A receiver that raises is logged, never undoes the change.
"""
from __future__ import annotations

import logging

from django.db import transaction
from django.dispatch import Signal

log = logging.getLogger(__name__)

EVENTS = (
    "submitted",        # stored (every request)
    "needs_approval",   # stored and waiting for approvers (manual rule)
    "approved",         # the last approval landed (or an approval level completed: detail["level"])
    "denied",           # an approver denied it (detail["comment"])
    "approval_expired", # nobody decided before the pending time ran out
    "opened",           # Azure opened its ports
    "expiring",         # its window ends soon (sent once, by the notifications beat)
    "closed",           # closed early, or its window ended (detail["reason"]: "closed" | "expired")
    "failed",           # Azure refused or the portal gave up (detail["error"])
)

access_event = Signal()


def emit(event: str, request, *, actor=None, **detail) -> None:
    """Send ``access_event`` once the current transaction commits (at once outside one)."""
    if event not in EVENTS:
        raise ValueError(f"unknown access event {event!r}")

    def send() -> None:
        for receiver, result in access_event.send_robust(sender=type(request), request=request, event=event,
                                                         actor=actor, detail=detail):
            if isinstance(result, Exception):
                log.error("access_event receiver %r failed on %s: %s", receiver, event, result, exc_info=result)

    transaction.on_commit(send, robust=True)
