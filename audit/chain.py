"""The hash chain over audit events: how an event is hashed, and how the chain is verified."""
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

GENESIS = "0" * 64

HASHED_FIELDS = (
    "occurred_at",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "subscription_id",
    "resource_group",
    "resource_id",
    "before",
    "after",
    "client_ip",
    "correlation_id",
)


def event_hash(prev_hash: str, fields: dict) -> str:
    """SHA-256 over the previous hash and a canonical JSON of the event's fields."""
    canonical = {name: fields.get(name) for name in HASHED_FIELDS}
    canonical["occurred_at"] = canonical["occurred_at"].isoformat() if canonical["occurred_at"] else None
    payload = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{prev_hash}\n{payload}".encode()).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    """Where the chain stops matching and why."""

    event_id: int
    reason: str


def verify(events: Iterable, start_hash: str = GENESIS) -> tuple[int, list[ChainBreak]]:
    """Walk events in append order; return how many were checked and every break found."""
    expected_prev = start_hash
    checked = 0
    breaks: list[ChainBreak] = []
    for event in events:
        checked += 1
        fields = {name: getattr(event, name) for name in HASHED_FIELDS}
        if event.prev_hash != expected_prev:
            breaks.append(ChainBreak(event.id, "previous hash does not match (an event was removed or inserted)"))
        if event_hash(event.prev_hash, fields) != event.hash:
            breaks.append(ChainBreak(event.id, "content does not match its hash (the event was altered)"))
        expected_prev = event.hash
    return checked, breaks
