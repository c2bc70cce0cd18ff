"""Whether an access rule's justification pattern matches in bounded time.

Python's ``re`` backtracks: a repeated group that holds a repeat or an alternative (``(a+)+``, ``(a|aa)*``)
takes exponential time on a near-miss, and each further variable repeat in a row (``\\w+\\w+\\w+X``) multiplies
the work by the justification's length (up to 500 characters). The pattern is read with the standard library's
own parser, so escapes, character classes and ``(?…)`` groups are understood as ``re`` understands them.
"""
from __future__ import annotations

import re
from functools import lru_cache
from re import _parser  # the parser ``re.compile`` itself uses

MAX_PATTERN = 100
MAX_VARIABLE_REPEATS = 2  # two (one per part of a ticket id such as [A-Z]+-[0-9]+) stay within milliseconds

_REPEATS = {_parser.MAX_REPEAT, _parser.MIN_REPEAT, _parser.POSSESSIVE_REPEAT}


def _parts(value) -> list[_parser.SubPattern]:
    """The sub-patterns held in one parsed item's argument, however deeply tupled or listed."""
    if isinstance(value, _parser.SubPattern):
        return [value]
    if isinstance(value, (tuple, list)):
        return [part for item in value for part in _parts(item)]
    return []


def _walk(pattern: _parser.SubPattern) -> tuple[int, bool]:
    """(variable repeats in ``pattern``, whether it holds a variable repeat or an alternative that a repeat of
    more than once around it would retry in exponentially many ways)."""
    variable, risky = 0, False
    for op, av in pattern:
        inner_parts = _parts(av)
        inner = [_walk(part) for part in inner_parts]
        variable += sum(count for count, _ in inner)
        inner_risky = any(flag for _, flag in inner)
        if op in _REPEATS:
            low, high = av[0], av[1]
            if high > 1 and (inner_risky or any(count for count, _ in inner)):
                raise _Nested
            if low != high:
                variable += 1
                risky = True
        elif op is _parser.BRANCH:
            risky = True
        risky = risky or inner_risky
    return variable, risky


class _Nested(Exception):
    """A repeat around a variable repeat or an alternative."""


@lru_cache(maxsize=512)
def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a justification pattern (not a regular expression, or one that could take very
    long to search a justification), or ``None`` when it can."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"Not a valid regular expression: {exc}."
    simple = (f"Keep the pattern simple: at most {MAX_PATTERN} characters, at most {MAX_VARIABLE_REPEATS} "
              "repeats of variable length (+, *, ?, {m,n}), and no repeated group that itself holds a repeat or "
              "an alternative (such as (a+)+ or (a|ab)*), which could take very long to match.")
    if len(pattern) > MAX_PATTERN:
        return simple
    try:
        variable, _ = _walk(_parser.parse(pattern))
    except _Nested:
        return simple
    return simple if variable > MAX_VARIABLE_REPEATS else None
