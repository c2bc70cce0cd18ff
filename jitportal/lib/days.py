"""Calendar days as time bounds."""
from __future__ import annotations

from datetime import UTC, date, datetime, time

from django.utils import timezone


def day_start(day: date) -> datetime | None:
    """The first instant of ``day`` in the portal's time zone, as a bound a time index can use (rather than the
    date of every row); ``None`` when it falls outside the calendar, where it bounds nothing."""
    try:
        return timezone.make_aware(datetime.combine(day, time.min)).astimezone(UTC)
    except (OverflowError, ValueError):
        return None
