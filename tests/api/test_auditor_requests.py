"""Auditors read the access requests in their audit scope through the API as on the pages: the list (``all=1``) and
one request, read only; a request spanning their scope and beyond names no VM outside it (``withheld`` counts them)."""
from __future__ import annotations

import pytest

from accounts.models import RoleMapping
from policies.access.models import AccessRequest, AccessRequestPort, Approval, ApprovalState
from tests.plugins.personas import IN_SCOPE, OUT_OF_SCOPE
from tests.policies.access.factories import add_named_vm, make_access_request
from tests.words import names

IN = f"{IN_SCOPE}/resourceGroups/rg-audited"
MARKER = "[withheld: outside your scope]"

pytestmark = pytest.mark.django_db


def test_an_auditor_reads_requests_in_their_scope_and_nothing_else(persona_mappings, auditor, api_as):
    theirs = make_access_request(IN)
    elsewhere = make_access_request(f"{OUT_OF_SCOPE}/resourceGroups/rg-audited")
    api = api_as(auditor)
    one = api.get(f"/api/v1/requests/{theirs.pk}/")
    assert one.status_code == 200, one.content
    body = one.json()
    assert [vm["name"] for vm in body["virtualMachines"]] == ["vm-matrix"] and body["withheld"] == 0
    assert [(p["status"], p["connection"]) for p in body["virtualMachines"][0]["ports"]] == [("open", None)]
    assert api.get(f"/api/v1/requests/{elsewhere.pk}/").status_code == 404
    assert [r["id"] for r in api.get("/api/v1/requests/", {"all": "1"}).json()["results"]] == [theirs.pk]
    assert api.get("/api/v1/requests/").json()["results"] == []  # without all=1: their own, none


def test_an_auditors_close_or_extend_is_a_403_saying_who_may(persona_mappings, auditor, api_as):
    theirs = make_access_request(IN)
    api = api_as(auditor)
    closed = api.post(f"/api/v1/requests/{theirs.pk}/close/")
    assert closed.status_code == 403
    assert closed.json()["detail"] == "Only the requester or a policy admin may close this request."
    extended = api.post(f"/api/v1/requests/{theirs.pk}/extend/", {"duration": "PT1H"})
    assert extended.status_code == 403
    assert extended.json()["detail"] == "Only the requester may extend their own request (Azure records them)."
    assert api.post(f"/api/v1/requests/{theirs.pk}/approve/", {"comment": "ok"}).status_code == 404  # an approver's
    theirs.refresh_from_db()
    assert theirs.closed_at is None and not AccessRequest.objects.filter(extends=theirs).exists()
    assert not Approval.objects.exists()
    elsewhere = make_access_request(f"{OUT_OF_SCOPE}/resourceGroups/rg-audited")
    assert api.post(f"/api/v1/requests/{elsewhere.pk}/close/").status_code == 404


def test_a_narrow_auditor_reads_a_mixed_request_without_the_vm_outside_their_scope(persona_mappings, auditor,
                                                                                    api_as, django_user_model):
    RoleMapping.objects.filter(source_value="JIT.Auditor").update(scope=IN)  # one resource group
    mixed = make_access_request(IN)
    add_named_vm(mixed, f"{IN_SCOPE}/resourceGroups/rg-hidden", "sql-secret", number=1433, address="51.105.20.9")
    AccessRequestPort.objects.filter(request=mixed, number=22).update(
        last_error="InvalidOperation: the call for sql-secret port 1433 failed")
    AccessRequest.objects.filter(pk=mixed.pk).update(justification="Patch sql-secret tonight",
                                                     approval_state=ApprovalState.APPROVED, approvals_required=1)
    Approval.objects.create(request=mixed, approver=django_user_model.objects.create(username="approving"),
                            approver_name="Someone", decision="approve", comment="ok for sql-secret only")
    api = api_as(auditor)
    one = api.get(f"/api/v1/requests/{mixed.pk}/")
    listed = api.get("/api/v1/requests/", {"all": "1"})
    for answer, body in ((one, one.json()), (listed, listed.json()["results"][0])):
        assert answer.status_code == 200, answer.content
        text = answer.content.decode()
        assert "sql-secret" not in text and "51.105.20.9" not in text and not names(text, "1433")
        assert [vm["name"] for vm in body["virtualMachines"]] == ["vm-matrix"] and body["withheld"] == 1
        assert body["justification"] == MARKER and body["approvals"][0]["comment"] == MARKER
        assert body["virtualMachines"][0]["ports"][0]["error"] == f"InvalidOperation: {MARKER}"
    own = api_as(django_user_model.objects.get(pk=mixed.requester_id)).get(f"/api/v1/requests/{mixed.pk}/").json()
    assert own["withheld"] == 0 and own["justification"] == "Patch sql-secret tonight"
    assert sorted(vm["name"] for vm in own["virtualMachines"]) == ["sql-secret", "vm-matrix"]


def test_the_api_search_finds_no_request_by_words_its_justification_withholds(persona_mappings, auditor, api_as,
                                                                                django_user_model):
    """``q`` as the Requests page's search: a narrow auditor finds a request spanning scopes by what they are shown
    of it (its VM in scope, its requester), not by the hidden VM's name or other words of a justification naming it,
    which reads withheld; a justification naming no such VM is shown whole and found."""
    RoleMapping.objects.filter(source_value="JIT.Auditor").update(scope=IN)
    mixed = make_access_request(IN)
    add_named_vm(mixed, f"{IN_SCOPE}/resourceGroups/rg-hidden", "sql-secret", number=1433)
    AccessRequest.objects.filter(pk=mixed.pk).update(justification="Patch sql-secret tonight")
    whole = make_access_request(IN)
    add_named_vm(whole, f"{IN_SCOPE}/resourceGroups/rg-hidden", "sql-other", number=1433)
    AccessRequest.objects.filter(pk=whole.pk).update(justification="Patch tonight, INC-4711")
    api = api_as(auditor)

    def found(text: str) -> list[int]:
        answer = api.get("/api/v1/requests/", {"all": "1", "q": text})
        assert answer.status_code == 200, answer.content
        return sorted(r["id"] for r in answer.json()["results"])

    assert found("tonight") == [whole.pk] and found("sql-secret") == [] and found("INC-4711") == [whole.pk]
    assert found("vm-matrix") == sorted([mixed.pk, whole.pk]) and found(mixed.requester_name) == [mixed.pk]
    own = api_as(django_user_model.objects.get(pk=mixed.requester_id)).get("/api/v1/requests/", {"q": "tonight"})
    assert [r["id"] for r in own.json()["results"]] == [mixed.pk]
