"""Keyset ("seek") pages of a list sorted by one column and then the id: no OFFSET and no COUNT(*), so a page costs
the same at any depth and any table size. A cursor names the sort and the (value, id) of the row it follows; one
this list did not give is a ``ValidationError`` (the API's 400, the pages' note)."""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.db.models import QuerySet

MAX_ID = 2**63


@dataclass
class SeekPage:
    """One page of rows, and the cursors of the pages before and after it in the list's order (``None`` at an
    end)."""

    rows: list
    previous: str | None
    next: str | None
    first: bool  # no cursor was followed: the list's first page

    @property
    def has_other_pages(self) -> bool:
        return bool(self.previous or self.next)


def _field(model: type[models.Model], key: str) -> models.Field:
    return model._meta.pk if key in ("pk", "id") else model._meta.get_field(key)


def encode_cursor(key: str, value, pk: int) -> str:
    """The cursor of the row (``value`` of ``key``, ``pk``): the rows after it follow it."""
    if isinstance(value, datetime):
        value = value.astimezone(UTC).isoformat()
    text = json.dumps([key, value, pk], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _value(field: models.Field, value):
    """``value`` read from a cursor as ``field`` stores it, else ``ValueError``."""
    if isinstance(field, models.DateTimeField):
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        # Ours are written in UTC (``_encode``): any other spelling is not one of them.
        if moment is None or moment.tzinfo is None or moment.astimezone(UTC).isoformat() != value:
            raise ValueError(value)
        return moment.astimezone(UTC)
    if isinstance(field, models.CharField | models.TextField):
        # PostgreSQL cannot compare text holding NUL: refused here, not a 500 there.
        if not isinstance(value, str) or "\x00" in value or len(value) > (field.max_length or 10**6):
            raise ValueError(value)
        value.encode()  # a lone surrogate (JSON's \ud800) is no text a database takes: UnicodeEncodeError
        return value
    if isinstance(field, models.IntegerField | models.AutoField) and type(value) is int and 0 < value < MAX_ID:
        return value
    raise ValueError(value)


def decode_cursor(model: type[models.Model], token: str | None, key: str, *, name: str) -> tuple | None:
    """The (value, id) a cursor of the list sorted by ``key`` names, or None when there is none; any other text is
    a ``ValidationError`` naming the ``name`` parameter."""
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        given_key, value, pk = json.loads(text)
        if given_key == key and type(pk) is int and 0 < pk < MAX_ID:
            return _value(_field(model, key), value), pk
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError, binascii.Error, FieldDoesNotExist):
        pass
    raise ValidationError(f"The {name} cursor is not one this list gave (or it was given for another sort): follow "
                          f"a page's link to the next or previous page, or leave {name} out for the first page.",
                          code="cursor")


def _following(queryset: QuerySet, key: str, position: tuple | None, *, ascending: bool, limit: int) -> list:
    """Up to ``limit`` rows after ``position`` (a (value, id), or None for the start) in the order by ``key`` then
    id, both ``ascending`` or both not. Two exact seeks of the (key, id) index: the rows tying with the position,
    then those past its value. A row-value comparison ``(key, id) > (value, id)`` would be one query, but SQLite
    seeks it on the key alone and walks every tie before the position (a sort by state at 100,000 requests)."""
    keys = (key, "pk") if key not in ("pk", "id") else ("pk",)
    order = [k if ascending else f"-{k}" for k in keys]
    if position is None:
        return list(queryset.order_by(*order)[:limit])
    value, pk = position
    past = "gt" if ascending else "lt"
    if len(keys) == 1:
        return list(queryset.filter(**{f"pk__{past}": pk}).order_by(*order)[:limit])
    rows = list(queryset.filter(**{key: value, f"pk__{past}": pk}).order_by(order[1])[:limit])
    if len(rows) < limit:
        rows += list(queryset.filter(**{f"{key}__{past}": value}).order_by(*order)[: limit - len(rows)])
    return rows


def seek_page(queryset: QuerySet, *, key: str, descending: bool, after: str | None = None,
              before: str | None = None, size: int = 50) -> SeekPage:
    """The ``size`` rows of ``queryset`` sorted by ``key`` then id (both ``descending`` or not) that follow the
    ``after`` cursor, precede the ``before`` cursor, or (neither) come first. A cursor this list did not give, or
    both at once, is a ``ValidationError``."""
    model = queryset.model
    following = decode_cursor(model, after, key, name="after")
    preceding = decode_cursor(model, before, key, name="before")
    if following and preceding:
        raise ValidationError("Give after or before, not both: a page follows one cursor.", code="cursor")
    if preceding:
        rows = _following(queryset, key, preceding, ascending=descending, limit=size + 1)
        more_before, more_after = len(rows) > size, True
        rows = list(reversed(rows[:size]))
    else:
        rows = _following(queryset, key, following, ascending=not descending, limit=size + 1)
        more_before, more_after = following is not None, len(rows) > size
        rows = rows[:size]
    if not rows:
        return SeekPage([], None, None, first=not (following or preceding))

    def cursor(row) -> str:
        return encode_cursor(key, getattr(row, key) if key not in ("pk", "id") else row.pk, row.pk)

    return SeekPage(rows, previous=cursor(rows[0]) if more_before else None,
                    next=cursor(rows[-1]) if more_after else None, first=not (following or preceding))
