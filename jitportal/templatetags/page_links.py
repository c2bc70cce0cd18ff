"""``{% page_href query after=cursor %}``: the link of a page of a list paged by cursor.

``query`` is the list's other parameters, already encoded (``QueryDict.urlencode()``, without ``after``/``before``);
the cursor parameters given are added after them, so the link never starts ``?&``. With nothing to add, the link is
the list's own path (its first page, unfiltered), not a bare ``?``.
"""
from __future__ import annotations

from urllib.parse import urlencode

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def page_href(context: template.Context, query: str = "", **cursors: str) -> str:
    """``?<query>&<cursor>=<value>`` for the non-empty parts (autoescaped by the template)."""
    parts = [part for part in (query, urlencode({k: v for k, v in cursors.items() if v})) if part]
    if parts:
        return "?" + "&".join(parts)
    request = context.get("request")
    return request.path if request is not None else "?"
