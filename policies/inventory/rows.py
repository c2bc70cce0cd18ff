"""The VM rows a snapshot makes: each VM's network guards (NSGs, firewall, addresses), its JIT state or why it is
unsupported, and its use (approved requests in the last 7 days, last access, last user)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .. import shapes
from ..models import ConnectionType, Subscription, UnsupportedReason, VirtualMachine, VmState
from .snapshot import PolicyView, Snapshot
from .storing import BATCH


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
    from ..access.models import portal_request_in

    named = portal_request_in(justification)
    return (named[0], named[1]) if named is not None and not named[2] else None


def portal_requesters(policies: list[PolicyView]) -> dict[tuple[int, str, str], str]:
    """``{(request number, correlation id, VM id): requester}`` of the portal's requests among the policies' Azure
    requests.

    Azure records the portal's own identity as the ``requestor`` of everything the portal opens; the person is the
    portal request's requester. The tail must name the request's own number and id, and the request that VM, so a
    justification copied elsewhere names nobody.
    """
    from ..access.models import AccessRequestVm

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
    from ..access.models import portal_request_in

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
