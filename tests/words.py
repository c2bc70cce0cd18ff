"""Whether a page names a number, for the tests that check one is withheld: a bare ``"3389" not in page`` fails when
a random id on the page (a correlation id, a generated user name) happens to hold those digits."""
from __future__ import annotations

import re


def names(text: str, word: str) -> bool:
    """Whether ``text`` holds ``word`` standing alone: not inside a longer run of letters, digits or hyphens (a
    UUID's hex, a hex suffix), so ``port 3389``, ``3389/TCP`` and ``"number":3389`` name it and ``4f33891a`` not."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None
