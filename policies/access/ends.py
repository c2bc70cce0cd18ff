"""When a request's access ends, as far as anyone knows yet: one rule for the pages, the API and the notifications.

A port's stored ``end_at`` is a plan until Azure opens the port: the request time plus its window, planned again when
the request is released to open (``approvals.release``: the last approval landed, or its scheduled start came), and
replaced by Azure's end from the moment the port opens (the open task asks for "now + window"). A request awaiting
approval (not scheduled) has no known end: its window starts when the last approval lands; nor, once approved, until
its port opens.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from .models import FINAL, ApprovalState, PortState


def port_end(request, port) -> datetime | None:
    """When ``port``'s access ends, or None while nobody knows: Azure's end once the port opened; the planned end of
    a scheduled window, or of a request that opens without approval (it is being opened now); None while its window
    waits for an approval or, approved, for its port to open (the end is set from the moment Azure opens it), and
    for a port that never opened (denied, failed, not approved in time, cancelled)."""
    if port.opened_at is not None or port.state == PortState.OPEN:
        return port.end_at
    if port.state in FINAL:
        return None
    if request.scheduled_start is not None or request.approval_state == ApprovalState.NOT_REQUIRED:
        return port.end_at
    return None


def request_end(request, ports: Iterable) -> datetime | None:
    """The request's end (its stored ``end_at``, its latest port's) once one of its ``ports`` has a known end
    (``port_end``), else None."""
    return request.end_at if any(port_end(request, port) is not None for port in ports) else None


def unknown_end_text(state: str, window: str) -> str:
    """An end nobody knows yet (``port_end`` is None) in words, for a port or a request in ``state`` with the
    ``window`` (``"2 hours"``): after the last approval while it waits for its approvals, after it opens once
    approved, else that it did not open."""
    if state == PortState.PENDING:
        return f"{window} after the last approval"
    if state in (PortState.QUEUED, PortState.OPENING):
        return f"{window} after it opens"
    return "Did not open"
