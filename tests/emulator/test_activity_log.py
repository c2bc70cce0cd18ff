"""The Activity Log: events written by JIT operations, the strict $filter grammar, $select and paging."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError

from emulator.scenarios.identities import PROD_SUBSCRIPTION
from tests.emulator.conftest import in_hours, policy_path, vm_id

ACTIVITY = f"/subscriptions/{PROD_SUBSCRIPTION}/providers/microsoft.insights/eventtypes/management/values"
API = "2015-04-01"


def window(days: float = 8) -> str:
    now = datetime.now(UTC) + timedelta(minutes=5)
    start = now - timedelta(days=days)
    return f"eventTimestamp ge '{start:%Y-%m-%dT%H:%M:%SZ}' and eventTimestamp le '{now:%Y-%m-%dT%H:%M:%SZ}'"


def events(arm, extra: str = "", select: str | None = None) -> list:
    return list(arm.monitor().activity_logs.list(filter=window() + extra, select=select))


def test_an_initiate_writes_started_and_succeeded_events_sharing_a_correlation_id_with_its_rule_changes(arm):
    body = {"virtualMachines": [{"id": vm_id("rg-web-prod", "web-02"), "ports": [
        {"number": 22, "endTimeUtc": in_hours(1), "allowedSourceAddressPrefix": "198.51.100.9"}]}],
        "justification": "alice: deploy (portal request #7)"}
    response = arm.call("POST", policy_path("rg-web-prod", "westeurope") + "/initiate", json=body,
                        headers={"x-ms-correlation-request-id": "11111111-2222-4333-8444-555555555555"})
    assert response.status_code == 202
    found = events(arm, " and correlationId eq '11111111-2222-4333-8444-555555555555'")
    operations = {(e.operation_name.value, e.status.value) for e in found}
    initiate = "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action"
    assert {(initiate, "Started"), (initiate, "Succeeded")} <= operations
    assert ("Microsoft.Network/networkSecurityGroups/securityRules/write", "Succeeded") in operations
    main = next(e for e in found if e.operation_name.value == initiate and e.status.value == "Succeeded")
    assert main.resource_id == policy_path("rg-web-prod", "westeurope")
    assert main.resource_group_name == "rg-web-prod"
    assert main.caller
    assert main.properties["virtualMachines"] == vm_id("rg-web-prod", "web-02")
    assert main.properties["ports"] == "22"
    assert main.properties["justification"] == "alice: deploy (portal request #7)"


def test_a_refused_write_is_logged_as_failed(arm):
    arm.call("PUT", policy_path("rg-legacy-prod", "westeurope"), json={"properties": {"virtualMachines": [
        {"id": vm_id("rg-legacy-prod", "legacy-01"), "ports": [{"number": 22, "protocol": "*",
         "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}]}]}})
    found = events(arm, f" and resourceUri eq '{policy_path('rg-legacy-prod', 'westeurope')}'")
    assert [e.status.value for e in found] == ["Failed", "Started"]


def test_the_demo_history_is_newest_first_and_names_alice(arm):
    found = events(arm)
    stamps = [e.event_timestamp for e in found]
    assert stamps == sorted(stamps, reverse=True)
    assert "alice@contoso.example" in {e.caller for e in found}


@pytest.mark.parametrize("extra", [
    " and resourceGroupName eq 'rg-data-prod'",
    f" and resourceUri eq '{policy_path('rg-data-prod', 'northeurope')}'",
    " and resourceProvider eq 'Microsoft.Security'",
])
def test_each_optional_filter_narrows_the_result(arm, extra):
    everything = events(arm)
    narrowed = events(arm, extra)
    assert 0 < len(narrowed) < len(everything)
    if "resourceGroupName" in extra:
        assert {e.resource_group_name for e in narrowed} == {"rg-data-prod"}
    if "resourceUri" in extra:
        assert {e.resource_id for e in narrowed} == {policy_path("rg-data-prod", "northeurope")}
    if "resourceProvider" in extra:
        assert {e.resource_provider_name.value for e in narrowed} == {"Microsoft.Security"}


@pytest.mark.parametrize("bad", [
    "",
    "eventTimestamp ge '2024-01-01T00:00:00Z'",
    "eventTimestamp le '2024-01-01T00:00:00Z'",
    "{w} and caller eq 'alice@contoso.example'",
    "{w} and resourceGroupName eq 'a' and correlationId eq 'b'",
    "{w} or resourceGroupName eq 'a'",
    "eventTimestamp ge 'yesterday' and eventTimestamp le '2024-01-01T00:00:00Z'",
])
def test_a_filter_outside_the_grammar_is_a_400(arm, bad):
    response = arm.call("GET", ACTIVITY, api_version=API, params={"$filter": bad.format(w=window())})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"


def test_the_sdk_surfaces_a_bad_filter_as_an_error(arm):
    with pytest.raises(HttpResponseError) as info:
        list(arm.monitor().activity_logs.list(filter="resourceGroupName eq 'x'"))
    assert info.value.status_code == 400


def test_paging_follows_next_link_to_the_same_events(arm, fresh_emulator):
    everything = [e.event_data_id for e in events(arm)]
    fresh_emulator.set_page_size(7)
    first = arm.call("GET", ACTIVITY, api_version=API, params={"$filter": window()}).json()
    assert len(first["value"]) == 7 and "nextLink" in first
    paged = [e.event_data_id for e in events(arm)]
    assert paged == everything
    assert len(set(paged)) == len(paged) > 7


def test_select_returns_only_the_named_fields(arm):
    response = arm.call("GET", ACTIVITY, api_version=API,
                        params={"$filter": window(), "$select": "eventTimestamp,operationName,caller"})
    first = response.json()["value"][0]
    assert set(first) == {"eventTimestamp", "operationName", "caller"}


def test_events_added_through_the_control_api_are_listed(arm, fresh_emulator):
    added = fresh_emulator.add_activity({"resourceId": vm_id("rg-web-prod", "web-06"), "hours_ago": 1,
                                         "operationName": "Microsoft.Compute/virtualMachines/write",
                                         "caller": "erin@contoso.example"})
    found = events(arm, f" and correlationId eq '{added[0]['correlationId']}'")
    assert [(e.caller, e.resource_group_name) for e in found] == [("erin@contoso.example", "rg-web-prod")]
