"""``{{ value|when }}``: a time as the portal's pages show one (``jitportal.lib.times``).

``when`` gives the portal's time zone to the minute; its argument may name ``utc`` (the audit pages) and
``seconds``, comma-separated (``when:"utc,seconds"``). No value gives ``""``, so ``|default:"never"`` follows.
"""
from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.safestring import SafeString

from jitportal.lib.times import zoned_time

register = template.Library()
OPTIONS = {"utc", "seconds"}


@register.filter
def when(value: datetime | None, options: str = "") -> SafeString | str:
    chosen = {option.strip() for option in options.split(",") if option.strip()}
    if chosen - OPTIONS:
        raise template.TemplateSyntaxError(f"when: unknown option(s) {sorted(chosen - OPTIONS)}")
    if not isinstance(value, datetime):
        return "" if value in (None, "") else value
    return zoned_time(value, utc="utc" in chosen, seconds="seconds" in chosen)
