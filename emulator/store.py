"""Resources kept by ARM id, indexed by (type, subscription) and (type, subscription, resource group)."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceId:
    """The parts of an ARM resource id that the emulator needs (compared case-insensitively)."""

    subscription: str
    resource_group: str
    type: str  # e.g. microsoft.network/networksecuritygroups, lower case
    name: str

    @classmethod
    def parse(cls, resource_id: str) -> ResourceId | None:
        parts = [p for p in resource_id.split("/") if p]
        lowered = [p.lower() for p in parts]
        if len(parts) < 4 or lowered[0] != "subscriptions":
            return None
        subscription = parts[1]
        resource_group = ""
        rest = parts[2:]
        if len(rest) >= 2 and rest[0].lower() == "resourcegroups":
            resource_group = rest[1]
            rest = rest[2:]
        if len(rest) < 4 or rest[0].lower() != "providers":
            return None
        namespace = rest[1]
        segments = rest[2:]
        if len(segments) % 2:
            return None
        types = [segments[i] for i in range(0, len(segments), 2)]
        return cls(subscription.lower(), resource_group.lower(), "/".join([namespace, *types]).lower(), segments[-1])


def key(resource_id: str) -> str:
    """The case-insensitive lookup key of an ARM id."""
    return resource_id.rstrip("/").lower()


class ResourceStore:
    """ARM resources as plain dicts (their JSON form), with per-scope indexes for fast listing."""

    def __init__(self) -> None:
        self._items: dict[str, dict] = {}
        self._by_sub: dict[tuple[str, str], dict[str, None]] = {}
        self._by_rg: dict[tuple[str, str, str], dict[str, None]] = {}

    def put(self, resource: dict) -> dict:
        rid = ResourceId.parse(resource["id"])
        if rid is None:
            raise ValueError(f"not an ARM resource id: {resource['id']}")
        k = key(resource["id"])
        self._items[k] = resource
        self._by_sub.setdefault((rid.type, rid.subscription), {})[k] = None
        self._by_rg.setdefault((rid.type, rid.subscription, rid.resource_group), {})[k] = None
        return resource

    def get(self, resource_id: str) -> dict | None:
        return self._items.get(key(resource_id))

    def delete(self, resource_id: str) -> dict | None:
        k = key(resource_id)
        resource = self._items.pop(k, None)
        if resource is not None:
            rid = ResourceId.parse(resource["id"])
            self._by_sub.get((rid.type, rid.subscription), {}).pop(k, None)
            self._by_rg.get((rid.type, rid.subscription, rid.resource_group), {}).pop(k, None)
        return resource

    def list(self, rtype: str, subscription: str, resource_group: str | None = None) -> list[dict]:
        """Resources of ``rtype`` in a subscription (or one of its resource groups), in insertion order."""
        if resource_group is None:
            keys = self._by_sub.get((rtype.lower(), subscription.lower()), {})
        else:
            keys = self._by_rg.get((rtype.lower(), subscription.lower(), resource_group.lower()), {})
        return [self._items[k] for k in keys]

    def all_of_type(self, rtype: str) -> Iterator[dict]:
        rtype = rtype.lower()
        for (t, _sub), keys in list(self._by_sub.items()):
            if t == rtype:
                for k in list(keys):
                    yield self._items[k]

    def values(self) -> list[dict]:
        return list(self._items.values())

    def clear(self) -> None:
        self._items.clear()
        self._by_sub.clear()
        self._by_rg.clear()
