"""Sync one subscription's inventory from Azure: list calls (paged) once each, classify, upsert in bulk.

The number of cloud calls grows with pages of results, never with VMs: VMs, classic VMs, NICs, NSGs (with
their rules), public IPs, firewalls, virtual hubs, JIT policies and security policies are each listed once, and
the spoke connections of each secured virtual hub (one whose Azure Firewall Azure Firewall Manager deployed in
it) once per such hub. A spoke may be connected to a hub in another subscription: the subscriptions the portal's
identity can read are listed once, and each other one's virtual hubs once (its firewalls and hub connections
only when it has hubs; a subscription registered in the portal with a credential of its own read with that one),
by the first sync of a period; the identity's other syncs within it share what it read
(``policies.hub_topology``).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from . import drift, hub_topology, rules, shapes
from .models import (
    ConnectionType,
    JitPolicy,
    PolicyChange,
    PolicyPort,
    Subscription,
    UnsupportedReason,
    VirtualMachine,
    VmState,
)

log = logging.getLogger(__name__)
BATCH = 500
VM_FIELDS = ["arm_id", "name", "subscription", "subscription_key", "resource_group", "resource_group_name",
             "location", "os_type", "is_classic", "state", "unsupported_reason", "connection_type", "nsg_ids",
             "firewall_id", "firewall_public_ip", "public_ip", "private_ip", "policy_resource_group",
             "policy_location", "policy_name", "ports", "approved_requests_7d", "last_access_at", "last_user",
             "synced_at"]


@dataclass
class Snapshot:
    """What the list calls returned for one subscription."""

    vms: list = field(default_factory=list)
    classic_vms: list = field(default_factory=list)
    nics: list = field(default_factory=list)
    nsgs: list = field(default_factory=list)
    public_ips: list = field(default_factory=list)
    firewalls: list = field(default_factory=list)
    hubs: list = field(default_factory=list)
    hub_connections: list = field(default_factory=list)
    policies: list = field(default_factory=list)
    jit_off_subscription: bool = False
    jit_off_groups: set[str] = field(default_factory=set)
    defender_p2: bool | None = None
    defender_plan: str = ""


Progress = Callable[[str, int], None]


def _collect(phase: str, result: Iterable, progress: Progress) -> list:
    """Every item of a paged list, with progress every 200; the phase is named before the first page is asked
    for (the pages are fetched as they are iterated), so a list that fails is the one the run names."""
    progress(phase, 0)
    items = []
    for item in shapes.iterate(result):
        items.append(item)
        if len(items) % 200 == 0:
            progress(phase, len(items))
    if len(items) % 200:
        progress(phase, len(items))
    return items


def read_pricing(gateway) -> tuple[bool | None, str]:
    """(Defender for Servers Plan 2 on?, "tier/sub-plan") from the VirtualMachines pricing."""
    pricing = gateway.get_pricing("VirtualMachines")
    props = shapes.pick(pricing, "properties", default=None) if isinstance(pricing, dict) else None
    source = props or pricing
    tier = str(shapes.pick(source, "pricing_tier", "pricingTier", "tier", default="") or "")
    sub_plan = str(shapes.pick(source, "sub_plan", "subPlan", default="") or "")
    on = tier.lower() == "standard" and (sub_plan or "P2").upper() == "P2"
    return on, "/".join(p for p in (tier, sub_plan) if p)


def read_security_policies(gateway) -> tuple[bool, set[str]]:
    """(JIT Off for the whole subscription?, resource groups with JIT Off)."""
    off_subscription = False
    off_groups: set[str] = set()
    for policy in shapes.iterate(gateway.list_security_policies()):
        props = shapes.pick(policy, "properties", default=None) if isinstance(policy, dict) else None
        source = props or policy
        value = shapes.pick(source, "jit_network_access", "jitNetworkAccess", default=None)
        if value is None:
            recs = shapes.pick(source, "recommendations", default={}) or {}
            value = shapes.pick(recs, "jit_network_access", "jitNetworkAccess", default="On")
        enabled = value if isinstance(value, bool) else str(value).lower() == "on"
        if enabled:
            continue
        group = str(shapes.pick(source, "resource_group", default="") or "") or shapes.resource_group_of(
            shapes.ref_id(policy))
        level = str(shapes.pick(source, "policy_level", "policyLevel", default="") or "")
        if group and level.lower() != "subscription":
            off_groups.add(group.lower())
        else:
            off_subscription = True
    return off_subscription, off_groups


def read_snapshot(gateway, progress: Progress, subscription: Subscription, now: datetime) -> Snapshot:
    """Every list call of a sync, once each (the gateway follows ``nextLink`` pages); the hubs of other
    subscriptions once a period (``read_remote_hubs``)."""
    snap = Snapshot()
    progress("pricing", 0)
    snap.defender_p2, snap.defender_plan = read_pricing(gateway)
    progress("security policies", 0)
    snap.jit_off_subscription, snap.jit_off_groups = read_security_policies(gateway)
    snap.vms = _collect("virtual machines", gateway.list_virtual_machines(), progress)
    snap.classic_vms = _collect("classic virtual machines", gateway.list_classic_virtual_machines(), progress)
    snap.nics = _collect("network interfaces", gateway.list_network_interfaces(), progress)
    snap.nsgs = _collect("network security groups", gateway.list_network_security_groups(), progress)
    snap.public_ips = _collect("public IP addresses", gateway.list_public_ips(), progress)
    snap.firewalls = _collect("firewalls", gateway.list_firewalls(), progress)
    snap.hubs = _collect("virtual hubs", gateway.list_virtual_hubs(), progress)
    snap.hub_connections = read_hub_connections(gateway, snap.hubs, snap.firewalls, progress)
    remote_firewalls, remote_connections = read_remote_hubs(subscription, gateway, snap, progress, now)
    snap.firewalls += remote_firewalls
    snap.hub_connections += remote_connections
    snap.policies = _collect("JIT policies", gateway.list_jit_policies(), progress)
    return snap


def read_hub_connections(gateway, hubs: list, firewalls: list, progress: Progress) -> list:
    """The spoke connections of every secured virtual hub among ``hubs`` of the gateway's subscription (one list
    per such hub; other hubs guard nothing)."""
    hubs_with_firewall = {hub for hub in map(shapes.firewall_hub_id, firewalls) if hub}
    connections: list = []
    for hub in hubs:
        hub_id, group, name, firewall_id = shapes.hub_info(hub)
        if firewall_id or hub_id in hubs_with_firewall:
            connections += _collect("virtual hub connections",
                                    gateway.list_hub_virtual_network_connections(group, name), progress)
    return connections


def _unreadable(error) -> bool:
    """Whether another subscription's hubs cannot be read for a reason of that subscription (no access, gone,
    Microsoft.Network never registered there): then it has no hub the portal could know guards anything."""
    from cloud.errors import PROVIDER_NOT_REGISTERED, Forbidden, Invalid, NotFound

    return isinstance(error, Forbidden | NotFound) or (isinstance(error, Invalid)
                                                        and error.code in PROVIDER_NOT_REGISTERED)


def read_remote_hubs(subscription: Subscription, gateway, snap: Snapshot, progress: Progress, now: datetime
                     ) -> tuple[list, list]:
    """(hub firewalls, hub connections) of the secured virtual hubs in other subscriptions that connect virtual
    networks of the gateway's subscription: from the hubs the syncs of its identity share, read again (with its
    own, just listed in ``snap``) when they are older than ``INVENTORY_REMOTE_HUBS_MAX_AGE_SECONDS``, by one sync
    of the identity at a time (``hub_topology.shared``)."""
    def read(beat: Callable[[], None]) -> hub_topology.Hubs:
        def beating(phase: str, items: int) -> None:
            beat()
            progress(phase, items)

        own = hub_topology.secured_hubs(snap.firewalls, snap.hub_connections)
        return read_hub_topology(gateway, own, beating, hub_topology.registered_readers(subscription))

    hubs = hub_topology.shared(subscription, read, now)
    return hub_topology.spokes_of(hubs, str(gateway.subscription_id))


def read_hub_topology(gateway, own: list[dict], progress: Progress, registered: dict[str, tuple | None]
                      ) -> hub_topology.Hubs:
    """The secured hubs (``hub_topology.secured_hubs``) of every subscription the portal's identity can read and
    of every other one registered in the portal (``registered``: ``hub_topology.registered_readers``), the
    gateway's own being ``own``.

    A hub often sits in a connectivity subscription no one registers here; a subscription the identity may not
    read has none, unless it is registered with a credential of its own, which reads it. Throttling and transient
    errors end the sync, which is retried."""
    own_id = str(gateway.subscription_id).lower()
    hubs: hub_topology.Hubs = {own_id: own}
    listed: list[str] = []
    for subscription in _collect("other subscriptions", gateway.list_subscriptions(), progress):
        other = str(shapes.pick(subscription, "subscription_id", "subscriptionId", default="")).lower()
        if other and other != own_id and other not in listed:
            listed.append(other)
    for other in [*listed, *(sub for sub in registered if sub not in listed and sub != own_id)]:
        reader = registered.get(other)
        readers = [reader, *([None] if other in listed else [])] if reader is not None else [None]
        hubs[other] = read_other_hubs(gateway, other, readers, progress)
    return hubs


def read_other_hubs(gateway, other: str, readers: list[tuple | None], progress: Progress) -> list[dict]:
    """The secured hubs of subscription ``other``, as the first of ``readers`` (a credential and endpoint, or
    ``None`` for the gateway's own) that may read them reads them; none when none of them may."""
    from cloud.errors import CloudError

    for reader in readers:
        remote = gateway.for_subscription(other, *(reader or ()))
        try:
            found = _collect("virtual hubs (other subscriptions)", remote.list_virtual_hubs(), progress)
            firewalls = [fw for fw in _collect("firewalls (other subscriptions)", remote.list_firewalls(), progress)
                         if shapes.firewall_hub_id(fw)] if found else []
            return hub_topology.secured_hubs(firewalls, read_hub_connections(remote, found, firewalls, progress))
        except CloudError as error:
            if not _unreadable(error):
                raise
            log.info("policies: the virtual hubs of subscription %s cannot be read (%s)", other, error)
        finally:
            remote.close()
    return []


@dataclass
class PolicyView:
    """One JIT policy, digested: where it lives, its VMs' ports, its requests."""

    arm_id: str
    name: str
    resource_group: str
    location: str
    provisioning_state: str
    vm_ports: dict[str, list[dict]]
    vm_firewall_ip: dict[str, str]
    requests: list[shapes.RequestInfo]
    requests_json: list[dict]


def policy_view(policy) -> PolicyView:
    arm_id = shapes.ref_id(policy)
    props = shapes.pick(policy, "properties", default=None) if isinstance(policy, dict) else None
    vm_ports: dict[str, list[dict]] = {}
    firewall: dict[str, str] = {}
    for entry in shapes.policy_vms(policy):
        vm_id, ports, fw_ip = shapes.policy_vm_entry(entry)
        vm_ports[vm_id.lower()] = ports
        if fw_ip:
            firewall[vm_id.lower()] = fw_ip
    requests = shapes.policy_requests(policy)
    location = str(shapes.pick(policy, "location", default="") or "")
    if not location and "/locations/" in arm_id.lower():
        location = arm_id.lower().split("/locations/")[1].split("/")[0]
    return PolicyView(
        arm_id=arm_id, name=str(shapes.pick(policy, "name", default="") or shapes.last_segment(arm_id)),
        resource_group=shapes.pick(policy, "resource_group", default=None) or shapes.resource_group_of(arm_id),
        location=location,
        provisioning_state=str(shapes.pick(props or policy, "provisioning_state", "provisioningState", default="")),
        vm_ports=vm_ports, vm_firewall_ip=firewall,
        requests=[shapes.request_info(r) for r in requests], requests_json=[shapes.request_json(r) for r in requests],
    )


@dataclass
class Network:
    """Lookups from the network lists: NICs, NSGs by NIC and subnet, firewalls by VNet (the VNet's own, else the
    one of the secured virtual hub it is connected to), public IPs."""

    nics: dict[str, shapes.NicInfo]
    nsgs: dict[str, shapes.NsgInfo]
    nsg_by_subnet: dict[str, list[str]]
    firewall_by_vnet: dict[str, tuple[str, str]]
    public_ips: dict[str, str]

    @classmethod
    def build(cls, snap: Snapshot) -> Network:
        public_ips = dict(shapes.public_ip_address(p) for p in snap.public_ips)
        nsgs = {info.id: info for info in (shapes.nsg_info(n) for n in snap.nsgs)}
        by_subnet: dict[str, list[str]] = {}
        for info in nsgs.values():
            for subnet in info.subnet_ids:
                by_subnet.setdefault(subnet, []).append(info.id)
        firewalls: dict[str, tuple[str, str]] = {}
        by_hub: dict[str, tuple[str, str]] = {}
        for fw in snap.firewalls:
            fw_id, vnets, address = shapes.firewall_info(fw, public_ips)
            for vnet in vnets:
                firewalls.setdefault(vnet, (fw_id, address))
            if shapes.firewall_hub_id(fw):
                by_hub.setdefault(shapes.firewall_hub_id(fw), (fw_id, address))
        for connection in snap.hub_connections:
            hub_id, vnet = shapes.hub_connection_info(connection)
            if vnet and hub_id in by_hub:
                firewalls.setdefault(vnet, by_hub[hub_id])
        nics = {info.id: info for info in (shapes.nic_info(n) for n in snap.nics)}
        return cls(nics, nsgs, by_subnet, firewalls, public_ips)

    def guards(self, nic_ids: list[str]) -> tuple[list[str], str, str, str, str]:
        """(NSG ids, firewall id, firewall public IP, private IP, public IP) of a VM with these NICs."""
        nsg_ids: list[str] = []
        firewall_id = firewall_ip = private_ip = public_ip = ""
        for nic_id in nic_ids:
            nic = self.nics.get(nic_id)
            if nic is None:
                continue
            if nic.nsg_id and nic.nsg_id not in nsg_ids:
                nsg_ids.append(nic.nsg_id)
            for subnet in nic.subnet_ids:
                for nsg_id in self.nsg_by_subnet.get(subnet, []):
                    if nsg_id not in nsg_ids:
                        nsg_ids.append(nsg_id)
                if not firewall_id and shapes.vnet_of(subnet) in self.firewall_by_vnet:
                    firewall_id, firewall_ip = self.firewall_by_vnet[shapes.vnet_of(subnet)]
            private_ip = private_ip or (nic.private_ips[0] if nic.private_ips else "")
            for pip_id in nic.public_ip_ids:
                public_ip = public_ip or self.public_ips.get(pip_id, "")
        return nsg_ids, firewall_id, firewall_ip, private_ip, public_ip


def classify(*, classic: bool, jit_off: bool, guarded: bool, in_policy: bool, defender_p2: bool | None
             ) -> tuple[str, str]:
    """(state, unsupported reason) of one VM."""
    if classic:
        return VmState.UNSUPPORTED, UnsupportedReason.CLASSIC_VM
    if jit_off:
        return VmState.UNSUPPORTED, UnsupportedReason.JIT_DISABLED
    if not guarded:
        return VmState.UNSUPPORTED, UnsupportedReason.NO_NSG_OR_FIREWALL
    if in_policy:
        return VmState.CONFIGURED, UnsupportedReason.NONE
    if defender_p2 is False:
        return VmState.UNSUPPORTED, UnsupportedReason.DEFENDER_MISSING
    return VmState.NOT_CONFIGURED, UnsupportedReason.NONE


def _opened_by_portal(justification: str) -> tuple[int, str] | None:
    """(request number, correlation id) when an Azure request is one the portal opened (its justification's tail)."""
    from .access.models import portal_request_in

    named = portal_request_in(justification)
    return (named[0], named[1]) if named is not None and not named[2] else None


def portal_requesters(policies: list[PolicyView]) -> dict[tuple[int, str, str], str]:
    """``{(request number, correlation id, VM id): requester}`` of the portal's requests among the policies' Azure
    requests.

    Azure records the portal's own identity as the ``requestor`` of everything the portal opens; the person is the
    portal request's requester. The tail must name the request's own number and id, and the request that VM, so a
    justification copied elsewhere names nobody.
    """
    from .access.models import AccessRequestVm

    named = {found for view in policies for r in view.requests if (found := _opened_by_portal(r.justification))}
    wanted = sorted({correlation for _number, correlation in named})
    found: dict[tuple[int, str, str], str] = {}
    for start in range(0, len(wanted), BATCH):
        rows = AccessRequestVm.objects.filter(request__correlation_id__in=wanted[start:start + BATCH]).values_list(
            "request_id", "request__correlation_id", "vm_arm_id", "request__requester_name")
        for number, correlation, vm_arm_id, requester in rows:
            if (number, str(correlation)) in named:
                found[(number, str(correlation), vm_arm_id.lower())] = requester
    return found


def _closes_early(justification: str) -> bool:
    """Whether an Azure request is the portal's early close of one of its requests (behind a firewall): a
    replacement from an unroutable address, which gives nobody access."""
    from .access.models import portal_request_in

    named = portal_request_in(justification)
    return named is not None and named[2]


def usage(requests: list[shapes.RequestInfo], vm_id: str, now: datetime,
          requesters: dict[tuple[int, str, str], str] | None = None) -> tuple[int, datetime | None, str]:
    """(approved requests in the last 7 days, last access, last user) of one VM from its policy's requests; the
    last user is the portal's requester where ``requesters`` (``portal_requesters``) knows the request. The
    portal's early closes are no access and count for neither."""
    week_ago = now - timedelta(days=7)
    count = 0
    last_at: datetime | None = None
    last_user = ""
    for request in requests:
        if not any(p.vm_id == vm_id for p in request.ports) or request.start is None \
                or _closes_early(request.justification):
            continue
        if request.start >= week_ago:
            count += 1
        if last_at is None or request.start > last_at:
            opened = _opened_by_portal(request.justification)
            portal_user = (requesters or {}).get((*opened, vm_id)) if opened else None
            last_at, last_user = request.start, portal_user or request.requestor
    return count, last_at, last_user


def build_rows(subscription: Subscription, snap: Snapshot, policies: list[PolicyView], now: datetime,
               requesters: dict[tuple[int, str, str], str] | None = None) -> list[VirtualMachine]:
    """Unsaved VM rows for everything the snapshot lists (``requesters``: see ``usage``)."""
    network = Network.build(snap)
    policy_of_vm: dict[str, PolicyView] = {}
    for policy in policies:
        for vm_id in policy.vm_ports:
            policy_of_vm[vm_id] = policy
    rows = []
    for vm in snap.vms:
        arm_id = shapes.ref_id(vm)
        key = arm_id.lower()
        group = shapes.pick(vm, "resource_group", default=None) or shapes.resource_group_of(arm_id)
        nsg_ids, fw_id, fw_ip, private_ip, public_ip = network.guards(shapes.vm_nic_ids(vm))
        policy = policy_of_vm.get(key)
        jit_off = snap.jit_off_subscription or group.lower() in snap.jit_off_groups
        state, reason = classify(classic=False, jit_off=jit_off, guarded=bool(nsg_ids or fw_id),
                                 in_policy=policy is not None, defender_p2=snap.defender_p2)
        count, last_at, last_user = usage(policy.requests, key, now, requesters) if policy else (0, None, "")
        connection = ConnectionType.FIREWALL if fw_id else ConnectionType.NSG if nsg_ids else ConnectionType.NONE
        rows.append(VirtualMachine(
            resource_id=key, arm_id=arm_id, name=str(shapes.pick(vm, "name", default=shapes.last_segment(arm_id))),
            subscription=subscription, subscription_key=subscription.subscription_id, resource_group=group.lower(),
            resource_group_name=group, location=str(shapes.pick(vm, "location", default="")).lower(),
            os_type=shapes.vm_os(vm), is_classic=False, state=state, unsupported_reason=reason,
            connection_type=connection,
            nsg_ids=nsg_ids, firewall_id=fw_id, firewall_public_ip=(policy.vm_firewall_ip.get(key) if policy else "")
            or fw_ip, public_ip=public_ip, private_ip=private_ip,
            policy_resource_group=policy.resource_group if policy else "",
            policy_location=policy.location if policy else "", policy_name=policy.name if policy else "",
            ports=policy.vm_ports[key] if policy else [], approved_requests_7d=count, last_access_at=last_at,
            portal_ports=policy.vm_ports[key] if policy else [],  # kept on update: only new rows take it
            last_user=last_user, synced_at=now,
        ))
    for vm in snap.classic_vms:
        arm_id = shapes.ref_id(vm)
        group = shapes.resource_group_of(arm_id)
        rows.append(VirtualMachine(
            resource_id=arm_id.lower(), arm_id=arm_id, name=str(shapes.pick(vm, "name") or shapes.last_segment(arm_id)),
            subscription=subscription, subscription_key=subscription.subscription_id, resource_group=group.lower(),
            resource_group_name=group, location=str(shapes.pick(vm, "location", default="")).lower(),
            os_type=shapes.vm_os(vm), is_classic=True, state=VmState.UNSUPPORTED,
            unsupported_reason=UnsupportedReason.CLASSIC_VM, connection_type=ConnectionType.NONE, synced_at=now,
        ))
    return rows


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
    from .access.models import AccessRequestVm

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


def sync_subscription(subscription: Subscription, gateway, progress: Progress, now: datetime | None = None
                      ) -> tuple[int, int]:
    """Read, classify and store one subscription. Returns (VMs seen, open drift findings)."""
    now = now or timezone.now()
    snap = read_snapshot(gateway, progress, subscription, now)
    progress("storing", 0)
    policies = [policy_view(p) for p in snap.policies]
    rows = build_rows(subscription, snap, policies, now, portal_requesters(policies))
    nsg_rules = {info.id: info.rules for info in (shapes.nsg_info(n) for n in snap.nsgs)}
    findings = store(subscription, snap, rows, policies, nsg_rules, now)
    return len(rows), findings
