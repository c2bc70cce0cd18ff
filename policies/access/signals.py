"""``access_event``: what happened to an access request, sent inside the transaction that makes the change.

Receivers run in that transaction (an outbox: what they store commits or rolls back with the change), so they
must be quick (one INSERT) and leave anything slow or outside the database to ``transaction.on_commit``.
They get ``request`` (the ``AccessRequest``), ``event`` (one of ``EVENTS``),
``actor`` (the user who caused it, or ``None`` for the portal itself) and ``detail`` (a JSON-able dict: the
comment of a decision, Azure's reason of a failure, ...). A receiver that raises is logged and the receivers' writes
for that event are undone (one savepoint); it never undoes the change.
"""
from __future__ import annotations

import logging

from django.db import DatabaseError, transaction
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
    "closed",           # closed early, its window ended, or Azure revoked it (a newer request on its port)
                        # (detail["reason"]: "closed" | "expired" | "revoked", with detail["azure_reason"])
    "failed",           # Azure refused or the portal gave up (detail["error"])
)

access_event = Signal()


def emit(event: str, request, *, actor=None, **detail) -> None:
    """Send ``access_event`` now, inside the current transaction (in one of its own outside a transaction)."""
    if event not in EVENTS:
        raise ValueError(f"unknown access event {event!r}")
    try:
        with transaction.atomic():  # a savepoint: a receiver's failure rolls back the event, not the change
            results = access_event.send_robust(sender=type(request), request=request, event=event, actor=actor,
                                               detail=detail)
    except DatabaseError:  # a failed statement that send_robust swallowed broke the savepoint; it is rolled back
        log.exception("access_event receivers failed on %s; the event was dropped, the change stands", event)
        return
    for receiver, result in results:
        if isinstance(result, Exception):
            log.error("access_event receiver %r failed on %s: %s", receiver, event, result, exc_info=result)
