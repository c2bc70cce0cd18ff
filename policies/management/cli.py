"""What the operators' JIT commands share: JSON input, the acting user, refusals as ``CommandError``, waiting.

Exit codes: 2 for input the command cannot use (bad JSON, unknown VM, invalid ports or window), 1 when the
portal or Azure refused or failed (no role at the scope, Azure's error, still pending at ``--timeout``).
"""
from __future__ import annotations

import codecs
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.core.management.base import CommandError
from django.db import transaction
from kombu.exceptions import OperationalError

BAD_INPUT = 2
REFUSED = 1
BROKER_ERRORS = (OperationalError, OSError)


def bad_input(message: str) -> CommandError:
    return CommandError(message, returncode=BAD_INPUT)


def refused(message: str) -> CommandError:
    return CommandError(message, returncode=REFUSED)


def wait_seconds(value: float) -> float:
    """``--timeout``: a positive, finite number of seconds (``nan`` or ``inf`` would never end a wait)."""
    if not math.isfinite(value) or value <= 0:
        raise bad_input("--timeout must be a positive number of seconds.")
    return value


def _decode(data: bytes, source: str) -> str:
    """File or piped bytes as text: UTF-16 with its BOM (Windows PowerShell's ``Out-File`` writes that by default),
    else UTF-8 with or without a BOM (PowerShell 7, ``-Encoding utf8``)."""
    try:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise bad_input(f"{source} is not UTF-8 or UTF-16 text (save it with Out-File -Encoding utf8).") from None


def read_json(value: str, *, option: str, stdin=None) -> object:
    """``value`` as JSON: inline text, ``@path`` for a file, or ``-`` for standard input."""
    if value is None:
        raise bad_input(f"{option} is required: JSON inline, @file, or - for standard input.")
    source = option
    if value == "-":
        stream = stdin or sys.stdin
        source = f"{option} (standard input)"
        text = _decode(stream.buffer.read(), source) if hasattr(stream, "buffer") else stream.read()
    elif value.startswith("@"):
        path = Path(value[1:])
        source = f"{option} ({path})"
        try:
            text = _decode(path.read_bytes(), source)
        except OSError as exc:
            raise bad_input(f"{option}: cannot read {path}: {exc.strerror or exc}.") from None
    else:
        text = value
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_input(f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.") from None
    except RecursionError:
        raise bad_input(f"{source} is not valid JSON: it is nested too deeply.") from None
    if _has_nul(parsed):
        raise bad_input(f"{source}: text must not contain NUL (\\u0000) characters.")
    return parsed


def _has_nul(value: object) -> bool:
    """Whether any text (key or value) in parsed JSON holds a NUL, which PostgreSQL can neither store nor compare
    (no id, address or reason contains one)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            return True
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def resolve_actor(username: str | None):
    """The active portal user ``username`` (case-insensitive); their roles decide what the command may do."""
    if not username:
        raise bad_input("--actor is required: the portal user the change is made as (and audited under).")
    model = get_user_model()
    users = list(model.objects.filter(**{f"{model.USERNAME_FIELD}__iexact": username.strip()})[:2])
    if len(users) != 1:
        raise refused(f"No portal user '{username}' (users appear after their first sign-in; "
                      f"break-glass admins are created with createsuperuser).")
    if not users[0].is_active:
        raise refused(f"The portal user '{username}' is deactivated.")
    return users[0]


@contextmanager
def refusals() -> Iterator[None]:
    """Turn the services' ``ValidationError`` (exit 2) and ``PermissionDenied`` (exit 1) into messages."""
    try:
        yield
    except ValidationError as exc:
        raise bad_input("\n".join(exc.messages)) from None
    except PermissionDenied as exc:
        raise refused(str(exc) or "You may not do this.") from None
    except ImproperlyConfigured as exc:
        raise refused(f"The portal is not configured for this: {exc}") from None


@contextmanager
def stored(stderr) -> Iterator[None]:
    """A transaction whose rows stay stored when telling the worker fails after commit (broker down): the
    command says so and carries on (``--wait`` does the work here; otherwise the beat's reconciler sends it)."""
    done = False
    try:
        with transaction.atomic():
            yield
            done = True
    except BROKER_ERRORS as exc:
        if not done:
            raise
        stderr.write(f"Stored, but the task broker is unreachable ({exc}); the work waits for it or --wait.")


def write_json(stream, value: object) -> None:
    stream.write(json.dumps(value, indent=2, default=str))


def run_until_done(step: Callable[[], float | None], *, timeout: float, what: str,
                   sleep: Callable[[float], None] = time.sleep) -> None:
    """Call ``step`` until it returns None (done); a number is the seconds to wait before the next call."""
    deadline = time.monotonic() + timeout
    while True:
        wait = step()
        if wait is None:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise refused(f"{what} is still pending after {timeout:g} s; the portal's worker carries on with it.")
        sleep(min(max(wait, 0.2), remaining))
