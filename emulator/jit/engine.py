"""JIT policies as Defender for Cloud runs them: write, delete, initiate and expire, with their side effects."""
from __future__ import annotations

import copy
from datetime import timedelta

from emulator.errors import ArmError, bad_request
from emulator.events import SECURITY_RP, Operation, operation_events
from emulator.jit import rules
from emulator.jit.validation import (
    MAX_POLICY_AND_VM_NAME,
    allowed_prefixes,
    port_duration,
    prefix_within,
    validate_initiate_body,
    validate_policy_body,
    validate_policy_request,
)
from emulator.store import ResourceId
from emulator.timeutil import iso, parse_iso
from emulator.topology import VM, VmGuards, guards_of

POLICY_TYPE = "microsoft.security/locations/jitnetworkaccesspolicies"
TYPE_NAME = "Microsoft.Security/locations/jitNetworkAccessPolicies"
OP_WRITE = "Microsoft.Security/locations/jitNetworkAccessPolicies/write"
OP_DELETE = "Microsoft.Security/locations/jitNetworkAccessPolicies/delete"
OP_INITIATE = "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action"
CLASSIC_VM = "microsoft.classiccompute/virtualmachines"
END_TIME_SLACK = timedelta(seconds=60)


def policy_id(subscription: str, resource_group: str, location: str, name: str) -> str:
    return (f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Security/"
            f"locations/{location}/jitNetworkAccessPolicies/{name}")


def normalize_location(location: str) -> str:
    return location.replace(" ", "").lower()


def grant_key(pid: str, vm_id: str, port: int) -> str:
    return f"{pid.lower()}|{vm_id.lower()}|{port}"


def _vm_name(vm_id: str) -> str:
    return vm_id.rstrip("/").split("/")[-1]


def _require_plan(state, subscription: str) -> None:
    if not state.has_servers_plan_2(subscription):
        raise bad_request(
            "DefenderForServersPlan2Required",
            f"Just-in-time VM access requires Microsoft Defender for Servers Plan 2 on subscription {subscription} "
            f"(pricing 'VirtualMachines', tier 'Standard', sub-plan 'P2').")


def _check_vm(state, subscription: str, resource_group: str, location: str, name: str, vm_id: str) -> dict:
    rid = ResourceId.parse(vm_id)
    if rid is not None and rid.type == CLASSIC_VM:
        raise bad_request("ClassicVirtualMachineNotSupported",
                          f"{vm_id} is a classic virtual machine; just-in-time access supports Azure Resource "
                          f"Manager virtual machines only.")
    if rid is None or rid.type != VM:
        raise bad_request("InvalidVirtualMachineId", f"'{vm_id}' is not a Microsoft.Compute/virtualMachines id.")
    vm = state.resources.get(vm_id)
    if vm is None:
        raise bad_request("VirtualMachineNotFound", f"The virtual machine {vm_id} does not exist.")
    if rid.subscription != subscription.lower() or rid.resource_group != resource_group.lower():
        raise bad_request("VirtualMachineNotInPolicyScope",
                          f"The virtual machine {vm_id} is not in resource group {resource_group} of subscription "
                          f"{subscription}.")
    if normalize_location(vm.get("location", "")) != normalize_location(location):
        raise bad_request("LocationMismatch",
                          f"The virtual machine {vm['name']} is in {vm.get('location')}, not in {location}.")
    if len(name) + len(vm["name"]) > MAX_POLICY_AND_VM_NAME:
        raise bad_request("PolicyAndVirtualMachineNameTooLong",
                          f"The policy name '{name}' and the virtual machine name '{vm['name']}' together must not "
                          f"exceed {MAX_POLICY_AND_VM_NAME} characters.")
    if not state.jit_enabled_by_security_policy(subscription, resource_group):
        raise bad_request("JitNetworkAccessDisabledBySecurityPolicy",
                          f"Just-in-time network access is turned off in the security policy of resource group "
                          f"{resource_group}.")
    return vm


def _guards_or_refuse(state, vm: dict) -> VmGuards:
    guards = guards_of(state, vm)
    if not guards.protected:
        raise bad_request("VirtualMachineNotProtected",
                          f"The virtual machine {vm['name']} has no network security group and no Azure Firewall; "
                          f"just-in-time access cannot protect it.")
    return guards


def _summary(vms: list[dict]) -> dict:
    ids = [vm["id"] for vm in vms if isinstance(vm, dict) and isinstance(vm.get("id"), str)]
    ports = sorted({p.get("number") for vm in vms if isinstance(vm, dict) for p in vm.get("ports", []) or []
                    if isinstance(p, dict) and isinstance(p.get("number"), int)})
    return {"virtualMachines": ",".join(ids), "ports": ",".join(str(p) for p in ports)}


def _request_key(request: dict) -> tuple:
    try:
        start = parse_iso(request.get("startTimeUtc", "")).isoformat()
    except (ValueError, TypeError):
        start = str(request.get("startTimeUtc"))
    return start, (request.get("requestor") or "").lower()


def _merge_requests(existing: list[dict], submitted: object) -> list[dict]:
    if submitted is None:
        return existing
    if not isinstance(submitted, list):
        raise bad_request("InvalidRequestBody", "'properties.requests' must be a list.")
    known = {_request_key(r) for r in existing}
    merged = list(existing)
    for i, request in enumerate(submitted):
        validate_policy_request(request, f"properties.requests[{i}]")
        if _request_key(request) not in known:
            merged.append(copy.deepcopy(request))
            known.add(_request_key(request))
    return merged


def _set_port_status(policy: dict, index: int, vm_id: str, number: int, status: str, reason: str) -> None:
    requests = policy["properties"].get("requests", [])
    if not 0 <= index < len(requests):
        return
    for vm in requests[index].get("virtualMachines", []):
        if vm["id"].lower() == vm_id.lower():
            for port in vm.get("ports", []):
                if port.get("number") == number and port.get("status") == "Initiated":
                    port["status"] = status
                    port["statusReason"] = reason


def _close_grant(state, op: Operation, key: str, *, reason: str, remove_rules: bool = True) -> dict | None:
    grant = state.grants.pop(key, None)
    if grant is None:
        return None
    policy = state.resources.get(grant["policy"])
    if policy is not None:
        _set_port_status(policy, grant["request"], grant["vm"], grant["port"], "Revoked", reason)
    if remove_rules:
        for nsg_id, name in grant.get("allow_rules", []):
            rules.delete_nsg_rule(state, op, nsg_id, name)
        if grant.get("dnat"):
            rules.delete_dnat_rule(state, op, *grant["dnat"])
    return grant


def _write_deny_rules(state, op: Operation, pid: str, vm: dict, guards: VmGuards, port: dict) -> None:
    name = rules.rule_name(pid, vm["name"], port["number"], "deny")
    for nsg_id, _level in guards.nsgs:
        rules.put_nsg_rule(state, op, nsg_id, name, access="Deny", port=port["number"], protocol=port["protocol"],
                           source="*", destination=guards.private_ip)


def _remove_port(state, op: Operation, pid: str, vm_id: str, number: int) -> None:
    _close_grant(state, op, grant_key(pid, vm_id, number), reason="UserRequested")
    vm = state.resources.get(vm_id)
    if vm is None:
        return
    guards = guards_of(state, vm)
    for nsg_id, _level in guards.nsgs:
        rules.delete_nsg_rule(state, op, nsg_id, rules.rule_name(pid, vm["name"], number, "deny"))
        rules.delete_nsg_rule(state, op, nsg_id, rules.rule_name(pid, vm["name"], number, "allow"))
    if guards.firewall_id:
        rules.delete_dnat_rule(state, op, guards.firewall_id, rules.rule_name(pid, vm["name"], number, "allow"))


def _ports_of(policy: dict | None) -> dict[tuple[str, int], tuple[str, dict]]:
    if policy is None:
        return {}
    return {(vm["id"].lower(), port["number"]): (vm["id"], port)
            for vm in policy["properties"].get("virtualMachines", []) for port in vm.get("ports", [])}


def put_policy(state, op: Operation, subscription: str, resource_group: str, location: str, name: str,
               body: object) -> tuple[dict, bool]:
    """Create or replace a policy; NSG deny rules follow the ports it lists. Returns (policy, created)."""
    pid = policy_id(subscription, resource_group, location, name)
    props = body.get("properties") if isinstance(body, dict) else None
    raw_vms = props.get("virtualMachines") if isinstance(props, dict) else None
    summary = _summary(raw_vms if isinstance(raw_vms, list) else [])
    with operation_events(state, op, resource_id=pid, operation_name=OP_WRITE, http_method="PUT",
                          properties=summary):
        _require_plan(state, subscription)
        vms = validate_policy_body(body)
        if len(name) > MAX_POLICY_AND_VM_NAME:
            raise bad_request("InvalidPolicyName", f"The policy name '{name}' is too long.")
        existing = state.resources.get(pid)
        planned: list[tuple[dict, VmGuards, dict]] = []
        for vm_ref in vms:
            vm = _check_vm(state, subscription, resource_group, location, name, vm_ref["id"])
            guards = _guards_or_refuse(state, vm)
            entry = {"id": vm["id"], "ports": [copy.deepcopy(p) for p in vm_ref["ports"]]}
            if guards.firewall_id and guards.firewall_public_ip:
                entry["publicIpAddress"] = guards.firewall_public_ip
            planned.append((vm, guards, entry))
        _merge_requests([], body["properties"].get("requests"))  # validate before changing anything
        old_ports = _ports_of(existing)
        new_keys = {(vm["id"].lower(), p["number"]) for vm, _g, entry in planned for p in entry["ports"]}
        for key, (vm_id, _port) in old_ports.items():
            if key not in new_keys:
                _remove_port(state, op, pid, vm_id, key[1])
        for vm, guards, entry in planned:
            for port in entry["ports"]:
                old = old_ports.get((vm["id"].lower(), port["number"]))
                if old is None or old[1].get("protocol") != port["protocol"]:
                    _write_deny_rules(state, op, pid, vm, guards, port)
        requests = _merge_requests(copy.deepcopy(existing["properties"].get("requests", [])) if existing else [],
                                   body["properties"].get("requests"))
        policy = {
            "id": pid,
            "name": name,
            "type": TYPE_NAME,
            "kind": body.get("kind") or "Basic",
            "location": location,
            "properties": {
                "virtualMachines": [entry for _vm, _g, entry in planned],
                "requests": requests,
                "provisioningState": "Succeeded",
            },
        }
        state.resources.put(policy)
    return policy, existing is None


def delete_policy(state, op: Operation, subscription: str, resource_group: str, location: str, name: str) -> bool:
    """Remove a policy with all its rules; False when it did not exist."""
    pid = policy_id(subscription, resource_group, location, name)
    policy = state.resources.get(pid)
    if policy is None:
        return False
    with operation_events(state, op, resource_id=pid, operation_name=OP_DELETE, http_method="DELETE",
                          properties=_summary(policy["properties"]["virtualMachines"])):
        for (_key, number), (vm_id, _port) in _ports_of(policy).items():
            _remove_port(state, op, pid, vm_id, number)
        state.resources.delete(pid)
    return True


def initiate(state, op: Operation, subscription: str, resource_group: str, location: str, name: str,
             body: object) -> dict:
    """Open the requested ports: allow rules (and DNAT on firewalls), recorded as a request on the policy."""
    pid = policy_id(subscription, resource_group, location, name)
    policy = state.resources.get(pid)
    if policy is None:
        raise ArmError(404, "ResourceNotFound", f"The just-in-time policy {pid} was not found.")
    raw_vms = body.get("virtualMachines") if isinstance(body, dict) else None
    summary = _summary(raw_vms if isinstance(raw_vms, list) else [])
    summary["justification"] = str(body.get("justification") or "") if isinstance(body, dict) else ""
    with operation_events(state, op, resource_id=pid, operation_name=OP_INITIATE, http_method="POST",
                          properties=summary):
        _require_plan(state, subscription)
        vms = validate_initiate_body(body)
        if not state.jit_enabled_by_security_policy(subscription, resource_group):
            raise bad_request("JitNetworkAccessDisabledBySecurityPolicy",
                              f"Just-in-time network access is turned off in the security policy of resource group "
                              f"{resource_group}.")
        now = state.now()
        policy_vms = {vm["id"].lower(): vm for vm in policy["properties"]["virtualMachines"]}
        plan: list[tuple[dict, VmGuards, dict, str, object]] = []
        for vm_req in vms:
            entry = policy_vms.get(vm_req["id"].lower())
            if entry is None:
                raise bad_request("VirtualMachineNotInPolicy",
                                  f"The virtual machine {vm_req['id']} is not configured in policy {name}.")
            vm = state.resources.get(entry["id"])
            if vm is None:
                raise bad_request("VirtualMachineNotFound", f"The virtual machine {entry['id']} does not exist.")
            guards = guards_of(state, vm)
            ports = {p["number"]: p for p in entry["ports"]}
            for port_req in vm_req["ports"]:
                rule = ports.get(port_req["number"])
                if rule is None:
                    raise bad_request("PortNotInPolicy",
                                      f"Port {port_req['number']} is not configured for {vm['name']} in policy "
                                      f"{name}.")
                end = parse_iso(port_req["endTimeUtc"])
                if end <= now:
                    raise bad_request("InvalidEndTime",
                                      f"endTimeUtc {port_req['endTimeUtc']} for port {port_req['number']} is not in "
                                      f"the future.")
                maximum = port_duration(rule)
                if end - now > maximum + END_TIME_SLACK:
                    raise bad_request("RequestDurationExceedsMaximum",
                                      f"Port {port_req['number']} of {vm['name']} may be opened for at most "
                                      f"{rule['maxRequestAccessDuration']}.")
                prefix = port_req.get("allowedSourceAddressPrefix") or op.client_ip
                if not prefix_within(prefix, allowed_prefixes(rule)):
                    raise bad_request("SourceAddressPrefixNotAllowed",
                                      f"Source {prefix} is not allowed for port {port_req['number']} of "
                                      f"{vm['name']} (allowed: {', '.join(allowed_prefixes(rule))}).")
                plan.append((vm, guards, rule, prefix, end))
        request_vms: dict[str, dict] = {}
        requests = policy["properties"].setdefault("requests", [])
        index = len(requests)
        for vm, guards, rule, prefix, end in plan:
            number = rule["number"]
            key = grant_key(pid, vm["id"], number)
            previous = _close_grant(state, op, key, reason="NewerRequestInitiated", remove_rules=False)
            allow_name = rules.rule_name(pid, vm["name"], number, "allow")
            allow_rules = []
            for nsg_id, _level in guards.nsgs:
                rules.put_nsg_rule(state, op, nsg_id, allow_name, access="Allow", port=number,
                                   protocol=rule["protocol"], source=prefix, destination=guards.private_ip)
                allow_rules.append([nsg_id, allow_name])
            record = {"number": number, "allowedSourceAddressPrefix": prefix, "endTimeUtc": iso(end),
                      "status": "Initiated", "statusReason": "UserRequested"}
            dnat = None
            if guards.firewall_id and guards.firewall_public_ip and guards.private_ip:
                mapped = rules.put_dnat_rule(state, op, guards.firewall_id, allow_name, source=prefix,
                                             public_ip=guards.firewall_public_ip, private_ip=guards.private_ip,
                                             port=number, protocol=rule["protocol"],
                                             mapped_port=(previous or {}).get("mappedPort"))
                record["mappedPort"] = mapped
                dnat = [guards.firewall_id, allow_name]
            request_vms.setdefault(vm["id"], {"id": vm["id"], "ports": []})["ports"].append(record)
            state.grants[key] = {"policy": pid, "vm": vm["id"], "port": number, "end": iso(end), "request": index,
                                 "allow_rules": allow_rules, "dnat": dnat, "mappedPort": record.get("mappedPort")}
        request = {"virtualMachines": list(request_vms.values()), "startTimeUtc": iso(now), "requestor": op.caller}
        if isinstance(body.get("justification"), str):
            request["justification"] = body["justification"]
        requests.append(request)
        summary.update(requestor=op.caller, sourceAddressPrefixes=",".join(sorted({p for *_x, p, _e in plan})),
                       endTimeUtc=max(iso(e) for *_x, e in plan))
    return copy.deepcopy(request)


def forget_requests(state, pid: str, containing: str) -> int:
    """Drop from policy ``pid`` Azure's records of the requests whose justification contains ``containing`` (as when
    Azure no longer lists a request): the access they opened stays, its rules and expiry unchanged. Returns how many
    records were dropped."""
    policy = state.resources.get(pid)
    if policy is None or not containing:
        return 0
    requests = policy["properties"].get("requests", [])
    kept = [i for i, request in enumerate(requests) if containing not in (request.get("justification") or "")]
    if len(kept) == len(requests):
        return 0
    moved = {old: new for new, old in enumerate(kept)}
    for grant in state.grants.values():  # a grant names its record by position: follow it, or forget it
        if grant["policy"].lower() == pid.lower():
            grant["request"] = moved.get(grant["request"], -1)
    policy["properties"]["requests"] = [requests[i] for i in kept]
    return len(requests) - len(kept)


def expire_due(state) -> int:
    """Close every open grant whose endTimeUtc has passed (virtual clock); return how many closed."""
    now = state.now()
    due = [key for key, grant in state.grants.items() if parse_iso(grant["end"]) <= now]
    by_policy: dict[str, Operation] = {}
    for key in due:
        grant = state.grants[key]
        rid = ResourceId.parse(grant["policy"])
        op = by_policy.setdefault(grant["policy"], Operation(
            caller=SECURITY_RP, subscription=rid.subscription if rid else "",
            tenant_id=state.tenant_of(rid.subscription) if rid else ""))
        _close_grant(state, op, key, reason="Expired")
    return len(due)
