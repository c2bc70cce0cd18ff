"""JIT policy writes and requests round-trip through the real SecurityCenter client."""
from __future__ import annotations

from datetime import timedelta

import pytest

from cloud import types
from cloud.errors import Invalid, NotFound
from tests.cloud.conftest import emulator_now, vm_id

ANALYTICS = "rg-analytics-prod"


def ssh(number: int = 22, **extra) -> types.JitPolicyPort:
    return types.JitPolicyPort(number=number, protocol="TCP", allowed_source_address_prefix="*",
                               max_request_access_duration="PT2H", **extra)


def test_a_policy_written_from_dataclasses_reads_back_the_same(gateway):
    vms = [types.JitPolicyVm(id=vm_id("ana-01", ANALYTICS), ports=(ssh(),)),
           types.JitPolicyVm(id=vm_id("ana-win-01", ANALYTICS), ports=(
               types.JitPolicyPort(3389, "*", None, ("203.0.113.0/24", "2001:db8::/32"), "PT1H"),))]

    written = gateway.put_jit_policy(ANALYTICS, "northeurope", "default", vms)
    read = gateway.get_jit_policy(ANALYTICS, "northeurope", "default")

    assert written.id.endswith(f"/resourceGroups/{ANALYTICS}/providers/Microsoft.Security/locations/northeurope/"
                               f"jitNetworkAccessPolicies/default")
    assert (read.name, read.resource_group, read.location, read.kind) == ("default", ANALYTICS, "northeurope",
                                                                          "Basic")
    assert read.virtual_machines == written.virtual_machines == tuple(vms)
    assert read.requests == ()
    assert gateway.last_request_id


def test_a_policy_written_from_azure_shaped_dicts_is_accepted(gateway):
    vms = [{"id": vm_id("ana-02", ANALYTICS), "ports": [
        {"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}]}]

    policy = gateway.put_jit_policy(ANALYTICS, "northeurope", "default", vms)

    assert policy.vms[0].ports == (types.JitPolicyPort(22, "*", "*", (), "PT3H"),)


def test_a_deleted_policy_is_not_found_afterwards(gateway):
    gateway.put_jit_policy(ANALYTICS, "northeurope", "default",
                           [types.JitPolicyVm(id=vm_id("ana-03", ANALYTICS), ports=(ssh(),))])

    gateway.delete_jit_policy(ANALYTICS, "northeurope", "default")

    with pytest.raises(NotFound):
        gateway.get_jit_policy(ANALYTICS, "northeurope", "default")
    assert not [p for p in gateway.list_jit_policies() if p.resource_group == ANALYTICS]


def test_initiate_opens_the_port_and_the_policy_lists_the_request(gateway, fresh_emulator):
    end = emulator_now(fresh_emulator) + timedelta(hours=1)
    vm = vm_id("web-02")

    request = gateway.initiate_jit("rg-web-prod", "westeurope", "default", [
        types.JitInitiateVm(id=vm, ports=(types.JitInitiatePort(22, end, "198.51.100.7"),))],
        justification="alice@contoso.example: patching (portal request #42)")

    assert isinstance(request, types.JitRequest)
    assert request.justification == "alice@contoso.example: patching (portal request #42)"
    port = request.vms[0].ports[0]
    assert (request.vms[0].id.lower(), port.number, port.allowed_source_address_prefix) == (vm.lower(), 22,
                                                                                            "198.51.100.7")
    assert abs((port.end_time_utc - end).total_seconds()) < 1
    policy = gateway.get_jit_policy("rg-web-prod", "westeurope", "default")
    mine = [r for r in policy.requests if r.justification and "#42" in r.justification]
    assert mine and mine[0].vms[0].ports[0].status == "Initiated"
    rules = fresh_emulator.nsg_rules(vm)
    allows = [r for nsg in rules["nsgs"] for r in nsg["securityRules"]
              if r["properties"]["access"] == "Allow" and "web-02" in r["name"]]
    assert allows and allows[0]["properties"]["sourceAddressPrefix"] == "198.51.100.7"


def test_initiate_behind_a_firewall_returns_the_dnat_mapped_port(gateway, fresh_emulator):
    end = emulator_now(fresh_emulator) + timedelta(minutes=30)

    request = gateway.initiate_jit("rg-data-prod", "northeurope", "default", [
        {"id": vm_id("db-01", "rg-data-prod"), "ports": [{"number": 22, "endTimeUtc": end.isoformat(),
                                                        "allowedSourceAddressPrefix": "203.0.113.9"}]}],
        justification="dave: firewall check")

    mapped = request.vms[0].ports[0].mapped_port
    assert isinstance(mapped, int) and mapped != 22
    firewall = next(iter(gateway.list_firewalls()))
    assert firewall.firewall_policy_id is None  # a classic firewall: its own NAT rule collections
    rule = next(r for r in firewall.nat_rules if r.destination_ports == (str(mapped),))
    assert (rule.translated_port, rule.source_addresses) == ("22", ("203.0.113.9",))


def test_behind_a_firewall_manager_firewall_initiate_maps_a_port_and_names_the_firewall_policy(gateway, fresh_emulator):
    spoke = vm_id("spoke-01", "rg-hub-prod")  # in a spoke VNet of the demo's secured virtual hub
    gateway.put_jit_policy("rg-hub-prod", "westeurope", "default", [types.JitPolicyVm(id=spoke, ports=(ssh(),))])
    end = emulator_now(fresh_emulator) + timedelta(minutes=30)

    request = gateway.initiate_jit("rg-hub-prod", "westeurope", "default", [
        types.JitInitiateVm(id=spoke, ports=(types.JitInitiatePort(22, end, "203.0.113.9"),))])

    mapped = request.vms[0].ports[0].mapped_port
    assert isinstance(mapped, int) and mapped != 22
    firewall = next(f for f in gateway.list_firewalls() if f.name == "fw-hub-weu")
    assert firewall.nat_rules == ()
    assert firewall.firewall_policy_id.endswith("/resourceGroups/rg-hub-prod/providers/Microsoft.Network/"
                                                "firewallPolicies/fw-hub-weu-policy")
    # The rule itself, in the policy's rule collection groups: tests/emulator/test_jit_policies.py.


def test_initiate_beyond_the_ports_maximum_is_invalid_with_azures_reason(gateway, fresh_emulator):
    end = emulator_now(fresh_emulator) + timedelta(hours=5)  # web-01 allows PT3H

    with pytest.raises(Invalid) as caught:
        gateway.initiate_jit("rg-web-prod", "westeurope", "default", [
            types.JitInitiateVm(id=vm_id("web-01"), ports=(types.JitInitiatePort(22, end, "203.0.113.7"),))])

    assert caught.value.code == "RequestDurationExceedsMaximum"
    assert caught.value.status == 400 and not caught.value.retryable
    assert caught.value.request_id


def test_close_now_deletes_the_jit_allow_rule(gateway, fresh_emulator):
    nsg = gateway.get_network_security_group("rg-web-prod", "nsg-web-frontend")
    allow = next(r for r in nsg.rules if r.name.startswith("SecurityCenter-JITRule") and "web-01" in r.name
                 and r.access == "Allow")

    gateway.delete_security_rule("rg-web-prod", "nsg-web-frontend", allow.name)

    after = gateway.get_network_security_group("rg-web-prod", "nsg-web-frontend")
    assert allow.name not in {r.name for r in after.rules}
    gateway.delete_security_rule("rg-web-prod", "nsg-web-frontend", allow.name)  # already gone: no error
