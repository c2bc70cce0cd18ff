"""Every write reads its body: not JSON is a 415, malformed JSON or a field the write does not have a 400, and
nothing is done. A write that takes no fields (close, removing JIT) still takes no body or ``{}``.

Objects are made at a scope without the emulator (``tests.policies.factories``); nothing here calls Azure.
"""
from __future__ import annotations

import pytest

from policies.access.models import AccessRequest
from policies.models import PolicyChange
from tests.plugins.personas import IN_SCOPE
from tests.policies.access.factories import make_access_request
from tests.policies.factories import make_vm

pytestmark = pytest.mark.django_db
IN = f"{IN_SCOPE}/resourceGroups/rg-api"
NO_FIELDS = "this body has no fields: send {} or no body"


@pytest.fixture
def mine(persona_mappings, requester):
    """An open request of the requester's on a VM in the personas' scope."""
    access = make_access_request(IN)
    AccessRequest.objects.filter(pk=access.pk).update(requester=requester, requester_name=requester.username)
    return access


def _writes(mine) -> list[tuple[str, str, str]]:
    """(persona, method, URL) of every write of the API."""
    vm = make_vm(IN)
    return [("requester", "post", f"/api/v1/requests/{mine.pk}/close/"),
            ("requester", "post", f"/api/v1/requests/{mine.pk}/extend/"),
            ("requester", "post", "/api/v1/requests/"),
            ("approver", "post", f"/api/v1/requests/{mine.pk}/approve/"),
            ("approver", "post", f"/api/v1/requests/{mine.pk}/deny/"),
            ("policy_admin", "put", f"/api/v1/vms/{vm.pk}/jit/"),
            ("policy_admin", "delete", f"/api/v1/vms/{vm.pk}/jit/")]


def _nothing_done(mine) -> None:
    mine.refresh_from_db()
    assert mine.closed_at is None and not mine.approvals.exists()
    assert AccessRequest.objects.count() == 1 and not PolicyChange.objects.exists()


@pytest.mark.parametrize(("body", "content_type", "status", "detail"), [
    ("close it", "text/plain", 415, 'Unsupported media type "text/plain" in request.'),
    ("reason=done", "application/x-www-form-urlencoded", 415, "Unsupported media type"),
    ("{nope", "application/json", 400, "JSON parse error"),
    ('{"reason": "done", "note": 1}', "application/json", 400, "reason: unknown field"),
    # Half of a UTF-16 pair escaped alone is no character: no answer naming it, nor any database, could hold it.
    ('{"\\ud800": 1}', "application/json", 400, "JSON parse error - text holds \\ud800"),
    ('{"comment": "ok \\udfff", "ports": ["\\udc00"]}', "application/json", 400,
     "JSON parse error - text holds \\udfff"),
])
def test_every_write_refuses_a_body_it_cannot_use_and_does_nothing(mine, requester, approver, policy_admin, api_as,
                                                                   body, content_type, status, detail):
    callers = {"requester": api_as(requester), "approver": api_as(approver), "policy_admin": api_as(policy_admin)}
    for persona, method, url in _writes(mine):
        caller = callers[persona]
        response = getattr(caller.client, method)(url, data=body, content_type=content_type, **caller.headers)
        assert (response.status_code, response["Content-Type"]) == (status, "application/json"), (url, response.content)
        assert detail in response.json()["detail"], (url, response.json())
    _nothing_done(mine)


def test_closing_names_the_unknown_field_and_says_it_takes_none(mine, requester, api_as):
    response = api_as(requester).post(f"/api/v1/requests/{mine.pk}/close/", {"reason": "done"})
    assert response.status_code == 400
    assert response.json()["errors"] == [f"reason: unknown field ({NO_FIELDS})."]
    caller = api_as(requester)
    for body in ("[]", '"close"', "null", "5"):  # JSON, but not an object
        refused = caller.client.post(f"/api/v1/requests/{mine.pk}/close/", data=body, content_type="application/json",
                                     **caller.headers)
        assert refused.status_code == 400, (body, refused.content)
    _nothing_done(mine)


@pytest.mark.parametrize(("body", "content_type"), [(None, None), ("", "application/json"), ("", "text/plain"),
                                                    ("{}", "application/json")])
def test_a_close_or_a_jit_removal_takes_no_body_or_an_empty_object(mine, requester, policy_admin, api_as, body,
                                                                   content_type):
    vm = make_vm(IN)
    for caller, method, url, status in ((api_as(requester), "post", f"/api/v1/requests/{mine.pk}/close/", 200),
                                        (api_as(policy_admin), "delete", f"/api/v1/vms/{vm.pk}/jit/", 202)):
        if body is None:  # no body and no Content-Type, as curl -X POST sends it (the test client's post sends one)
            response = caller.client.generic(method.upper(), url, **caller.headers)
        else:
            response = getattr(caller.client, method)(url, data=body, content_type=content_type, **caller.headers)
        assert response.status_code == status, (url, response.content)
    mine.refresh_from_db()
    assert mine.closed_at is not None and PolicyChange.objects.count() == 1


def test_the_schema_documents_the_close_and_removal_bodies(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    close = schema["paths"]["/api/v1/requests/{id}/close/"]["post"]
    body = close["requestBody"]
    assert not body.get("required") and body["content"]["application/json"]["schema"]["additionalProperties"] is False
    assert body["content"]["application/json"]["schema"]["maxProperties"] == 0
    removal = schema["paths"]["/api/v1/vms/{id}/jit/"]["delete"]
    for operation in (close, removal):
        assert {"400", "415"} <= set(operation["responses"])


def test_a_duration_typed_with_other_scripts_digits_is_refused_as_on_the_pages(mine, requester, policy_admin, api_as):
    """The pages take hours and minutes with the digits 0 to 9 only; ``PT\\uff12H`` (a full-width 2) was set as
    two hours."""
    vm = make_vm(IN)
    put = api_as(policy_admin).put(f"/api/v1/vms/{vm.pk}/jit/", {"ports": [
        {"number": 22, "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT\uff12H"}]})
    assert put.status_code == 400 and "is not an ISO 8601 duration" in put.json()["detail"], put.json()
    extend = api_as(requester).post(f"/api/v1/requests/{mine.pk}/extend/", {"duration": "PT\uff11H"})
    assert extend.status_code == 400 and "is not an ISO 8601 duration" in extend.json()["detail"], extend.json()
    _nothing_done(mine)
