"""Faults injected at run time: 403/429/5xx answers, a bare 404 (a proxy's or a wrong route's, with no ARM error),
slow answers, dropped connections and answers a client cannot read (``garbled``: the JSON cut in half; ``nulls``: every
object in a list null), given after the request was carried out."""
from __future__ import annotations

import random
import re
import uuid
from dataclasses import asdict, dataclass, field

KINDS = ("403", "404", "429", "500", "503", "slow", "drop", "garbled", "nulls")
UNREADABLE = ("garbled", "nulls")  # the request is carried out, then its answer is spoiled


@dataclass
class Fault:
    """One rule: requests whose path matches ``path`` (and ``method``, when given) get ``kind``."""

    path: str
    kind: str
    method: str | None = None
    rate: float = 1.0
    count: int | None = None
    retry_after: float | None = None
    delay: float = 1.0
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    hits: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if not 0 <= float(self.rate) <= 1:
            raise ValueError("rate must be between 0 and 1")
        if self.count is not None and int(self.count) < 0:
            raise ValueError("count must not be negative")
        re.compile(self.path)
        self.method = self.method.upper() if self.method else None

    def to_dict(self) -> dict:
        return asdict(self)

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method.upper():
            return False
        if self.count is not None and self.hits >= self.count:
            return False
        return re.search(self.path, path, re.IGNORECASE) is not None  # ARM paths ignore case


def pick_fault(faults: dict[str, Fault], method: str, path: str, rng: random.Random) -> Fault | None:
    """The first fault that applies to this request (its hit is counted), or None."""
    for fault in faults.values():
        if fault.matches(method, path) and (fault.rate >= 1 or rng.random() < fault.rate):
            fault.hits += 1
            return fault
    return None
