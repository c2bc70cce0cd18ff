"""``{% copy_button line what *id_parts autofocus=False %}``: the one Copy button of the portal (a request's
connection lines, a new API token, a new webhook signing secret), read by ``jitportal/copy.js``, which the page
loads: it copies ``line`` and says "Copied" on the button and in a polite live region for screen readers."""
from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.inclusion_tag("jitportal/_copy_button.html")
def copy_button(line: str, what: str, *id_parts: Any, autofocus: bool = False) -> dict[str, Any]:
    """The button "Copy <what>", its id the ``id_parts`` joined by hyphens (htmx gives focus back by id)."""
    return {"line": line, "text": f"Copy {what}", "copy_id": "-".join(str(part) for part in id_parts),
            "autofocus": autofocus}
