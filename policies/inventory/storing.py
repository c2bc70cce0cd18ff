"""Storing a sync: upsert the VM rows in bulk, keep what portal policy changes wrote meanwhile, delete what Azure
no longer lists, mirror the JIT policies and their ports, record drift."""
from __future__ import annotations

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


@transaction.atomic
def store(subscription: Subscription, snap: Snapshot, rows: list[VirtualMachine], policies: list[PolicyView],
          network_rules: dict[str, list[shapes.RuleInfo]], now: datetime) -> int:
    """Upsert VMs and policy mirrors in bulk, delete what Azure no longer lists, record drift. Returns findings.

    ``now`` is when the snapshot's reading began. A portal policy change applied since then is newer than the
    snapshot: the policies it wrote keep their mirrors, and their VMs their JIT state and findings, until the next
    sync. The subscription's row, updated first, is locked until commit; a change takes it before writing its VMs,
    so one applied later waits and writes after this."""
    Subscription.objects.filter(pk=subscription.pk).update(
        defender_p2=snap.defender_p2, defender_plan=snap.defender_plan, defender_checked_at=now,
        jit_disabled_subscription=snap.jit_off_subscription, jit_disabled_groups=sorted(snap.jit_off_groups),
        resource_groups=sorted({row.resource_group for row in rows}),
        locations=sorted({row.location for row in rows if row.location}))
    changed_policies, changed_vms = changed_meanwhile(subscription, now)
    keep_changed(rows, changed_vms)
    VirtualMachine.objects.bulk_create(rows, batch_size=BATCH, update_conflicts=True, unique_fields=["resource_id"],
                                       update_fields=VM_FIELDS)
    remove_gone(subscription, {row.resource_id for row in rows})
    vm_pk = dict(VirtualMachine.objects.filter(subscription=subscription).exclude(
        unsupported_reason=UnsupportedReason.NOT_IN_AZURE).values_list("resource_id", "pk"))
    mirror_policies(subscription, [view for view in policies if view.arm_id.lower() not in changed_policies],
                    vm_pk, now, keep=changed_policies)
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
                    now: datetime, keep: set[str] = frozenset()) -> None:
    """Replace the subscription's policy mirrors and port rows with what Azure listed (those of the policy ids
    ``keep`` stay as they are)."""
    mirrored = [mirror_policies_one(subscription, view, vm_pk, now) for view in policies]
    JitPolicy.objects.filter(subscription=subscription).exclude(pk__in=mirrored).exclude(resource_id__in=keep).delete()


def mirror_policies_one(subscription: Subscription, view: PolicyView, vm_pk: dict[str, int], now: datetime) -> int:
    """Store one policy's mirror and its port rows; returns the mirror's pk."""
    policy, _ = JitPolicy.objects.update_or_create(
        resource_id=view.arm_id.lower(),
        defaults={"subscription": subscription, "subscription_key": subscription.subscription_id,
                  "resource_group": view.resource_group.lower(), "resource_group_name": view.resource_group,
                  "location": view.location.lower(), "name": view.name,
                  "provisioning_state": view.provisioning_state, "requests": view.requests_json,
                  "synced_at": now})
    PolicyPort.objects.filter(policy=policy).delete()
    ports = []
    for vm_id, items in view.vm_ports.items():
        if vm_id not in vm_pk:
            continue
        for item in items:
            rule = rules.PortRule.from_azure(item)
            ports.append(PolicyPort(policy=policy, vm_id=vm_pk[vm_id], number=rule.number, protocol=rule.protocol,
                                    allowed_source_prefixes=list(rule.sources),
                                    max_request_duration=rule.max_duration))
    PolicyPort.objects.filter(vm_id__in={p.vm_id for p in ports}).delete()
    PolicyPort.objects.bulk_create(ports, batch_size=BATCH)
    return policy.pk
