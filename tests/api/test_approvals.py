"""Approvals through the API: the queue, approve and deny with a comment, no self-approval, scope."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import RoleMapping
from policies.access.models import AccessRequest, Approval
from tests.plugins.personas import IN_SCOPE, OUT_OF_SCOPE, WEB_GROUP
from tests.policies.access.factories import rule
from tests.policies.factories import make_vm

pytestmark = pytest.mark.django_db
IN = f"{IN_SCOPE}/resourceGroups/rg-api"


def ask(client, vm, **extra) -> dict:
    body = {"virtualMachines": [{"id": vm.arm_id, "ports": [{
        "number": 22, "endTimeUtc": (timezone.now() + timedelta(hours=1)).isoformat(),
        "allowedSourceAddressPrefix": "203.0.113.9"}]}], "justification": "CHG-42 deploy", **extra}
    response = client.post("/api/v1/requests/", body)
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def manual(persona_mappings):
    return rule(IN_SCOPE, "manual", approvals_required=1)


def test_an_approver_sees_the_queue_and_approves(manual, requester, approver, api_as):
    created = ask(api_as(requester), make_vm(IN))
    assert (created["state"], created["approvalState"]) == ("pending", "pending")
    queue = api_as(approver).get("/api/v1/approvals/").json()
    assert [r["id"] for r in queue["results"]] == [created["id"]]
    assert queue["results"][0]["progress"] == {"first": 0, "first_needed": 1, "second": 0, "second_needed": 0}
    approved = api_as(approver).post(f"/api/v1/requests/{created['id']}/approve/", {"comment": "ok"})
    assert approved.status_code == 200, approved.content
    assert approved.json()["approvalState"] == "approved" and approved.json()["state"] == "queued"
    again = api_as(approver).post(f"/api/v1/requests/{created['id']}/approve/", {})
    assert again.status_code == 400 and "not waiting for approval" in again.json()["detail"]
    assert api_as(approver).get("/api/v1/approvals/").json()["results"] == []


def test_a_denial_needs_a_comment(manual, requester, approver, api_as):
    created = ask(api_as(requester), make_vm(IN))
    url = f"/api/v1/requests/{created['id']}/deny/"
    refused = api_as(approver).post(url, {})
    assert refused.status_code == 400 and "Say why" in refused.json()["detail"]
    denied = api_as(approver).post(url, {"comment": "not in a change window"})
    assert denied.status_code == 200 and denied.json()["state"] == "denied"


@pytest.mark.parametrize("comment", [5, 1.5, True, ["ok"], {"text": "ok"}, None])
@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_a_comment_that_is_not_text_is_a_400(manual, requester, approver, api_as, comment, decision):
    created = ask(api_as(requester), make_vm(IN))
    response = api_as(approver).post(f"/api/v1/requests/{created['id']}/{decision}/", {"comment": comment})
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith("Invalid input: comment: ")
    assert AccessRequest.objects.get(pk=created["id"]).approval_state == "pending"
    assert not Approval.objects.exists()


def test_an_approver_reads_the_requests_they_may_review(manual, requester, approver, auditor, outsider, api_as):
    created = ask(api_as(requester), make_vm(IN))
    url = f"/api/v1/requests/{created['id']}/"
    before = api_as(approver).get(url)
    assert before.status_code == 200, before.content
    assert before.json()["id"] == created["id"] and before.json()["approvalState"] == "pending"
    approved = api_as(approver).post(f"{url}approve/", {"comment": "ok"}).json()
    after = api_as(approver).get(approved["url"])
    assert after.status_code == 200 and after.json()["approvalState"] == "approved"
    assert api_as(approver).post(url, {}).status_code == 405  # read-only
    assert api_as(outsider).get(url).status_code == 404
    assert api_as(auditor).get(url).status_code == 200  # auditors read the requests in their scope
    for mapping in RoleMapping.objects.filter(source_value="JIT.Approver"):
        mapping.scope = OUT_OF_SCOPE
        mapping.save()
    assert api_as(approver).get(url).status_code == 404


def test_an_approver_never_reads_the_requesters_connection_details(manual, requester, approver, api_as):
    from policies.access.models import AccessRequestPort, AccessRequestVm

    created = ask(api_as(requester), make_vm(IN))
    api_as(approver).post(f"/api/v1/requests/{created['id']}/approve/", {"comment": "ok"})
    AccessRequestVm.objects.filter(request_id=created["id"]).update(address="51.105.20.9", address_kind="public")
    AccessRequestPort.objects.filter(request_id=created["id"]).update(state="open")
    url = f"/api/v1/requests/{created['id']}/"
    mine = api_as(requester).get(url).json()["virtualMachines"][0]
    assert mine["address"] == "51.105.20.9" and "connection" in mine["ports"][0]
    theirs = api_as(approver).get(url).json()["virtualMachines"][0]
    assert "address" not in theirs and (theirs["ports"][0]["connection"], theirs["ports"][0]["mappedPort"]) == (
        None, None)
    assert "51.105.20.9" not in api_as(approver).get(url).content.decode()


def test_nobody_approves_their_own_request(manual, requester, api_as):
    RoleMapping.objects.create(source_kind="group", source_value=WEB_GROUP, role="approver", scope=IN_SCOPE)
    created = ask(api_as(requester), make_vm(IN))
    response = api_as(requester).post(f"/api/v1/requests/{created['id']}/approve/", {})
    assert response.status_code == 403 and "your own request" in response.json()["detail"]
    assert AccessRequest.objects.get(pk=created["id"]).approval_state == "pending"


def test_approvers_out_of_scope_or_without_the_role_get_404(manual, requester, approver, reader, api_as):
    created = ask(api_as(requester), make_vm(IN))
    for mapping in RoleMapping.objects.filter(source_value="JIT.Approver"):
        mapping.scope = OUT_OF_SCOPE
        mapping.save()
    assert api_as(approver).post(f"/api/v1/requests/{created['id']}/approve/", {}).status_code == 404
    assert api_as(approver).get("/api/v1/approvals/").json()["results"] == []
    assert api_as(reader).post(f"/api/v1/requests/{created['id']}/approve/", {}).status_code == 404
    assert api_as(reader).get("/api/v1/approvals/").status_code == 403


def test_a_scheduled_window_waits_for_its_start(persona_mappings, requester, api_as):
    start = timezone.now() + timedelta(days=1)
    body = {"virtualMachines": [{"id": make_vm(IN).arm_id, "ports": [{
        "number": 22, "endTimeUtc": (start + timedelta(hours=1)).isoformat(),
        "allowedSourceAddressPrefix": "203.0.113.9"}]}], "justification": "maintenance",
        "startTimeUtc": start.isoformat()}
    response = api_as(requester).post("/api/v1/requests/", body)
    assert response.status_code == 201, response.content
    assert response.json()["state"] == "scheduled"


def test_every_field_of_a_decided_request_is_in_the_schema(manual, requester, approver, api_as, client):
    created = ask(api_as(requester), make_vm(IN))
    approved = api_as(approver).post(f"/api/v1/requests/{created['id']}/approve/", {"comment": "ok"}).json()
    mine = api_as(requester).get(f"/api/v1/requests/{created['id']}/").json()
    schemas = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["components"]["schemas"]
    documented = {name: set(schemas[name]["properties"]) for name in ("Request", "Approval", "DecisionRecord")}
    assert set(mine) <= documented["Request"] and set(approved) <= documented["Approval"]
    assert mine["approvals"] and set(mine["approvals"][0]) == documented["DecisionRecord"]
    assert "approvals" in schemas["Request"]["required"]
