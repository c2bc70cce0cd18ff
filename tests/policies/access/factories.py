"""Helpers for access request tests: a request as a view would submit it, and running its task in-process."""
from __future__ import annotations

import uuid
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from policies.access import services
from policies.access.models import (
    AccessRequest,
    AccessRequestPort,
    AccessRequestVm,
    AccessRule,
    ApprovalState,
    PortState,
)
from policies.models import VirtualMachine
from tests.policies import factories as policy_factories

MY_IP = "203.0.113.50"


def vm(name: str) -> VirtualMachine:
    return VirtualMachine.objects.select_related("subscription").get(name=name)


def ask(actor, vms: dict[str, list[int]], *, source: str = f"{MY_IP}/32", hours: float = 1.0,
        justification: str = "Patch the kernel", key: str | None = None) -> AccessRequest:
    """``request_create`` as the form would call it (commit included, so on_commit enqueues)."""
    selections = [services.Selection(vm(name), tuple(ports)) for name, ports in vms.items()]
    request, _ = services.request_create(
        actor=actor, selections=selections, source_prefix=source, duration=timedelta(hours=hours),
        justification=justification, idempotency_key=key or uuid.uuid4().hex, source_kind="ip")
    return request


def lower_maximum(name: str, number: int, maximum: str) -> None:
    """A policy admin lowered the VM's port to at most ``maximum`` (as the portal's copy reads it after the save)."""
    row = vm(name)
    row.ports = [{**port, "maxRequestAccessDuration": maximum} if port["number"] == number else port
                 for port in row.ports]
    row.save(update_fields=["ports"])


def open_all(request: AccessRequest) -> list[str]:
    """Run the open task's service for every policy of ``request`` in this process."""
    keys = sorted(set(request.ports.values_list("policy_key", flat=True)))
    return [services.request_open(request_id=request.pk, policy_key=key).state for key in keys]


def states(request: AccessRequest) -> dict[tuple[str, int], str]:
    return {(p.request_vm.vm_name, p.number): p.state
            for p in AccessRequestPort.objects.filter(request=request).select_related("request_vm")}


def make_access_request(scope: str) -> AccessRequest:
    """For the authorization matrix: a request by someone else on a VM at ``scope``."""
    from accounts.models import User
    from policies.access.source_order import source_sort_key

    vm_row = policy_factories.make_vm(scope)
    owner, _ = User.objects.get_or_create(username=f"owner-{uuid.uuid4().hex[:8]}")
    with transaction.atomic():
        from django.utils import timezone

        request = AccessRequest.objects.create(
            requester=owner, requester_name=owner.username, justification="matrix", idempotency_key=uuid.uuid4().hex,
            source_prefix=f"{MY_IP}/32", source_sort=source_sort_key(f"{MY_IP}/32"),
            end_at=timezone.now() + timedelta(hours=1), state=PortState.OPEN)
        row = AccessRequestVm.objects.create(
            request=request, vm=vm_row, vm_arm_id=vm_row.arm_id, vm_name=vm_row.name,
            subscription_key=vm_row.subscription_key, resource_group=vm_row.resource_group,
            policy_key=vm_row.policy_id.lower(), policy_resource_group=vm_row.resource_group_name,
            policy_location="westeurope", policy_name="default")
        AccessRequestPort.objects.create(request=request, request_vm=row, policy_key=row.policy_key, number=22,
                                         source_prefix=f"{MY_IP}/32", duration_seconds=3600,
                                         end_at=request.end_at, state=PortState.OPEN)
    return request


def requests_in_groups(scope: str, groups: list[int], *, state: str = "open") -> list[AccessRequest]:
    """Requests at ``scope``, each group of ``groups`` sharing one creation time (ties the id must break)."""
    made = []
    moment = timezone.now() - timedelta(days=1)
    for index, size in enumerate(groups):
        batch = [make_access_request(scope) for _ in range(size)]
        AccessRequest.objects.filter(pk__in=[r.pk for r in batch]).update(
            created_at=moment + timedelta(minutes=index), state=state)
        made += batch
    return made


def pending_in_groups(scope: str, groups: list[int]) -> list[AccessRequest]:
    """Requests waiting for two approvals at ``scope`` (each by someone else), each group of ``groups`` expiring at
    one moment (ties the id must break), the groups a minute apart, the first an hour from now."""
    made = []
    moment = timezone.now() + timedelta(hours=1)
    for index, size in enumerate(groups):
        batch = [make_access_request(scope) for _ in range(size)]
        AccessRequest.objects.filter(pk__in=[r.pk for r in batch]).update(
            state=PortState.PENDING, approval_state=ApprovalState.PENDING, approvals_required=2,
            approval_expires_at=moment + timedelta(minutes=index))
        made += batch
    return made


def make_access_rule(scope: str) -> AccessRule:
    """For the authorization matrix: an access rule at ``scope`` (a VM's or a resource group's)."""
    from accounts.scopes import parse_scope

    return AccessRule.objects.create(name=f"rule-{uuid.uuid4().hex[:6]}", scope=parse_scope(scope).id,
                                     effect=AccessRule.Effect.MANUAL, approvals_required=1)


def rule(scope: str, effect: str = "manual", **fields) -> AccessRule:
    """An enabled access rule at ``scope`` (``fields`` as on the model)."""
    return AccessRule.objects.create(name=fields.pop("name", f"{effect} at {scope[-20:]}"), scope=scope,
                                     effect=effect, **fields)


MATRIX_FACTORIES = {AccessRequest: make_access_request, AccessRule: make_access_rule}


def add_vm_at(request: AccessRequest, scope: str, *, name: str = "", number: int = 3389, state: str = "open",
              end_at=None, address: str = "") -> AccessRequestVm:
    """Add to ``request`` a new VM at ``scope`` (named ``name``, else the factory's name) with one port."""
    other = policy_factories.make_vm(scope)
    row = AccessRequestVm.objects.create(
        request=request, vm=other, vm_arm_id=other.arm_id, vm_name=name or other.name,
        subscription_key=other.subscription_key, resource_group=other.resource_group,
        policy_key=other.policy_id.lower(), policy_resource_group=other.resource_group_name,
        policy_location="westeurope", policy_name="default", address=address,
        address_kind="public" if address else "")
    AccessRequestPort.objects.create(request=request, request_vm=row, policy_key=row.policy_key, number=number,
                                     source_prefix=request.source_prefix, duration_seconds=3600,
                                     end_at=end_at or request.end_at, state=state)
    return row


def add_named_vm(request: AccessRequest, scope: str, name: str, *, number: int, address: str = "") -> AccessRequestVm:
    """Add to ``request`` the VM ``name`` at ``scope`` with one open port; unlike ``add_vm_at``'s, its ARM id ends with
    its name, as Azure's do (what names a VM in text is read from its id: ``audit.redaction``)."""
    vm = policy_factories.make_vm(scope, name=name)
    row = AccessRequestVm.objects.create(
        request=request, vm=vm, vm_arm_id=vm.arm_id, vm_name=vm.name, subscription_key=vm.subscription_key,
        resource_group=vm.resource_group, policy_key=vm.policy_id.lower(), policy_resource_group=vm.resource_group_name,
        policy_location="westeurope", policy_name="default", address=address, address_kind="public" if address else "")
    AccessRequestPort.objects.create(request=request, request_vm=row, policy_key=row.policy_key, number=number,
                                     source_prefix=request.source_prefix, duration_seconds=3600,
                                     end_at=request.end_at, state="open")
    return row
