"""JIT's footprint on the network: deny/allow rules in NSGs and DNAT rules in Azure Firewalls."""
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


def _nat_collection(firewall: dict) -> dict:
    collections = firewall.setdefault("properties", {}).setdefault("natRuleCollections", [])
    for collection in collections:
        if collection["name"] == NAT_COLLECTION:
            return collection
    used = {c.get("properties", {}).get("priority") for c in collections}
    priority = next(p for p in range(100, 65001) if p not in used)
    collection = {
        "name": NAT_COLLECTION,
        "id": f"{firewall['id']}/natRuleCollections/{NAT_COLLECTION}",
        "etag": f'W/"{uuid.uuid4()}"',
        "properties": {"priority": priority, "action": {"type": "Dnat"}, "rules": [],
                       "provisioningState": "Succeeded"},
    }
    collections.append(collection)
    return collection


def _used_ports(firewall: dict) -> set[int]:
    used: set[int] = set()
    for collection in firewall.get("properties", {}).get("natRuleCollections", []):
        for rule in collection.get("properties", {}).get("rules", []):
            used.update(int(p) for p in rule.get("destinationPorts", []) if str(p).isdigit())
    return used


def put_dnat_rule(state, op: Operation, firewall_id: str, name: str, *, source: str, public_ip: str,
                  private_ip: str, port: int, protocol: str, mapped_port: int | None = None) -> int | None:
    """Write the DNAT rule (firewall public IP:mapped port → VM private IP:port); return the mapped port."""
    firewall = state.resources.get(firewall_id)
    if firewall is None:
        return None
    collection = _nat_collection(firewall)
    rules = collection["properties"]["rules"]
    existing = next((r for r in rules if r["name"] == name), None)
    if existing is not None:
        mapped_port = mapped_port or int(existing["destinationPorts"][0])
        rules.remove(existing)
    if mapped_port is None:
        used = _used_ports(firewall)
        mapped_port = next(p for p in range(FIRST_MAPPED_PORT, 65536) if p not in used)
    rules.append({
        "name": name,
        "description": "Just-in-time network access (Microsoft Defender for Cloud)",
        "sourceAddresses": [source],
        "destinationAddresses": [public_ip],
        "destinationPorts": [str(mapped_port)],
        "protocols": FIREWALL_PROTOCOLS.get(protocol, ["TCP"]),
        "translatedAddress": private_ip,
        "translatedPort": str(port),
    })
    firewall["etag"] = f'W/"{uuid.uuid4()}"'
    record_pair(state, op, resource_id=firewall["id"], operation_name=FIREWALL_WRITE, http_method="PUT",
                properties={"natRule": name, "mappedPort": str(mapped_port), "translatedPort": str(port),
                            "sourceAddress": source})
    return mapped_port


def delete_dnat_rule(state, op: Operation, firewall_id: str, name: str) -> bool:
    firewall = state.resources.get(firewall_id)
    if firewall is None:
        return False
    for collection in firewall.get("properties", {}).get("natRuleCollections", []):
        rules = collection.get("properties", {}).get("rules", [])
        rule = next((r for r in rules if r["name"] == name), None)
        if rule is not None:
            rules.remove(rule)
            firewall["etag"] = f'W/"{uuid.uuid4()}"'
            record_pair(state, op, resource_id=firewall["id"], operation_name=FIREWALL_WRITE, http_method="PUT",
                        properties={"natRuleRemoved": name})
            return True
    return False
