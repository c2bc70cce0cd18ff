"""JIT semantics through the real SDK: NSG deny/allow rules, requests, expiry, replacement, firewalls, refusals."""
from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.security.v2020_01_01.models import (
    JitNetworkAccessPolicyInitiatePort,
    JitNetworkAccessPolicyInitiateRequest,
    JitNetworkAccessPolicyInitiateVirtualMachine,
    JitNetworkAccessPolicyVirtualMachine,
    JitNetworkAccessPortRule,
)

from emulator.scenarios.identities import DEV_SUBSCRIPTION, PORTAL_CLIENT_ID, PROD_SUBSCRIPTION
from tests.emulator.conftest import in_hours, policy_path, vm_id

WEB = ("rg-web-prod", "westeurope")
DATA = ("rg-data-prod", "northeurope")


def jit_rules(emu, vm: str, access: str) -> list[tuple[str, dict]]:
    """(nsg level, rule properties) of the JIT rules with ``access`` on the NSGs guarding ``vm``."""
    view = emu.nsg_rules(vm)
    return [(nsg["level"], rule["properties"]) for nsg in view["nsgs"] for rule in nsg["securityRules"]
            if rule["name"].startswith("SecurityCenter-JITRule") and rule["properties"]["access"] == access
            and rule["properties"]["destinationAddressPrefix"] == view["privateIpAddress"]]


def initiate(arm, group: str, location: str, vm: str, port: int, end: str, prefix: str | None = None,
             justification: str | None = "alice: testing (portal request #9)"):
    request = JitNetworkAccessPolicyInitiateRequest(
        virtual_machines=[JitNetworkAccessPolicyInitiateVirtualMachine(
            id=vm, ports=[JitNetworkAccessPolicyInitiatePort(number=port, end_time_utc=end,
                                                               allowed_source_address_prefix=prefix)])],
        justification=justification)
    return arm.security().jit_network_access_policies.initiate(group, location, "default", body=request)


def add_vm(arm, group: str, location: str, vm: str, port: int = 22) -> None:
    client = arm.security().jit_network_access_policies
    policy = client.get(group, location, "default")
    policy.virtual_machines.append(JitNetworkAccessPolicyVirtualMachine(id=vm, ports=[JitNetworkAccessPortRule(
        number=port, protocol="*", allowed_source_address_prefix="*", max_request_access_duration="PT3H")]))
    client.create_or_update(group, location, "default", body=policy)


def test_it_writes_deny_rules_into_the_nic_and_subnet_nsgs_of_a_vm_added_to_a_policy(arm, fresh_emulator):
    vm = vm_id("rg-web-prod", "web-05")
    assert jit_rules(fresh_emulator, vm, "Deny") == []
    add_vm(arm, *WEB, vm, 22)
    deny = jit_rules(fresh_emulator, vm, "Deny")
    assert sorted(level for level, _ in deny) == ["nic", "subnet"]
    for _level, rule in deny:
        assert rule["destinationPortRange"] == "22"
        assert rule["sourceAddressPrefix"] == "*"
        assert rule["direction"] == "Inbound"


def test_it_removes_the_rules_of_a_vm_dropped_from_the_policy(arm, fresh_emulator):
    vm = vm_id("rg-web-prod", "web-04")
    assert jit_rules(fresh_emulator, vm, "Deny")
    client = arm.security().jit_network_access_policies
    policy = client.get(*WEB, "default")
    policy.virtual_machines = [v for v in policy.virtual_machines if not v.id.endswith("/web-04")]
    client.create_or_update(*WEB, "default", body=policy)
    assert jit_rules(fresh_emulator, vm, "Deny") == []


def test_deleting_a_policy_removes_its_deny_rules(arm, fresh_emulator):
    vm = vm_id("rg-ops-prod", "jump-02")
    assert jit_rules(fresh_emulator, vm, "Deny")
    arm.security().jit_network_access_policies.delete("rg-ops-prod", "westeurope", "default")
    assert jit_rules(fresh_emulator, vm, "Deny") == []


def test_initiate_opens_exactly_the_requested_prefix_above_the_deny_rule(arm, fresh_emulator):
    vm = vm_id("rg-web-prod", "web-02")
    result = initiate(arm, *WEB, vm, 22, in_hours(1), "198.51.100.9")
    port = result.virtual_machines[0].ports[0]
    assert (port.number, port.status, port.status_reason) == (22, "Initiated", "UserRequested")
    assert result.requestor == PORTAL_CLIENT_ID
    allow = jit_rules(fresh_emulator, vm, "Allow")
    assert [rule["sourceAddressPrefix"] for _l, rule in allow] == ["198.51.100.9"]
    deny = jit_rules(fresh_emulator, vm, "Deny")
    assert allow[0][1]["priority"] < deny[0][1]["priority"]
    stored = arm.security().jit_network_access_policies.get(*WEB, "default").requests[-1]
    assert stored.justification == "alice: testing (portal request #9)"
    assert stored.virtual_machines[0].ports[0].allowed_source_address_prefix == "198.51.100.9"


def test_expiry_by_the_virtual_clock_revokes_the_request_and_removes_the_allow_rule(arm, fresh_emulator):
    vm = vm_id("rg-web-prod", "web-02")
    initiate(arm, *WEB, vm, 22, in_hours(0.5), "198.51.100.9")
    assert jit_rules(fresh_emulator, vm, "Allow")
    fresh_emulator.advance_clock(31 * 60)
    port = arm.security().jit_network_access_policies.get(*WEB, "default").requests[-1].virtual_machines[0].ports[0]
    assert (port.status, port.status_reason) == ("Revoked", "Expired")
    assert jit_rules(fresh_emulator, vm, "Allow") == []
    assert jit_rules(fresh_emulator, vm, "Deny")


def test_a_newer_request_on_the_same_port_replaces_the_older_one(arm, fresh_emulator):
    vm = vm_id("rg-web-prod", "web-02")
    initiate(arm, *WEB, vm, 22, in_hours(1), "198.51.100.9")
    initiate(arm, *WEB, vm, 22, in_hours(2), "198.51.100.10")
    requests_ = arm.security().jit_network_access_policies.get(*WEB, "default").requests
    older, newer = requests_[-2].virtual_machines[0].ports[0], requests_[-1].virtual_machines[0].ports[0]
    assert (older.status, older.status_reason) == ("Revoked", "NewerRequestInitiated")
    assert (newer.status, newer.status_reason) == ("Initiated", "UserRequested")
    assert [rule["sourceAddressPrefix"] for _l, rule in jit_rules(fresh_emulator, vm, "Allow")] == ["198.51.100.10"]


def test_a_forgotten_request_record_leaves_its_access_and_the_others_records_as_they_were(arm, fresh_emulator):
    """The control call that drops Azure's record of a request (as when Azure no longer lists it): its allow rule
    and its expiry stay, and a newer request on the port still revokes the record it names, not another."""
    web02, web04, win = (vm_id("rg-web-prod", name) for name in ("web-02", "web-04", "web-win-01"))
    initiate(arm, *WEB, web04, 22, in_hours(1), "198.51.100.8", justification="keep me")
    initiate(arm, *WEB, web02, 22, in_hours(1), "198.51.100.9", justification="forget me")
    initiate(arm, *WEB, win, 3389, in_hours(1), "198.51.100.8", justification="keep me too")
    assert fresh_emulator.forget_jit_requests(policy_path(*WEB), "forget me") == 1
    requests_ = arm.security().jit_network_access_policies.get(*WEB, "default").requests
    assert not any("forget me" in (r.justification or "") for r in requests_)
    assert [rule["sourceAddressPrefix"] for _l, rule in jit_rules(fresh_emulator, web02, "Allow")] == ["198.51.100.9"]
    initiate(arm, *WEB, win, 3389, in_hours(2), "198.51.100.10", justification="newer")
    replaced = next(r for r in arm.security().jit_network_access_policies.get(*WEB, "default").requests
                    if r.justification == "keep me too")
    assert replaced.virtual_machines[0].ports[0].status_reason == "NewerRequestInitiated"
    kept = next(r for r in arm.security().jit_network_access_policies.get(*WEB, "default").requests
                if r.justification == "keep me")
    assert kept.virtual_machines[0].ports[0].status == "Initiated"
    fresh_emulator.advance_clock(61 * 60)
    assert jit_rules(fresh_emulator, web02, "Allow") == []  # it still expires at its end


def test_a_firewall_protected_vm_gets_a_dnat_mapping_on_the_firewall_public_ip(arm, fresh_emulator):
    vm = vm_id("rg-data-prod", "db-01")
    policy = arm.security().jit_network_access_policies.get(*DATA, "default")
    assert {v.public_ip_address for v in policy.virtual_machines} == {"20.50.10.4"}
    result = initiate(arm, *DATA, vm, 22, in_hours(1), "198.51.100.9")
    mapped = result.virtual_machines[0].ports[0].mapped_port
    assert mapped and mapped != 22
    view = fresh_emulator.nsg_rules(vm)
    nat = [r for c in view["firewall"]["natRuleCollections"] for r in c["properties"]["rules"]]
    assert [(r["destinationAddresses"], r["destinationPorts"], r["translatedAddress"], r["translatedPort"],
             r["sourceAddresses"]) for r in nat] == [
        (["20.50.10.4"], [str(mapped)], view["privateIpAddress"], "22", ["198.51.100.9"])]
    assert view["firewall"]["firewallPolicy"] is None and view["firewall"]["natRules"] == nat  # a classic firewall


HUB = ("rg-hub-prod", "westeurope")


def enable_in_hub(arm, vm: str, port: int) -> None:
    arm.security().jit_network_access_policies.create_or_update(*HUB, "default", body={
        "kind": "Basic", "virtual_machines": [JitNetworkAccessPolicyVirtualMachine(id=vm, ports=[
            JitNetworkAccessPortRule(number=port, protocol="*", allowed_source_address_prefix="*",
                                     max_request_access_duration="PT3H")])]})


def hub_nat_rules(emu, vm: str) -> list[dict]:
    """The DNAT rules of the hub firewall guarding ``vm``: in its Firewall Policy, none classic."""
    view = emu.nsg_rules(vm)
    assert view["firewall"]["id"].endswith("/azureFirewalls/fw-hub-weu")
    assert view["firewall"]["firewallPolicy"].endswith("/firewallPolicies/fw-hub-weu-policy")
    assert view["firewall"]["natRuleCollections"] == []
    return view["firewall"]["natRules"]


def hub_policy_nat_rules(arm) -> list:
    """The NAT rules of the hub firewall's policy as the SDK reads Azure's rule collection groups."""
    groups = arm.network().firewall_policy_rule_collection_groups.list(HUB[0], "fw-hub-weu-policy")
    return [rule for group in groups for collection in group.properties.rule_collections
            if collection.rule_collection_type == "FirewallPolicyNatRuleCollection" for rule in collection.rules]


def test_a_vm_in_a_spoke_of_a_secured_hub_gets_a_dnat_mapping_in_the_hub_firewalls_policy(arm, fresh_emulator):
    vm = vm_id("rg-hub-prod", "spoke-01")  # no NSG: only the hub's firewall guards it
    enable_in_hub(arm, vm, 22)
    policy = arm.security().jit_network_access_policies.get(*HUB, "default")
    assert [v.public_ip_address for v in policy.virtual_machines] == ["20.61.30.4"]
    result = initiate(arm, *HUB, vm, 22, in_hours(1), "198.51.100.9")
    mapped = result.virtual_machines[0].ports[0].mapped_port
    assert mapped and mapped != 22
    private_ip = fresh_emulator.nsg_rules(vm)["privateIpAddress"]
    assert [(r["destinationAddresses"], r["destinationPorts"], r["translatedAddress"], r["translatedPort"],
             r["sourceAddresses"]) for r in hub_nat_rules(fresh_emulator, vm)] == [
        (["20.61.30.4"], [str(mapped)], private_ip, "22", ["198.51.100.9"])]
    groups = {g.name: g for g in arm.network().firewall_policy_rule_collection_groups.list(
        HUB[0], "fw-hub-weu-policy")}
    assert sorted(groups) == ["DefaultNetworkRuleCollectionGroup", "SecurityCenter-JIT"]  # JIT's group of its own
    [collection] = groups["SecurityCenter-JIT"].properties.rule_collections
    assert (collection.rule_collection_type, collection.action.type) == ("FirewallPolicyNatRuleCollection", "DNAT")
    assert [(r.rule_type, r.ip_protocols, r.source_addresses, r.destination_addresses, r.destination_ports,
             r.translated_address, r.translated_port) for r in hub_policy_nat_rules(arm)] == [
        ("NatRule", ["TCP", "UDP"], ["198.51.100.9"], ["20.61.30.4"], [str(mapped)], private_ip, "22")]
    fresh_emulator.advance_clock(61 * 60)
    assert hub_nat_rules(fresh_emulator, vm) == [] and hub_policy_nat_rules(arm) == []
    port = arm.security().jit_network_access_policies.get(*HUB, "default").requests[-1].virtual_machines[0].ports[0]
    assert (port.status, port.status_reason) == ("Revoked", "Expired")


def test_the_hub_firewall_wins_over_the_nsg_of_a_spoke_vm_that_has_both(arm, fresh_emulator):
    vm = vm_id("rg-hub-prod", "spoke-win-01")
    enable_in_hub(arm, vm, 3389)
    initiate(arm, *HUB, vm, 3389, in_hours(1), "198.51.100.9")
    assert [r["sourceAddresses"] for r in hub_nat_rules(fresh_emulator, vm)] == [["198.51.100.9"]]
    assert [rule["sourceAddressPrefix"] for _l, rule in jit_rules(fresh_emulator, vm, "Allow")] == ["198.51.100.9"]


def test_a_dnat_rule_in_a_firewall_policy_goes_when_the_port_leaves_the_jit_policy(arm, fresh_emulator):
    vm = vm_id("rg-hub-prod", "spoke-01")
    enable_in_hub(arm, vm, 22)
    initiate(arm, *HUB, vm, 22, in_hours(1), "198.51.100.9")
    assert len(hub_policy_nat_rules(arm)) == 1
    arm.security().jit_network_access_policies.delete(*HUB, "default")
    assert hub_nat_rules(fresh_emulator, vm) == [] and hub_policy_nat_rules(arm) == []


def test_a_vnet_firewall_configured_by_a_firewall_policy_gets_the_dnat_rule_in_that_policy(arm, fresh_emulator):
    fresh_emulator.load_scenario({"name": "managed-firewall", "subscriptions": [{
        "id": PROD_SUBSCRIPTION, "plan": "P2", "resource_groups": [{
            "name": "rg-managed", "vnets": [{"name": "vnet-managed", "address_space": "10.90.0.0/16",
                                            "subnets": [{"name": "workload"}],
                                            "firewall": {"name": "fw-managed", "public_ip": "20.90.0.4",
                                                         "policy": "fwpol-managed"}}],
            "vms": [{"name": "managed-01", "os": "Linux"}]}]}]})
    vm = vm_id("rg-managed", "managed-01")
    add_policy = arm.security().jit_network_access_policies.create_or_update
    add_policy("rg-managed", "westeurope", "default", body={"kind": "Basic", "virtual_machines": [
        JitNetworkAccessPolicyVirtualMachine(id=vm, ports=[JitNetworkAccessPortRule(
            number=22, protocol="TCP", allowed_source_address_prefix="*", max_request_access_duration="PT3H")])]})
    mapped = initiate(arm, "rg-managed", "westeurope", vm, 22, in_hours(1), "198.51.100.9").virtual_machines[0] \
        .ports[0].mapped_port
    firewall = fresh_emulator.nsg_rules(vm)["firewall"]
    assert firewall["natRuleCollections"] == [] and firewall["firewallPolicy"].endswith("/fwpol-managed")
    group = arm.network().firewall_policy_rule_collection_groups.get("rg-managed", "fwpol-managed",
                                                                     "SecurityCenter-JIT")
    [rule] = group.properties.rule_collections[0].rules
    assert (rule.ip_protocols, rule.destination_addresses, rule.destination_ports, rule.translated_port) == (
        ["TCP"], ["20.90.0.4"], [str(mapped)], "22")
    fresh_emulator.advance_clock(61 * 60)
    assert fresh_emulator.nsg_rules(vm)["firewall"]["natRules"] == []


def test_initiate_defaults_the_source_to_the_callers_address(arm, fresh_emulator):
    vm = vm_id("rg-web-prod", "web-02")
    result = initiate(arm, *WEB, vm, 22, in_hours(1), None)
    assert result.virtual_machines[0].ports[0].allowed_source_address_prefix == "127.0.0.1"


GOOD_PORT = {"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}


def body_with(port: dict | None = None, vm: str | None = None, **vm_extra) -> dict:
    entry = {"id": vm or vm_id("rg-web-prod", "web-05"), "ports": [port or GOOD_PORT], **vm_extra}
    return {"kind": "Basic", "properties": {"virtualMachines": [entry]}}


@pytest.mark.parametrize(("body", "code"), [
    ({"kind": "Basic"}, "MissingRequiredProperty"),
    ({"properties": "virtualMachines"}, "MissingRequiredProperty"),
    ({"properties": {"virtualMachines": [{"id": 5, "ports": [GOOD_PORT]}]}}, "MissingRequiredProperty"),
    ({"properties": {"virtualMachines": [{"id": vm_id("rg-web-prod", "web-05")}]}}, "MissingRequiredProperty"),
    (body_with({**GOOD_PORT, "number": 0}), "InvalidPortNumber"),
    (body_with({**GOOD_PORT, "number": 65536}), "InvalidPortNumber"),
    (body_with({**GOOD_PORT, "protocol": "ICMP"}), "InvalidProtocol"),
    (body_with({**GOOD_PORT, "maxRequestAccessDuration": "PT4M"}), "InvalidMaxRequestAccessDuration"),
    (body_with({**GOOD_PORT, "maxRequestAccessDuration": "PT25H"}), "InvalidMaxRequestAccessDuration"),
    (body_with({**GOOD_PORT, "maxRequestAccessDuration": "3 hours"}), "InvalidMaxRequestAccessDuration"),
    (body_with({**GOOD_PORT, "allowedSourceAddressPrefix": "300.1.1.1"}), "InvalidSourceAddressPrefix"),
    (body_with({**GOOD_PORT, "allowedSourceAddressPrefix": "fe80::1%eth0"}), "InvalidSourceAddressPrefix"),
    (body_with({**GOOD_PORT, "allowedSourceAddressPrefixes": ["10.0.0.0/8"]}), "ConflictingSourceAddressPrefixes"),
    (body_with(vm=vm_id("rg-web-prod", "no-such-vm")), "VirtualMachineNotFound"),
    (body_with(vm=vm_id("rg-ops-prod", "jump-01")), "VirtualMachineNotInPolicyScope"),
])
def test_it_refuses_a_bad_policy_body_with_an_arm_error(arm, body, code):
    response = arm.call("PUT", policy_path(*WEB), json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


REQUEST = {"virtualMachines": [{"id": vm_id("rg-web-prod", "web-05"), "ports": [
    {"number": 22, "endTimeUtc": "2026-01-01T10:00:00Z", "status": "Revoked", "statusReason": "Expired"}]}],
    "startTimeUtc": "2026-01-01T09:00:00Z", "requestor": "barbara@contoso.com"}


@pytest.mark.parametrize("request_", [
    {**REQUEST, "virtualMachines": 5},
    {**REQUEST, "startTimeUtc": 3},
    {**REQUEST, "requestor": None},
    {**REQUEST, "virtualMachines": [{"id": vm_id("rg-web-prod", "web-05"), "ports": [{"number": 22}]}]},
    {**REQUEST, "virtualMachines": [{"id": vm_id("rg-web-prod", "web-05"), "ports": [
        {**REQUEST["virtualMachines"][0]["ports"][0], "endTimeUtc": "tomorrow"}]}]},
])
def test_it_refuses_a_policy_whose_requests_do_not_follow_the_spec(arm, request_):
    body = body_with()
    body["properties"]["requests"] = [request_]
    response = arm.call("PUT", policy_path(*WEB, name="ops"), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] in ("MissingRequiredProperty", "InvalidRequestBody")


def test_it_keeps_a_policy_request_that_follows_the_spec(arm):
    body = body_with()
    body["properties"]["requests"] = [REQUEST]
    response = arm.call("PUT", policy_path(*WEB, name="ops"), json=body)
    assert response.status_code == 200, response.text
    assert response.json()["properties"]["requests"] == [REQUEST]


def test_it_refuses_a_port_configured_twice_for_one_vm(arm):
    vm = {"id": vm_id("rg-web-prod", "web-05"), "ports": [GOOD_PORT, GOOD_PORT]}
    body = {"properties": {"virtualMachines": [vm]}}
    response = arm.call("PUT", policy_path(*WEB), json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "DuplicatePort")


def test_it_accepts_ipv6_and_cidr_prefix_lists(arm):
    port = {**GOOD_PORT, "allowedSourceAddressPrefix": None, "allowedSourceAddressPrefixes": ["2001:db8::/32",
                                                                                             "192.0.2.0/24"]}
    del port["allowedSourceAddressPrefix"]
    response = arm.call("PUT", policy_path(*WEB, name="ops"), json=body_with(port))
    assert response.status_code in (200, 201), response.text


def test_policy_name_and_vm_name_may_not_exceed_56_characters(arm, fresh_emulator):
    fresh_emulator.load_scenario({"subscriptions": [{"id": PROD_SUBSCRIPTION, "resource_groups": [{
        "name": "rg", "vms": [{"name": "v" * 49, "nsg": True}, {"name": "w" * 50, "nsg": True}]}]}]})
    ok = arm.call("PUT", policy_path("rg", "westeurope"), json=body_with(vm=vm_id("rg", "v" * 49)))
    assert ok.status_code == 200, ok.text
    too_long = arm.call("PUT", policy_path("rg", "westeurope"), json=body_with(vm=vm_id("rg", "w" * 50)))
    assert (too_long.status_code, too_long.json()["error"]["code"]) == (400, "PolicyAndVirtualMachineNameTooLong")


@pytest.mark.parametrize(("group", "location", "vm", "code"), [
    ("rg-legacy-prod", "westeurope", "legacy-01", "JitNetworkAccessDisabledBySecurityPolicy"),
    ("rg-ops-prod", "westeurope", "build-01", "VirtualMachineNotProtected"),
    ("rg-analytics-prod", "westeurope", "ana-01", "LocationMismatch"),
])
def test_it_refuses_vms_jit_cannot_protect(arm, group, location, vm, code):
    response = arm.call("PUT", policy_path(group, location), json=body_with(vm=vm_id(group, vm)))
    assert (response.status_code, response.json()["error"]["code"]) == (400, code)


def test_it_refuses_a_classic_vm(arm):
    classic = f"/subscriptions/{PROD_SUBSCRIPTION}/resourceGroups/rg-legacy-prod/providers/Microsoft.ClassicCompute/" \
              f"virtualMachines/classic-web-01"
    response = arm.call("PUT", policy_path("rg-web-prod", "westeurope"), json=body_with(vm=classic))
    assert (response.status_code, response.json()["error"]["code"]) == (400, "ClassicVirtualMachineNotSupported")


def test_it_refuses_jit_on_a_subscription_without_defender_for_servers_plan_2(arm):
    vm = vm_id("rg-dev", "dev-01", DEV_SUBSCRIPTION)
    response = arm.call("PUT", policy_path("rg-dev", "westeurope", subscription=DEV_SUBSCRIPTION),
                        json=body_with(vm=vm))
    assert (response.status_code, response.json()["error"]["code"]) == (400, "DefenderForServersPlan2Required")


@pytest.mark.parametrize(("port", "end_hours", "prefix", "code"), [
    (3389, 1, "203.0.113.5", "PortNotInPolicy"),
    (22, -1, "203.0.113.5", "InvalidEndTime"),
    (22, 2, "203.0.113.5", "RequestDurationExceedsMaximum"),
    (22, 0.5, "192.0.2.1", "SourceAddressPrefixNotAllowed"),
    (22, 0.5, "*", "SourceAddressPrefixNotAllowed"),
])
def test_initiate_enforces_the_port_rules_of_the_policy(arm, port, end_hours, prefix, code):
    body = {"virtualMachines": [{"id": vm_id("rg-web-prod", "web-03"), "ports": [
        {"number": port, "endTimeUtc": in_hours(end_hours), "allowedSourceAddressPrefix": prefix}]}]}
    response = arm.call("POST", policy_path(*WEB) + "/initiate", json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (400, code)


def test_initiate_accepts_a_prefix_inside_the_allowed_ranges(arm):
    body = {"virtualMachines": [{"id": vm_id("rg-web-prod", "web-03"), "ports": [
        {"number": 22, "endTimeUtc": in_hours(0.5), "allowedSourceAddressPrefix": "203.0.113.0/28"}]}]}
    response = arm.call("POST", policy_path(*WEB) + "/initiate", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["virtualMachines"][0]["ports"][0]["status"] == "Initiated"


def test_initiate_refuses_a_vm_outside_the_policy_and_another_action(arm):
    body = {"virtualMachines": [{"id": vm_id("rg-web-prod", "web-05"), "ports": [
        {"number": 22, "endTimeUtc": in_hours(0.5)}]}]}
    outside = arm.call("POST", policy_path(*WEB) + "/initiate", json=body)
    assert (outside.status_code, outside.json()["error"]["code"]) == (400, "VirtualMachineNotInPolicy")
    other = arm.call("POST", policy_path(*WEB) + "/revoke", json=body)
    assert other.status_code == 400


def test_initiate_refuses_a_source_with_an_ipv6_zone(arm, fresh_emulator):
    vm = vm_id("rg-web-prod", "web-02")
    body = {"virtualMachines": [{"id": vm, "ports": [
        {"number": 22, "endTimeUtc": in_hours(0.5), "allowedSourceAddressPrefix": "fe80::1%eth0"}]}]}
    response = arm.call("POST", policy_path(*WEB) + "/initiate", json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "InvalidSourceAddressPrefix")
    assert jit_rules(fresh_emulator, vm, "Allow") == []


def test_initiate_refuses_a_vm_listed_twice(arm, fresh_emulator):
    vm = vm_id("rg-web-prod", "web-02")
    body = {"virtualMachines": [
        {"id": vm, "ports": [{"number": 22, "endTimeUtc": in_hours(0.5), "allowedSourceAddressPrefix": prefix}]}
        for prefix in ("198.51.100.9", "198.51.100.10")]}
    response = arm.call("POST", policy_path(*WEB) + "/initiate", json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "DuplicateVirtualMachine")
    assert jit_rules(fresh_emulator, vm, "Allow") == []


def test_initiate_refuses_a_vm_id_that_is_not_a_string_with_an_arm_error(arm):
    body = {"virtualMachines": [{"id": 5, "ports": [{"number": 22, "endTimeUtc": in_hours(0.5)}]}]}
    response = arm.call("POST", policy_path(*WEB) + "/initiate", json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "MissingRequiredProperty")


def test_get_of_a_missing_policy_is_a_404_for_the_sdk(arm):
    with pytest.raises(HttpResponseError) as info:
        arm.security().jit_network_access_policies.get("rg-analytics-prod", "northeurope", "default")
    assert info.value.status_code == 404


def test_the_four_list_scopes_return_the_demo_policies(arm):
    client = arm.security().jit_network_access_policies
    assert len(list(client.list())) == 3
    assert {p.name for p in client.list_by_region("northeurope")} == {"default"}
    assert [p.id.split("/")[4] for p in client.list_by_resource_group("rg-ops-prod")] == ["rg-ops-prod"]
    assert len(list(client.list_by_resource_group_and_region("rg-web-prod", "westeurope"))) == 1
    assert list(client.list_by_resource_group_and_region("rg-web-prod", "northeurope")) == []


def test_policy_lists_page_with_next_link(arm, fresh_emulator):
    fresh_emulator.set_page_size(1)
    client = arm.security().jit_network_access_policies
    assert len(list(client.list())) == 3
    pages = arm.call("GET", f"/subscriptions/{PROD_SUBSCRIPTION}/providers/Microsoft.Security/"
                            f"jitNetworkAccessPolicies").json()
    assert len(pages["value"]) == 1 and pages["nextLink"].startswith(fresh_emulator.url)


def test_the_demo_has_an_open_request_and_a_week_of_history(arm):
    policy = arm.security().jit_network_access_policies.get(*WEB, "default")
    statuses = [p.status for r in policy.requests for v in r.virtual_machines for p in v.ports]
    assert statuses.count("Initiated") == 1
    assert statuses.count("Revoked") >= 10
    assert "alice@contoso.example" in {r.requestor for r in policy.requests}
