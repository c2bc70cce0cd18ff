"""Storing a sync: upsert the VM rows in bulk, keep what portal policy changes wrote meanwhile, delete what Azure
no longer lists, mirror the JIT policies and their ports, record drift.

Everything the storing can work out before it writes, it does outside any transaction: the stored rows are read
(``Stored``) and compared with what the sync makes of Azure (which VM rows and policy mirrors changed, which VMs
Azure no longer lists), and every VM's drift findings are worked out (``drift.vm_findings``). Only what changed is
then written, in chunks of at most ``CHUNK`` VMs, each in a transaction of its own (``Plan``): the database's write
lock (on SQLite every other writer waits for it) is held a fraction of a second at a time, not for the whole store.

A chunk holds whole policies: a policy's mirror, its ports and the VMs it lists (or listed) are written together,
with those VMs' drift findings and counts, so a reader sees each policy and its VMs either as the last sync left them
or as this one makes them, never half of each. (So the first sync of a subscription lists its VMs chunk by chunk.)
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import Q

from .. import drift, rules, shapes
from ..models import (
    ConnectionType,
    DriftFinding,
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
CHUNK = 500  # VMs stored per transaction (a policy listing more is stored whole)
PAUSE = 0.1  # seconds at most between two chunks, on SQLite (``_make_way``)
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
    where = Q()
    for group, location in places:
        where |= Q(resource_group=group, location=location.lower())
    vms = {vm.resource_id: vm for vm in VirtualMachine.objects.filter(where, subscription=subscription)}
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
PlannedPort = tuple[str, int, str, tuple[str, ...], str]  # the same with the VM's resource id


class Facts(NamedTuple):
    """What a VM's drift findings are worked out from (``drift.vm_findings``), as stored. A chunk compares a VM's
    with those its findings were worked out from before the transaction, and works them out again if they differ."""

    resource_id: str
    is_classic: bool
    state: str
    name: str
    nsg_ids: list
    private_ip: str
    ports: list
    portal_ports: list | None

    @property
    def watched(self) -> bool:
        return drift.watched(self.is_classic, self.state, self.portal_ports)

    def findings(self, rules: drift.Rules) -> list[tuple[str, str, str]]:
        # first sight of the VM (no baseline): Azure's state is the baseline
        return drift.vm_findings(self if self.portal_ports is not None else self._replace(portal_ports=self.ports),
                                 rules)


@dataclass
class Stored:
    """The subscription's stored VM rows, policy mirrors and drift findings, as a sync compares them (read before
    it stores)."""

    vms: dict[str, tuple] = field(default_factory=dict)
    pks: dict[str, int] = field(default_factory=dict)
    facts: dict[str, Facts] = field(default_factory=dict)
    drift_counts: dict[int, int] = field(default_factory=dict)  # VM pk → its count, where not 0
    with_findings: set[int] = field(default_factory=set)  # VM pks with open findings
    policies: dict[str, tuple[int, tuple]] = field(default_factory=dict)
    ports: dict[int, list[PortSpec]] = field(default_factory=dict)

    @classmethod
    def read(cls, subscription: Subscription) -> Stored:
        stored = cls()
        for pk, drift_count, resource_id, portal_ports, *values in VirtualMachine.objects.filter(
                subscription=subscription).values_list("pk", "drift_count", "resource_id", "portal_ports",
                                                       *VM_COMPARED).iterator(chunk_size=2000):
            stored.vms[resource_id], stored.pks[resource_id] = tuple(values), pk
            row = dict(zip(VM_COMPARED, values, strict=True))
            stored.facts[resource_id] = Facts(resource_id, *(row[name] for name in Facts._fields[1:-1]),
                                              portal_ports)
            if drift_count:
                stored.drift_counts[pk] = drift_count
        stored.with_findings = set(DriftFinding.objects.filter(
            vm__subscription=subscription, resolved_at__isnull=True).values_list("vm_id", flat=True).distinct())
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


@dataclass
class Planned:
    """One policy Azure lists, as a sync would mirror it: its fields, its ports (by VM resource id) and whether its
    mirror must be written."""

    view: PolicyView
    defaults: dict
    specs: list[PlannedPort]
    found: tuple[int, tuple] | None  # (pk, fields) of its stored mirror
    dirty: bool = False


@dataclass
class Chunk:
    """What one storing transaction writes: VM rows, VMs Azure no longer lists (pks), policies to mirror (indexes
    into ``Plan.policies``), stored mirrors of policies Azure no longer lists (pks)."""

    rows: list[VirtualMachine] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)
    policies: list[int] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.rows) + len(self.stale)


@dataclass
class Plan:
    """What a sync stores, worked out from the snapshot and the stored rows before any write: the chunks, the
    policies, and the drift findings of every VM drift is looked for on (by resource id, with the facts they were
    worked out from)."""

    stored: Stored
    policies: list[Planned]
    rules: drift.Rules
    findings: dict[str, tuple[Facts, list[tuple[str, str, str]]]]
    chunks: list[Chunk]

    @classmethod
    def make(cls, subscription: Subscription, rows: list[VirtualMachine], policies: list[PolicyView],
             network_rules: dict[str, list[shapes.RuleInfo]], now: datetime, stored: Stored) -> Plan:
        listed = {row.resource_id for row in rows}
        planned = [Planned(view, _policy_defaults(subscription, view, now), _planned_ports(view, listed),
                           stored.policies.get(view.arm_id.lower())) for view in policies]
        _mark_dirty(planned, stored)
        plan = cls(stored, planned, drift.Rules.read(policies, network_rules, now), {}, [])
        for row in rows:
            facts = plan.facts_of(row)
            if facts.watched:
                plan.findings[row.resource_id] = (facts, facts.findings(plan.rules))
        plan.chunks = _chunks(rows, stored, planned)
        return plan

    def facts_of(self, row: VirtualMachine) -> Facts:
        """The facts ``row`` will have once stored: the sync writes all but ``portal_ports`` (which a new row takes
        from Azure)."""
        stored = self.stored.facts.get(row.resource_id)
        return Facts(*(getattr(row, name) for name in Facts._fields[:-1]),
                     stored.portal_ports if stored is not None else row.portal_ports)

    def writes(self, chunk: Chunk) -> bool:
        """Whether ``chunk`` has anything to write, as the stored rows read before stand: a VM row, a VM Azure no
        longer lists, a policy mirror, a finding to open, see again or resolve, a count, a baseline to adopt."""
        if chunk.stale or chunk.gone or any(self.policies[index].dirty for index in chunk.policies):
            return True
        for row in chunk.rows:
            facts, items = self.findings.get(row.resource_id, (None, []))
            pk = self.stored.pks.get(row.resource_id)
            if self.stored.vm_changed(row) or items or (facts is not None and facts.portal_ports is None) \
                    or pk in self.stored.with_findings or pk in self.stored.drift_counts:
                return True
        return False


def _planned_ports(view: PolicyView, listed: set[str]) -> list[PlannedPort]:
    """The port rows of a policy's VMs the inventory has (``listed``), by VM resource id, sorted."""
    specs = []
    for vm_id, items in view.vm_ports.items():
        if vm_id not in listed:
            continue
        for item in items:
            rule = rules.PortRule.from_azure(item)
            specs.append((vm_id, rule.number, rule.protocol, tuple(rule.sources), rule.max_duration))
    return sorted(specs)


def _stored_ports(stored: Stored, found: tuple[int, tuple] | None, resource_ids: dict[int, str]) -> list[PlannedPort]:
    if found is None:
        return []
    return sorted((resource_ids.get(vm, f"#{vm}"), *rest) for vm, *rest in stored.ports.get(found[0], []))


def _mark_dirty(planned: list[Planned], stored: Stored) -> None:
    """Mark the mirrors to write: those whose fields or ports differ from the stored ones, and any sharing a VM with
    one of those (its rewrite deletes the VM's other port rows)."""
    resource_ids = {pk: rid for rid, pk in stored.pks.items()}
    by_vm: dict[str, set[int]] = {}
    for index, policy in enumerate(planned):
        before = _stored_ports(stored, policy.found, resource_ids)
        policy.dirty = policy.found is None or policy.found[1] != tuple(
            policy.defaults[name] for name in POLICY_COMPARED) or before != policy.specs
        for vm in {spec[0] for spec in policy.specs} | {spec[0] for spec in before}:
            by_vm.setdefault(vm, set()).add(index)
    pending = [index for index, policy in enumerate(planned) if policy.dirty]
    while pending:
        index = pending.pop()
        for vm in {spec[0] for spec in planned[index].specs}:
            for other in by_vm.get(vm, ()):
                if not planned[other].dirty:
                    planned[other].dirty = True
                    pending.append(other)


def _chunks(rows: list[VirtualMachine], stored: Stored, planned: list[Planned]) -> list[Chunk]:
    """The VMs, the policies and the stored mirrors of policies Azure no longer lists, in chunks of about ``CHUNK``
    VMs. A policy goes with every VM it lists or listed (and the other policies those VMs are or were in)."""
    resource_ids = {pk: rid for rid, pk in stored.pks.items()}
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def join(keys: Iterable[str], to: str) -> None:
        for key in keys:
            parent[root(key)] = root(to)

    listed = {row.resource_id for row in rows}
    for index, policy in enumerate(planned):
        join({spec[0] for spec in policy.specs} | {spec[0] for spec in _stored_ports(stored, policy.found,
                                                                                    resource_ids)}, f"policy {index}")
    mirrored = {policy.found[0] for policy in planned if policy.found is not None}
    gone = [pk for rid, (pk, _fields) in stored.policies.items() if pk not in mirrored]
    for pk in gone:
        join({resource_ids.get(vm, f"#{vm}") for vm, *_rest in stored.ports.get(pk, [])}, f"mirror {pk}")
    units: dict[str, Chunk] = {}  # by root, in the order rows then policies come

    def unit(key: str) -> Chunk:
        return units.setdefault(root(key), Chunk())

    for row in rows:
        unit(row.resource_id).rows.append(row)
    for rid, pk in stored.pks.items():
        if rid not in listed:
            unit(rid).stale.append(pk)
    for index in range(len(planned)):
        unit(f"policy {index}").policies.append(index)
    for pk in gone:
        unit(f"mirror {pk}").gone.append(pk)
    chunks: list[Chunk] = []
    for part in units.values():
        if not chunks or chunks[-1].size >= CHUNK or (chunks[-1].size and chunks[-1].size + part.size > CHUNK):
            chunks.append(Chunk())
        last = chunks[-1]
        last.rows += part.rows
        last.stale += part.stale
        last.policies += part.policies
        last.gone += part.gone
    return chunks


def store(subscription: Subscription, snap: Snapshot, rows: list[VirtualMachine], policies: list[PolicyView],
          network_rules: dict[str, list[shapes.RuleInfo]], now: datetime) -> int:
    """Upsert VMs and policy mirrors in bulk, delete what Azure no longer lists, record drift. Returns findings.

    ``now`` is when the snapshot's reading began. A portal policy change applied since then is newer than the
    snapshot: the policies it wrote keep their mirrors, and their VMs their JIT state and findings, until the next
    sync. Each chunk's transaction locks the subscription's row first; a change takes it before writing its VMs, so
    one applied later waits for that chunk and writes after it, and the chunks after it keep what it wrote
    (``changed_meanwhile`` is read again in each). The subscription's own fields are stored last."""
    stored = Stored.read(subscription)
    plan = Plan.make(subscription, rows, policies, network_rules, now, stored)
    findings, held = 0, 0.0
    for chunk in plan.chunks:
        if plan.writes(chunk):
            _make_way(held)
            started = time.monotonic()
            findings += store_chunk(subscription, plan, chunk, now)
            held = time.monotonic() - started
    _make_way(held)
    with transaction.atomic():
        Subscription.objects.filter(pk=subscription.pk).update(
            defender_p2=snap.defender_p2, defender_plan=snap.defender_plan, defender_checked_at=now,
            jit_disabled_subscription=snap.jit_off_subscription, jit_disabled_groups=sorted(snap.jit_off_groups),
            resource_groups=sorted({row.resource_group for row in rows}),
            locations=sorted({row.location for row in rows if row.location}))
    return findings


def _make_way(held: float) -> None:
    """On SQLite, wait before the next chunk about as long as the last one held the write lock (``PAUSE`` at most).
    Its lock has no queue: a writer kept waiting tries again ever less often (SQLite's busy handler sleeps up to
    100 ms between tries), and without the pause could miss every moment between two chunks and wait for the whole
    store after all. (PostgreSQL's row locks queue their waiters, and a chunk locks only the rows it writes.)"""
    if held and connection.vendor == "sqlite":
        time.sleep(min(held, PAUSE))


def store_chunk(subscription: Subscription, plan: Plan, chunk: Chunk, now: datetime) -> int:
    """Write one chunk in one transaction; returns its VMs' open findings."""
    with transaction.atomic():
        list(Subscription.objects.select_for_update(no_key=True).filter(pk=subscription.pk).values_list(
            "pk", flat=True))
        changed_policies, changed_vms = changed_meanwhile(subscription, now)
        keep_changed(chunk.rows, changed_vms)
        VirtualMachine.objects.bulk_create([row for row in chunk.rows if plan.stored.vm_changed(row)],
                                           batch_size=BATCH, update_conflicts=True, unique_fields=["resource_id"],
                                           update_fields=VM_FIELDS)
        remove_gone(chunk.stale)
        vm_pk = dict(VirtualMachine.objects.filter(
            subscription=subscription, resource_id__in=[row.resource_id for row in chunk.rows]).exclude(
            unsupported_reason=UnsupportedReason.NOT_IN_AZURE).values_list("resource_id", "pk"))
        for index in chunk.policies:
            policy = plan.policies[index]
            if policy.dirty and policy.view.arm_id.lower() not in changed_policies:
                _mirror_one(policy.view, policy.defaults,
                            [(vm_pk[vm], *rest) for vm, *rest in policy.specs if vm in vm_pk])
        JitPolicy.objects.filter(pk__in=chunk.gone).exclude(resource_id__in=changed_policies).delete()
        return _record_drift(subscription, plan, chunk, now, skip={vm.pk for vm in changed_vms.values()})


def _record_drift(subscription: Subscription, plan: Plan, chunk: Chunk, now: datetime, skip: set[int]) -> int:
    """Record the chunk's findings (those of the VMs ``skip`` names stay as they are). They were worked out before
    the transaction; a VM whose stored facts now differ from what they were worked out from (the portal's baseline
    accepted meanwhile, say) has its findings worked out again."""
    current: dict[tuple[int, str, str], str] = {}
    adopt: list[VirtualMachine] = []
    pks = []
    for pk, *values in VirtualMachine.objects.filter(
            Q(resource_id__in=[row.resource_id for row in chunk.rows]) | Q(pk__in=chunk.stale),
            subscription=subscription).values_list("pk", *Facts._fields):
        pks.append(pk)
        facts = Facts(*values)
        if pk in skip or not facts.watched:
            continue
        worked_out, items = plan.findings.get(facts.resource_id, (None, []))
        if worked_out != facts:
            items = facts.findings(plan.rules)
        if facts.portal_ports is None:  # first sight of this VM: Azure's state is the baseline
            adopt.append(VirtualMachine(pk=pk, portal_ports=facts.ports))
        for kind, key, detail in items:
            current[(pk, kind, key)] = detail
    if adopt:
        VirtualMachine.objects.bulk_update(adopt, ["portal_ports"], batch_size=BATCH)
    return drift.record(subscription, current, now, skip, vms=pks)


def remove_gone(stale: list[int]) -> None:
    """Delete the VMs (pks) Azure no longer lists. One an access request names stays for that history (the request
    protects it), as Unsupported, no longer in Azure, without JIT or network details."""
    from ..access.models import AccessRequestVm

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


def mirror_policies_one(subscription: Subscription, view: PolicyView, vm_pk: dict[str, int], now: datetime) -> int:
    """Store one policy's mirror and its port rows; returns the mirror's pk."""
    return _mirror_one(view, _policy_defaults(subscription, view, now), _port_specs(view, vm_pk))


def _policy_defaults(subscription: Subscription, view: PolicyView, now: datetime) -> dict:
    return {"subscription": subscription, "subscription_key": subscription.subscription_id,
            "resource_group": view.resource_group.lower(), "resource_group_name": view.resource_group,
            "location": view.location.lower(), "name": view.name, "provisioning_state": view.provisioning_state,
            "requests": view.requests_json, "synced_at": now}


def _port_specs(view: PolicyView, vm_pk: dict[str, int]) -> list[PortSpec]:
    """The port rows of a policy's VMs the inventory has (``vm_pk``), by VM pk."""
    return [(vm_pk[vm], *rest) for vm, *rest in _planned_ports(view, set(vm_pk))]


def _mirror_one(view: PolicyView, defaults: dict, specs: list[PortSpec]) -> int:
    policy, _ = JitPolicy.objects.update_or_create(resource_id=view.arm_id.lower(), defaults=defaults)
    PolicyPort.objects.filter(policy=policy).delete()
    PolicyPort.objects.filter(vm_id__in={spec[0] for spec in specs}).delete()
    PolicyPort.objects.bulk_create([PolicyPort(policy=policy, vm_id=vm, number=number, protocol=protocol,
                                               allowed_source_prefixes=list(sources), max_request_duration=duration)
                                    for vm, number, protocol, sources, duration in specs], batch_size=BATCH)
    return policy.pk
