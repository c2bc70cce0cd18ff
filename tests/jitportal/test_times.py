"""``jitportal.lib.times`` and its ``when`` filter: a time with its zone, as every page shows one."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

import pytest
from django.template import Context, Template, TemplateSyntaxError
from django.utils import timezone

from jitportal.lib.times import zoned_text, zoned_time

MOMENT = datetime(2026, 11, 20, 9, 30, 15, tzinfo=UTC)


def test_a_time_is_shown_in_the_portals_zone_with_its_abbreviation_and_its_offset(settings):
    settings.TIME_ZONE = "Europe/Amsterdam"
    assert zoned_text(MOMENT) == "2026-11-20 10:30 CET"
    assert zoned_text(MOMENT.replace(month=7)) == "2026-07-20 11:30 CEST"  # the zone of that moment
    assert zoned_time(MOMENT) == '<time datetime="2026-11-20T10:30:15+01:00">2026-11-20 10:30 CET</time>'
    assert zoned_time(MOMENT, utc=True, seconds=True) == (
        '<time datetime="2026-11-20T09:30:15+00:00">2026-11-20 09:30:15 UTC</time>')


def test_a_zone_without_an_abbreviation_is_named_by_its_offset_from_utc(settings):
    settings.TIME_ZONE = "America/Sao_Paulo"  # the time zone database writes "-03"
    assert zoned_text(MOMENT) == "2026-11-20 06:30 UTC-03"


def test_no_time_is_a_dash_and_a_naive_one_is_read_in_the_portals_zone(settings):
    settings.TIME_ZONE = "Asia/Kolkata"
    assert zoned_text(None) == "—" and zoned_time(None) == "—"
    assert zoned_text(datetime(2026, 11, 20, 9, 30)) == "2026-11-20 09:30 IST"


def test_the_when_filter_takes_utc_and_seconds_and_leaves_no_value_to_default(settings):
    settings.TIME_ZONE = "Asia/Kolkata"
    template = Template('{% load portal_time %}{{ t|when }}|{{ t|when:"utc,seconds" }}|{{ none|when|default:"never" }}')
    assert template.render(Context({"t": MOMENT, "none": None})) == (
        '<time datetime="2026-11-20T15:00:15+05:30">2026-11-20 15:00 IST</time>|'
        '<time datetime="2026-11-20T09:30:15+00:00">2026-11-20 09:30:15 UTC</time>|never')
    with pytest.raises(TemplateSyntaxError, match="unknown option"):
        Template('{% load portal_time %}{{ t|when:"local" }}').render(Context({"t": MOMENT}))


class _Unnamed(tzinfo):
    """A zone that gives no name, only an offset (a custom tzinfo may)."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def utcoffset(self, dt):
        return self.offset

    def dst(self, dt):
        return timedelta(0)

    def tzname(self, dt):
        return None


@pytest.mark.parametrize(("offset", "shown"), [(timedelta(hours=2), "UTC+02"), (timedelta(hours=-9, minutes=-30),
                                                                                   "UTC-09:30"),
                                               (timedelta(0), "UTC")])
def test_a_zone_without_a_name_is_shown_by_its_offset(settings, offset, shown):
    moment = datetime(2026, 11, 20, 9, 30, tzinfo=_Unnamed(offset))
    with timezone.override(_Unnamed(offset)):
        assert zoned_text(moment) == f"2026-11-20 09:30 {shown}"
