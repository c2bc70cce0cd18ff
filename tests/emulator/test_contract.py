"""Replay the official Azure REST examples through the real SDK clients against the emulator.

Each example's request must be accepted and each response must deserialize with the fields the example shows
(values compared where the emulator can know them; server-chosen values such as timestamps only for presence).
"""
from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.authorization.v2022_04_01.models import RoleDefinition
from azure.mgmt.security.v2020_01_01.models import JitNetworkAccessPolicy, JitNetworkAccessPolicyInitiateRequest
from azure.mgmt.security.v2024_01_01.models import Pricing

from emulator.testing import run_emulator
from emulator.timeutil import parse_iso
from tests.emulator.conftest import make_arm

ROOT = Path(__file__).resolve().parents[2]
SPECS = Path(os.environ.get("AZURE_SPECS_DIR") or ROOT.parent / "shared" / "azure-specs")
JIT_EXAMPLES = SPECS / "security-2020-01-01" / "examples" / "JitNetworkAccessPolicies"
JIT_SUB = "20ff7fc3-e762-44dd-bd96-b71116dcdc23"
ACTIVITY_SUB = "089bd33f-d4ec-47fe-8ba5-0753aa5c5b33"
NETWORK_SUB = "subid"
ROLE_ID = "8f1c6a0e-5b3d-4c2a-9e7f-0a1b2c3d4e5f"

EXACT = {"id", "name", "type", "kind", "location", "number", "protocol", "allowedSourceAddressPrefix",
         "maxRequestAccessDuration", "statusReason", "requestor", "justification", "provisioningState",
         "pricingTier", "subPlan", "enforce", "roleName", "description", "assignableScopes", "actions", "notActions",
         "dataActions", "notDataActions", "sourcePortRange", "destinationPortRange", "sourceAddressPrefix",
         "destinationAddressPrefix", "access", "priority", "direction", "publicIPAddressVersion",
         "idleTimeoutInMinutes", "osType", "computerName", "caller", "correlationId", "eventDataId", "value",
         "localizedValue", "resourceGroupName", "subscriptionId", "level"}
TIMES = {"startTimeUtc", "endTimeUtc", "eventTimestamp", "submissionTimestamp"}


def to_rest(model) -> dict:
    """The model as wire JSON (msrest models serialize; the newer generated models give ``as_dict``)."""
    if hasattr(model, "serialize"):
        return model.serialize(keep_readonly=True)
    return model.as_dict()


def example(path: Path) -> dict:
    return json.loads(path.read_text())


def assert_matches(expected, actual, *, path: str = "$", optional: frozenset = frozenset(),
                   loose: frozenset = frozenset()) -> None:
    """Every field of ``expected`` is in ``actual``; EXACT fields are equal, TIMES equal as instants."""
    key = path.rsplit(".", 1)[-1].split("[")[0]
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for name, value in expected.items():
            if name in optional:
                continue
            assert name in actual and actual[name] is not None, f"{path}.{name} is missing"
            assert_matches(value, actual[name], path=f"{path}.{name}", optional=optional, loose=loose)
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected a list, got {actual!r}"
        if expected and not isinstance(expected[0], dict | list):
            if key in EXACT and key not in loose:
                assert actual == expected, f"{path}: {actual!r} != {expected!r}"
            return
        assert len(actual) >= len(expected), f"{path}: {len(actual)} items, example has {len(expected)}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
            assert_matches(e, a, path=f"{path}[{i}]", optional=optional, loose=loose)
    elif key in TIMES and key not in loose:
        assert parse_iso(actual) == parse_iso(expected), f"{path}: {actual} != {expected}"
    elif key in EXACT and key not in loose:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


CONTRACT_SCENARIO = {
    "name": "contract",
    "subscriptions": [
        {"id": JIT_SUB, "name": "Examples", "plan": "P2", "resource_groups": [
            {"name": "myRg1", "location": "westeurope", "vms": [{"name": "vm1", "os": "Linux", "nsg": True}]},
            {"name": "myResourceGroup", "location": "West US", "vms": [{"name": "myVM", "os": "Windows",
                                                                         "nsg": True}]},
        ]},
        {"id": NETWORK_SUB, "name": "Network examples", "resource_groups": [{
            "name": "rg1", "location": "westus",
            "nsgs": [{"name": "testnsg", "rules": [{"name": "rule1", "properties": {
                "protocol": "*", "sourcePortRange": "*", "destinationPortRange": "80", "sourceAddressPrefix": "*",
                "destinationAddressPrefix": "*", "access": "Allow", "priority": 130, "direction": "Inbound"}}]}],
            "public_ips": [{"name": "testDNS-ip", "allocation": "Dynamic"}],
        }]},
        {"id": ACTIVITY_SUB, "name": "Activity examples", "resource_groups": [{"name": "MSSupportGroup"}]},
    ],
}


@pytest.fixture(scope="module")
def contract_emulator(tmp_path_factory):
    scenario = json.loads(json.dumps(CONTRACT_SCENARIO))
    activity = example(SPECS / "insights-2015-04-01" / "examples" / "GetActivityLogsFiltered.json")
    scenario["activity"] = activity["responses"]["200"]["body"]["value"]
    with run_emulator(scenario, cert_dir=tmp_path_factory.mktemp("contract-certs")) as emu:
        yield emu


@pytest.fixture
def contract(contract_emulator):
    contract_emulator.load_scenario({**CONTRACT_SCENARIO, "activity": example(
        SPECS / "insights-2015-04-01" / "examples" / "GetActivityLogsFiltered.json")["responses"]["200"]["body"][
        "value"]})
    return make_arm(contract_emulator)


def jit(contract):
    return contract.security(JIT_SUB).jit_network_access_policies


def put_example_policy(contract, name: str) -> dict:
    ex = example(JIT_EXAMPLES / name)
    body = ex["responses"]["200"]["body"]
    params = ex["parameters"]
    jit(contract).create_or_update(params["resourceGroupName"], params["ascLocation"],
                                   params["jitNetworkAccessPolicyName"], body=JitNetworkAccessPolicy.deserialize(body))
    return ex


def test_create_jit_policy_example(contract):
    ex = example(JIT_EXAMPLES / "CreateJitNetworkAccessPolicy_example.json")
    p = ex["parameters"]
    result = jit(contract).create_or_update(p["resourceGroupName"], p["ascLocation"], p["jitNetworkAccessPolicyName"],
                                            body=JitNetworkAccessPolicy.deserialize(p["body"]))
    assert_matches(ex["responses"]["200"]["body"], to_rest(result))


def test_get_jit_policy_example(contract):
    ex = put_example_policy(contract, "GetJitNetworkAccessPolicy_example.json")
    p = ex["parameters"]
    result = jit(contract).get(p["resourceGroupName"], p["ascLocation"], p["jitNetworkAccessPolicyName"])
    assert_matches(ex["responses"]["200"]["body"], to_rest(result))


def test_list_jit_policies_by_subscription_example(contract):
    put_example_policy(contract, "GetJitNetworkAccessPolicy_example.json")
    listed = example(JIT_EXAMPLES / "GetJitNetworkAccessPoliciesSubscription_example.json")
    result = [to_rest(item) for item in jit(contract).list()]
    assert_matches(listed["responses"]["200"]["body"]["value"], result)


def test_list_jit_policies_by_resource_group_and_location_example(contract):
    put_example_policy(contract, "GetJitNetworkAccessPolicy_example.json")
    listed = example(JIT_EXAMPLES / "GetJitNetworkAccessPoliciesResourceGroupLocation_example.json")
    p = listed["parameters"]
    result = [to_rest(item)
              for item in jit(contract).list_by_resource_group_and_region(p["resourceGroupName"], p["ascLocation"])]
    assert_matches(listed["responses"]["200"]["body"]["value"], result)


def test_initiate_jit_policy_example(contract):
    put_example_policy(contract, "GetJitNetworkAccessPolicy_example.json")
    ex = example(JIT_EXAMPLES / "InitiateJitNetworkAccessPolicy_example.json")
    p = ex["parameters"]
    body = json.loads(json.dumps(p["body"]))
    end = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body["virtualMachines"][0]["ports"][0]["endTimeUtc"] = end  # the example's 2018 end time is in the past
    result = jit(contract).initiate(p["resourceGroupName"], p["ascLocation"], p["jitNetworkAccessPolicyName"],
                                    body=JitNetworkAccessPolicyInitiateRequest.deserialize(body))
    expected = ex["responses"]["202"]["body"]
    # the upstream response names another subscription and the unlisted status "Initiating": compare loosely
    assert_matches(expected, to_rest(result),
                   loose=frozenset({"id", "requestor", "endTimeUtc", "startTimeUtc", "status"}))
    assert result.virtual_machines[0].ports[0].status == "Initiated"
    assert result.virtual_machines[0].ports[0].end_time_utc == parse_iso(end)


def test_delete_jit_policy_example(contract):
    put_example_policy(contract, "GetJitNetworkAccessPolicy_example.json")
    p = example(JIT_EXAMPLES / "DeleteJitNetworkAccessPolicy_example.json")["parameters"]
    jit(contract).delete(p["resourceGroupName"], p["ascLocation"], p["jitNetworkAccessPolicyName"])
    with pytest.raises(ResourceNotFoundError):
        jit(contract).get(p["resourceGroupName"], p["ascLocation"], p["jitNetworkAccessPolicyName"])


PRICINGS = SPECS / "security-2024-01-01" / "examples" / "Pricings"
PRICING_LOOSE = frozenset({"enforce"})


def test_get_pricing_virtual_machines_example(contract):
    ex = example(PRICINGS / "GetPricingByNameVirtualMachines_example.json")
    p = ex["parameters"]
    result = contract.security(JIT_SUB).pricings.get(p["scopeId"], p["pricingName"])
    assert_matches(ex["responses"]["200"]["body"], to_rest(result),
                   optional=frozenset({"extensions"}), loose=PRICING_LOOSE)


def test_put_pricing_virtual_machines_example(contract):
    ex = example(PRICINGS / "PutPricingVMsByName_example.json")
    p = ex["parameters"]
    result = contract.security(JIT_SUB).pricings.update(p["scopeId"], p["pricingName"],
                                                       Pricing.deserialize(p["pricing"]))
    assert_matches(ex["responses"]["200"]["body"], to_rest(result),
                   optional=frozenset({"additionalExtensionProperties", "operationStatus"}))


def test_activity_log_filtered_example(contract):
    ex = example(SPECS / "insights-2015-04-01" / "examples" / "GetActivityLogsFiltered.json")
    p = ex["parameters"]
    result = [to_rest(e)
              for e in contract.monitor(p["subscriptionId"]).activity_logs.list(filter=p["$filter"])]
    assert_matches(ex["responses"]["200"]["body"]["value"], result)


COMPUTE = SPECS / "compute-2026-04-01" / "examples" / "virtualMachineExamples"
VM_NOT_MODELLED = frozenset({"tags", "etag", "availabilitySet", "proximityPlacementGroup", "applicationProfile",
                             "userData", "dataDisks", "diagnosticsProfile", "extensionsTimeBudget", "resources",
                             "managedBy", "enableAutomaticUpdates", "vmId", "timeCreated"})


def test_get_virtual_machine_example(contract):
    ex = example(COMPUTE / "VirtualMachine_Get.json")
    expected = json.loads(json.dumps(ex["responses"]["200"]["body"]).replace("{subscription-id}", JIT_SUB)
                          .replace("{myNIC}", "myVM-nic").replace("myOsDisk", "myVM_OsDisk_1"))
    result = contract.compute(JIT_SUB).virtual_machines.get("myResourceGroup", "myVM")
    assert_matches(expected, to_rest(result), optional=VM_NOT_MODELLED,
                   loose=frozenset({"location", "name"}))
    assert result.name == "myVM"
    assert result.storage_profile.os_disk.os_type == "Windows"


def test_list_all_virtual_machines_example(contract):
    ex = example(COMPUTE / "VirtualMachine_ListAll_MinimumSet_Gen.json")
    result = [to_rest(vm) for vm in contract.compute(JIT_SUB).virtual_machines.list_all()]
    assert_matches(ex["responses"]["200"]["body"]["value"], result, loose=frozenset({"id", "location"}))


NETWORK = SPECS / "network-2025-05-01" / "examples"


def test_get_network_security_group_example(contract):
    ex = example(NETWORK / "NetworkSecurityGroupGet.json")
    p = ex["parameters"]
    result = contract.network(NETWORK_SUB).network_security_groups.get(p["resourceGroupName"],
                                                                     p["networkSecurityGroupName"])
    assert_matches(ex["responses"]["200"]["body"], to_rest(result))


def test_get_public_ip_address_example(contract):
    ex = example(NETWORK / "PublicIpAddressGet.json")
    p = ex["parameters"]
    result = contract.network(NETWORK_SUB).public_ip_addresses.get(p["resourceGroupName"], p["publicIpAddressName"])
    assert_matches(ex["responses"]["200"]["body"], to_rest(result),
                   optional=frozenset({"ipConfiguration", "ddosSettings", "ipTags"}))
    assert result.public_ip_allocation_method == "Dynamic"


def test_put_role_definition_example(contract):
    ex = example(SPECS / "authorization-2022-04-01" / "examples" / "PutRoleDefinition.json")
    scope = f"/subscriptions/{JIT_SUB}"
    body = ex["parameters"]["body"]["roleDefinition"]
    definition = RoleDefinition(role_name=body["roleName"], description=body["description"],
                                assignable_scopes=body["assignableScopes"],
                                permissions=[{"actions": p["actions"], "not_actions": p["notActions"],
                                              "data_actions": p["dataActions"],
                                              "not_data_actions": p["notDataActions"]} for p in body["permissions"]])
    client = contract.authorization(JIT_SUB).role_definitions
    result = client.create_or_update(scope, ROLE_ID, definition)
    expected = ex["responses"]["201"]["body"]
    assert_matches(expected, to_rest(result), loose=frozenset({"id", "name", "type"}))
    assert (result.type, result.role_type) == ("Microsoft.Authorization/roleDefinitions", "CustomRole")
    assert result.id == f"{scope}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_ID}"
    assert client.get(scope, ROLE_ID).role_name == "Role name"
    assert [r.role_name for r in client.list(scope, filter="type eq 'CustomRole'")] == ["Role name"]
