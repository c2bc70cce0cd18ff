"""Activity Log events for the operations the emulator performs (and the rule changes they cause)."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from emulator.activity import make_event
from emulator.errors import ArmError
from emulator.store import ResourceId


@dataclass
class Operation:
    """Who did what: shared by the Started/Succeeded events of one call and the changes it causes."""

    caller: str
    subscription: str
    tenant_id: str
    client_ip: str = "127.0.0.1"
    correlation_id: str = field(default_factory=lambda: str(uuid.uuid4()))


SECURITY_RP = "Windows Azure Security Resource Provider"


def record(state, op: Operation, *, resource_id: str, operation_name: str, status: str, http_method: str,
           properties: dict | None = None, level: str = "Informational", sub_status: str = "") -> dict:
    """Append one event at the current virtual time and return it."""
    rid = ResourceId.parse(resource_id)
    group = ""
    if rid is not None:
        parts = resource_id.split("/")
        lowered = [p.lower() for p in parts]
        group = parts[lowered.index("resourcegroups") + 1] if "resourcegroups" in lowered else ""
    event = make_event(
        subscription=op.subscription, tenant_id=op.tenant_id, resource_id=resource_id, resource_group=group,
        operation_name=operation_name, status=status, caller=op.caller, correlation_id=op.correlation_id,
        timestamp=state.now(), properties=properties, http_method=http_method, client_ip=op.client_ip,
        level=level, sub_status=sub_status,
    )
    state.activity.add(event)
    return event


def record_pair(state, op: Operation, *, resource_id: str, operation_name: str, http_method: str,
                properties: dict | None = None, failed: str | None = None) -> None:
    """The Started event and then Succeeded (or Failed, with ``failed`` as the reason) of one operation."""
    record(state, op, resource_id=resource_id, operation_name=operation_name, status="Started",
           http_method=http_method, properties=properties)
    if failed:
        record(state, op, resource_id=resource_id, operation_name=operation_name, status="Failed",
               http_method=http_method, properties={**(properties or {}), "statusMessage": failed}, level="Error",
               sub_status="BadRequest")
    else:
        record(state, op, resource_id=resource_id, operation_name=operation_name, status="Succeeded",
               http_method=http_method, properties=properties, sub_status="OK")


@contextmanager
def operation_events(state, op: Operation, *, resource_id: str, operation_name: str, http_method: str,
                     properties: dict) -> Iterator[dict]:
    """Record Started, run the block (which may add to ``properties``), then Succeeded, or Failed on ArmError."""
    record(state, op, resource_id=resource_id, operation_name=operation_name, status="Started",
           http_method=http_method, properties=properties)
    try:
        yield properties
    except ArmError as err:
        record(state, op, resource_id=resource_id, operation_name=operation_name, status="Failed",
               http_method=http_method, level="Error",
               sub_status="BadRequest" if err.status == 400 else str(err.status),
               properties={**properties, "statusCode": err.code, "statusMessage": err.message})
        raise
    record(state, op, resource_id=resource_id, operation_name=operation_name, status="Succeeded",
           http_method=http_method, properties=properties, sub_status="OK")
