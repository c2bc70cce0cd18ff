"""Keyset ("seek") pagination by (time, id), newest first: no OFFSET and no COUNT(*), at any table size."""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet


@dataclass
class KeysetPage:
    """One page of rows, and the cursors of the pages before (newer) and after (older) it."""

    rows: list
    newer: str | None
    older: str | None

    @property
    def has_other_pages(self) -> bool:
        return bool(self.newer or self.older)


def encode_cursor(moment: datetime, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{moment.isoformat()}|{pk}".encode()).decode().rstrip("=")


def decode_cursor(token: str | None, *, name: str = "after") -> tuple[datetime, int] | None:
    """The (time, id) a cursor names, in UTC, or None when it is missing. A cursor this search did not give is a
    ``ValidationError`` naming the ``name`` parameter: ours name a stored time and id, so one that cannot be read, or
    whose time falls outside the calendar in UTC, or whose id no row can have, is refused, not read as the first
    page (offsets PostgreSQL refuses are read in UTC)."""
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        moment, pk = text.rsplit("|", 1)
        parsed, number = datetime.fromisoformat(moment), int(pk)
        if parsed.tzinfo and 0 < number < 2**63:
            return parsed.astimezone(UTC), number
    except (ValueError, UnicodeDecodeError, OverflowError):
        pass
    raise ValidationError(f"The {name} cursor is not one this search gave: follow a page's link to the next or "
                          f"previous page, or leave {name} out for the newest events.", code="cursor")


def keyset_page(queryset: QuerySet, *, after: str | None = None, before: str | None = None, size: int = 50,
                time_field: str = "occurred_at") -> KeysetPage:
    """Rows older than ``after`` (or newer than ``before``), newest first, ``size`` at most; a cursor this search
    did not give, or both at once, is a ``ValidationError``."""
    older_than = decode_cursor(after, name="after")
    newer_than = decode_cursor(before, name="before")
    if older_than and newer_than:
        raise ValidationError("Give after or before, not both: a page follows one cursor.", code="cursor")
    if newer_than:
        moment, pk = newer_than
        qs = queryset.filter(Q(**{f"{time_field}__gt": moment}) | Q(**{time_field: moment, "pk__gt": pk}))
        rows = list(qs.order_by(time_field, "pk")[: size + 1])
        more_newer = len(rows) > size
        rows = list(reversed(rows[:size]))
        more_older = True
    else:
        qs = queryset
        if older_than:
            moment, pk = older_than
            qs = qs.filter(Q(**{f"{time_field}__lt": moment}) | Q(**{time_field: moment, "pk__lt": pk}))
        rows = list(qs.order_by(f"-{time_field}", "-pk")[: size + 1])
        more_older = len(rows) > size
        rows = rows[:size]
        more_newer = older_than is not None
    if not rows:
        return KeysetPage([], None, None)
    first, last = rows[0], rows[-1]
    return KeysetPage(
        rows,
        newer=encode_cursor(getattr(first, time_field), first.pk) if more_newer else None,
        older=encode_cursor(getattr(last, time_field), last.pk) if more_older else None,
    )
