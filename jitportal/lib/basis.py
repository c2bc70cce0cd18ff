"""What a form was shown with, as a short digest it carries back (its hidden ``basis``).

An edit form sent after what it showed changed (another admin saved, a sync brought a change made in Azure) is
shown again naming what is there now, the typed values kept, instead of saving over the change unseen; sent again
from there, it carries the new basis and applies. A form sent without a basis is treated as shown with something
else: the pages always send one, so only a page rendered before the form carried it (or a hand-made post) lacks
it, and it too is shown again rather than trusted.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

FIELD_SEPARATOR = "."


def digest(value: object) -> str:
    """A short digest of ``value`` (anything JSON can write; dictionaries in any key order)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fields_digest(values: Mapping[str, object]) -> str:
    """A digest of each value of ``values`` (a form's fields as shown), in the order of their names: the form's
    basis, from which ``changed_fields`` tells which of them changed since."""
    return FIELD_SEPARATOR.join(digest(values[name])[:8] for name in sorted(values))


def changed_fields(sent: str | None, values: Mapping[str, object]) -> list[str] | None:
    """The names of ``values`` whose digest differs from the one in ``sent`` (a ``fields_digest`` of what the form
    was shown with); ``None`` when ``sent`` is missing or is no such digest (a form of another version)."""
    parts = (sent or "").split(FIELD_SEPARATOR)
    if not sent or len(parts) != len(values):
        return None
    now = fields_digest(values).split(FIELD_SEPARATOR)
    return [name for name, was, is_now in zip(sorted(values), parts, now, strict=True) if was != is_now]


def stale(sent: str | None, basis: str, *, sets_current: bool) -> bool:
    """Whether a form shown with ``sent`` (its basis then; ``None``: it carried none) would replace something
    changed since, whose basis is now ``basis``. Not when ``sets_current``: what it sets is exactly what is there now
    (the same form sent twice, the second after the first saved), so saving it overwrites nothing."""
    return sent != basis and not sets_current
