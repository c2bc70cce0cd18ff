"""The API's JSON parser: DRF's, refusing what no API body holds and DRF would take silently or explain in
Python's words: bodies nested deeper than any API body is, a key given twice in one object, a number longer
than any the API reads, text holding half of a UTF-16 pair (``"\\ud800"``)."""
from __future__ import annotations

import codecs
import re
from collections import deque

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils import json

MAX_DEPTH = 20  # the deepest body (a request's virtualMachines → ports → sources) has five levels
MAX_DIGITS = 30  # the longest number any body holds is a port (5 digits)
TOO_DEEP = f"JSON parse error - nested more than {MAX_DEPTH} levels deep."


def _too_deep(data: object) -> bool:
    """Whether ``data`` nests lists and objects more than ``MAX_DEPTH`` levels (walked without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                return True
            stack.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return False


SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate(data: object) -> str | None:
    """The first lone surrogate in any text (key or value) of ``data``, in the body's order, or ``None``. JSON may
    escape one (``"\\ud800"``), but it is half of a character: no UTF-8 answer echoing it nor database storing it
    can hold it (a 500 there)."""
    queue = deque([data])
    while queue:
        value = queue.popleft()
        if isinstance(value, str):
            if found := SURROGATE.search(value):
                return found.group()
        elif isinstance(value, dict):
            for key, item in value.items():
                queue.extend((key, item))
        elif isinstance(value, list):
            queue.extend(value)
    return None


def _object(pairs: list[tuple[str, object]]) -> dict:
    """One JSON object, refused when a key comes twice: Python keeps the last value, another reader of the same
    body (a proxy, an audit log) may take the first, so the body would not say one thing."""
    data: dict = {}
    for key, value in pairs:
        if key in data:
            shown = key if len(key) <= 40 else key[:40] + "…"
            raise ValueError(f"the key {shown!r} appears twice in one object.")
        data[key] = value
    return data


def _integer(text: str) -> int:
    """A JSON integer; one longer than ``MAX_DIGITS`` digits is refused in words (Python's own limit, 4300
    digits, answered with advice about ``sys.set_int_max_str_digits``)."""
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"a number of more than {MAX_DIGITS} digits.")
    return int(text)


class JsonParser(JSONParser):
    """A deeply nested body is a 400, not a ``RecursionError`` (a 500) in the parser or in the checks after it; a
    duplicated key or an overlong number is a 400 saying so."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})
        try:
            data = json.load(codecs.getreader(encoding)(stream), object_pairs_hook=_object, parse_int=_integer)
        except RecursionError as exc:
            raise ParseError(TOO_DEEP) from exc
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        if _too_deep(data):
            raise ParseError(TOO_DEEP)
        if (half := _surrogate(data)) is not None:
            raise ParseError(f"JSON parse error - text holds \\u{ord(half):04x}, half of a UTF-16 pair without its "
                             "other half: no character.")
        return data
