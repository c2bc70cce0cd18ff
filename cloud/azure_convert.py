"""Pure conversions between Azure SDK models and the gateway's dataclasses (``cloud.types``).

Each ``*_from_sdk`` function takes one SDK model as the SDK deserialized it and returns one dataclass; nothing
here makes a call. Compute and network models are the typespec kind (``model.properties.x``); security,
monitor and authorization models are the msrest kind (flattened attributes).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from azure.mgmt.security.v2020_01_01 import models as jit_models

from . import types

_RESOURCE_GROUP = re.compile(r"/resourceGroups/([^/]+)", re.IGNORECASE)
_POLICY_LOCATION = re.compile(r"/locations/([^/]+)/", re.IGNORECASE)


# --- small readers ---------------------------------------------------------------------------------------------
def text(value: Any) -> str:
    """A string from a str, a str enum, a ``{value, localizedValue}`` object or None ("")."""
    if value is None:
        return ""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, Mapping):
        return str(value.get("value") or "")
    inner = getattr(value, "value", None)  # msrest LocalizableString
    if inner is not None and not isinstance(value, str):
        return str(inner)
    return str(value)


def optional_text(value: Any) -> str | None:
    return text(value) or None


def ref(value: Any) -> str | None:
    """The ``id`` of a sub-resource reference (``{"id": ...}``), or None."""
    if value is None:
        return None
    found = value.get("id") if isinstance(value, Mapping) else getattr(value, "id", None)
    return str(found) if found else None


def strings(*values: Any) -> tuple[str, ...]:
    """Single values and lists merged into one tuple of non-empty strings, in order, without repeats."""
    merged: list[str] = []
    for value in values:
        items = value if isinstance(value, list | tuple) else [value]
        merged.extend(text(item) for item in items if item not in (None, ""))
    return tuple(dict.fromkeys(merged))


def utc(value: datetime | None) -> datetime | None:
    """A timezone-aware UTC datetime (a naive one is taken as UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def resource_group_of(resource_id: str | None) -> str:
    match = _RESOURCE_GROUP.search(resource_id or "")
    return match.group(1) if match else ""


def _props(model: Any) -> Any:
    """A typespec model's ``properties`` (an empty dict when absent, so ``getattr`` still works)."""
    props = getattr(model, "properties", None)
    return props if props is not None else _Empty()


class _Empty:
    def __getattr__(self, name: str) -> None:
        return None


# --- subscriptions ---------------------------------------------------------------------------------------------
def subscription_from_json(body: Mapping[str, Any]) -> types.Subscription:
    """A Microsoft.Resources subscription (the gateway has no SDK client for that provider)."""
    return types.Subscription(subscription_id=body.get("subscriptionId") or str(body.get("id", "")).split("/")[-1],
                              display_name=body.get("displayName") or "", state=body.get("state") or "",
                              tenant_id=body.get("tenantId") or "")


# --- compute ---------------------------------------------------------------------------------------------------
def _power_state(statuses: Iterable[Any] | None) -> str | None:
    for status in statuses or ():
        code = text(getattr(status, "code", None) or (status.get("code") if isinstance(status, Mapping) else ""))
        if code.lower().startswith("powerstate/"):
            return code.split("/", 1)[1]
    return None


def virtual_machine_from_sdk(vm: Any) -> types.VirtualMachine:
    props = _props(vm)
    storage = getattr(props, "storage_profile", None)
    os_disk = getattr(storage, "os_disk", None)
    os_type = text(getattr(os_disk, "os_type", None))
    if not os_type:  # no OS disk info: fall back to the OS profile's kind
        profile = getattr(props, "os_profile", None)
        os_type = "Windows" if getattr(profile, "windows_configuration", None) else \
            "Linux" if getattr(profile, "linux_configuration", None) else ""
    network = getattr(props, "network_profile", None)
    nics = tuple(ref(n) for n in (getattr(network, "network_interfaces", None) or ()) if ref(n))
    instance_view = getattr(props, "instance_view", None)
    hardware = getattr(props, "hardware_profile", None)
    return types.VirtualMachine(
        id=vm.id, name=vm.name, resource_group=resource_group_of(vm.id), location=vm.location or "",
        os_type=os_type.capitalize() if os_type.lower() in ("windows", "linux") else os_type,
        network_interface_ids=nics, power_state=_power_state(getattr(instance_view, "statuses", None)),
        vm_size=text(getattr(hardware, "vm_size", None)), tags=dict(vm.tags or {}),
    )


def classic_virtual_machine_from_json(body: Mapping[str, Any]) -> types.ClassicVirtualMachine:
    """Classic VMs have no SDK model; this reads Microsoft.ClassicCompute's JSON."""
    view = (body.get("properties") or {}).get("instanceView") or {}
    return types.ClassicVirtualMachine(
        id=body.get("id", ""), name=body.get("name", ""), resource_group=resource_group_of(body.get("id")),
        location=body.get("location", ""), power_state=view.get("powerState"), status=view.get("status"),
    )


# --- network ---------------------------------------------------------------------------------------------------
def network_interface_from_sdk(nic: Any) -> types.NetworkInterface:
    props = _props(nic)
    private: list[str] = []
    subnets: list[str] = []
    public: list[str] = []
    configs = sorted(getattr(props, "ip_configurations", None) or (),
                     key=lambda c: not getattr(_props(c), "primary", False))  # the primary one first
    for config in configs:
        cprops = _props(config)
        if cprops.private_ip_address:
            private.append(cprops.private_ip_address)
        if ref(cprops.subnet):
            subnets.append(ref(cprops.subnet))
        if ref(cprops.public_ip_address):
            public.append(ref(cprops.public_ip_address))
    return types.NetworkInterface(
        id=nic.id, name=nic.name, resource_group=resource_group_of(nic.id), location=nic.location or "",
        virtual_machine_id=ref(props.virtual_machine), network_security_group_id=ref(props.network_security_group),
        private_ip_addresses=strings(private), subnet_ids=strings(subnets), public_ip_address_ids=strings(public),
    )


def security_rule_from_sdk(rule: Any) -> types.SecurityRule:
    props = _props(rule)
    return types.SecurityRule(
        name=rule.name or "", id=rule.id or "", priority=int(props.priority or 0), direction=text(props.direction),
        access=text(props.access), protocol=text(props.protocol),
        source_address_prefixes=strings(props.source_address_prefix, props.source_address_prefixes or []),
        source_port_ranges=strings(props.source_port_range, props.source_port_ranges or []),
        destination_address_prefixes=strings(props.destination_address_prefix,
                                             props.destination_address_prefixes or []),
        destination_port_ranges=strings(props.destination_port_range, props.destination_port_ranges or []),
        description=props.description or "",
    )


def network_security_group_from_sdk(nsg: Any) -> types.NetworkSecurityGroup:
    props = _props(nsg)
    return types.NetworkSecurityGroup(
        id=nsg.id, name=nsg.name, resource_group=resource_group_of(nsg.id), location=nsg.location or "",
        security_rules=tuple(security_rule_from_sdk(r) for r in props.security_rules or ()),
        subnet_ids=strings([ref(s) for s in props.subnets or ()]),
        network_interface_ids=strings([ref(n) for n in props.network_interfaces or ()]),
    )


def public_ip_from_sdk(pip: Any) -> types.PublicIp:
    props = _props(pip)
    return types.PublicIp(id=pip.id, name=pip.name, resource_group=resource_group_of(pip.id),
                          location=pip.location or "", ip_address=props.ip_address,
                          ip_configuration_id=ref(props.ip_configuration))


def _nat_rule(collection: str | None, rule: Any) -> types.FirewallNatRule:
    """A classic firewall's NAT rule."""
    return types.FirewallNatRule(
        collection=collection or "", name=rule.name or "", protocols=strings(rule.protocols or []),
        source_addresses=strings(rule.source_addresses or []),
        destination_addresses=strings(rule.destination_addresses or []),
        destination_ports=strings(rule.destination_ports or []), translated_address=rule.translated_address,
        translated_port=rule.translated_port, description=rule.description or "")


def firewall_from_sdk(firewall: Any) -> types.Firewall:
    props = _props(firewall)
    configs = tuple(
        types.FirewallIpConfiguration(name=c.name or "", private_ip_address=_props(c).private_ip_address,
                                      subnet_id=ref(_props(c).subnet),
                                      public_ip_address_id=ref(_props(c).public_ip_address))
        for c in props.ip_configurations or ()
    )
    rules = tuple(_nat_rule(collection.name, rule) for collection in props.nat_rule_collections or ()
                  for rule in _props(collection).rules or ())
    hub_ips = props.hub_ip_addresses
    hub_public = getattr(getattr(hub_ips, "public_i_ps", None), "addresses", None) or ()
    return types.Firewall(id=firewall.id, name=firewall.name, resource_group=resource_group_of(firewall.id),
                          location=firewall.location or "", ip_configurations=configs, nat_rules=rules,
                          virtual_hub_id=ref(props.virtual_hub), firewall_policy_id=ref(props.firewall_policy),
                          hub_public_ip_addresses=strings([a.address for a in hub_public]),
                          hub_private_ip_address=getattr(hub_ips, "private_ip_address", None))


def virtual_hub_from_sdk(hub: Any) -> types.VirtualHub:
    props = _props(hub)
    return types.VirtualHub(id=hub.id, name=hub.name, resource_group=resource_group_of(hub.id),
                            location=hub.location or "", address_prefix=props.address_prefix,
                            firewall_id=ref(props.azure_firewall))


def hub_connection_from_sdk(connection: Any) -> types.HubVirtualNetworkConnection:
    hub_id = (connection.id or "").split("/hubVirtualNetworkConnections/")[0]
    return types.HubVirtualNetworkConnection(
        id=connection.id or "", name=connection.name or "", virtual_hub_id=hub_id,
        remote_virtual_network_id=ref(_props(connection).remote_virtual_network))


def virtual_network_from_sdk(vnet: Any) -> types.VirtualNetwork:
    props = _props(vnet)
    subnets = tuple(
        types.Subnet(id=s.id or "", name=s.name or "",
                     address_prefixes=strings(_props(s).address_prefix, _props(s).address_prefixes or []),
                     network_security_group_id=ref(_props(s).network_security_group))
        for s in props.subnets or ()
    )
    space = getattr(props, "address_space", None)
    return types.VirtualNetwork(id=vnet.id, name=vnet.name, resource_group=resource_group_of(vnet.id),
                                location=vnet.location or "",
                                address_prefixes=strings(getattr(space, "address_prefixes", None) or []),
                                subnets=subnets)


# --- JIT -------------------------------------------------------------------------------------------------------
def jit_request_from_sdk(request: jit_models.JitNetworkAccessRequest) -> types.JitRequest:
    return types.JitRequest(
        start_time_utc=utc(request.start_time_utc), requestor=request.requestor or "",
        justification=request.justification,
        virtual_machines=tuple(
            types.JitRequestVm(id=vm.id, ports=tuple(
                types.JitRequestPort(
                    number=port.number, end_time_utc=utc(port.end_time_utc), status=text(port.status),
                    status_reason=text(port.status_reason),
                    allowed_source_address_prefix=port.allowed_source_address_prefix,
                    allowed_source_address_prefixes=strings(port.allowed_source_address_prefixes or []),
                    mapped_port=port.mapped_port,
                )
                for port in vm.ports or ()
            ))
            for vm in request.virtual_machines or ()
        ),
    )


def jit_policy_from_sdk(policy: jit_models.JitNetworkAccessPolicy) -> types.JitPolicy:
    location = policy.location or ""
    if not location:
        match = _POLICY_LOCATION.search(policy.id or "")
        location = match.group(1) if match else ""
    return types.JitPolicy(
        id=policy.id, name=policy.name, resource_group=resource_group_of(policy.id), location=location,
        kind=policy.kind, provisioning_state=policy.provisioning_state,
        virtual_machines=tuple(
            types.JitPolicyVm(id=vm.id, public_ip_address=vm.public_ip_address, ports=tuple(
                types.JitPolicyPort(
                    number=port.number, protocol=text(port.protocol),
                    allowed_source_address_prefix=port.allowed_source_address_prefix,
                    allowed_source_address_prefixes=strings(port.allowed_source_address_prefixes or []),
                    max_request_access_duration=port.max_request_access_duration,
                )
                for port in vm.ports or ()
            ))
            for vm in policy.virtual_machines or ()
        ),
        requests=tuple(jit_request_from_sdk(r) for r in policy.requests or ()),
    )


def _field(item: Any, snake: str, camel: str | None = None, default: Any = None) -> Any:
    """A field of a dataclass/object (snake_case) or of a mapping (Azure's camelCase or snake_case)."""
    if isinstance(item, Mapping):
        for key in (camel, snake):
            if key and item.get(key) is not None:
                return item[key]
        return default
    value = getattr(item, snake, None)
    return default if value is None else value


def jit_policy_vms_to_sdk(vms: Iterable[Any]) -> list[jit_models.JitNetworkAccessPolicyVirtualMachine]:
    """Policy VMs given as ``JitPolicyVm`` dataclasses or Azure-shaped dicts, as SDK models."""
    result = []
    for vm in vms:
        ports = []
        for port in _field(vm, "ports", default=()):
            prefixes = list(_field(port, "allowed_source_address_prefixes", "allowedSourceAddressPrefixes",
                                   default=()))
            prefix = _field(port, "allowed_source_address_prefix", "allowedSourceAddressPrefix")
            ports.append(jit_models.JitNetworkAccessPortRule(
                number=int(_field(port, "number")), protocol=str(_field(port, "protocol", default="*")),
                allowed_source_address_prefix=None if prefixes else (prefix or "*"),
                allowed_source_address_prefixes=prefixes or None,
                max_request_access_duration=str(_field(port, "max_request_access_duration",
                                                       "maxRequestAccessDuration", default="PT3H")),
            ))
        result.append(jit_models.JitNetworkAccessPolicyVirtualMachine(
            id=str(_field(vm, "id")), ports=ports,
            public_ip_address=_field(vm, "public_ip_address", "publicIpAddress")))
    return result


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return utc(value)
    return utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def jit_initiate_to_sdk(vms: Iterable[Any], justification: str | None
                        ) -> jit_models.JitNetworkAccessPolicyInitiateRequest:
    """An initiate body from ``JitInitiateVm`` dataclasses or Azure-shaped dicts."""
    return jit_models.JitNetworkAccessPolicyInitiateRequest(
        justification=justification,
        virtual_machines=[
            jit_models.JitNetworkAccessPolicyInitiateVirtualMachine(id=str(_field(vm, "id")), ports=[
                jit_models.JitNetworkAccessPolicyInitiatePort(
                    number=int(_field(port, "number")),
                    end_time_utc=_as_datetime(_field(port, "end_time_utc", "endTimeUtc")),
                    allowed_source_address_prefix=_field(port, "allowed_source_address_prefix",
                                                         "allowedSourceAddressPrefix"),
                )
                for port in _field(vm, "ports", default=())
            ])
            for vm in vms
        ],
    )


# --- security: pricing and legacy policies ----------------------------------------------------------------------
def pricing_from_sdk(pricing: Any) -> types.Pricing:
    return types.Pricing(name=pricing.name or "", tier=text(pricing.pricing_tier), sub_plan=pricing.sub_plan,
                         id=pricing.id or "", enablement_time=utc(getattr(pricing, "enablement_time", None)))


def security_policy_from_json(body: Mapping[str, Any]) -> types.SecurityPolicy:
    """A legacy ``Microsoft.Security/policies`` document (no SDK model in the current packages)."""
    policy_id = body.get("id", "")
    props = body.get("properties") or {}
    scope = policy_id.split("/providers/", 1)[0]
    group = resource_group_of(scope) or None
    level = props.get("policyLevel") or ("ResourceGroup" if group else "Subscription")
    value = (props.get("recommendations") or {}).get("jitNetworkAccess") or "On"
    return types.SecurityPolicy(id=policy_id, scope=scope, policy_level=level, resource_group=group,
                                jit_network_access=str(value))


# --- monitor ---------------------------------------------------------------------------------------------------
def activity_event_from_sdk(event: Any, raw: Mapping[str, Any] | None = None) -> types.ActivityEvent:
    """An Activity Log ``EventData``; ``raw`` is the JSON Azure sent (rebuilt from the model when not given)."""
    resource_id = event.resource_id or ""
    provider = text(event.resource_provider_name)
    if not provider and "/providers/" in resource_id:
        provider = resource_id.rsplit("/providers/", 1)[1].split("/")[0]
    return types.ActivityEvent(
        event_data_id=event.event_data_id or "", correlation_id=event.correlation_id or "",
        event_timestamp=utc(event.event_timestamp), submission_timestamp=utc(event.submission_timestamp),
        caller=event.caller or "", operation_name=text(event.operation_name), status=text(event.status),
        sub_status=text(event.sub_status), level=text(event.level), category=text(event.category),
        resource_id=resource_id, resource_group=event.resource_group_name or resource_group_of(resource_id),
        resource_provider=provider, resource_type=text(event.resource_type),
        subscription_id=event.subscription_id or "", properties=dict(event.properties or {}),
        raw=dict(raw) if raw is not None else event.serialize(keep_readonly=True),
    )


# --- authorization ---------------------------------------------------------------------------------------------
def role_definition_from_sdk(role: Any) -> types.RoleDefinition:
    permissions: Sequence[Any] = role.permissions or ()
    return types.RoleDefinition(
        id=role.id or "", name=role.name or "", role_name=role.role_name or "", description=role.description or "",
        role_type=role.role_type or "",
        actions=strings(*[p.actions or [] for p in permissions]),
        not_actions=strings(*[p.not_actions or [] for p in permissions]),
        data_actions=strings(*[p.data_actions or [] for p in permissions]),
        not_data_actions=strings(*[p.not_data_actions or [] for p in permissions]),
        assignable_scopes=strings(role.assignable_scopes or []),
    )
