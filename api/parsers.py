"""The API's JSON parser: DRF's, refusing bodies nested deeper than any API body is."""
from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 20  # the deepest body (a request's virtualMachines → ports → sources) has five levels
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


class JsonParser(JSONParser):
    """A deeply nested body is a 400, not a ``RecursionError`` (a 500) in the parser or in the checks after it."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError(TOO_DEEP) from exc
        if _too_deep(data):
            raise ParseError(TOO_DEEP)
        return data
