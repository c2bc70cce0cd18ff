"""What the gateway returns: frozen dataclasses named after Azure's fields (snake_case), never SDK models.

Lists are tuples (the objects are immutable); times are timezone-aware UTC ``datetime``s; durations are ISO 8601
strings (``PT3H``). Ids keep Azure's spelling; compare them case-insensitively.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Subscription:
    """A subscription the portal's identity can read (``GET /subscriptions``)."""

    subscription_id: str
    display_name: str = ""
    state: str = ""  # "Enabled", "Warned", "PastDue", "Disabled", "Deleted"
    tenant_id: str = ""


@dataclass(frozen=True)
class VirtualMachine:
    id: str
    name: str
    resource_group: str
    location: str
    os_type: str  # "Windows" | "Linux" | "" when Azure does not say
    network_interface_ids: tuple[str, ...] = ()
    power_state: str | None = None  # e.g. "running", "deallocated"; only when Azure returned an instance view
    vm_size: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def nic_ids(self) -> tuple[str, ...]:
        return self.network_interface_ids


@dataclass(frozen=True)
class ClassicVirtualMachine:
    """A classic (Azure Service Manager) VM: JIT cannot protect it."""

    id: str
    name: str
    resource_group: str
    location: str
    power_state: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class NetworkInterface:
    id: str
    name: str
    resource_group: str
    location: str
    virtual_machine_id: str | None = None
    network_security_group_id: str | None = None
    private_ip_addresses: tuple[str, ...] = ()
    subnet_ids: tuple[str, ...] = ()
    public_ip_address_ids: tuple[str, ...] = ()

    @property
    def subnet_id(self) -> str | None:
        """The subnet of the primary IP configuration."""
        return self.subnet_ids[0] if self.subnet_ids else None


@dataclass(frozen=True)
class SecurityRule:
    """An NSG rule; single and list forms of prefixes and port ranges are merged into the list fields."""

    name: str
    priority: int
    direction: str  # Inbound | Outbound
    access: str  # Allow | Deny
    protocol: str  # Tcp | Udp | Icmp | * ...
    id: str = ""
    source_address_prefixes: tuple[str, ...] = ()
    source_port_ranges: tuple[str, ...] = ()
    destination_address_prefixes: tuple[str, ...] = ()
    destination_port_ranges: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class NetworkSecurityGroup:
    id: str
    name: str
    resource_group: str
    location: str
    security_rules: tuple[SecurityRule, ...] = ()
    subnet_ids: tuple[str, ...] = ()
    network_interface_ids: tuple[str, ...] = ()

    @property
    def rules(self) -> tuple[SecurityRule, ...]:
        return self.security_rules


@dataclass(frozen=True)
class PublicIp:
    id: str
    name: str
    resource_group: str
    location: str
    ip_address: str | None = None
    ip_configuration_id: str | None = None

    @property
    def address(self) -> str | None:
        return self.ip_address


@dataclass(frozen=True)
class FirewallIpConfiguration:
    name: str
    private_ip_address: str | None = None
    subnet_id: str | None = None
    public_ip_address_id: str | None = None


@dataclass(frozen=True)
class FirewallNatRule:
    """A DNAT rule: traffic to ``destination_addresses:destination_ports`` goes to
    ``translated_address:translated_port``."""

    collection: str  # the rule collection's name (in a Firewall Policy, within its rule collection group)
    name: str
    protocols: tuple[str, ...] = ()
    source_addresses: tuple[str, ...] = ()
    destination_addresses: tuple[str, ...] = ()
    destination_ports: tuple[str, ...] = ()
    translated_address: str | None = None
    translated_port: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Firewall:
    id: str
    name: str
    resource_group: str
    location: str
    ip_configurations: tuple[FirewallIpConfiguration, ...] = ()
    nat_rules: tuple[FirewallNatRule, ...] = ()  # a classic firewall's; see firewall_policy_id
    virtual_hub_id: str | None = None  # set for a firewall in a secured virtual hub (Azure Firewall Manager)
    firewall_policy_id: str | None = None  # Azure Firewall Manager: the policy that holds its rules (DNAT included)
    hub_public_ip_addresses: tuple[str, ...] = ()  # a hub firewall's public addresses (no IP configurations)
    hub_private_ip_address: str | None = None

    @property
    def subnet_ids(self) -> tuple[str, ...]:
        return tuple(c.subnet_id for c in self.ip_configurations if c.subnet_id)

    @property
    def virtual_network_ids(self) -> tuple[str, ...]:
        """The virtual networks the firewall sits in (its subnets' parents)."""
        return tuple(dict.fromkeys(s.split("/subnets/")[0] for s in self.subnet_ids))

    @property
    def public_ip_address_ids(self) -> tuple[str, ...]:
        return tuple(c.public_ip_address_id for c in self.ip_configurations if c.public_ip_address_id)

    @property
    def private_ip_addresses(self) -> tuple[str, ...]:
        return tuple(c.private_ip_address for c in self.ip_configurations if c.private_ip_address)


@dataclass(frozen=True)
class VirtualHub:
    """A Virtual WAN hub; ``firewall_id`` names its Azure Firewall when it is a secured virtual hub."""

    id: str
    name: str
    resource_group: str
    location: str
    address_prefix: str | None = None
    firewall_id: str | None = None


@dataclass(frozen=True)
class HubVirtualNetworkConnection:
    """A spoke virtual network connected to a virtual hub."""

    id: str
    name: str
    virtual_hub_id: str
    remote_virtual_network_id: str | None = None


@dataclass(frozen=True)
class Subnet:
    id: str
    name: str
    address_prefixes: tuple[str, ...] = ()
    network_security_group_id: str | None = None


@dataclass(frozen=True)
class VirtualNetwork:
    id: str
    name: str
    resource_group: str
    location: str
    address_prefixes: tuple[str, ...] = ()
    subnets: tuple[Subnet, ...] = ()


@dataclass(frozen=True)
class JitPolicyPort:
    """A port a policy opens on request. At most one of the two source forms is set (``*`` means any)."""

    number: int
    protocol: str = "*"  # TCP | UDP | *
    allowed_source_address_prefix: str | None = None
    allowed_source_address_prefixes: tuple[str, ...] = ()
    max_request_access_duration: str = "PT3H"

    @property
    def sources(self) -> tuple[str, ...]:
        """The allowed sources as one list, whichever form Azure used."""
        if self.allowed_source_address_prefixes:
            return self.allowed_source_address_prefixes
        return (self.allowed_source_address_prefix,) if self.allowed_source_address_prefix else ()


@dataclass(frozen=True)
class JitPolicyVm:
    id: str
    ports: tuple[JitPolicyPort, ...] = ()
    public_ip_address: str | None = None  # the Azure Firewall's public IP, when the VM is behind one


@dataclass(frozen=True)
class JitRequestPort:
    number: int
    end_time_utc: datetime
    status: str = ""  # Initiated | Revoked (Azure may send other strings, e.g. "Initiating")
    status_reason: str = ""  # Expired | UserRequested | NewerRequestInitiated
    allowed_source_address_prefix: str | None = None
    allowed_source_address_prefixes: tuple[str, ...] = ()
    mapped_port: int | None = None  # the firewall DNAT port, when the VM is behind an Azure Firewall


@dataclass(frozen=True)
class JitRequestVm:
    id: str
    ports: tuple[JitRequestPort, ...] = ()


@dataclass(frozen=True)
class JitRequest:
    start_time_utc: datetime | None
    requestor: str
    virtual_machines: tuple[JitRequestVm, ...] = ()
    justification: str | None = None

    @property
    def vms(self) -> tuple[JitRequestVm, ...]:
        return self.virtual_machines


@dataclass(frozen=True)
class JitPolicy:
    id: str
    name: str
    resource_group: str
    location: str
    kind: str | None = "Basic"
    provisioning_state: str | None = None
    virtual_machines: tuple[JitPolicyVm, ...] = ()
    requests: tuple[JitRequest, ...] = ()

    @property
    def vms(self) -> tuple[JitPolicyVm, ...]:
        return self.virtual_machines


@dataclass(frozen=True)
class JitInitiatePort:
    """One port of an ``initiate``: open ``number`` for ``allowed_source_address_prefix`` until ``end_time_utc``."""

    number: int
    end_time_utc: datetime
    allowed_source_address_prefix: str | None = None


@dataclass(frozen=True)
class JitInitiateVm:
    id: str
    ports: tuple[JitInitiatePort, ...] = ()


@dataclass(frozen=True)
class Pricing:
    name: str
    tier: str  # Free | Standard
    sub_plan: str | None = None
    id: str = ""
    enablement_time: datetime | None = None

    @property
    def jit_available(self) -> bool:
        """Defender for Servers Plan 2 (VirtualMachines, Standard, P2) is what JIT needs."""
        return (self.name.lower() == "virtualmachines" and self.tier.lower() == "standard"
                and (self.sub_plan or "").upper() == "P2")


@dataclass(frozen=True)
class SecurityPolicy:
    """A legacy security policy: ``jit_network_access`` "On"/"Off" for a subscription or one resource group."""

    id: str
    scope: str  # /subscriptions/{sub} or /subscriptions/{sub}/resourceGroups/{rg}
    policy_level: str  # Subscription | ResourceGroup
    resource_group: str | None
    jit_network_access: str  # On | Off

    @property
    def jit_enabled(self) -> bool:
        return self.jit_network_access.lower() != "off"


@dataclass(frozen=True)
class ActivityEvent:
    event_data_id: str
    correlation_id: str
    event_timestamp: datetime
    submission_timestamp: datetime | None
    caller: str
    operation_name: str
    status: str
    sub_status: str
    level: str
    category: str
    resource_id: str
    resource_group: str
    resource_provider: str
    resource_type: str
    subscription_id: str
    properties: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)  # the event as Azure sent it (camelCase JSON)


@dataclass(frozen=True)
class ActivityPage:
    """One page of Activity Log events; ``next_link`` resumes after it (None on the last page)."""

    events: tuple[ActivityEvent, ...]
    next_link: str | None = None


@dataclass(frozen=True)
class RoleDefinition:
    id: str
    name: str  # the definition's GUID
    role_name: str
    description: str = ""
    role_type: str = ""  # CustomRole | BuiltInRole
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()
    assignable_scopes: tuple[str, ...] = ()
