"""The ``access_event`` receiver: cheap, no network; it stores outbox rows through ``services.event_record``."""
from __future__ import annotations

from . import services


def on_access_event(sender, *, request, event: str, actor=None, detail: dict | None = None, **kwargs) -> None:
    """Store the e-mails and webhook deliveries of ``event`` (sent by tasks after commit)."""
    services.event_record(request=request, event=event, actor=actor, detail=detail)
