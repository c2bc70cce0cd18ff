"""The JIT policy writes the change task makes through the gateway, in one place."""
from __future__ import annotations

from . import shapes


def put_policy(gateway, change, vms: list[dict]):
    """PUT the whole policy (every VM and port of it) and return Azure's answer."""
    return gateway.put_jit_policy(change.resource_group_name, change.location, change.policy_name, vms)


def delete_policy(gateway, change) -> None:
    """DELETE the policy (its last VM left it)."""
    gateway.delete_jit_policy(change.resource_group_name, change.location, change.policy_name)


def request_id(result, gateway) -> str:
    """Azure's request id of the last write, when the gateway exposes it."""
    value = shapes.pick(result, "request_id", "azure_request_id", default=None) if result is not None else None
    value = value or getattr(gateway, "last_request_id", None)
    return str(value or "")
