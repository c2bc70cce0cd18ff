"""Issue 8's "done when": the seed's PowerShell examples, sent as JSON through the API, do what the portal's
form does (same emulator policy) and open what Azure opens (an NSG allow rule for exactly the IP and port).

The JSON below is what ``Set-AzJitNetworkAccessPolicy`` / ``Start-AzJitNetworkAccessPolicy`` send for the
seed's ``$JitPolicy`` and ``$JitPolicyVm1`` hashtables. Tasks run in this process (their services).
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from policies.access.models import AccessRequest
from tests.policies.access.factories import open_all, states
from tests.policies.azure_side import Azure, vm_id
from tests.policies.factories import apply_all, sync, vm
from tests.policies.test_views import edit_post, shown_basis

pytestmark = pytest.mark.django_db
SEED_POLICY = {"ports": [
    {"number": 22, "protocol": "*", "allowedSourceAddressPrefix": ["*"], "maxRequestAccessDuration": "PT3H"},
    {"number": 3389, "protocol": "*", "allowedSourceAddressPrefix": ["*"], "maxRequestAccessDuration": "PT3H"},
]}
MY_IP = "198.51.100.23"


def test_the_seeds_policy_json_through_the_api_equals_the_form(prod, policy_admin, api_as, client, fresh_emulator):
    by_api, by_form = vm("web-05"), vm("web-06")
    response = api_as(policy_admin).put(f"/api/v1/vms/{by_api.pk}/jit/", SEED_POLICY)
    assert response.status_code == 202, response.content
    change = response.json()["changes"][0]
    assert change["state"] == "queued" and response.json()["statusUrl"].endswith(f"/api/v1/policy-changes/"
                                                                                    f"{change['id']}/")
    client.force_login(policy_admin)
    data = edit_post(by_form, [{"number": "22"}, {"number": "3389"}])
    data["ports-INITIAL_FORMS"] = "1"  # the form starts from the OS default (SSH 22) for a VM without JIT
    data["basis"] = shown_basis(client, by_form)
    form = client.post(reverse("policies:policy_edit", kwargs={"pk": by_form.pk}), data)
    assert form.status_code == 302, form.content

    assert apply_all() == ["applied", "applied"]
    azure = Azure(fresh_emulator)
    api_ports = azure.policy_ports("rg-web-prod", "westeurope", vm_id("rg-web-prod", "web-05"))
    form_ports = azure.policy_ports("rg-web-prod", "westeurope", vm_id("rg-web-prod", "web-06"))
    assert api_ports == form_ports
    assert sorted(api_ports) == [22, 3389]
    assert {(p["protocol"], p["allowed_source_address_prefix"], p["max_request_access_duration"])
            for p in api_ports.values()} == {("*", "*", "PT3H")}
    status = api_as(policy_admin).get(change["url"])
    assert status.status_code == 200 and status.json()["state"] == "applied"
    jit = api_as(policy_admin).get(f"/api/v1/vms/{by_api.pk}/jit/").json()
    assert jit["state"] == "configured" and [p["number"] for p in jit["ports"]] == [22, 3389]


def test_the_seeds_request_json_opens_port_22_for_exactly_that_ip(prod, requester, api_as, fresh_emulator):
    target = vm("web-02")
    body = {"virtualMachines": [{
        "id": target.arm_id,
        "ports": [{"number": 22, "endTimeUtc": (timezone.now() + timedelta(hours=1)).isoformat(),
                   "allowedSourceAddressPrefix": [MY_IP]}]}],
        "justification": "Patch the kernel (CHG-1234)"}
    client = api_as(requester)
    response = client.post("/api/v1/requests/", body, HTTP_IDEMPOTENCY_KEY="seed-1")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["allowedSourceAddressPrefix"] == f"{MY_IP}/32"
    assert created["virtualMachines"][0]["ports"][0]["status"] == "queued"
    assert client.post("/api/v1/requests/", body, HTTP_IDEMPOTENCY_KEY="seed-1").json()["id"] == created["id"]

    request = AccessRequest.objects.get(pk=created["id"])
    assert open_all(request) == ["open"]
    assert states(request) == {("web-02", 22): "open"}
    rules = Azure(fresh_emulator).jit_rules(vm_id("rg-web-prod", "web-02"), "Allow").values()
    assert [(r["sourceAddressPrefix"], r["destinationPortRange"]) for r in rules] == [(f"{MY_IP}/32", "22")]
    detail = client.get(created["url"]).json()
    assert detail["state"] == "open" and detail["virtualMachines"][0]["ports"][0]["azureStatus"] == "Initiated"

    extended = client.post(f"/api/v1/requests/{created['id']}/extend/", {"duration": "PT2H"})
    assert extended.status_code == 201, extended.content
    assert (extended.json()["kind"], extended.json()["extends"]) == ("extend", created["id"])
    closed = client.post(f"/api/v1/requests/{extended.json()['id']}/close/")
    assert closed.status_code == 200 and closed.json()["closedAt"]


def test_the_seeds_request_json_is_refused_naming_the_prerequisite_when_defender_plan_2_is_off(
        prod, requester, api_as, fresh_emulator):
    Azure(fresh_emulator).set_servers_plan("Standard", "P1")  # Plan 1 has no JIT
    sync(prod)
    target = vm("web-02")
    body = {"virtualMachines": [{"id": target.arm_id, "ports": [
        {"number": 22, "endTimeUtc": (timezone.now() + timedelta(hours=1)).isoformat(),
         "allowedSourceAddressPrefix": [MY_IP]}]}], "justification": "Patch the kernel"}
    response = api_as(requester).post("/api/v1/requests/", body)
    assert response.status_code == 400, response.content
    assert "enable Microsoft Defender for Servers Plan 2 on subscription" in response.json()["detail"]
    assert not AccessRequest.objects.exists()
