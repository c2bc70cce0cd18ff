"""Microsoft.Network (2026-03-01, other versions accepted): NICs, NSGs and their rules, public IPs, Azure
Firewalls, Firewall Policies with their rule collection groups, virtual networks, and virtual hubs with their hub
virtual network connections."""
from __future__ import annotations

import uuid

from emulator.arm.context import ArmContext, paged
from emulator.arm.router import router
from emulator.errors import ArmError, bad_request
from emulator.events import operation_events
from emulator.jit.rules import RULE_DELETE, RULE_WRITE, find_rule

RG = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/"
SUB = "/subscriptions/{sub}/providers/Microsoft.Network/"
KINDS = {
    "networkInterfaces": "microsoft.network/networkinterfaces",
    "networkSecurityGroups": "microsoft.network/networksecuritygroups",
    "publicIPAddresses": "microsoft.network/publicipaddresses",
    "azureFirewalls": "microsoft.network/azurefirewalls",
    "virtualNetworks": "microsoft.network/virtualnetworks",
    "virtualHubs": "microsoft.network/virtualhubs",
    "firewallPolicies": "microsoft.network/firewallpolicies",
}


def _get(ctx: ArmContext, sub: str, rg: str, kind: str, name: str) -> dict:
    ctx.require_resource_group(sub, rg)
    resource = ctx.state.resources.get(f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/"
                                       f"{kind}/{name}")
    if resource is None:
        raise ArmError(404, "ResourceNotFound",
                       f"The Resource 'Microsoft.Network/{kind}/{name}' under resource group '{rg}' was not found.")
    return resource


def _register(kind: str, rtype: str) -> None:
    def list_all(ctx: ArmContext, sub: str):
        ctx.require_subscription(sub)
        return paged(ctx.state.resources.list(rtype, sub), ctx.state.page_size)

    def list_group(ctx: ArmContext, sub: str, rg: str):
        ctx.require_resource_group(sub, rg)
        return paged(ctx.state.resources.list(rtype, sub, rg), ctx.state.page_size)

    def get_one(ctx: ArmContext, sub: str, rg: str, name: str):
        return _get(ctx, sub, rg, kind, name)

    router.route("GET", SUB + kind)(list_all)
    router.route("GET", RG + kind)(list_group)
    router.route("GET", RG + kind + "/{name}")(get_one)


for _kind, _rtype in KINDS.items():
    _register(_kind, _rtype)


@router.route("GET", RG + "virtualNetworks/{vnet}/subnets/{name}")
def get_subnet(ctx: ArmContext, sub: str, rg: str, vnet: str, name: str):
    for subnet in _get(ctx, sub, rg, "virtualNetworks", vnet)["properties"].get("subnets", []):
        if subnet["name"].lower() == name.lower():
            return subnet
    raise ArmError(404, "NotFound", f"Subnet '{name}' was not found in virtual network '{vnet}'.")


def _children(ctx: ArmContext, sub: str, rg: str, kind: str, name: str, segment: str) -> list[dict]:
    """The child resources ``kind/name/segment/*`` (404 when the parent does not exist)."""
    prefix = _get(ctx, sub, rg, kind, name)["id"].lower() + "/"
    rtype = f"microsoft.network/{kind}/{segment}".lower()
    return [c for c in ctx.state.resources.list(rtype, sub, rg) if c["id"].lower().startswith(prefix)]


def _child(ctx: ArmContext, sub: str, rg: str, kind: str, name: str, segment: str, child: str) -> dict:
    for resource in _children(ctx, sub, rg, kind, name, segment):
        if resource["name"].lower() == child.lower():
            return resource
    raise ArmError(404, "ResourceNotFound",
                   f"The Resource 'Microsoft.Network/{kind}/{name}/{segment}/{child}' under resource group '{rg}' "
                   f"was not found.")


@router.route("GET", RG + "virtualHubs/{hub}/hubVirtualNetworkConnections")
def list_hub_connections(ctx: ArmContext, sub: str, rg: str, hub: str):
    return paged(_children(ctx, sub, rg, "virtualHubs", hub, "hubVirtualNetworkConnections"), ctx.state.page_size)


@router.route("GET", RG + "virtualHubs/{hub}/hubVirtualNetworkConnections/{name}")
def get_hub_connection(ctx: ArmContext, sub: str, rg: str, hub: str, name: str):
    return _child(ctx, sub, rg, "virtualHubs", hub, "hubVirtualNetworkConnections", name)


@router.route("GET", RG + "firewallPolicies/{policy}/ruleCollectionGroups")
def list_rule_collection_groups(ctx: ArmContext, sub: str, rg: str, policy: str):
    return paged(_children(ctx, sub, rg, "firewallPolicies", policy, "ruleCollectionGroups"), ctx.state.page_size)


@router.route("GET", RG + "firewallPolicies/{policy}/ruleCollectionGroups/{name}")
def get_rule_collection_group(ctx: ArmContext, sub: str, rg: str, policy: str, name: str):
    return _child(ctx, sub, rg, "firewallPolicies", policy, "ruleCollectionGroups", name)


@router.route("GET", RG + "networkSecurityGroups/{nsg}/securityRules")
def list_rules(ctx: ArmContext, sub: str, rg: str, nsg: str):
    return paged(_get(ctx, sub, rg, "networkSecurityGroups", nsg)["properties"].get("securityRules", []),
                 ctx.state.page_size)


@router.route("GET", RG + "networkSecurityGroups/{nsg}/defaultSecurityRules")
def list_default_rules(ctx: ArmContext, sub: str, rg: str, nsg: str):
    return {"value": _get(ctx, sub, rg, "networkSecurityGroups", nsg)["properties"].get("defaultSecurityRules", [])}


@router.route("GET", RG + "networkSecurityGroups/{nsg}/securityRules/{name}")
def get_rule(ctx: ArmContext, sub: str, rg: str, nsg: str, name: str):
    rule = find_rule(_get(ctx, sub, rg, "networkSecurityGroups", nsg), name)
    if rule is None:
        raise ArmError(404, "NotFound", f"Security rule '{name}' was not found in '{nsg}'.")
    return rule


def _check_rule(props: object, nsg: dict, name: str) -> None:
    if not isinstance(props, dict):
        raise bad_request("InvalidRequestFormat", "properties is required.")
    for field, allowed in (("protocol", ("Tcp", "Udp", "Icmp", "Esp", "Ah", "*")), ("access", ("Allow", "Deny")),
                           ("direction", ("Inbound", "Outbound"))):
        if props.get(field) not in allowed:
            raise bad_request("InvalidRequestFormat", f"properties.{field} must be one of {', '.join(allowed)}.")
    priority = props.get("priority")
    if isinstance(priority, bool) or not isinstance(priority, int) or not 100 <= priority <= 4096:
        raise bad_request("SecurityRuleInvalidPriority", "priority must be an integer between 100 and 4096.")
    for other in nsg["properties"].get("securityRules", []):
        op = other["properties"]
        if other["name"].lower() != name.lower() and op.get("priority") == priority \
                and op.get("direction") == props["direction"]:
            raise bad_request("SecurityRulesInvalidPriorityConflict",
                              f"Rules '{name}' and '{other['name']}' have the same priority {priority} in the same "
                              f"direction.")


@router.route("PUT", RG + "networkSecurityGroups/{nsg}/securityRules/{name}")
def put_rule(ctx: ArmContext, sub: str, rg: str, nsg: str, name: str):
    group = _get(ctx, sub, rg, "networkSecurityGroups", nsg)
    body = ctx.json_body()
    props = body.get("properties") if isinstance(body, dict) else None
    _check_rule(props, group, name)
    existing = find_rule(group, name)
    rule = {"name": name, "id": f"{group['id']}/securityRules/{name}", "etag": f'W/"{uuid.uuid4()}"',
            "type": "Microsoft.Network/networkSecurityGroups/securityRules",
            "properties": {"sourcePortRange": "*", "destinationPortRange": "*", "sourceAddressPrefix": "*",
                           "destinationAddressPrefix": "*", **props, "provisioningState": "Succeeded"}}
    with operation_events(ctx.state, ctx.operation(sub), resource_id=rule["id"], operation_name=RULE_WRITE,
                          http_method="PUT", properties={"access": props["access"],
                                                         "priority": str(props["priority"])}):
        rules = group["properties"].setdefault("securityRules", [])
        if existing is not None:
            rules[rules.index(existing)] = rule
        else:
            rules.append(rule)
    return rule, 200 if existing is not None else 201


@router.route("DELETE", RG + "networkSecurityGroups/{nsg}/securityRules/{name}")
def delete_rule(ctx: ArmContext, sub: str, rg: str, nsg: str, name: str):
    group = _get(ctx, sub, rg, "networkSecurityGroups", nsg)
    rule = find_rule(group, name)
    if rule is None:
        return None, 204
    with operation_events(ctx.state, ctx.operation(sub), resource_id=rule["id"], operation_name=RULE_DELETE,
                          http_method="DELETE", properties={"access": rule["properties"].get("access", "")}):
        group["properties"]["securityRules"].remove(rule)
    return None, 200
