"""What guards a VM: the NSGs on its NICs and subnets, and an Azure Firewall in its virtual network or in the
secured virtual hub (Azure Firewall Manager) its virtual network is connected to."""
from __future__ import annotations

from dataclasses import dataclass, field

from emulator.store import ResourceId

VM = "microsoft.compute/virtualmachines"
NIC = "microsoft.network/networkinterfaces"
NSG = "microsoft.network/networksecuritygroups"
VNET = "microsoft.network/virtualnetworks"
FIREWALL = "microsoft.network/azurefirewalls"
PUBLIC_IP = "microsoft.network/publicipaddresses"
VIRTUAL_HUB = "microsoft.network/virtualhubs"
HUB_CONNECTION = "microsoft.network/virtualhubs/hubvirtualnetworkconnections"


@dataclass
class VmGuards:
    """The network protection of one VM."""

    vm_id: str
    private_ip: str | None = None
    nsgs: list[tuple[str, str]] = field(default_factory=list)  # (nsg id, "nic" | "subnet")
    firewall_id: str | None = None
    firewall_public_ip: str | None = None

    @property
    def protected(self) -> bool:
        return bool(self.nsgs or self.firewall_id)


def vnet_of_subnet(subnet_id: str) -> str:
    return subnet_id.split("/subnets/")[0] if "/subnets/" in subnet_id else subnet_id


def find_subnet(state, subnet_id: str) -> dict | None:
    vnet = state.resources.get(vnet_of_subnet(subnet_id))
    if not vnet:
        return None
    for subnet in vnet.get("properties", {}).get("subnets", []):
        if subnet["id"].lower() == subnet_id.lower():
            return subnet
    return None


def hub_of_vnet(state, vnet_id: str) -> str | None:
    """The id of the virtual hub a hub virtual network connection links ``vnet_id`` to, if any."""
    for connection in state.resources.all_of_type(HUB_CONNECTION):
        remote = connection.get("properties", {}).get("remoteVirtualNetwork", {}).get("id", "")
        if remote.lower() == vnet_id.lower():
            return connection["id"].split("/hubVirtualNetworkConnections/")[0]
    return None


def firewall_in_hub(state, hub_id: str) -> dict | None:
    """The Azure Firewall deployed in a secured virtual hub (``properties.virtualHub.id``)."""
    rid = ResourceId.parse(hub_id)
    if rid is None:
        return None
    for firewall in state.resources.list(FIREWALL, rid.subscription):
        if firewall.get("properties", {}).get("virtualHub", {}).get("id", "").lower() == hub_id.lower():
            return firewall
    return None


def firewall_in_vnet(state, vnet_id: str) -> dict | None:
    """The firewall in the VNet itself, else the one of the secured hub the VNet is connected to."""
    rid = ResourceId.parse(vnet_id)
    if rid is None:
        return None
    for firewall in state.resources.list(FIREWALL, rid.subscription):
        for config in firewall.get("properties", {}).get("ipConfigurations", []):
            subnet = config.get("properties", {}).get("subnet", {}).get("id", "")
            if vnet_of_subnet(subnet).lower() == vnet_id.lower():
                return firewall
    hub_id = hub_of_vnet(state, vnet_id)
    return firewall_in_hub(state, hub_id) if hub_id else None


def firewall_public_ip(state, firewall: dict) -> str | None:
    hub_ips = firewall.get("properties", {}).get("hubIPAddresses", {}).get("publicIPs", {}).get("addresses", [])
    for address in hub_ips:
        if address.get("address"):
            return address["address"]
    for config in firewall.get("properties", {}).get("ipConfigurations", []):
        ref = config.get("properties", {}).get("publicIPAddress", {}).get("id")
        pip = state.resources.get(ref) if ref else None
        if pip and pip.get("properties", {}).get("ipAddress"):
            return pip["properties"]["ipAddress"]
    return None


def guards_of(state, vm: dict) -> VmGuards:
    """Walk VM → NICs → (NIC NSG, subnet → subnet NSG, VNet → firewall)."""
    guards = VmGuards(vm_id=vm["id"])
    seen: set[str] = set()
    for ref in vm.get("properties", {}).get("networkProfile", {}).get("networkInterfaces", []):
        nic = state.resources.get(ref["id"])
        if not nic:
            continue
        props = nic.get("properties", {})
        nic_nsg = props.get("networkSecurityGroup", {}).get("id")
        if nic_nsg and nic_nsg.lower() not in seen and state.resources.get(nic_nsg):
            seen.add(nic_nsg.lower())
            guards.nsgs.append((nic_nsg, "nic"))
        for config in props.get("ipConfigurations", []):
            cprops = config.get("properties", {})
            guards.private_ip = guards.private_ip or cprops.get("privateIPAddress")
            subnet_id = cprops.get("subnet", {}).get("id")
            if not subnet_id:
                continue
            subnet = find_subnet(state, subnet_id)
            subnet_nsg = (subnet or {}).get("properties", {}).get("networkSecurityGroup", {}).get("id")
            if subnet_nsg and subnet_nsg.lower() not in seen and state.resources.get(subnet_nsg):
                seen.add(subnet_nsg.lower())
                guards.nsgs.append((subnet_nsg, "subnet"))
            if guards.firewall_id is None:
                firewall = firewall_in_vnet(state, vnet_of_subnet(subnet_id))
                if firewall:
                    guards.firewall_id = firewall["id"]
                    guards.firewall_public_ip = firewall_public_ip(state, firewall)
    return guards
