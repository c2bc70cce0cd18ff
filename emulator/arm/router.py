"""A case-insensitive ARM path router (ARM paths ignore case; Flask's routing does not)."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from emulator.errors import ArmError

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass
class Route:
    methods: tuple[str, ...]
    pattern: re.Pattern
    handler: Callable


class Router:
    """Routes like ``/subscriptions/{sub}/resourceGroups/{rg}/...``; ``{scope*}`` matches several segments."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(self, methods: str | tuple[str, ...], template: str) -> Callable:
        methods = (methods,) if isinstance(methods, str) else methods
        regex = template.replace("{scope*}", "(?P<scope>(?:/[^/]+)*?)")
        regex = _PLACEHOLDER.sub(lambda m: f"(?P<{m.group(1)}>[^/]+)", regex)
        pattern = re.compile(f"^{regex}/?$", re.IGNORECASE)

        def register(handler: Callable) -> Callable:
            self.routes.append(Route(tuple(m.upper() for m in methods), pattern, handler))
            return handler

        return register

    def resolve(self, method: str, path: str) -> tuple[Callable, dict[str, str]]:
        allowed = False
        for route in self.routes:
            match = route.pattern.match(path)
            if match:
                if method.upper() in route.methods:
                    return route.handler, match.groupdict()
                allowed = True
        if allowed:
            raise ArmError(405, "MethodNotAllowed", f"The {method} method is not supported for {path}.")
        raise ArmError(404, "InvalidResourceType",
                       f"The resource type or path '{path}' is not served by this emulator.")


router = Router()
