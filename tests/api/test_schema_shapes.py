"""Real answers of the main endpoints, walked against the components of the API's own OpenAPI schema.

Objects are closed here (``additionalProperties: false`` wherever the schema lists properties), so a key the
endpoint returns but the schema does not document fails as surely as a documented key that is missing or has
another type.
"""
from __future__ import annotations

import copy

import pytest
from django.test import Client
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from audit.filtersets import OPERATION_CHOICES
from tests.api.test_schema_fuzz import everything_user
from tests.plugins.personas import IN_SCOPE
from tests.policies.access.factories import ask, make_access_request, rule
from tests.policies.factories import make_policy_change, make_vm

pytestmark = pytest.mark.django_db


def closed(node):
    """OpenAPI 3.0 as JSON Schema: ``nullable`` becomes a null type, listed properties close the object."""
    if isinstance(node, list):
        return [closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: closed(value) for key, value in node.items()}
    if node.pop("nullable", False):
        node = {"anyOf": [node, {"type": "null"}]}
    elif "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    return node


def referenced(node, schemas: dict, found: set[str] | None = None) -> set[str]:
    """The names of the components ``node`` refers to, and those they refer to in turn."""
    found = set() if found is None else found
    if isinstance(node, list):
        for item in node:
            referenced(item, schemas, found)
    elif isinstance(node, dict):
        name = node.get("$ref", "").rpartition("/")[2]
        if name and name not in found:
            found.add(name)
            referenced(schemas[name], schemas, found)
        for value in node.values():
            referenced(value, schemas, found)
    return found


@pytest.fixture
def shape_of(client):
    document = closed(copy.deepcopy(client.get("/api/schema/", HTTP_ACCEPT="application/json").json()))
    registry = Registry().with_resource("urn:api", Resource.opaque(document))

    def check(body, component: str) -> list[str]:
        validator = Draft202012Validator({"$ref": f"urn:api#/components/schemas/{component}"}, registry=registry)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]

    return check


def test_the_main_endpoints_answer_the_shapes_their_schema_documents(prod, requester, approver, policy_admin,
                                                                      auditor, api_as, shape_of):
    mine = ask(requester, {"web-02": [22]})
    rule(IN_SCOPE, "manual", approvals_required=1)
    waiting = ask(requester, {"web-01": [22]})
    admin, person = api_as(policy_admin), api_as(requester)
    vm_id = admin.get("/api/v1/vms/", {"search": "web-02"}).json()["results"][0]["id"]
    accepted = admin.put(f"/api/v1/vms/{vm_id}/jit/", {"ports": [
        {"number": 22, "protocol": "*", "allowedSourceAddressPrefix": ["*"], "maxRequestAccessDuration": "PT3H"},
        {"number": 3389, "protocol": "TCP", "allowedSourceAddressPrefixes": ["10.0.0.0/8", "192.0.2.1"],
         "maxRequestAccessDuration": "PT1H"}]})
    answers = [
        (person.get("/api/v1/me/"), 200, "Me"),
        (admin.get("/api/v1/vms/"), 200, "VmPage"),
        (admin.get(f"/api/v1/vms/{vm_id}/"), 200, "Vm"),
        (admin.get(f"/api/v1/vms/{vm_id}/jit/"), 200, "VmJit"),
        (accepted, 202, "PolicyChangeAccepted"),
        (admin.get(accepted.json()["statusUrl"]), 200, "PolicyChange"),
        (person.get("/api/v1/requests/"), 200, "RequestPage"),
        (admin.get("/api/v1/requests/", {"all": "1"}), 200, "RequestPage"),
        (person.get(f"/api/v1/requests/{mine.pk}/"), 200, "Request"),
        (api_as(approver).get(f"/api/v1/requests/{waiting.pk}/"), 200, "Request"),
        (api_as(approver).get("/api/v1/approvals/"), 200, "ApprovalPage"),
        (api_as(auditor).get("/api/v1/audit/events/", {"source": "portal"}), 200, "AuditPage"),
        (api_as(auditor).get("/api/v1/audit/events/"), 200, "AuditPage"),
        (person.post(f"/api/v1/requests/{mine.pk}/close/"), 200, "Request"),
        (api_as(approver).post(f"/api/v1/requests/{waiting.pk}/approve/", {"comment": "ok"}), 200, "Approval"),
        (person.get("/api/v1/vms/", {"state": "sideways"}), 400, "Error"),
        (person.get("/api/v1/vms/0/"), 404, "Error"),
        (api_as(requester).get("/api/v1/audit/events/"), 403, "Error"),
    ]
    for response, status, component in answers:
        assert response.status_code == status, (component, response.content[:500])
        body = response.json()
        assert shape_of(body, component) == [], (component, body)
    assert shape_of({"username": "x", "displayName": "", "authentication": "a", "roles": [], "extra": 1}, "Me")


def test_every_operation_documents_the_429_its_throttles_answer(client, requester, api_as, settings, shape_of):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operations = [(path, method, op) for path, item in schema["paths"].items() for method, op in item.items()]
    assert len(operations) >= 15
    for path, method, operation in operations:
        documented = operation["responses"].get("429", {}).get("content", {}).get("application/json", {})
        assert documented.get("schema") == {"$ref": "#/components/schemas/Error"}, (method, path)
    settings.API_THROTTLE_USER = "1/min"
    alice = api_as(requester)
    alice.get("/api/v1/me/")
    throttled = alice.get("/api/v1/me/")
    assert throttled.status_code == 429 and shape_of(throttled.json(), "Error") == []


def test_every_operation_documents_the_406_of_a_format_or_accept_it_does_not_answer(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            documented = operation["responses"].get("406", {}).get("content", {}).get("application/json", {})
            assert documented.get("schema") == {"$ref": "#/components/schemas/Error"}, (method, path)


def test_every_operation_documents_the_400_of_a_bad_query_and_each_body_the_415_of_another_type(
        client, persona_mappings, api_as, shape_of):
    """What the API answers a query with a NUL character (400, on every operation) and a body that is not JSON
    (415, on every operation with a body) is in the schema: a client generated from it knows these answers."""
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    user = everything_user()
    everything = api_as(user)
    scope = f"{IN_SCOPE}/resourceGroups/rg-api"
    access = make_access_request(scope)
    access.requester = user  # extending is the requester's: anyone else is refused before the body is read
    access.save(update_fields=["requester"])
    ids = {"/api/v1/vms/": make_vm(scope).pk, "/api/v1/requests/": access.pk,
           "/api/v1/policy-changes/": make_policy_change(scope).pk}
    operations = [(path, method, op) for path, item in schema["paths"].items() for method, op in item.items()]
    assert len(operations) >= 15
    for path, method, operation in operations:
        url = path.replace("{id}", str(next((pk for prefix, pk in ids.items() if path.startswith(prefix)), 0)))
        answers = {"400": everything.client.generic(method.upper(), f"{url}?q=a%00b", **everything.headers)}
        if "requestBody" in operation:
            answers["415"] = everything.client.generic(method.upper(), url, "ports=22", content_type="text/plain",
                                                       **everything.headers)
        for status, response in answers.items():
            documented = operation["responses"].get(status, {}).get("content", {}).get("application/json", {})
            assert documented.get("schema") == {"$ref": "#/components/schemas/Error"}, (status, method, path)
            assert response.status_code == int(status), (method, path, response.content)
            assert shape_of(response.json(), "Error") == [], (method, path)


def test_the_audit_searchs_choice_filters_list_their_choices(client):
    parameters = {p["name"]: p["schema"] for p in
                  client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]["/api/v1/audit/events/"][
                      "get"]["parameters"]}
    assert sorted(parameters["status"]["enum"]) == ["Accepted", "Failed", "Started", "Succeeded"]
    assert sorted(parameters["operation"]["enum"]) == sorted(value for value, _label in OPERATION_CHOICES) != []


def test_every_error_status_answers_the_one_error_shape(persona_mappings, requester, reader, api_as, settings,
                                                        shape_of):
    alice, frank = api_as(requester), api_as(reader)
    answers = {
        400: frank.get("/api/v1/vms/", {"os": "BeOS"}),
        401: Client().get("/api/v1/me/", HTTP_AUTHORIZATION="Bearer jit_nope"),
        403: frank.get("/api/v1/audit/events/"),
        404: frank.get("/api/v1/vms/0/"),
        405: frank.client.patch("/api/v1/vms/", **frank.headers),
        406: frank.get("/api/v1/vms/", {"format": "xml"}),
        415: alice.client.post("/api/v1/requests/", data="x", content_type="text/plain", **alice.headers),
    }
    settings.API_THROTTLE_USER = "1/min"
    alice.get("/api/v1/me/")
    answers[429] = alice.get("/api/v1/me/")
    for status, response in answers.items():
        assert response.status_code == status and response["Content-Type"] == "application/json", status
        body = response.json()
        assert shape_of(body, "Error") == [] and body["errors"] and body["detail"], (status, body)


def test_the_answers_that_make_something_document_its_location(client):
    """A new request or extension (201, or 200 for its retry) and a queued policy change (202) say where it is."""
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    made = {("/api/v1/requests/", "post"): ["200", "201"], ("/api/v1/requests/{id}/extend/", "post"): ["200", "201"],
            ("/api/v1/vms/{id}/jit/", "put"): ["202"], ("/api/v1/vms/{id}/jit/", "delete"): ["202"]}
    for (path, method), statuses in made.items():
        for status in statuses:
            headers = paths[path][method]["responses"][status].get("headers", {})
            assert headers.get("Location", {}).get("schema") == {"type": "string", "format": "uri"}, (path, status)


def test_a_jit_put_may_send_back_the_get_answer_and_every_request_body_documents_that_it_is_closed(
        client, persona_mappings, policy_admin, api_as, shape_of):
    """Request bodies refuse fields they do not have (a 400 naming them): the schema says so with
    ``additionalProperties: false``, and lists the GET answer's read-only fields a ``PUT`` of JIT ports accepts."""
    document = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    schemas = document["components"]["schemas"]
    bodies = referenced([op["requestBody"] for item in document["paths"].values() for op in item.values()
                         if "requestBody" in op], schemas)
    assert bodies == {"PolicyPutRequest", "PolicyPortInRequest", "RequestCreateRequest", "RequestVmInRequest",
                      "RequestPortInRequest", "ExtendRequest", "DecisionRequest"}
    assert sorted(name for name in bodies if schemas[name].get("additionalProperties") is not False) == []
    assert set(schemas["PolicyPutRequest"]["properties"]) == set(schemas["VmJit"]["properties"])
    assert schemas["PolicyPutRequest"]["required"] == ["ports"]
    vm = make_vm(f"{IN_SCOPE}/resourceGroups/rg-api")
    answer = api_as(policy_admin).get(f"/api/v1/vms/{vm.pk}/jit/").json()
    assert shape_of(answer, "PolicyPutRequest") == []
