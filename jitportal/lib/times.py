"""How the portal's pages show a moment: every time states its zone.

A time reads ``2026-11-26 14:37 CET`` in the portal's time zone (``TIME_ZONE``), or ``2026-11-26 13:37:05 UTC``
on the audit pages, whose searches and CSV exports are in UTC as Azure's Activity Log is; in HTML it is a
``<time>`` element whose ``datetime`` gives the moment in ISO 8601 with its offset. What a program reads (the API,
the command line's JSON) has ``utc_iso``'s one shape.
"""
from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from html import escape

from django import forms
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

EMPTY = "—"  # what a page shows where there is no time


def _zone(utc: bool) -> tzinfo:
    return UTC if utc else timezone.get_current_timezone()


def _abbreviation(moment: datetime) -> str:
    """The zone's abbreviation at ``moment`` (``CET``, ``IST``, ``UTC``); an offset where the zone has none
    (``UTC-03`` rather than the time zone database's bare ``-03``)."""
    name = moment.tzname() or ""
    if name and name[0] not in "+-":
        return name
    offset = moment.utcoffset()
    if not offset:
        return "UTC"
    minutes = round(offset.total_seconds() / 60)
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{'-' if minutes < 0 else '+'}{hours:02d}" + (f":{rest:02d}" if rest else "")


def _in_zone(value: datetime, utc: bool) -> datetime:
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value.astimezone(_zone(utc))


def _text(moment: datetime, seconds: bool) -> str:
    return f"{moment.strftime('%Y-%m-%d %H:%M:%S' if seconds else '%Y-%m-%d %H:%M')} {_abbreviation(moment)}"


def zoned_text(value: datetime | None, *, utc: bool = False, seconds: bool = False) -> str:
    """``value`` as text with its zone's abbreviation (``2026-11-26 14:37 CET``); ``—`` for none. A naive value is
    taken to be in the portal's time zone."""
    return EMPTY if value is None else _text(_in_zone(value, utc), seconds)


def zoned_time(value: datetime | None, *, utc: bool = False, seconds: bool = False) -> SafeString:
    """``value`` as a ``<time>`` element: ``zoned_text`` with the moment in ISO 8601 (its offset included) as its
    ``datetime``; ``—`` for none. Lists call it for each row: the zone is looked up once and the two parts, made
    of digits and the zone's name, are escaped directly (``format_html`` took half of the time)."""
    if value is None:
        return format_html("{}", EMPTY)
    moment = _in_zone(value, utc)
    return mark_safe(f'<time datetime="{moment.isoformat(timespec="seconds")}">'  # noqa: S308 - escaped
                     f"{escape(_text(moment, seconds))}</time>")


def utc_iso(value: datetime | None) -> str | None:
    """``value`` as the API and the exports write a time: ISO 8601 in UTC to the microsecond at a fixed width
    (``2026-11-26T13:37:05.000000Z``; one on the second keeps its fraction, so every value has one shape and sorts as
    text); None for none. A naive value is taken to be in the portal's time zone."""
    if value is None:
        return None
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class UtcDateTimeField(forms.DateTimeField):
    """A date and time the form labels UTC: read in UTC whatever the portal's ``TIME_ZONE`` (an offset typed with it
    still counts), so a time that zone skips or repeats at a clock change is no error."""

    def to_python(self, value):
        with timezone.override(UTC):
            return super().to_python(value)
