"""What the sync and policy-change services share about the task runs they queue: when a queued or running row
counts as lost, the broker's errors, and what a run did (``Outcome``)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from kombu.exceptions import OperationalError

STALE_RUNNING = timedelta(minutes=10)
BROKER_ERRORS = (OperationalError, OSError)
# A change no worker has claimed this long after it was stored or sent (its task never reached the broker) is sent
# again; one waiting for a retry, after longer than any retry countdown.
CHANGE_UNSENT = timedelta(minutes=2)
CHANGE_RETRY_LOST = timedelta(hours=1)
# A queued sync no worker has taken for this long is lost: longer than the longest retry countdown
# (``tasks.MAX_COUNTDOWN``) plus a busy queue's wait. One never started is sent again after ``CHANGE_UNSENT``.
LOST_QUEUED = CHANGE_RETRY_LOST


@dataclass
class Outcome:
    """What a task run did: ``state`` of the row, and ``retry_after`` seconds when Azure asked to wait."""

    state: str
    retry_after: float | None = None
    message: str = ""


def _retry_after(exc) -> float:
    value = getattr(exc, "retry_after", None)
    try:
        return max(1.0, float(value)) if value is not None else 5.0
    except (TypeError, ValueError):
        return 5.0
