"""What a sync reads from Azure: every list call once (the gateway follows the pages), the secured virtual hubs of
other subscriptions (shared by the syncs of one identity, ``policies.hub_topology``), and each JIT policy digested
(``PolicyView``)."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from .. import hub_topology, shapes
from ..models import Subscription

log = logging.getLogger(__name__)


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
    from cloud.errors import PROVIDER_NOT_REGISTERED, Forbidden, Invalid, NotFound, TlsConfiguration

    # TlsConfiguration: that subscription's CA bundle is unusable (until it was told apart, a Forbidden sign-in).
    return isinstance(error, Forbidden | NotFound | TlsConfiguration) or (isinstance(error, Invalid)
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
