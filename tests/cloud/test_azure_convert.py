"""The pure SDK-model → dataclass conversions, fed with Azure's official example payloads."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from azure.mgmt.authorization.v2022_04_01.models import RoleDefinition as SdkRoleDefinition
from azure.mgmt.compute.models import VirtualMachine as SdkVirtualMachine
from azure.mgmt.monitor.models import EventData
from azure.mgmt.network.models import NetworkSecurityGroup as SdkNetworkSecurityGroup
from azure.mgmt.network.models import PublicIPAddress
from azure.mgmt.security.v2020_01_01.models import JitNetworkAccessPolicy, JitNetworkAccessRequest
from azure.mgmt.security.v2024_01_01.models import Pricing as SdkPricing

from cloud import azure_convert as convert
from cloud import types
from tests.cloud.conftest import specs_dir

JIT_EXAMPLES = "security-2020-01-01/examples/JitNetworkAccessPolicies"


def example(path: str, status: str = "200") -> dict:
    return json.loads((specs_dir() / path).read_text())["responses"][status]["body"]


def test_a_jit_policy_example_converts_with_ports_requests_and_utc_times():
    model = JitNetworkAccessPolicy.deserialize(example(f"{JIT_EXAMPLES}/GetJitNetworkAccessPolicy_example.json"))

    policy = convert.jit_policy_from_sdk(model)

    assert (policy.name, policy.resource_group, policy.location, policy.kind, policy.provisioning_state) == (
        "default", "myRg1", "westeurope", "Basic", "Succeeded")
    assert policy.vms[0].id.endswith("/virtualMachines/vm1")
    assert policy.vms[0].ports == (types.JitPolicyPort(22, "*", "*", (), "PT3H"),
                                   types.JitPolicyPort(3389, "*", "*", (), "PT3H"))
    request = policy.requests[0]
    assert (request.requestor, request.justification) == ("barbara@contoso.com",
                                                          "testing a new version of the product")
    assert request.start_time_utc == datetime(2018, 5, 17, 8, 6, 45, 569161, tzinfo=UTC)
    port = request.vms[0].ports[0]
    assert (port.number, port.status, port.status_reason, port.allowed_source_address_prefix) == (
        3389, "Initiated", "UserRequested", "192.127.0.2")
    assert port.end_time_utc.tzinfo is UTC


def test_every_policy_of_the_subscription_list_example_converts():
    body = example(f"{JIT_EXAMPLES}/GetJitNetworkAccessPoliciesSubscription_example.json")

    policies = [convert.jit_policy_from_sdk(JitNetworkAccessPolicy.deserialize(p)) for p in body["value"]]

    assert policies and all(p.id and p.name and p.resource_group for p in policies)
    assert all(isinstance(port.number, int) for p in policies for vm in p.vms for port in vm.ports)


def test_the_initiate_example_keeps_a_status_outside_the_enum():
    model = JitNetworkAccessRequest.deserialize(
        example(f"{JIT_EXAMPLES}/InitiateJitNetworkAccessPolicy_example.json", "202"))

    request = convert.jit_request_from_sdk(model)

    port = request.vms[0].ports[0]
    assert (port.status, port.status_reason, port.mapped_port) == ("Initiating", "UserRequested", None)
    assert request.requestor == "barbara@contoso.com"


def test_policy_vms_given_as_dataclasses_or_azure_dicts_become_the_same_sdk_body():
    vm = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
    as_dataclass = types.JitPolicyVm(id=vm, ports=(types.JitPolicyPort(22, "TCP", None, ("10.0.0.0/8",), "PT1H"),))
    as_dict = {"id": vm, "ports": [{"number": 22, "protocol": "TCP", "allowedSourceAddressPrefixes": ["10.0.0.0/8"],
                                    "maxRequestAccessDuration": "PT1H"}]}

    bodies = [JitNetworkAccessPolicy(virtual_machines=convert.jit_policy_vms_to_sdk([v]), kind="Basic").serialize()
              for v in (as_dataclass, as_dict)]

    assert bodies[0] == bodies[1]
    port = bodies[0]["properties"]["virtualMachines"][0]["ports"][0]
    assert port == {"number": 22, "protocol": "TCP", "allowedSourceAddressPrefixes": ["10.0.0.0/8"],
                    "maxRequestAccessDuration": "PT1H"}


def test_a_port_without_a_source_defaults_to_any():
    body = convert.jit_policy_vms_to_sdk([{"id": "x", "ports": [{"number": 3389, "protocol": "*",
                                                                 "maxRequestAccessDuration": "PT3H"}]}])

    assert body[0].ports[0].allowed_source_address_prefix == "*"


def test_an_initiate_body_carries_utc_end_times_and_the_justification():
    end = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    body = convert.jit_initiate_to_sdk(
        [types.JitInitiateVm(id="vm", ports=(types.JitInitiatePort(22, end, "203.0.113.7"),)),
         {"id": "vm2", "ports": [{"number": 3389, "endTimeUtc": "2030-01-02T03:04:05Z"}]}], "alice: fix").serialize()

    assert body["justification"] == "alice: fix"
    assert body["virtualMachines"][0]["ports"][0] == {"number": 22, "allowedSourceAddressPrefix": "203.0.113.7",
                                                      "endTimeUtc": "2030-01-02T03:04:05.000Z"}
    assert body["virtualMachines"][1]["ports"][0]["endTimeUtc"] == "2030-01-02T03:04:05.000Z"


def test_the_vm_example_converts_with_os_and_nics():
    model = SdkVirtualMachine(example("compute-2026-04-01/examples/virtualMachineExamples/VirtualMachine_Get.json"))

    vm = convert.virtual_machine_from_sdk(model)

    assert (vm.name, vm.resource_group, vm.location, vm.os_type) == ("myVM", "myResourceGroup", "West US", "Windows")
    assert vm.nic_ids == ("/subscriptions/{subscription-id}/resourceGroups/myResourceGroup/providers/"
                          "Microsoft.Network/networkInterfaces/{myNIC}",)
    assert vm.vm_size == "Standard_DS3_v2"
    assert vm.tags == {"myTag1": "tagValue1"}


def test_the_minimal_vm_list_example_converts_without_failing_on_missing_fields():
    body = example("compute-2026-04-01/examples/virtualMachineExamples/VirtualMachine_ListAll_MinimumSet_Gen.json")

    vms = [convert.virtual_machine_from_sdk(SdkVirtualMachine(v)) for v in body["value"]]

    assert [(vm.location, vm.os_type, vm.network_interface_ids, vm.power_state) for vm in vms] == [
        ("eastus", "", (), None)] * 2


def test_the_nsg_example_converts_rules_merging_single_and_list_forms():
    nsg = convert.network_security_group_from_sdk(
        SdkNetworkSecurityGroup(example("network-2025-05-01/examples/NetworkSecurityGroupGet.json")))

    assert (nsg.name, nsg.resource_group, nsg.location) == ("testnsg", "rg1", "westus")
    assert nsg.rules == (types.SecurityRule(
        name="rule1", priority=130, direction="Inbound", access="Allow", protocol="*",
        id="/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkSecurityGroups/testnsg/"
           "securityRules/rule1",
        source_address_prefixes=("*",), source_port_ranges=("*",), destination_address_prefixes=("*",),
        destination_port_ranges=("80",)),)


def test_the_public_ip_example_converts_even_without_an_address():
    pip = convert.public_ip_from_sdk(PublicIPAddress(example("network-2025-05-01/examples/PublicIpAddressGet.json")))

    assert (pip.name, pip.address) == ("testDNS-ip", None)
    assert pip.ip_configuration_id.endswith("/networkInterfaces/testDNS649/ipConfigurations/ipconfig1")


@pytest.mark.parametrize(("tier", "sub_plan", "available"), [("Standard", "P2", True), ("Standard", "P1", False),
                                                             ("Free", None, False)])
def test_the_pricing_says_jit_is_available_only_on_plan_2(tier, sub_plan, available):
    body = example("security-2024-01-01/examples/Pricings/GetPricingByNameVirtualMachines_example.json")
    body["properties"]["pricingTier"], body["properties"]["subPlan"] = tier, sub_plan

    pricing = convert.pricing_from_sdk(SdkPricing.deserialize(body))

    assert (pricing.name, pricing.tier, pricing.jit_available) == ("VirtualMachines", tier, available)


def test_the_pricing_example_keeps_its_enablement_time_in_utc():
    body = example("security-2024-01-01/examples/Pricings/GetPricingByNameVirtualMachines_example.json")

    pricing = convert.pricing_from_sdk(SdkPricing.deserialize(body))

    assert pricing.enablement_time == datetime(2023, 3, 1, 12, 42, 42, 192110, tzinfo=UTC)


def test_the_activity_log_example_converts_localized_values_to_their_value():
    raw = example("insights-2015-04-01/examples/GetActivityLogsFiltered.json")["value"][0]

    event = convert.activity_event_from_sdk(EventData.deserialize(raw), raw)

    assert (event.operation_name, event.status, event.sub_status) == (
        "microsoft.support/supporttickets/write", "Succeeded", "Created")
    assert (event.caller, event.level, event.resource_group, event.resource_provider) == (
        "admin@contoso.com", "Informational", "MSSupportGroup", "microsoft.support")
    assert event.event_timestamp == datetime(2015, 1, 21, 22, 14, 26, 979277, tzinfo=UTC)
    assert event.properties == {"statusCode": "Created"}
    assert event.raw is not raw and event.raw == raw


def test_an_activity_event_without_raw_json_rebuilds_it_in_azures_shape():
    raw = example("insights-2015-04-01/examples/GetActivityLogsFiltered.json")["value"][0]

    event = convert.activity_event_from_sdk(EventData.deserialize(raw))

    assert event.raw["eventDataId"] == raw["eventDataId"]
    assert event.raw["operationName"]["value"] == "microsoft.support/supporttickets/write"


def test_the_role_definition_example_converts_its_permissions():
    role = convert.role_definition_from_sdk(SdkRoleDefinition.deserialize(
        example("authorization-2022-04-01/examples/PutRoleDefinition.json", "201")))

    assert (role.name, role.role_name, role.description, role.role_type) == (
        "roleDefinitionId", "Role name", "Role description", "roletype")
    assert (role.actions, role.not_actions, role.data_actions, role.assignable_scopes) == (
        ("action",), (), ("dataAction",), ("/subscriptions/subId",))


def test_a_legacy_security_policy_for_a_resource_group_reads_its_jit_switch():
    policy = convert.security_policy_from_json({
        "id": "/subscriptions/s/resourceGroups/rg-x/providers/Microsoft.Security/policies/default",
        "properties": {"policyLevel": "ResourceGroup", "recommendations": {"jitNetworkAccess": "Off"}}})

    assert (policy.scope, policy.resource_group, policy.policy_level, policy.jit_enabled) == (
        "/subscriptions/s/resourceGroups/rg-x", "rg-x", "ResourceGroup", False)


def test_a_naive_time_is_taken_as_utc_and_an_aware_one_is_moved_to_utc():
    from datetime import timedelta, timezone

    assert convert.utc(datetime(2024, 1, 1, 12)) == datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert convert.utc(datetime(2024, 1, 1, 14, tzinfo=timezone(timedelta(hours=2)))).hour == 12
