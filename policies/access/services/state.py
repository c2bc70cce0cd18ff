"""A request's one state, from its ports' states."""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from ..models import AccessRequest, AccessRequestPort, PortState


# --- aggregate state -------------------------------------------------------------------------------------------
def aggregate_state(states: list[str]) -> str:
    """One state for a request from its ports' states (what is still moving wins, then what is open)."""
    present = set(states)
    for state in (PortState.OPENING, PortState.QUEUED, PortState.OPEN, PortState.PENDING, PortState.SCHEDULED):
        if state in present:
            return state
    if present and present <= {PortState.FAILED}:
        return PortState.FAILED
    for state in (PortState.DENIED, PortState.CLOSED, PortState.EXPIRED, PortState.FAILED):
        if state in present:
            return state
    return PortState.QUEUED


def refresh_state(request_id: int) -> str:
    """Recompute the request's state from its ports. The request's row is locked first, so two recomputations
    (two policies' tasks, the reconciler) run one after the other, the second reading what the first wrote.
    Inside a caller's transaction it joins it (no savepoint)."""
    with transaction.atomic(savepoint=False):
        _lock_request(request_id)
        states = list(AccessRequestPort.objects.filter(request_id=request_id).values_list("state", flat=True))
        state = aggregate_state(states)
        AccessRequest.objects.filter(pk=request_id).exclude(state=state).update(state=state,
                                                                                updated_at=timezone.now())
    return state


def _lock_request(request_id: int) -> None:
    """Hold the request's row until the transaction ends (a no-op on SQLite, whose writers run one at a time)."""
    list(AccessRequest.objects.select_for_update().filter(pk=request_id).values_list("pk", flat=True))
