"""JIT's footprint on the network: deny/allow rules in NSGs and DNAT rules in Azure Firewalls (in a classic
firewall's NAT rule collections, or in the Firewall Policy of one Azure Firewall Manager configures)."""
from __future__ import annotations

import hashlib
import uuid

from emulator.events import Operation, record_pair

NSG_PROTOCOL = {"TCP": "Tcp", "UDP": "Udp", "*": "*"}
FIREWALL_PROTOCOLS = {"TCP": ["TCP"], "UDP": ["UDP"], "*": ["TCP", "UDP"]}
DENY_TOP = 4096
ALLOW_BOTTOM = 100
NAT_COLLECTION = "SecurityCenter-JIT"
FIRST_MAPPED_PORT = 50000
RULE_WRITE = "Microsoft.Network/networkSecurityGroups/securityRules/write"
RULE_DELETE = "Microsoft.Network/networkSecurityGroups/securityRules/delete"
FIREWALL_WRITE = "Microsoft.Network/azureFirewalls/write"
RULE_COLLECTION_GROUP_WRITE = "Microsoft.Network/firewallPolicies/ruleCollectionGroups/write"
POLICY_NAT_COLLECTION = "FirewallPolicyNatRuleCollection"
FIREWALL = "microsoft.network/azurefirewalls"


def rule_name(policy_id: str, vm_name: str, port: int, kind: str) -> str:
    """Deterministic: ``SecurityCenter-JITRule_<hash of policy>_<vm>_<port>`` (+ ``_Allow`` for allow rules)."""
    digest = hashlib.sha256(policy_id.lower().encode()).hexdigest()[:8]
    base = f"SecurityCenter-JITRule_{digest}_{vm_name}_{port}"
    return base if kind == "deny" else f"{base}_Allow"


def _rules(nsg: dict) -> list[dict]:
    return nsg.setdefault("properties", {}).setdefault("securityRules", [])


def find_rule(nsg: dict, name: str) -> dict | None:
    return next((r for r in _rules(nsg) if r["name"].lower() == name.lower()), None)


def _free_priority(nsg: dict, *, from_top: bool) -> int:
    used = {r["properties"].get("priority") for r in _rules(nsg)
            if r["properties"].get("direction", "Inbound") == "Inbound"}
    candidates = range(ALLOW_BOTTOM, DENY_TOP + 1) if from_top else range(DENY_TOP, ALLOW_BOTTOM - 1, -1)
    return next(p for p in candidates if p not in used)


def _rule_properties(*, access: str, priority: int, port: int, protocol: str, source: str, destination: str) -> dict:
    return {
        "provisioningState": "Succeeded",
        "description": "Just-in-time network access rule (Microsoft Defender for Cloud)",
        "protocol": NSG_PROTOCOL.get(protocol, "*"),
        "sourcePortRange": "*",
        "destinationPortRange": str(port),
        "sourceAddressPrefix": source,
        "destinationAddressPrefix": destination or "*",
        "access": access,
        "priority": priority,
        "direction": "Inbound",
        "sourcePortRanges": [],
        "destinationPortRanges": [],
        "sourceAddressPrefixes": [],
        "destinationAddressPrefixes": [],
    }


def put_nsg_rule(state, op: Operation, nsg_id: str, name: str, *, access: str, port: int, protocol: str,
                 source: str, destination: str | None) -> dict | None:
    """Create or update a JIT rule; allow rules take the best free priority, deny rules the worst one."""
    nsg = state.resources.get(nsg_id)
    if nsg is None:
        return None
    existing = find_rule(nsg, name)
    if existing is not None:
        priority = existing["properties"]["priority"]
        _rules(nsg).remove(existing)
    else:
        priority = _free_priority(nsg, from_top=access == "Allow")
    rule = {
        "name": name,
        "id": f"{nsg['id']}/securityRules/{name}",
        "etag": f'W/"{uuid.uuid4()}"',
        "type": "Microsoft.Network/networkSecurityGroups/securityRules",
        "properties": _rule_properties(access=access, priority=priority, port=port, protocol=protocol,
                                       source=source, destination=destination or "*"),
    }
    _rules(nsg).append(rule)
    nsg["etag"] = f'W/"{uuid.uuid4()}"'
    record_pair(state, op, resource_id=rule["id"], operation_name=RULE_WRITE, http_method="PUT",
                properties={"access": access, "destinationPortRange": str(port), "sourceAddressPrefix": source,
                            "priority": str(priority)})
    return rule


def delete_nsg_rule(state, op: Operation, nsg_id: str, name: str) -> bool:
    nsg = state.resources.get(nsg_id)
    rule = find_rule(nsg, name) if nsg else None
    if rule is None:
        return False
    _rules(nsg).remove(rule)
    nsg["etag"] = f'W/"{uuid.uuid4()}"'
    record_pair(state, op, resource_id=rule["id"], operation_name=RULE_DELETE, http_method="DELETE",
                properties={"access": rule["properties"]["access"],
                            "destinationPortRange": rule["properties"]["destinationPortRange"]})
    return True


def _policy_id(firewall: dict) -> str:
    return firewall.get("properties", {}).get("firewallPolicy", {}).get("id", "")


def _policy_of(state, firewall: dict) -> dict | None:
    """The Firewall Policy configuring a firewall (Azure Firewall Manager's, as every secured hub's firewall has),
    or None for a classic firewall (its own rule collections)."""
    return state.resources.get(_policy_id(firewall)) if _policy_id(firewall) else None


def _policy_groups(state, policy: dict | None) -> list[dict]:
    refs = (policy or {}).get("properties", {}).get("ruleCollectionGroups", [])
    return [group for group in (state.resources.get(ref.get("id", "")) for ref in refs) if group]


def _rule_lists(state, firewall: dict) -> list[tuple[dict, list[dict]]]:
    """(resource to write, its rule list) of each DNAT rule collection configuring the firewall: the classic
    ``natRuleCollections`` of the firewall, or the NAT rule collections of its Firewall Policy's groups."""
    if _policy_id(firewall):
        groups = _policy_groups(state, _policy_of(state, firewall))
        return [(group, collection.setdefault("rules", [])) for group in groups
                for collection in group.get("properties", {}).get("ruleCollections", [])
                if collection.get("ruleCollectionType") == POLICY_NAT_COLLECTION]
    return [(firewall, collection.setdefault("properties", {}).setdefault("rules", []))
            for collection in firewall.get("properties", {}).get("natRuleCollections", [])]


def nat_rules(state, firewall: dict) -> list[dict]:
    """Every DNAT rule of the firewall, wherever it is configured (``_rule_lists``)."""
    return [rule for _resource, rules_ in _rule_lists(state, firewall) for rule in rules_]


def _free(used: set) -> int:
    """The best (lowest) priority of 100…65000 not in ``used``."""
    return next(p for p in range(100, 65001) if p not in used)


def _classic_collection(firewall: dict) -> list[dict]:
    """The rules of JIT's classic NAT rule collection on the firewall (created on first use)."""
    collections = firewall.setdefault("properties", {}).setdefault("natRuleCollections", [])
    for collection in collections:
        if collection["name"] == NAT_COLLECTION:
            return collection["properties"]["rules"]
    collection = {
        "name": NAT_COLLECTION,
        "id": f"{firewall['id']}/natRuleCollections/{NAT_COLLECTION}",
        "etag": f'W/"{uuid.uuid4()}"',
        "properties": {"priority": _free({c.get("properties", {}).get("priority") for c in collections}),
                       "action": {"type": "Dnat"}, "rules": [], "provisioningState": "Succeeded"},
    }
    collections.append(collection)
    return collection["properties"]["rules"]


def _policy_collection(state, policy: dict) -> tuple[dict, list[dict]]:
    """(group, rules) of JIT's NAT rule collection in its own rule collection group of the Firewall Policy (both
    created on first use, the group at the policy's best free priority)."""
    groups = _policy_groups(state, policy)
    group = next((g for g in groups if g["name"] == NAT_COLLECTION), None)
    if group is None:
        group = state.resources.put({
            "name": NAT_COLLECTION,
            "id": f"{policy['id']}/ruleCollectionGroups/{NAT_COLLECTION}",
            "etag": f'W/"{uuid.uuid4()}"',
            "type": "Microsoft.Network/FirewallPolicies/RuleCollectionGroups",
            "properties": {"priority": _free({g.get("properties", {}).get("priority") for g in groups}),
                           "ruleCollections": [], "provisioningState": "Succeeded"},
        })
        policy.setdefault("properties", {}).setdefault("ruleCollectionGroups", []).append({"id": group["id"]})
    collections = group["properties"].setdefault("ruleCollections", [])
    collection = next((c for c in collections if c.get("name") == NAT_COLLECTION), None)
    if collection is None:
        collection = {"ruleCollectionType": POLICY_NAT_COLLECTION, "name": NAT_COLLECTION, "priority": 100,
                      "action": {"type": "DNAT"}, "rules": []}
        collections.append(collection)
    return group, collection["rules"]


def _written(state, op: Operation, resource: dict, properties: dict) -> None:
    """A firewall, or a Firewall Policy's rule collection group, changed: new etag, Activity Log events."""
    resource["etag"] = f'W/"{uuid.uuid4()}"'
    operation = FIREWALL_WRITE if resource["type"].lower() == FIREWALL else RULE_COLLECTION_GROUP_WRITE
    record_pair(state, op, resource_id=resource["id"], operation_name=operation, http_method="PUT",
                properties=properties)


def put_dnat_rule(state, op: Operation, firewall_id: str, name: str, *, source: str, public_ip: str,
                  private_ip: str, port: int, protocol: str, mapped_port: int | None = None) -> int | None:
    """Write the DNAT rule (firewall public IP:mapped port → VM private IP:port) where the firewall is configured:
    its classic NAT rule collections, or its Firewall Policy (Azure Firewall Manager). Return the mapped port."""
    firewall = state.resources.get(firewall_id)
    if firewall is None:
        return None
    policy = _policy_of(state, firewall)
    if _policy_id(firewall) and policy is None:
        return None  # its policy is gone: nowhere to write
    for _resource, rules_ in _rule_lists(state, firewall):
        existing = next((r for r in rules_ if r["name"] == name), None)
        if existing is not None:
            mapped_port = mapped_port or int(existing["destinationPorts"][0])
            rules_.remove(existing)
    if mapped_port is None:
        used = {int(p) for rule in nat_rules(state, firewall) for p in rule.get("destinationPorts", [])
                if str(p).isdigit()}
        mapped_port = next(p for p in range(FIRST_MAPPED_PORT, 65536) if p not in used)
    rule = {"name": name, "description": "Just-in-time network access (Microsoft Defender for Cloud)",
            "sourceAddresses": [source], "destinationAddresses": [public_ip], "destinationPorts": [str(mapped_port)],
            "translatedAddress": private_ip, "translatedPort": str(port)}
    protocols = FIREWALL_PROTOCOLS.get(protocol, ["TCP"])
    if policy is not None:
        resource, rules_ = _policy_collection(state, policy)
        rules_.append({"ruleType": "NatRule", **rule, "ipProtocols": protocols, "sourceIpGroups": []})
    else:
        resource, rules_ = firewall, _classic_collection(firewall)
        rules_.append({**rule, "protocols": protocols})
    _written(state, op, resource, {"natRule": name, "mappedPort": str(mapped_port), "translatedPort": str(port),
                                   "sourceAddress": source})
    return mapped_port


def delete_dnat_rule(state, op: Operation, firewall_id: str, name: str) -> bool:
    firewall = state.resources.get(firewall_id)
    if firewall is None:
        return False
    for resource, rules_ in _rule_lists(state, firewall):
        rule = next((r for r in rules_ if r["name"] == name), None)
        if rule is not None:
            rules_.remove(rule)
            _written(state, op, resource, {"natRuleRemoved": name})
            return True
    return False
