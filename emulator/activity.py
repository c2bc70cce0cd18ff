"""The Activity Log: stored events plus, for the large scenario, events generated on demand by index."""
from __future__ import annotations

import base64
import bisect
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from emulator.timeutil import iso, parse_iso

OPTIONAL_FILTER_FIELDS = {
    "resourcegroupname": "resourceGroupName",
    "resourceuri": "resourceUri",
    "resourceprovider": "resourceProvider",
    "correlationid": "correlationId",
}
_CLAUSE = re.compile(r"^\s*(\w+)\s+(eq|ge|le)\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


class FilterError(ValueError):
    """The $filter does not follow the grammar the Activity Log API accepts."""


@dataclass(frozen=True)
class EventFilter:
    """``eventTimestamp ge A and eventTimestamp le B`` plus at most one optional ``field eq value``."""

    start: datetime
    end: datetime
    field: str | None = None  # lower-case key of OPTIONAL_FILTER_FIELDS
    value: str | None = None
    subscription: str | None = None  # from the request path, not from $filter

    def accepts(self, event: dict) -> bool:
        if self.subscription and (event.get("subscriptionId") or "").lower() != self.subscription.lower():
            return False
        if self.field is None:
            return True
        wanted = (self.value or "").lower()
        if self.field == "resourcegroupname":
            return (event.get("resourceGroupName") or "").lower() == wanted
        if self.field == "resourceuri":
            return (event.get("resourceId") or "").lower() == wanted.rstrip("/")
        if self.field == "resourceprovider":
            return ((event.get("resourceProviderName") or {}).get("value") or "").lower() == wanted
        return (event.get("correlationId") or "").lower() == wanted


def parse_filter(text: str | None) -> EventFilter:
    """Parse the Activity Log ``$filter``; raise FilterError for anything Azure would refuse."""
    if not text or not text.strip():
        raise FilterError("The $filter parameter is required: "
                          "eventTimestamp ge '<start>' and eventTimestamp le '<end>'.")
    start = end = None
    optional: tuple[str, str] | None = None
    for clause in _AND.split(text.strip()):
        match = _CLAUSE.match(clause)
        if not match:
            raise FilterError(f"The $filter clause '{clause.strip()}' is not supported.")
        name, op, raw = match.group(1).lower(), match.group(2).lower(), match.group(3).replace("''", "'")
        if name == "eventtimestamp" and op in ("ge", "le"):
            try:
                moment = parse_iso(raw)
            except ValueError as exc:
                raise FilterError(f"'{raw}' is not a valid eventTimestamp.") from exc
            if op == "ge":
                if start is not None:
                    raise FilterError("eventTimestamp ge may appear only once in $filter.")
                start = moment
            else:
                if end is not None:
                    raise FilterError("eventTimestamp le may appear only once in $filter.")
                end = moment
        elif name in OPTIONAL_FILTER_FIELDS and op == "eq":
            if optional is not None:
                raise FilterError("Only one of resourceGroupName, resourceUri, resourceProvider or correlationId "
                                  "may be given in $filter.")
            optional = (name, raw)
        else:
            raise FilterError(f"The $filter clause '{clause.strip()}' is not supported.")
    if start is None or end is None:
        raise FilterError("The $filter must contain both eventTimestamp ge and eventTimestamp le.")
    if start > end:
        raise FilterError("The start of the eventTimestamp range is after its end.")
    if end - start > timedelta(days=90):
        raise FilterError("The eventTimestamp range cannot exceed 90 days.")
    return EventFilter(start, end, *(optional or (None, None)))


def make_event(*, subscription: str, tenant_id: str, resource_id: str, resource_group: str, operation_name: str,
               status: str, caller: str, correlation_id: str, timestamp: datetime, properties: dict | None = None,
               http_method: str = "PUT", client_ip: str = "127.0.0.1", event_data_id: str | None = None,
               level: str = "Informational", sub_status: str = "", description: str = "") -> dict:
    """An EventData document shaped like Azure's (administrative category)."""
    event_data_id = event_data_id or str(uuid.uuid4())
    parts = [p for p in resource_id.split("/") if p]
    provider = next((parts[i + 1] for i, p in enumerate(parts[:-1]) if p.lower() == "providers"), "")
    after = resource_id.split(f"/providers/{provider}/", 1)[-1].split("/") if provider else []
    resource_type = "/".join([provider, *after[0::2]]) if provider else ""
    ticks = int((timestamp - datetime(1, 1, 1, tzinfo=timestamp.tzinfo)).total_seconds() * 10_000_000)
    return {
        "authorization": {"action": operation_name, "scope": resource_id},
        "caller": caller,
        "channels": "Operation",
        "claims": {},
        "correlationId": correlation_id,
        "description": description,
        "eventDataId": event_data_id,
        "eventName": {"value": "BeginRequest" if status == "Started" else "EndRequest",
                      "localizedValue": "Begin request" if status == "Started" else "End request"},
        "category": {"value": "Administrative", "localizedValue": "Administrative"},
        "httpRequest": {"clientRequestId": correlation_id, "clientIpAddress": client_ip, "method": http_method},
        "id": f"{resource_id}/events/{event_data_id}/ticks/{ticks}",
        "level": level,
        "resourceGroupName": resource_group,
        "resourceProviderName": {"value": provider, "localizedValue": provider},
        "resourceId": resource_id,
        "resourceType": {"value": resource_type, "localizedValue": resource_type},
        "operationId": correlation_id,
        "operationName": {"value": operation_name, "localizedValue": operation_name},
        "properties": {k: v if isinstance(v, str) else json.dumps(v) for k, v in (properties or {}).items()},
        "status": {"value": status, "localizedValue": status},
        "subStatus": {"value": sub_status, "localizedValue": sub_status},
        "eventTimestamp": iso(timestamp),
        "submissionTimestamp": iso(timestamp + timedelta(seconds=12)),
        "subscriptionId": subscription,
        "tenantId": tenant_id,
    }


@dataclass
class GeneratedActivity:
    """``count`` synthetic JIT events, one every ``step_seconds`` going back from ``newest``; event i is built on
    demand from its index, so a million events cost no memory."""

    count: int
    newest: str
    step_seconds: float
    subscription: str
    tenant_id: str
    resource_groups: list[str]
    vm_count: int
    vms_per_group: int
    location_of_group: list[str]
    callers: list[str]

    def timestamp(self, index: int) -> datetime:
        return parse_iso(self.newest) - timedelta(seconds=self.step_seconds * index)

    def index_range(self, start: datetime, end: datetime) -> tuple[int, int]:
        newest = parse_iso(self.newest)
        first = max(0, int(-(-(newest - end).total_seconds() // self.step_seconds)))
        last = min(self.count - 1, int((newest - start).total_seconds() // self.step_seconds))
        return first, last

    def group_of(self, index: int) -> int:
        return (index * 7919) % self.vm_count // self.vms_per_group

    def policy_id(self, group: int) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_groups[group]}/providers/"
                f"Microsoft.Security/locations/{self.location_of_group[group]}/jitNetworkAccessPolicies/default")

    def quick_match(self, index: int, flt: EventFilter) -> bool:
        """Decide the optional filter from the index alone (no event is built)."""
        if flt.field is None or flt.field == "resourceprovider":
            return flt.field is None or (flt.value or "").lower() == "microsoft.security"
        if flt.field == "correlationid":
            return (flt.value or "").lower() == self.correlation_id(index)
        group = self.group_of(index)
        if flt.field == "resourcegroupname":
            return self.resource_groups[group].lower() == (flt.value or "").lower()
        return self.policy_id(group).lower() == (flt.value or "").lower().rstrip("/")

    @staticmethod
    def correlation_id(index: int) -> str:
        return f"00000000-0000-4000-a000-{index:012x}"

    def event(self, index: int) -> dict:
        vm_number = (index * 7919) % self.vm_count
        group = vm_number // self.vms_per_group
        vm_id = (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_groups[group]}/providers/"
                 f"Microsoft.Compute/virtualMachines/vm-{vm_number:05d}")
        initiate = index % 5 != 0
        operation = ("Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action" if initiate
                     else "Microsoft.Security/locations/jitNetworkAccessPolicies/write")
        return make_event(
            subscription=self.subscription, tenant_id=self.tenant_id, resource_id=self.policy_id(group),
            resource_group=self.resource_groups[group], operation_name=operation,
            status="Succeeded" if index % 2 == 0 else "Started", caller=self.callers[index % len(self.callers)],
            correlation_id=self.correlation_id(index), timestamp=self.timestamp(index),
            properties={"virtualMachines": vm_id, "ports": "22" if index % 3 else "3389"},
            http_method="POST" if initiate else "PUT", event_data_id=f"00000000-0000-4000-b000-{index:012x}",
        )


def _encode_token(stored: int, generated: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"s": stored, "g": generated}).encode()).decode().rstrip("=")


def decode_token(token: str) -> tuple[int, int]:
    """The (stored, generated) cursor of a skiptoken; ValueError when it is not one of ours."""
    padded = token + "=" * (-len(token) % 4)
    data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    return int(data["s"]), int(data["g"])


class ActivityLog:
    """Events newest first, filtered and paged the way the Activity Log API pages them."""

    def __init__(self) -> None:
        self._events: list[dict] = []
        self._stamps: list[float] = []
        self.generated: GeneratedActivity | None = None

    def __len__(self) -> int:
        return len(self._events) + (self.generated.count if self.generated else 0)

    def add(self, event: dict) -> None:
        stamp = parse_iso(event["eventTimestamp"]).timestamp()
        position = bisect.bisect_right(self._stamps, stamp)
        self._stamps.insert(position, stamp)
        self._events.insert(position, event)

    def _stored(self, flt: EventFilter, cursor: int | None) -> Iterator[tuple[float, int, dict]]:
        low = bisect.bisect_left(self._stamps, flt.start.timestamp())
        high = bisect.bisect_right(self._stamps, flt.end.timestamp()) - 1
        if cursor is not None:
            high = min(high, cursor)
        for position in range(high, low - 1, -1):
            event = self._events[position]
            if flt.accepts(event):
                yield self._stamps[position], position, event

    def _generated(self, flt: EventFilter, cursor: int | None) -> Iterator[tuple[float, int, dict]]:
        gen = self.generated
        if gen is None or gen.count == 0:
            return
        if flt.subscription and flt.subscription.lower() != gen.subscription.lower():
            return
        first, last = gen.index_range(flt.start, flt.end)
        if flt.field == "correlationid":
            match = re.fullmatch(r"00000000-0000-4000-a000-([0-9a-f]{12})", (flt.value or "").lower())
            index = int(match.group(1), 16) if match else -1
            first, last = (index, index) if first <= index <= last else (1, 0)
        first = max(first, cursor or 0)
        for index in range(first, last + 1):
            if gen.quick_match(index, flt):
                yield gen.timestamp(index).timestamp(), index, gen.event(index)

    def page(self, flt: EventFilter, size: int, token: str | None = None) -> tuple[list[dict], str | None]:
        """One page of matching events (newest first) and the skiptoken of the next page, if any."""
        stored_cursor, generated_cursor = decode_token(token) if token else (None, None)
        if stored_cursor is not None and stored_cursor < 0:
            stored_cursor = -1
        stored = self._stored(flt, stored_cursor)
        generated = self._generated(flt, generated_cursor)
        head_s, head_g = next(stored, None), next(generated, None)
        out: list[dict] = []
        while (head_s or head_g) and len(out) < size:
            if head_g is None or (head_s is not None and head_s[0] >= head_g[0]):
                out.append(head_s[2])
                head_s = next(stored, None)
            else:
                out.append(head_g[2])
                head_g = next(generated, None)
        if head_s is None and head_g is None:
            return out, None
        next_stored = head_s[1] if head_s else -1
        next_generated = head_g[1] if head_g else (self.generated.count if self.generated else 0)
        return out, _encode_token(next_stored, next_generated)

    def to_json(self) -> dict:
        return {"events": self._events, "generated": asdict(self.generated) if self.generated else None}

    @classmethod
    def from_json(cls, data: dict) -> ActivityLog:
        log = cls()
        for event in data.get("events", []):
            log.add(event)
        if data.get("generated"):
            log.generated = GeneratedActivity(**data["generated"])
        return log
