"""Turn a scenario dict (format documented in ``emulator.scenarios``) into emulator state."""
from __future__ import annotations

import ipaddress
import itertools
import json
import uuid
from datetime import timedelta

from emulator.activity import ActivityLog, GeneratedActivity, make_event
from emulator.events import Operation
from emulator.jit import engine, rules
from emulator.scenarios import builders as b
from emulator.scenarios.identities import CONTOSO, demo_identities
from emulator.state import _tenant_from_json
from emulator.timeutil import iso, parse_iso
from emulator.topology import NIC, VNET

DEFAULT_LOCATION = "westeurope"


class _Allocator:
    """Hands out private IPs per subnet (Azure reserves the first four addresses)."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def take(self, subnet_id: str, prefix: str) -> str:
        network = ipaddress.ip_network(prefix, strict=False)
        index = self.next.get(subnet_id.lower(), 4)
        self.next[subnet_id.lower()] = index + 1
        return str(network.network_address + index)


def _vnet_spec(spec: dict, number: int) -> dict:
    space = spec.get("address_space") or f"10.{number % 250}.0.0/16"
    net = ipaddress.ip_network(space, strict=False)
    wanted = spec.get("subnets") or [{"name": "default"}]
    # Only the /24 blocks the subnets take (a /16 has 256: listing them all was most of a demo reset's time).
    count = 2 ** (24 - net.prefixlen) if net.prefixlen <= 24 else 1
    blocks = list(itertools.islice(net.subnets(new_prefix=24), min(count, len(wanted)))) if count > 1 else [net]
    subnets = []
    for i, subnet in enumerate(wanted):
        subnets.append({"name": subnet["name"], "prefix": subnet.get("prefix") or str(blocks[i % len(blocks)]),
                        "nsg": subnet.get("nsg")})
    return {**spec, "address_space": space, "subnets": subnets}


class ScenarioBuilder:
    """Builds one scenario into a state (which it resets first)."""

    def __init__(self, state, spec: dict, name: str) -> None:
        self.state = state
        self.spec = spec
        self.name = name
        self.ips = _Allocator()
        self.vnet_count = 0

    def build(self) -> None:
        state = self.state
        with state.lock:
            state.reset()
            state.scenario_name = self.name
            identities = self.spec.get("identities", "demo")
            for tenant in demo_identities() if identities == "demo" else identities:
                t = _tenant_from_json(tenant)
                state.tenants[t.tenant_id] = t
            for sub in self.spec.get("subscriptions", []):
                self._subscription(sub)
            self._link_network()
            for sub in self.spec.get("subscriptions", []):
                for group in sub.get("resource_groups", []):
                    for policy in group.get("jit_policies", []):
                        self._policy(sub, group, policy)
            state.activity = ActivityLog()
            for sub in self.spec.get("subscriptions", []):
                for group in sub.get("resource_groups", []):
                    for policy in group.get("jit_policies", []):
                        self._history(sub, group, policy)
            for event in self.spec.get("activity", []):
                add_event(state, event)
            generated = self.spec.get("generated_activity")
            if generated:
                state.activity.generated = GeneratedActivity(**generated)
            for sub in self.spec.get("subscriptions", []):
                for group in sub.get("resource_groups", []):
                    for policy in group.get("jit_policies", []):
                        self._open_requests(sub, group, policy)

    # --- topology ----------------------------------------------------------------------------------------
    def _subscription(self, sub: dict) -> None:
        state = self.state
        sub_id = sub["id"]
        state.subscriptions[sub_id.lower()] = {
            "subscriptionId": sub_id, "displayName": sub.get("name", sub_id), "tenantId": sub.get("tenant_id", CONTOSO),
            "state": "Enabled", "authorizationSource": "RoleBased",
            "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01",
                                     "spendingLimit": "Off"}}
        plan = sub.get("plan", "P2")
        plans = {}
        for name in b.PRICING_NAMES:
            if name == "VirtualMachines" and plan in ("P1", "P2"):
                plans[name.lower()] = b.pricing_resource(sub_id, name, "Standard", plan)
            else:
                plans[name.lower()] = b.pricing_resource(sub_id, name, "Free")
        state.pricings[f"subscriptions/{sub_id.lower()}"] = plans
        policy = {"jit": sub.get("jit_security_policy", "On"), "resourceGroups": {}}
        state.security_policies[sub_id.lower()] = policy
        for group in sub.get("resource_groups", []):
            if group.get("jit_security_policy"):
                policy["resourceGroups"][group["name"].lower()] = group["jit_security_policy"]
            self._group(sub_id, group)

    def _nsg(self, sub: str, rg: str, name: str, location: str, rules_: list | None = None) -> str:
        nsg_id = f"{b.group_id(sub, rg)}/providers/Microsoft.Network/networkSecurityGroups/{name}"
        if self.state.resources.get(nsg_id) is None:
            self.state.resources.put(b.nsg_resource(sub, rg, name, location, rules_))
        return nsg_id

    def _group(self, sub: str, group: dict) -> None:
        state = self.state
        rg = group["name"]
        location = group.get("location", DEFAULT_LOCATION)
        state.resource_groups.setdefault(sub.lower(), {})[rg.lower()] = {"name": rg, "location": location}
        for pip in group.get("public_ips", []):
            doc = b.public_ip_resource(sub, rg, pip["name"], pip.get("location", location), pip.get("address", ""))
            doc["properties"]["publicIPAllocationMethod"] = pip.get("allocation", "Static")
            state.resources.put(doc)
        for nsg in group.get("nsgs", []):
            self._nsg(sub, rg, nsg["name"], nsg.get("location", location), nsg.get("rules"))
        subnets: dict[tuple[str, str], tuple[str, str]] = {}  # (vnet, subnet) lower -> (id, prefix)
        vnets = list(group.get("vnets", []))
        needs_default = any(not vm.get("vnet") for vm in group.get("vms", [])) and not vnets
        if needs_default:
            vnets.append({"name": f"{rg}-vnet"})
        for vnet_raw in vnets:
            self.vnet_count += 1
            vnet = _vnet_spec(vnet_raw, self.vnet_count)
            vnet_location = vnet.get("location", location)
            subnet_docs = []
            for subnet in vnet["subnets"]:
                nsg_id = self._nsg(sub, rg, subnet["nsg"], vnet_location) if subnet.get("nsg") else None
                subnet_docs.append({"name": subnet["name"], "prefix": subnet["prefix"], "nsg_id": nsg_id})
            firewall = vnet.get("firewall")
            if firewall:
                space = ipaddress.ip_network(vnet["address_space"], strict=False)
                fw_prefix = firewall.get("subnet_prefix") or str(list(space.subnets(new_prefix=26))[-1])
                subnet_docs.append({"name": "AzureFirewallSubnet", "prefix": fw_prefix, "nsg_id": None})
            doc = b.vnet_resource(sub, rg, vnet["name"], vnet_location, vnet["address_space"], subnet_docs)
            state.resources.put(doc)
            for s in doc["properties"]["subnets"]:
                subnets[(vnet["name"].lower(), s["name"].lower())] = (s["id"], s["properties"]["addressPrefix"])
            if firewall:
                fw_subnet_id, fw_prefix = subnets[(vnet["name"].lower(), "azurefirewallsubnet")]
                pip_name = f"{firewall['name']}-pip"
                pip = b.public_ip_resource(sub, rg, pip_name, vnet_location, firewall.get("public_ip", "20.0.0.4"))
                state.resources.put(pip)
                policy_id = self._firewall_policy(sub, rg, vnet_location, firewall) if firewall.get("policy") else None
                fw = b.firewall_resource(sub, rg, firewall["name"], vnet_location, subnet_id=fw_subnet_id,
                                         public_ip_id=pip["id"], private_ip=self.ips.take(fw_subnet_id, fw_prefix),
                                         firewall_policy_id=policy_id)
                pip["properties"]["ipConfiguration"] = {"id": fw["properties"]["ipConfigurations"][0]["id"]}
                state.resources.put(fw)
        for hub in group.get("virtual_hubs", []):
            self._virtual_hub(sub, rg, hub.get("location", location), hub)
        default_vnet = vnets[0]["name"] if vnets else None
        for vm in group.get("vms", []):
            self._vm(sub, rg, location, vm, subnets, default_vnet)
        for classic in group.get("classic_vms", []):
            classic = {"name": classic} if isinstance(classic, str) else classic
            state.resources.put(b.classic_vm_resource(sub, rg, classic["name"], classic.get("location", location)))

    def _virtual_hub(self, sub: str, rg: str, location: str, hub: dict) -> None:
        """A virtual hub, its spoke connections and (secured hub) its Azure Firewall."""
        state = self.state
        prefix = hub.get("address_prefix") or "10.200.0.0/23"
        hub_id = f"{b.group_id(sub, rg)}/providers/Microsoft.Network/virtualHubs/{hub['name']}"
        firewall = hub.get("firewall")
        fw = None
        if firewall:
            fw = b.hub_firewall_resource(sub, rg, firewall["name"], location, hub_id=hub_id,
                                         public_ip=firewall.get("public_ip", "20.0.0.5"),
                                         private_ip=self.ips.take(hub_id, prefix),
                                         firewall_policy_id=self._firewall_policy(sub, rg, location, firewall))
            state.resources.put(fw)
        state.resources.put(b.virtual_hub_resource(sub, rg, hub["name"], location, address_prefix=prefix,
                                                   firewall_id=fw["id"] if fw else None))
        for connection in hub.get("connections", []):
            spoke_group = b.group_id(connection.get("vnet_subscription", sub), connection.get("vnet_group", rg))
            vnet_id = f"{spoke_group}/providers/Microsoft.Network/virtualNetworks/{connection['vnet']}"
            state.resources.put(b.hub_connection_resource(hub_id, connection.get("name", connection["vnet"]),
                                                          vnet_id))

    def _firewall_policy(self, sub: str, rg: str, location: str, firewall: dict) -> str:
        """The Firewall Policy (and its rule collection group) configuring ``firewall``; returns the policy's id."""
        name = firewall.get("policy") or f"{firewall['name']}-policy"
        firewall_id = f"{b.group_id(sub, rg)}/providers/Microsoft.Network/azureFirewalls/{firewall['name']}"
        policy, group = b.firewall_policy_resources(sub, rg, name, location, firewall_id=firewall_id)
        self.state.resources.put(policy)
        self.state.resources.put(group)
        return policy["id"]

    def _vm(self, sub: str, rg: str, group_location: str, vm: dict, subnets: dict, default_vnet: str | None) -> None:
        state = self.state
        name = vm["name"]
        location = vm.get("location", group_location)
        vnet = (vm.get("vnet") or default_vnet or f"{rg}-vnet").lower()
        subnet_name = (vm.get("subnet") or "default").lower()
        subnet = subnets.get((vnet, subnet_name)) or next(
            (v for (vn, _s), v in subnets.items() if vn == vnet and _s != "azurefirewallsubnet"), None)
        if subnet is None:
            raise ValueError(f"VM {name}: no subnet {subnet_name} in virtual network {vnet}")
        subnet_id, prefix = subnet
        nsg = vm.get("nsg")
        nsg_id = self._nsg(sub, rg, f"{name}-nsg" if nsg is True else nsg, location) if nsg else None
        vm_id = f"{b.group_id(sub, rg)}/providers/Microsoft.Compute/virtualMachines/{name}"
        nic_name = f"{name}-nic"
        nic_id = f"{b.group_id(sub, rg)}/providers/Microsoft.Network/networkInterfaces/{nic_name}"
        pip_id = None
        if vm.get("public_ip"):
            pip = b.public_ip_resource(sub, rg, f"{name}-ip", location, vm["public_ip"],
                                       f"{nic_id}/ipConfigurations/ipconfig1")
            state.resources.put(pip)
            pip_id = pip["id"]
        private_ip = vm.get("private_ip") or self.ips.take(subnet_id, prefix)
        state.resources.put(b.nic_resource(sub, rg, nic_name, location, subnet_id=subnet_id, private_ip=private_ip,
                                           vm_id=vm_id, nsg_id=nsg_id, public_ip_id=pip_id))
        state.resources.put(b.vm_resource(sub, rg, name, location, os_type=vm.get("os", "Linux"), nic_ids=[nic_id],
                                          size=vm.get("size", "Standard_D2s_v5"), tags=vm.get("tags")))

    def _link_network(self) -> None:
        """Fill the back references Azure shows: NSG → NICs and subnets, subnet → IP configurations."""
        state = self.state
        for sub in list(state.subscriptions):
            for nic in state.resources.list(NIC, sub):
                nsg_id = nic["properties"].get("networkSecurityGroup", {}).get("id")
                nsg = state.resources.get(nsg_id) if nsg_id else None
                if nsg:
                    nsg["properties"]["networkInterfaces"].append({"id": nic["id"]})
            for vnet in state.resources.list(VNET, sub):
                for subnet in vnet["properties"]["subnets"]:
                    nsg_id = subnet["properties"].get("networkSecurityGroup", {}).get("id")
                    nsg = state.resources.get(nsg_id) if nsg_id else None
                    if nsg:
                        nsg["properties"]["subnets"].append({"id": subnet["id"]})


    # --- JIT ----------------------------------------------------------------------------------------------
    def _vm_id(self, sub: dict, group: dict, ref: dict) -> str:
        if ref.get("id"):
            return ref["id"]
        return f"{b.group_id(sub['id'], group['name'])}/providers/Microsoft.Compute/virtualMachines/{ref['vm']}"

    def _policy(self, sub: dict, group: dict, policy: dict) -> None:
        location = policy.get("location", group.get("location", DEFAULT_LOCATION))
        vms = [{"id": self._vm_id(sub, group, ref), "ports": ref["ports"]} for ref in policy["virtual_machines"]]
        op = Operation(caller=policy.get("created_by", "bob@contoso.example"), subscription=sub["id"],
                       tenant_id=sub.get("tenant_id", CONTOSO))
        engine.put_policy(self.state, op, sub["id"], group["name"], location, policy.get("name", "default"),
                          {"kind": "Basic", "properties": {"virtualMachines": vms}})

    def _history(self, sub: dict, group: dict, policy: dict) -> None:
        state = self.state
        location = policy.get("location", group.get("location", DEFAULT_LOCATION))
        pid = engine.policy_id(sub["id"], group["name"], location, policy.get("name", "default"))
        doc = state.resources.get(pid)
        tenant = sub.get("tenant_id", CONTOSO)
        now = state.now()
        if policy.get("created_hours_ago"):
            at = now - timedelta(hours=policy["created_hours_ago"])
            correlation = str(uuid.uuid4())
            for status in ("Started", "Succeeded"):
                state.activity.add(make_event(
                    subscription=sub["id"], tenant_id=tenant, resource_id=pid, resource_group=group["name"],
                    operation_name=engine.OP_WRITE, status=status, caller=policy.get("created_by",
                                                                                     "bob@contoso.example"),
                    correlation_id=correlation, timestamp=at + timedelta(seconds=2 if status == "Succeeded" else 0),
                    http_method="PUT", properties={"virtualMachines": ",".join(v["id"] for v in
                                                                               doc["properties"]["virtualMachines"])}))
        for item in sorted(policy.get("history", []), key=lambda h: -h["hours_ago"]):
            vm_id = self._vm_id(sub, group, item)
            vm = state.resources.get(vm_id)
            start = now - timedelta(hours=item["hours_ago"])
            end = start + timedelta(minutes=item.get("minutes", 180))
            record = {"number": item["port"], "allowedSourceAddressPrefix": item.get("source", "203.0.113.10"),
                      "endTimeUtc": iso(end), "status": "Revoked", "statusReason": item.get("reason", "Expired")}
            request = {"virtualMachines": [{"id": vm["id"], "ports": [record]}], "startTimeUtc": iso(start),
                       "requestor": item["requestor"]}
            if item.get("justification"):
                request["justification"] = item["justification"]
            doc["properties"]["requests"].append(request)
            correlation = str(uuid.uuid4())
            rule = rules.rule_name(pid, vm["name"], item["port"], "allow")
            common = {"subscription": sub["id"], "tenant_id": tenant, "resource_group": group["name"]}
            for status, offset in (("Started", 0), ("Succeeded", 3)):
                state.activity.add(make_event(
                    **common, resource_id=pid, operation_name=engine.OP_INITIATE, status=status,
                    caller=item["requestor"], correlation_id=correlation,
                    timestamp=start + timedelta(seconds=offset), http_method="POST",
                    properties={"virtualMachines": vm["id"], "ports": str(item["port"]),
                                "justification": item.get("justification", ""),
                                "sourceAddressPrefixes": record["allowedSourceAddressPrefix"],
                                "endTimeUtc": record["endTimeUtc"], "requestor": item["requestor"]}))
            nsg_ids = [n for n, _l in engine.guards_of(state, vm).nsgs]
            for nsg_id in nsg_ids:
                for status, offset in (("Started", 1), ("Succeeded", 2)):
                    state.activity.add(make_event(
                        **common, resource_id=f"{nsg_id}/securityRules/{rule}", operation_name=rules.RULE_WRITE,
                        status=status, caller=item["requestor"], correlation_id=correlation,
                        timestamp=start + timedelta(seconds=offset), properties={"access": "Allow"}))
                expiry = str(uuid.uuid4())
                for status, offset in (("Started", 0), ("Succeeded", 1)):
                    state.activity.add(make_event(
                        **common, resource_id=f"{nsg_id}/securityRules/{rule}", operation_name=rules.RULE_DELETE,
                        status=status, caller="Windows Azure Security Resource Provider", correlation_id=expiry,
                        timestamp=end + timedelta(seconds=offset), http_method="DELETE",
                        properties={"access": "Allow"}))

    def _open_requests(self, sub: dict, group: dict, policy: dict) -> None:
        location = policy.get("location", group.get("location", DEFAULT_LOCATION))
        for item in policy.get("open_requests", []):
            end = self.state.now() + timedelta(minutes=item.get("minutes_left", 90))
            body = {"virtualMachines": [{"id": self._vm_id(sub, group, item), "ports": [
                {"number": item["port"], "endTimeUtc": iso(end),
                 "allowedSourceAddressPrefix": item.get("source", "203.0.113.10")}]}]}
            if item.get("justification"):
                body["justification"] = item["justification"]
            op = Operation(caller=item["requestor"], subscription=sub["id"], tenant_id=sub.get("tenant_id", CONTOSO))
            engine.initiate(self.state, op, sub["id"], group["name"], location, policy.get("name", "default"), body)


def add_event(state, event: dict) -> dict:
    """Add an Activity Log event given in full (EventData) or in short form (see the scenario docs)."""
    if "eventDataId" in event and isinstance(event.get("operationName"), dict):
        state.activity.add(event)
        return event
    resource_id = event["resourceId"]
    parts = [p for p in resource_id.split("/") if p]
    lowered = [p.lower() for p in parts]
    sub = event.get("subscriptionId") or (parts[1] if len(parts) > 1 else "")
    group = event.get("resourceGroupName") or (parts[lowered.index("resourcegroups") + 1]
                                               if "resourcegroups" in lowered else "")
    if "eventTimestamp" in event:
        at = parse_iso(event["eventTimestamp"])
    else:
        at = state.now() - timedelta(hours=float(event.get("hours_ago", 0)))
    doc = make_event(subscription=sub, tenant_id=event.get("tenantId") or state.tenant_of(sub),
                     resource_id=resource_id, resource_group=group, operation_name=event["operationName"],
                     status=event.get("status", "Succeeded"), caller=event.get("caller", "unknown"),
                     correlation_id=event.get("correlationId") or str(uuid.uuid4()), timestamp=at,
                     properties=event.get("properties"), http_method=event.get("httpMethod", "PUT"),
                     level=event.get("level", "Informational"))
    state.activity.add(doc)
    return doc


def load_spec(source: str | dict, *, large_vms: int = 10_000, large_events: int = 1_000) -> tuple[dict, str]:
    """A scenario dict and its name from ``demo``, ``large``, a JSON file path or a dict."""
    if isinstance(source, dict):
        return source, source.get("name", "inline")
    if source == "demo":
        from emulator.scenarios.demo import demo_scenario

        return demo_scenario(), "demo"
    if source == "large":
        from emulator.scenarios.large import large_scenario

        return large_scenario(vms=large_vms, events=large_events), "large"
    with open(source) as handle:
        return json.load(handle), str(source)
