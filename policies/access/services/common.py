"""What the other modules of ``services`` share: a task run's outcome, where audit rows belong, who may request
or manage access, sending tasks after commit, finding a portal request in Azure, and the gateways."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import authz
from accounts.roles import JIT_INITIATE, JIT_POLICY_WRITE
from policies.models import VirtualMachine

from ..models import AccessRequest, AccessRequestVm, portal_request_in


@dataclass
class Outcome:
    """What a task run did: ``state``, and ``retry_after`` seconds when it should run again."""

    state: str
    retry_after: float | None = None
    message: str = ""


def audit_place(vm_row: AccessRequestVm) -> dict:
    """Where an audit row of ``vm_row`` belongs (subscription, resource group, VM)."""
    return {"subscription_id": vm_row.subscription_key, "resource_group": vm_row.resource_group,
            "resource_id": vm_row.vm_arm_id.lower()}


# --- authorization ---------------------------------------------------------------------------------------------
def may_request(user, vm: VirtualMachine) -> bool:
    return authz.has_permission(user, JIT_INITIATE, vm.resource_id)


def may_manage(user, request: AccessRequest, vm_rows: list[AccessRequestVm] | None = None) -> bool:
    """The requester themselves, or a policy admin at the scope of every VM of the request."""
    if getattr(user, "pk", None) is not None and request.requester_id == user.pk:
        return True
    rows = vm_rows if vm_rows is not None else list(request.vms.all())
    return bool(rows) and all(authz.has_permission(user, JIT_POLICY_WRITE, row.vm_arm_id) for row in rows)


# --- enqueue ---------------------------------------------------------------------------------------------------
def _after_commit(func, *args) -> None:
    """Run ``func(*args)`` after commit; a failure (the broker is down) is logged, the rows stay for the reconciler."""
    def send() -> None:
        func(*args)

    send.__qualname__ = func.__qualname__
    transaction.on_commit(send, robust=True)


def enqueue_after_commit(request_id: int, policy_key: str) -> None:
    """Send the open task of one policy's ports once the current transaction commits."""
    _after_commit(enqueue_open, request_id, policy_key)


def enqueue_open(request_id: int, policy_key: str) -> None:
    """Send one ``open_ports`` task (raises when the broker is unreachable; the reconciler sends it later)."""
    from ..tasks import open_ports

    open_ports.delay(request_id, policy_key)


def enqueue_close(request_id: int) -> None:
    from ..tasks import close_ports

    close_ports.delay(request_id)


# --- shared by the tasks ---------------------------------------------------------------------------------------
def _stale() -> datetime:
    return timezone.now() - timedelta(seconds=settings.ACCESS_STUCK_SECONDS)


def _find_in_azure(policy, correlation: str):
    """Azure's record of this portal request in the policy's ``requests``: the one whose justification ends by
    naming it as ``AccessRequest.azure_justification`` writes it (``portal_request_in``). Only the end counts: the
    requester's own words come before it and may quote another request's id, and Close now's replacement request
    behind a firewall names it too (``closing._replace_with_placeholder``)."""
    for record in getattr(policy, "requests", ()) or ():
        found = portal_request_in(record.justification)
        if found is not None and found[1] == correlation.lower() and not found[2]:
            return record
    return None


def _azure_port(policy, port):
    """Azure's record of ``port`` (an ``AccessRequestPort``) in ``policy``'s requests (found by the portal request's
    id), or ``None``."""
    record = _find_in_azure(policy, str(port.request.correlation_id)) if policy is not None else None
    return next((p for vm in (record.virtual_machines if record else ())
                 if vm.id.lower() == port.request_vm.vm_arm_id.lower() for p in vm.ports if p.number == port.number),
                None)


def _retry_after(exc) -> float:
    value = getattr(exc, "retry_after", None)
    try:
        return max(1.0, float(value)) if value is not None else 2.0
    except (TypeError, ValueError):
        return 2.0


# --- gateways ---------------------------------------------------------------------------------------------------
def gateway_for(subscription):
    """The gateway of ``subscription`` from this process's factory (credentials and token caches shared)."""
    from ..gateways import gateway_for_subscription

    return gateway_for_subscription(subscription)
