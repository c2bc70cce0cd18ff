"""The notes the portal keeps in ``PolicyChange.last_error``, and what of them a reader of only some of the change's
VMs may see: Azure answers for the whole policy, so its message may name (and give the ports of) any VM of it."""
from __future__ import annotations

import re

from django.template.defaultfilters import pluralize

RETRYING = "Retrying: "
_KEPT = re.compile(r"(?P<name>.+) kept the newer change #(?P<pk>\d+), applied first")
# ``CloudError``: "Code: message", Azure's codes being words run together (InvalidPortNumber, TooManyRequests)
ERROR_CODE = re.compile(r"(?P<code>[A-Z][a-z]+(?:[A-Z][a-z]*)+): ")


def kept_note(name: str, pk: int) -> str:
    """Why a VM of a change was left alone: a newer change to it was applied first (``; `` joins several)."""
    return f"{name} kept the newer change #{pk}, applied first"


def kept_names(error: str) -> list[str]:
    """The VMs ``error`` names when it is only notes of VMs that kept a newer change (``kept_note``), else []."""
    kept = [_KEPT.fullmatch(part) for part in error.split("; ")] if error else []
    return [match["name"] for match in kept] if kept and all(kept) else []


def error_seen(error: str, *, readable_names: set[str], withheld: int) -> str:
    """``error`` as someone who may read the change's VMs named ``readable_names`` (lower case) and not ``withheld``
    others sees it: the notes about their VMs, and for the rest only how many were left out; Azure's own message
    gives only its code."""
    if not error or not withheld:
        return error
    kept = kept_names(error)
    if kept:
        shown = [part for part, name in zip(error.split("; "), kept, strict=True)
                 if name.lower() in readable_names]
        if len(shown) < len(kept):
            left_out = len(kept) - len(shown)
            shown.append(f"{left_out} note{pluralize(left_out)} about VMs outside your scope withheld")
        return "; ".join(shown)
    retrying = error.startswith(RETRYING)
    code = ERROR_CODE.match(error.removeprefix(RETRYING))
    named = f" ({code['code']})" if code else ""
    reason = (f"Azure's message{named} is withheld: it is about the whole JIT policy, which has VMs outside your "
              "scope; a reader of the whole policy sees it.")
    return RETRYING + reason if retrying else reason
