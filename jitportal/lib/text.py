"""Text the database can store: PostgreSQL refuses a NUL character in text and in jsonb."""
from __future__ import annotations

from typing import Any

NUL_STAND_IN = "\ufffd"


def without_nul(value: Any) -> Any:
    """``value`` (text, or JSON: its keys and values at any depth) with each NUL character replaced by U+FFFD.
    Replaced, not removed, so two values that differ by one stay two (and "JIT.\\x00Admin" never becomes another
    role's name)."""
    if isinstance(value, str):
        return value.replace("\x00", NUL_STAND_IN)
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(item) for item in value]
    return value
