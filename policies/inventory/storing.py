"""Storing a sync: upsert the VM rows in bulk, keep what portal policy changes wrote meanwhile, delete what Azure
no longer lists, mirror the JIT policies and their ports, record drift.

Only what changed is written: the stored rows are read before the storing transaction (``Stored``), and a VM row or
a policy mirror equal to what the sync makes of Azure is left as it is, so a steady-state sync holds the database's
write lock briefly (on SQLite every other writer waits for it)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction

from .. import drift, rules, shapes
from ..models import (
    ConnectionType,
    JitPolicy,
    PolicyChange,
    PolicyPort,
    Subscription,
    UnsupportedReason,
    VirtualMachine,
    VmState,
)
from .snapshot import PolicyView, Snapshot

BATCH = 500
VM_FIELDS = ["arm_id", "name", "subscription", "subscription_key", "resource_group", "resource_group_name",
             "location", "os_type", "is_classic", "state", "unsupported_reason", "connection_type", "nsg_ids",
             "firewall_id", "firewall_public_ip", "public_ip", "private_ip", "policy_resource_group",
             "policy_location", "policy_name", "ports", "approved_requests_7d", "last_access_at", "last_user",
             "synced_at"]


# What a sync compares of a stored VM row (its subscription is the sync's; ``synced_at`` is when it last changed).
VM_COMPARED = [name for name in VM_FIELDS if name not in ("subscription", "synced_at")]
POLICY_COMPARED = ["subscription_key", "resource_group", "resource_group_name", "location", "name",
                   "provisioning_state", "requests"]

# The policy fields of a VM a portal change wrote while the sync read Azure: kept as the change left them.
POLICY_FIELDS = ["state", "unsupported_reason", "policy_resource_group", "policy_location", "policy_name", "ports",
                 "firewall_public_ip"]
# How long before the sync's start a change counts as possibly missed by its snapshot (workers' clocks differ).
CHANGE_MARGIN = timedelta(seconds=30)


def changed_meanwhile(subscription: Subscription, since: datetime) -> tuple[set[str], dict[str, VirtualMachine]]:
    """(policy ids, VMs by id) that portal policy changes applied since ``since`` wrote, from Azure's answer to
    their write: newer than a snapshot read from ``since`` on. A change writes the VMs of its resource group and
    location (``services._mirror_change``)."""
    changes = PolicyChange.objects.filter(subscription=subscription, state=PolicyChange.State.APPLIED,
                                          finished_at__gte=since - CHANGE_MARGIN)
    places = set(changes.values_list("resource_group", "location"))
    if not places:
        return set(), {}
    vms = {vm.resource_id: vm for vm in VirtualMachine.objects.filter(subscription=subscription)
           if (vm.resource_group, vm.location) in {(group, location.lower()) for group, location in places}}
    return {policy.lower() for policy in changes.values_list("policy_id", flat=True)}, vms


def keep_changed(rows: list[VirtualMachine], current: dict[str, VirtualMachine]) -> None:
    """Give the rows of VMs a change wrote meanwhile their stored JIT state (what that change made of them), unless
    the snapshot finds them unsupported for a reason of their own (classic, no NSG or firewall, JIT off)."""
    for row in rows:
        stored = current.get(row.resource_id)
        if stored is None or (row.state == VmState.UNSUPPORTED
                              and row.unsupported_reason != UnsupportedReason.DEFENDER_MISSING):
            continue
        for name in POLICY_FIELDS:
            setattr(row, name, getattr(stored, name))


PortSpec = tuple[int, int, str, tuple[str, ...], str]  # (VM pk, number, protocol, sources, maximum duration)


@dataclass
class Stored:
    """The subscription's stored VM rows and policy mirrors, as a sync compares them (read before it stores)."""

    vms: dict[str, tuple] = field(default_factory=dict)
    policies: dict[str, tuple[int, tuple]] = field(default_factory=dict)
    ports: dict[int, list[PortSpec]] = field(default_factory=dict)

    @classmethod
    def read(cls, subscription: Subscription) -> Stored:
        stored = cls()
        for resource_id, *values in VirtualMachine.objects.filter(subscription=subscription).values_list(
                "resource_id", *VM_COMPARED).iterator(chunk_size=2000):
            stored.vms[resource_id] = tuple(values)
        for resource_id, pk, *values in JitPolicy.objects.filter(subscription=subscription).values_list(
                "resource_id", "pk", *POLICY_COMPARED):
            stored.policies[resource_id] = (pk, tuple(values))
        for policy_pk, vm_pk, number, protocol, sources, duration in PolicyPort.objects.filter(
                policy__subscription=subscription).values_list(
                "policy_id", "vm_id", "number", "protocol", "allowed_source_prefixes", "max_request_duration"
                ).iterator(chunk_size=2000):
            stored.ports.setdefault(policy_pk, []).append((vm_pk, number, protocol, tuple(sources), duration))
        for specs in stored.ports.values():
            specs.sort()
        return stored

    def vm_changed(self, row: VirtualMachine) -> bool:
        return self.vms.get(row.resource_id) != tuple(getattr(row, name) for name in VM_COMPARED)


def store(subscription: Subscription, snap: Snapshot, rows: list[VirtualMachine], policies: list[PolicyView],
          network_rules: dict[str, list[shapes.RuleInfo]], now: datetime) -> int:
    """Upsert VMs and policy mirrors in bulk, delete what Azure no longer lists, record drift. Returns findings.

    ``now`` is when the snapshot's reading began. A portal policy change applied since then is newer than the
    snapshot: the policies it wrote keep their mirrors, and their VMs their JIT state and findings, until the next
    sync. The subscription's row, updated first, is locked until commit; a change takes it before writing its VMs,
    so one applied later waits and writes after this. The rows stored are read first, outside that transaction:
    those a change wrote meanwhile are read again inside it (``changed_meanwhile``), and only rows that differ from
    what they will be are written."""
    stored = Stored.read(subscription)
    with transaction.atomic():
        Subscription.objects.filter(pk=subscription.pk).update(
            defender_p2=snap.defender_p2, defender_plan=snap.defender_plan, defender_checked_at=now,
            jit_disabled_subscription=snap.jit_off_subscription, jit_disabled_groups=sorted(snap.jit_off_groups),
            resource_groups=sorted({row.resource_group for row in rows}),
            locations=sorted({row.location for row in rows if row.location}))
        changed_policies, changed_vms = changed_meanwhile(subscription, now)
        keep_changed(rows, changed_vms)
        VirtualMachine.objects.bulk_create([row for row in rows if stored.vm_changed(row)], batch_size=BATCH,
                                           update_conflicts=True, unique_fields=["resource_id"],
                                           update_fields=VM_FIELDS)
        remove_gone(subscription, {row.resource_id for row in rows})
        vm_pk = dict(VirtualMachine.objects.filter(subscription=subscription).exclude(
            unsupported_reason=UnsupportedReason.NOT_IN_AZURE).values_list("resource_id", "pk"))
        mirror_policies(subscription, [view for view in policies if view.arm_id.lower() not in changed_policies],
                        vm_pk, now, keep=changed_policies, stored=stored)
        return drift.detect(subscription, policies, network_rules, now,
                            skip={vm.pk for vm in changed_vms.values()})


def remove_gone(subscription: Subscription, seen: set[str]) -> None:
    """Delete the VMs Azure no longer lists. One an access request names stays for that history (the request
    protects it), as Unsupported, no longer in Azure, without JIT or network details."""
    from ..access.models import AccessRequestVm

    stale = [pk for pk, rid in VirtualMachine.objects.filter(subscription=subscription).values_list(
        "pk", "resource_id") if rid not in seen]
    for start in range(0, len(stale), BATCH):
        chunk = stale[start:start + BATCH]
        kept = set(AccessRequestVm.objects.filter(vm_id__in=chunk).values_list("vm_id", flat=True))
        VirtualMachine.objects.filter(pk__in=[pk for pk in chunk if pk not in kept]).delete()
        VirtualMachine.objects.filter(pk__in=kept).update(
            state=VmState.UNSUPPORTED, unsupported_reason=UnsupportedReason.NOT_IN_AZURE,
            connection_type=ConnectionType.NONE, nsg_ids=[], firewall_id="", firewall_public_ip="", public_ip="",
            private_ip="", policy_resource_group="", policy_location="", policy_name="", ports=[],
            portal_ports=None)
        PolicyPort.objects.filter(vm_id__in=kept).delete()


def mirror_policies(subscription: Subscription, policies: list[PolicyView], vm_pk: dict[str, int],
                    now: datetime, keep: set[str] = frozenset(), stored: Stored | None = None) -> None:
    """Replace the subscription's policy mirrors and port rows with what Azure listed (those of the policy ids
    ``keep`` stay as they are). A mirror whose fields and ports equal ``stored``'s is left as it is, unless it shares
    a VM with one rewritten (that one's rewrite deletes the VM's other port rows)."""
    planned = [(view, _policy_defaults(subscription, view, now), _port_specs(view, vm_pk)) for view in policies]
    found = [(stored or Stored()).policies.get(view.arm_id.lower()) for view in policies]
    dirty = {index for index, ((_view, defaults, specs), mirror) in enumerate(zip(planned, found, strict=True))
             if mirror is None or mirror[1] != tuple(defaults[name] for name in POLICY_COMPARED)
             or stored.ports.get(mirror[0], []) != specs}
    by_vm: dict[int, set[int]] = {}
    for index, (_view, _defaults, specs) in enumerate(planned):
        for vm in {spec[0] for spec in specs} | {spec[0] for spec in (stored.ports.get(found[index][0], [])
                                                                   if stored and found[index] else [])}:
            by_vm.setdefault(vm, set()).add(index)
    pending = list(dirty)
    while pending:
        index = pending.pop()
        for vm in {spec[0] for spec in planned[index][2]}:
            for other in by_vm.get(vm, ()):
                if other not in dirty:
                    dirty.add(other)
                    pending.append(other)
    mirrored = [_mirror_one(view, defaults, specs) if index in dirty else found[index][0]
                for index, (view, defaults, specs) in enumerate(planned)]
    JitPolicy.objects.filter(subscription=subscription).exclude(pk__in=mirrored).exclude(resource_id__in=keep).delete()


def mirror_policies_one(subscription: Subscription, view: PolicyView, vm_pk: dict[str, int], now: datetime) -> int:
    """Store one policy's mirror and its port rows; returns the mirror's pk."""
    return _mirror_one(view, _policy_defaults(subscription, view, now), _port_specs(view, vm_pk))


def _policy_defaults(subscription: Subscription, view: PolicyView, now: datetime) -> dict:
    return {"subscription": subscription, "subscription_key": subscription.subscription_id,
            "resource_group": view.resource_group.lower(), "resource_group_name": view.resource_group,
            "location": view.location.lower(), "name": view.name, "provisioning_state": view.provisioning_state,
            "requests": view.requests_json, "synced_at": now}


def _port_specs(view: PolicyView, vm_pk: dict[str, int]) -> list[PortSpec]:
    """The port rows of a policy's VMs the inventory has, sorted as ``Stored`` reads them."""
    specs = []
    for vm_id, items in view.vm_ports.items():
        if vm_id not in vm_pk:
            continue
        for item in items:
            rule = rules.PortRule.from_azure(item)
            specs.append((vm_pk[vm_id], rule.number, rule.protocol, tuple(rule.sources), rule.max_duration))
    return sorted(specs)


def _mirror_one(view: PolicyView, defaults: dict, specs: list[PortSpec]) -> int:
    policy, _ = JitPolicy.objects.update_or_create(resource_id=view.arm_id.lower(), defaults=defaults)
    PolicyPort.objects.filter(policy=policy).delete()
    PolicyPort.objects.filter(vm_id__in={spec[0] for spec in specs}).delete()
    PolicyPort.objects.bulk_create([PolicyPort(policy=policy, vm_id=vm, number=number, protocol=protocol,
                                               allowed_source_prefixes=list(sources), max_request_duration=duration)
                                    for vm, number, protocol, sources, duration in specs], batch_size=BATCH)
    return policy.pk
