"""Read the gateway's results (``cloud.types`` dataclasses) into the small plain records the inventory uses.

The gateway returns frozen dataclasses; these helpers read them by attribute (and accept the same data as
dicts, Azure's camelCase or snake_case), so the inventory code depends on one narrow shape.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime


def pick(obj: object, *names: str, default=None):
    """The first of ``names`` that ``obj`` has (attribute or key) and that is not None."""
    if obj is None:
        return default
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return default


def as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, str | bytes | dict):
        return [value]
    return list(value)


def ref_id(value) -> str:
    """An id given as a string or as an object/dict with ``id``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return str(pick(value, "id", default="") or "")


def parse_time(value) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).strip().replace("Z", "+00:00")
    text = re.sub(r"\.(\d{6})\d+", r".\1", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def resource_group_of(resource_id: str) -> str:
    match = re.search(r"/resourceGroups/([^/]+)", resource_id or "", re.IGNORECASE)
    return match.group(1) if match else ""


def last_segment(resource_id: str) -> str:
    return (resource_id or "").rstrip("/").split("/")[-1]


def vnet_of(subnet_id: str) -> str:
    return subnet_id.lower().split("/subnets/")[0]


@dataclass
class NicInfo:
    id: str
    nsg_id: str
    subnet_ids: list[str] = field(default_factory=list)
    private_ips: list[str] = field(default_factory=list)
    public_ip_ids: list[str] = field(default_factory=list)


@dataclass
class RuleInfo:
    name: str
    access: str
    direction: str
    protocol: str
    sources: list[str]
    ports: list[str]
    destinations: list[str]
    priority: int = 0


@dataclass
class NsgInfo:
    id: str
    subnet_ids: list[str]
    rules: list[RuleInfo]


def nic_info(nic) -> NicInfo:
    nsg = pick(nic, "network_security_group_id", "network_security_group", "networkSecurityGroup")
    info = NicInfo(id=ref_id(nic).lower(), nsg_id=ref_id(nsg).lower())
    props = pick(nic, "properties", default={}) if isinstance(nic, dict) else {}
    configs = pick(nic, "ip_configurations", "ipConfigurations", default=None) or pick(props, "ipConfigurations",
                                                                                         default=[])
    if not info.nsg_id and props:
        info.nsg_id = ref_id(pick(props, "networkSecurityGroup")).lower()
    for config in as_list(configs):
        cprops = pick(config, "properties", default=None) if isinstance(config, dict) else None
        source = cprops or config
        subnet = ref_id(pick(source, "subnet_id", "subnet"))
        if subnet:
            info.subnet_ids.append(subnet.lower())
        private = pick(source, "private_ip_address", "private_ip", "privateIPAddress")
        if private:
            info.private_ips.append(str(private))
        public = ref_id(pick(source, "public_ip_address_id", "public_ip_id", "public_ip_address", "publicIPAddress"))
        if public:
            info.public_ip_ids.append(public.lower())
    for name in ("subnet_ids",):
        info.subnet_ids += [s.lower() for s in as_list(pick(nic, name))]
    for name in ("private_ip_addresses", "private_ips"):
        info.private_ips += [str(s) for s in as_list(pick(nic, name))]
    if not info.private_ips and pick(nic, "private_ip_address", "private_ip"):
        info.private_ips.append(str(pick(nic, "private_ip_address", "private_ip")))
    if not info.subnet_ids and pick(nic, "subnet_id"):
        info.subnet_ids.append(str(pick(nic, "subnet_id")).lower())
    for name in ("public_ip_address_ids", "public_ip_ids"):
        info.public_ip_ids += [s.lower() for s in as_list(pick(nic, name))]
    return info


def _list_of_text(value) -> list[str]:
    return [str(v) for v in as_list(value) if v not in (None, "")]


def rule_info(rule) -> RuleInfo:
    source = pick(rule, "properties", default=None) if isinstance(rule, dict) else None
    source = source or rule
    sources = _list_of_text(pick(source, "source_address_prefixes", "sourceAddressPrefixes")) or _list_of_text(
        pick(source, "source_address_prefix", "sourceAddressPrefix"))
    ports = _list_of_text(pick(source, "destination_port_ranges", "destinationPortRanges")) or _list_of_text(
        pick(source, "destination_port_range", "destinationPortRange"))
    destinations = _list_of_text(pick(source, "destination_address_prefixes", "destinationAddressPrefixes")) or \
        _list_of_text(pick(source, "destination_address_prefix", "destinationAddressPrefix"))
    return RuleInfo(name=str(pick(rule, "name", default="")), access=str(pick(source, "access", default="")),
                    direction=str(pick(source, "direction", default="Inbound")),
                    protocol=str(pick(source, "protocol", default="*")), sources=sources, ports=ports,
                    destinations=destinations, priority=int(pick(source, "priority", default=0) or 0))


def nsg_info(nsg) -> NsgInfo:
    props = pick(nsg, "properties", default=None) if isinstance(nsg, dict) else None
    source = props or nsg
    subnets = [ref_id(s).lower() for s in as_list(pick(source, "subnet_ids", "subnets"))]
    rules = [rule_info(r) for r in as_list(pick(source, "security_rules", "securityRules"))]
    return NsgInfo(id=ref_id(nsg).lower(), subnet_ids=subnets, rules=rules)


def public_ip_address(pip) -> tuple[str, str]:
    """(id lower, address)."""
    props = pick(pip, "properties", default=None) if isinstance(pip, dict) else None
    return ref_id(pip).lower(), str(pick(props or pip, "ip_address", "ipAddress", default="") or "")


def firewall_info(firewall, public_ips: dict[str, str]) -> tuple[str, list[str], str]:
    """(firewall id lower, vnet ids lower, public IP address)."""
    props = pick(firewall, "properties", default=None) if isinstance(firewall, dict) else None
    source = props or firewall
    vnets: list[str] = []
    address = ""
    for subnet in as_list(pick(source, "subnet_ids")):
        vnets.append(vnet_of(ref_id(subnet)))
    for config in as_list(pick(source, "ip_configurations", "ipConfigurations")):
        cprops = pick(config, "properties", default=None) if isinstance(config, dict) else None
        csource = cprops or config
        subnet = ref_id(pick(csource, "subnet_id", "subnet"))
        if subnet:
            vnets.append(vnet_of(subnet))
        pip_id = ref_id(pick(csource, "public_ip_address_id", "public_ip_id", "public_ip_address",
                             "publicIPAddress")).lower()
        address = address or public_ips.get(pip_id, "") or str(pick(csource, "public_ip", default="") or "")
    for vnet in as_list(pick(source, "virtual_network_ids", "vnet_ids")):
        vnets.append(ref_id(vnet).lower())
    address = address or str(pick(source, "public_ip_address", "public_ip", default="") or "")
    for pip in as_list(pick(source, "public_ip_addresses", "public_ips")):
        address = address or (pip if (isinstance(pip, str) and "." in pip) or ":" in str(pip) else "")
    address = address or next(iter(hub_public_addresses(source)), "")
    return ref_id(firewall).lower(), vnets, address


def hub_public_addresses(firewall) -> list[str]:
    """The public addresses of a firewall in a secured virtual hub (``hubIPAddresses.publicIPs.addresses``)."""
    found = _list_of_text(pick(firewall, "hub_public_ip_addresses"))
    hub_ips = pick(firewall, "hubIPAddresses", "hub_ip_addresses")
    public = pick(hub_ips, "publicIPs", "public_i_ps", "public_ips")
    for item in as_list(pick(public, "addresses")):
        address = item if isinstance(item, str) else pick(item, "address")
        if address:
            found.append(str(address))
    return found


def firewall_hub_id(firewall) -> str:
    """(lower) The virtual hub a firewall is deployed in (Azure Firewall Manager's secured hub), or ""."""
    props = pick(firewall, "properties", default=None) if isinstance(firewall, dict) else None
    return ref_id(pick(props or firewall, "virtual_hub_id", "virtual_hub", "virtualHub")).lower()


def hub_info(hub) -> tuple[str, str, str, str]:
    """(hub id lower, resource group, name, its firewall's id lower or "")."""
    props = pick(hub, "properties", default=None) if isinstance(hub, dict) else None
    hub_id = ref_id(hub)
    firewall = ref_id(pick(props or hub, "firewall_id", "azure_firewall", "azureFirewall")).lower()
    return (hub_id.lower(), str(pick(hub, "resource_group", default="") or resource_group_of(hub_id)),
            str(pick(hub, "name", default="") or last_segment(hub_id)), firewall)


def hub_connection_info(connection) -> tuple[str, str]:
    """(hub id lower, connected virtual network id lower) of a hub virtual network connection."""
    props = pick(connection, "properties", default=None) if isinstance(connection, dict) else None
    hub = str(pick(connection, "virtual_hub_id", default="") or re.split(
        "/hubVirtualNetworkConnections/", ref_id(connection), flags=re.IGNORECASE)[0])
    vnet = ref_id(pick(props or connection, "remote_virtual_network_id", "remote_virtual_network",
                       "remoteVirtualNetwork"))
    return hub.lower(), vnet.lower()


def vm_os(vm) -> str:
    value = pick(vm, "os_type", "osType")
    if value is None and isinstance(vm, dict):
        value = (((vm.get("properties") or {}).get("storageProfile") or {}).get("osDisk") or {}).get("osType")
    text = str(value or "")
    return text.capitalize() if text.lower() in ("linux", "windows") else text


def vm_nic_ids(vm) -> list[str]:
    ids = [ref_id(n).lower() for n in as_list(pick(vm, "network_interface_ids", "nic_ids", "network_interfaces"))]
    if not ids and isinstance(vm, dict):
        profile = (vm.get("properties") or {}).get("networkProfile") or {}
        ids = [ref_id(n).lower() for n in profile.get("networkInterfaces", [])]
    return ids


def policy_vms(policy) -> list:
    props = pick(policy, "properties", default=None) if isinstance(policy, dict) else None
    return as_list(pick(props or policy, "virtual_machines", "virtualMachines"))


def policy_requests(policy) -> list:
    props = pick(policy, "properties", default=None) if isinstance(policy, dict) else None
    return as_list(pick(props or policy, "requests"))


def port_dict(port) -> dict:
    """A policy port in Azure's JSON shape."""
    body = {"number": int(pick(port, "number")),
            "protocol": str(pick(port, "protocol", default="*")),
            "maxRequestAccessDuration": str(pick(port, "max_request_access_duration", "maxRequestAccessDuration",
                                                 default="PT3H"))}
    prefixes = _list_of_text(pick(port, "allowed_source_address_prefixes", "allowedSourceAddressPrefixes"))
    prefix = pick(port, "allowed_source_address_prefix", "allowedSourceAddressPrefix")
    if prefixes:
        body["allowedSourceAddressPrefixes"] = prefixes
    elif prefix:
        body["allowedSourceAddressPrefix"] = str(prefix)
    else:
        body["allowedSourceAddressPrefix"] = "*"
    return body


def policy_vm_entry(entry) -> tuple[str, list[dict], str]:
    """(VM id as Azure spells it, its ports in Azure's shape, firewall public IP if any)."""
    return (ref_id(entry), [port_dict(p) for p in as_list(pick(entry, "ports"))],
            str(pick(entry, "public_ip_address", "publicIpAddress", default="") or ""))


@dataclass
class RequestPort:
    vm_id: str
    number: int
    status: str
    end: datetime | None
    source: str


@dataclass
class RequestInfo:
    start: datetime | None
    requestor: str
    ports: list[RequestPort]
    justification: str = ""


def request_info(request) -> RequestInfo:
    ports = []
    for vm in as_list(pick(request, "virtual_machines", "virtualMachines")):
        vm_id = ref_id(vm).lower()
        for port in as_list(pick(vm, "ports")):
            prefixes = _list_of_text(pick(port, "allowed_source_address_prefixes", "allowedSourceAddressPrefixes"))
            source = str(pick(port, "allowed_source_address_prefix", "allowedSourceAddressPrefix", default="") or "")
            ports.append(RequestPort(vm_id, int(pick(port, "number", default=0)),
                                     str(pick(port, "status", default="")),
                                     parse_time(pick(port, "end_time_utc", "endTimeUtc")),
                                     source or ",".join(prefixes)))
    return RequestInfo(parse_time(pick(request, "start_time_utc", "startTimeUtc")),
                       str(pick(request, "requestor", default="") or ""), ports,
                       str(pick(request, "justification", default="") or ""))


def request_json(request) -> dict:
    """A policy request in a JSON-safe shape for storing on the mirror."""
    info = request_info(request)
    return {"startTimeUtc": info.start.isoformat() if info.start else None, "requestor": info.requestor,
            "justification": info.justification,
            "ports": [{"vm": p.vm_id, "number": p.number, "status": p.status,
                       "endTimeUtc": p.end.isoformat() if p.end else None, "source": p.source} for p in info.ports]}


def iterate(result) -> Iterable:
    """Items of a paged gateway result (a list, an iterator, or an Azure pager)."""
    if result is None:
        return []
    return result
