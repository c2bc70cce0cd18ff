"""UTC timestamps in the shape Azure writes them, and a tolerant parser."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import isodate

_FRACTION = re.compile(r"\.(\d+)")


def iso(moment: datetime) -> str:
    """``2024-05-17T08:06:45.569161Z`` (UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 timestamp (any fraction length, ``Z`` or offset; naive means UTC)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty timestamp")
    value = text.strip().replace("z", "Z")
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    value = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], value, count=1)
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_duration(text: str) -> timedelta:
    """Parse an ISO 8601 duration such as ``PT3H`` into a timedelta (no months or years)."""
    if not isinstance(text, str):
        raise ValueError("not a string")
    duration = isodate.parse_duration(text)
    if not isinstance(duration, timedelta):
        raise ValueError("durations in months or years are not accepted")
    return duration
