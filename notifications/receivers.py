"""The ``access_event`` receiver: one INSERT (``services.event_queue``); rendering and sending happen elsewhere."""
from __future__ import annotations

from . import services


def on_access_event(sender, *, request, event: str, actor=None, detail: dict | None = None, **kwargs) -> None:
    """Queue ``event`` for expansion into e-mails and webhook deliveries (by a task, or the beat)."""
    services.event_queue(request=request, event=event, actor=actor, detail=detail)
