"""The Activity Log ``$filter`` (Microsoft.Insights 2015-04-01), written exactly as its grammar allows.

A filter always bounds ``eventTimestamp`` on both sides and may add at most ONE of ``resourceGroupName``,
``resourceUri``, ``resourceProvider`` or ``correlationId`` (each with ``eq``); Azure rejects anything else.
"""
from __future__ import annotations

from datetime import UTC, datetime

_FIELDS = (("resource_group", "resourceGroupName"), ("resource_uri", "resourceUri"),
           ("resource_provider", "resourceProvider"), ("correlation_id", "correlationId"))


def iso_utc(moment: datetime) -> str:
    """``2024-05-01T10:00:00.000000Z``: a timezone-aware datetime in UTC, as the Activity Log filter wants it."""
    if moment.tzinfo is None:
        raise ValueError("Activity Log times must be timezone-aware.")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"  # OData doubles a quote inside a string literal


def activity_filter(start: datetime, end: datetime, *, resource_group: str | None = None,
                    resource_uri: str | None = None, resource_provider: str | None = None,
                    correlation_id: str | None = None) -> str:
    """The ``$filter`` for events with ``start <= eventTimestamp <= end`` and at most one narrowing condition."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("Activity Log times must be timezone-aware.")
    if start > end:
        raise ValueError("The Activity Log window starts after it ends.")
    given = {"resource_group": resource_group, "resource_uri": resource_uri,
             "resource_provider": resource_provider, "correlation_id": correlation_id}
    chosen = [(azure, given[name]) for name, azure in _FIELDS if given[name]]
    if len(chosen) > 1:
        raise ValueError("The Activity Log filter takes only one of resource_group, resource_uri, "
                         "resource_provider and correlation_id.")
    parts = [f"eventTimestamp ge {_quoted(iso_utc(start))}", f"eventTimestamp le {_quoted(iso_utc(end))}"]
    parts += [f"{azure} eq {_quoted(value)}" for azure, value in chosen]
    return " and ".join(parts)
