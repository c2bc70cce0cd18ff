"""Each endpoint's authorization (in scope, out of scope, no role) and its validation errors (400 with words).

Objects are made at a scope without the emulator (``tests.policies.factories``); nothing here calls Azure.
"""
from __future__ import annotations

import base64
import codecs
import csv
import io
import json
from datetime import UTC, timedelta

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from audit.models import ActivityLogEvent, AuditEvent
from policies import rules
from policies.access.models import AccessRequest
from policies.models import PolicyChange, VirtualMachine
from tests.accounts.test_authorization_matrix import make_activity_event, make_audit_event
from tests.plugins.personas import IN_SCOPE, OUT_OF_SCOPE
from tests.policies.access.factories import make_access_request
from tests.policies.factories import make_policy_change, make_vm
from tests.words import names

pytestmark = pytest.mark.django_db
IN = f"{IN_SCOPE}/resourceGroups/rg-api"
OUT = f"{OUT_OF_SCOPE}/resourceGroups/rg-api"


@pytest.fixture
def vms(persona_mappings):
    return make_vm(IN), make_vm(OUT)


# --- VMs -------------------------------------------------------------------------------------------------------
def test_the_vm_list_holds_only_vms_in_scope(vms, reader, api_as):
    inside, _outside = vms
    response = api_as(reader).get("/api/v1/vms/")
    assert response.status_code == 200
    body = response.json()
    assert "count" not in body and [v["armId"] for v in body["results"]] == [inside.arm_id]
    vm = body["results"][0]
    assert vm["state"] == "configured" and vm["ports"][0] == {
        "number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}
    assert (vm["approvedRequests7d"], vm["firewallId"], vm["firewallPublicIp"]) == (
        inside.approved_requests_7d, inside.firewall_id, inside.firewall_public_ip)


@pytest.mark.parametrize(("params", "count"), [
    ({"state": "configured"}, 1), ({"state": "unsupported"}, 0), ({"search": "matrix"}, 1), ({"search": "nope"}, 0),
    ({"resourceGroup": "RG-API"}, 1), ({"subscription": IN_SCOPE.rsplit("/", 1)[1]}, 1),
    ({"subscription": OUT_OF_SCOPE.rsplit("/", 1)[1]}, 0)])
def test_the_vm_list_filters(vms, reader, api_as, params, count):
    assert len(api_as(reader).get("/api/v1/vms/", params).json()["results"]) == count


def test_a_bad_filter_is_a_400_with_the_reason(vms, reader, api_as):
    response = api_as(reader).get("/api/v1/vms/", {"state": "sideways"})
    assert response.status_code == 400 and "state must be one of" in response.json()["detail"]


def test_a_vm_out_of_scope_is_404_and_without_the_role_403(vms, reader, outsider, api_as):
    inside, outside = vms
    client = api_as(reader)
    assert client.get(f"/api/v1/vms/{inside.pk}/").status_code == 200
    assert client.get(f"/api/v1/vms/{outside.pk}/").status_code == 404
    assert client.get(f"/api/v1/vms/{outside.pk}/jit/").status_code == 404
    assert api_as(outsider).get("/api/v1/vms/").status_code == 403
    assert api_as(outsider).get(f"/api/v1/vms/{inside.pk}/").status_code == 404


# --- JIT ports -------------------------------------------------------------------------------------------------
def test_only_policy_admins_in_scope_change_jit_ports(vms, reader, policy_admin, api_as):
    inside, outside = vms
    body = {"ports": [{"number": 3389, "allowedSourceAddressPrefix": "10.0.0.0/24"}]}
    refused = api_as(reader).put(f"/api/v1/vms/{inside.pk}/jit/", body)
    assert refused.status_code == 403 and "policy admins" in refused.json()["detail"]
    assert api_as(policy_admin).put(f"/api/v1/vms/{outside.pk}/jit/", body).status_code == 404
    accepted = api_as(policy_admin).put(f"/api/v1/vms/{inside.pk}/jit/", body)
    assert accepted.status_code == 202, accepted.content
    change = PolicyChange.objects.get(pk=accepted.json()["changes"][0]["id"])
    assert change.desired == {inside.arm_id: [{"number": 3389, "protocol": "*", "maxRequestAccessDuration": "PT3H",
                                               "allowedSourceAddressPrefix": "10.0.0.0/24"}]}
    assert accepted["Location"].endswith(f"/api/v1/policy-changes/{change.pk}/")
    assert api_as(reader).get(f"/api/v1/vms/{inside.pk}/jit/").json()["pendingChanges"] == [change.pk]


def test_jit_writes_through_the_api_record_the_clients_address(vms, policy_admin, api_as, settings):
    settings.ACCESS_TRUSTED_PROXIES = ["10.0.0.0/8"]
    proxied = {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    inside, _outside = vms
    client = api_as(policy_admin)
    body = {"ports": [{"number": 3389, "allowedSourceAddressPrefix": "*"}]}
    assert client.put(f"/api/v1/vms/{inside.pk}/jit/", body, **proxied).status_code == 202
    assert client.delete(f"/api/v1/vms/{inside.pk}/jit/", **proxied).status_code == 202
    rows = AuditEvent.objects.filter(action__startswith="policy.").order_by("id")
    assert list(rows.values_list("action", "client_ip")) == [("policy.save_requested", "203.0.113.9"),
                                                              ("policy.remove_requested", "203.0.113.9")]


def test_whoever_sees_a_vm_reads_its_jit_ports_as_on_its_page(vms, requester, auditor, api_as):
    inside, outside = vms
    for user in (requester, auditor):
        answer = api_as(user).get(f"/api/v1/vms/{inside.pk}/jit/")
        assert answer.status_code == 200 and [p["number"] for p in answer.json()["ports"]] == [22]
        assert api_as(user).get(f"/api/v1/vms/{outside.pk}/jit/").status_code == 404
    body = {"ports": [{"number": 3389, "allowedSourceAddressPrefix": "*"}]}
    assert api_as(requester).put(f"/api/v1/vms/{inside.pk}/jit/", body).status_code == 403


@pytest.mark.parametrize(("body", "message"), [
    ({}, "ports"),
    ({"ports": []}, "ports"),
    ({"ports": [{"number": 0, "allowedSourceAddressPrefix": "*"}]}, "number"),
    ({"ports": [{"number": "\u0662\u0662", "allowedSourceAddressPrefix": "*"}]}, "digits 0 to 9"),  # int() reads 22
    ({"ports": [{"number": 22}]}, "allowedSourceAddressPrefix"),
    ({"ports": [{"number": 22, "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT25H"}]},
     "between 5 minutes and 24 hours"),
    ({"ports": [{"number": 22, "allowedSourceAddressPrefix": "not-an-ip"}]}, "not an IP address"),
    ({"ports": [{"number": 22, "allowedSourceAddressPrefix": ["10.0.0.0/8", "fe80::1%eth0"]}]},
     "'fe80::1%eth0' names a network interface"),
    ({"ports": [{"number": 22, "protocol": "ICMP", "allowedSourceAddressPrefix": "*"}]}, "TCP, UDP or Any"),
    ({"ports": [{"number": 22, "allowedSourceAddressPrefix": 5}]}, "string or a list"),
    # The schema's maxLength: 64, for each prefix of a list as for one string.
    ({"ports": [{"number": 22, "allowedSourceAddressPrefix": ["10.0.0.0/8", "10.1.2.3" + " " * 60]}]},
     "A prefix is at most 64 characters; this one has 68."),
    ({"ports": [{"number": 22, "allowedSourceAddressPrefix": "*"}, {"number": 22, "allowedSourceAddressPrefix": "*"}]},
     "listed twice"),
    ({"ports": "22"}, "ports"),
    ({"ports": [{"number": 22, "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "P9999999999D"}]},
     "far longer"),
])
def test_invalid_ports_are_a_400_with_the_reason(vms, policy_admin, api_as, body, message):
    response = api_as(policy_admin).put(f"/api/v1/vms/{vms[0].pk}/jit/", body)
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"] and response.json()["errors"]
    assert not PolicyChange.objects.exists()


def test_a_jit_put_takes_the_get_answer_back_and_refuses_any_other_unknown_field(vms, policy_admin, api_as):
    inside, _outside = vms
    client = api_as(policy_admin)
    url = f"/api/v1/vms/{inside.pk}/jit/"
    answer = client.get(url).json()
    assert set(answer) == {"id", "ports", "state", "policyId", "pendingChanges"}  # every read-only field is sent back
    answer["ports"].append({"number": 3389, "allowedSourceAddressPrefix": "10.0.0.0/24"})
    accepted = client.put(url, answer)
    assert accepted.status_code == 202, accepted.content
    assert [p["number"] for p in accepted.json()["changes"][0]["desired"][inside.arm_id]] == [22, 3389]
    ssh = {"number": 22, "allowedSourceAddressPrefix": "*"}
    refused = client.put(url, {"ports": [ssh], "port": [ssh], "maxRequestAccessDuration": "PT1H"})
    assert refused.status_code == 400, refused.content
    assert refused.json()["errors"] == [
        f"{name}: unknown field (expected id, pendingChanges, policyId, ports, state)."
        for name in ("maxRequestAccessDuration", "port")]
    assert PolicyChange.objects.count() == 1


@pytest.mark.parametrize("field", ["allowedSourceAddressPrefix", "allowedSourceAddressPrefixes"])
def test_a_jit_put_takes_as_many_sources_per_port_as_the_page_and_names_the_limit_past_it(vms, policy_admin, api_as,
                                                                                        field):
    """The API refused more than 100 sources per port while the page took 4,000 (``rules.MAX_SOURCES``)."""
    url, client = f"/api/v1/vms/{vms[0].pk}/jit/", api_as(policy_admin)
    many = [f"10.{i // 250}.{i % 250}.0/24" for i in range(rules.MAX_SOURCES)]
    accepted = client.put(url, {"ports": [{"number": 22, field: many}]})
    assert accepted.status_code == 202, accepted.content
    assert accepted.json()["changes"][0]["desired"][vms[0].arm_id][0]["allowedSourceAddressPrefixes"] == many
    refused = client.put(url, {"ports": [{"number": 3389, field: [*many, "192.0.2.1"]}]})
    assert refused.status_code == 400, refused.content
    assert "at most 4,000 source addresses or ranges per port (this has 4,001)" in refused.json()["detail"]
    assert PolicyChange.objects.count() == 1


def test_malformed_json_is_a_400(vms, policy_admin, api_as):
    client = api_as(policy_admin)
    response = client.client.put(f"/api/v1/vms/{vms[0].pk}/jit/", data="{nope", content_type="application/json",
                                 **client.headers)
    assert response.status_code == 400 and "JSON" in response.json()["detail"]


@pytest.mark.parametrize("depth", [25, 600, 100_000])
def test_a_deeply_nested_body_is_a_400_not_a_500(vms, policy_admin, api_as, depth):
    client = api_as(policy_admin)
    for method, url in (("put", f"/api/v1/vms/{vms[0].pk}/jit/"), ("post", "/api/v1/requests/")):
        body = '{"ports": ' + "[" * depth + "]" * depth + "}"
        response = getattr(client.client, method)(url, data=body, content_type="application/json", **client.headers)
        assert response.status_code == 400, response.content
        assert "nested more than 20 levels" in response.json()["detail"]
    assert not PolicyChange.objects.exists()


@pytest.mark.parametrize(("body", "detail"), [
    ('{"ports": [{"number": 22, "allowedSourceAddressPrefix": "*"}], "ports": []}',
     "JSON parse error - the key 'ports' appears twice in one object."),
    ('{"ports": [{"number": 22, "number": 3389, "allowedSourceAddressPrefix": "*"}]}',
     "JSON parse error - the key 'number' appears twice in one object."),
    ('{"ports": [{"number": 1' + "0" * 5000 + "}]}", "JSON parse error - a number of more than 30 digits."),
])
def test_a_body_with_a_key_twice_or_an_overlong_number_is_a_400_saying_so(vms, policy_admin, api_as, body, detail):
    """Which of two values of one key counts is the reader's choice (Python takes the last, a proxy or a log may
    take the first): such a body is refused, not read one way. A number of thousands of digits was refused in
    Python's words, with advice about sys.set_int_max_str_digits."""
    client = api_as(policy_admin)
    response = client.client.put(f"/api/v1/vms/{vms[0].pk}/jit/", data=body, content_type="application/json",
                                 **client.headers)
    assert (response.status_code, response["Content-Type"]) == (400, "application/json"), response.content
    assert response.json() == {"detail": detail, "errors": [detail]}
    assert not PolicyChange.objects.exists()


def test_a_body_too_large_is_a_json_400_saying_so(vms, policy_admin, api_as, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    client = api_as(policy_admin)
    body = {"ports": [{"number": 22, "allowedSourceAddressPrefix": "*"}], "note": "x" * (2 * 1024 * 1024)}
    response = client.put(f"/api/v1/vms/{vms[0].pk}/jit/", body)
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert response.json()["detail"] == "The request body is larger than the portal accepts (1024 KiB)."
    assert not PolicyChange.objects.exists()



@pytest.mark.parametrize("url", ["/api/v1/vms/", "/api/v1/me/", "/api/v1/requests/"])
def test_a_query_with_too_many_parameters_is_a_json_400_saying_so(vms, reader, api_as, settings, url):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 100
    client = api_as(reader)
    response = client.client.get(f"{url}?" + "&".join(f"p{i}=1" for i in range(101)), **client.headers)
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "The query has more parameters than the portal accepts (100).",
                               "errors": ["The query has more parameters than the portal accepts (100)."]}

def test_a_browser_sessions_write_without_its_csrf_token_is_refused(vms, policy_admin):
    """The API takes the browser session too (the docs page): a write with it and no CSRF token, as another site
    could make the browser send, changes nothing; with the token it is queued, and a bearer token needs none."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(policy_admin)
    assert browser.get("/api/v1/me/").json()["authentication"] == "session"
    url, body = f"/api/v1/vms/{vms[0].pk}/jit/", json.dumps(
        {"ports": [{"number": 22, "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT1H"}]})
    for write in (lambda: browser.put(url, body, content_type="application/json"), lambda: browser.delete(url),
                  lambda: browser.put(url, body, content_type="application/json", HTTP_AUTHORIZATION="Basic x")):
        refused = write()
        assert (refused.status_code, refused["Content-Type"]) == (403, "application/json")
        assert refused.json()["detail"].startswith("CSRF Failed")
    assert not PolicyChange.objects.exists()
    browser.get("/accounts/me/tokens/")  # any page with a form sets the CSRF cookie
    token = browser.cookies[django_settings.CSRF_COOKIE_NAME].value
    assert browser.put(url, body, content_type="application/json", HTTP_X_CSRFTOKEN=token).status_code == 202
    assert PolicyChange.objects.count() == 1


def test_removing_jit_is_queued(vms, policy_admin, reader, api_as):
    inside, outside = vms
    assert api_as(reader).delete(f"/api/v1/vms/{inside.pk}/jit/").status_code == 403
    assert api_as(policy_admin).delete(f"/api/v1/vms/{outside.pk}/jit/").status_code == 404
    response = api_as(policy_admin).delete(f"/api/v1/vms/{inside.pk}/jit/")
    assert response.status_code == 202 and response.json()["changes"][0]["desired"] == {inside.arm_id: None}


def test_the_same_jit_change_sent_again_while_it_is_pending_answers_that_change(vms, policy_admin, api_as):
    inside, _outside = vms
    client = api_as(policy_admin)
    url = f"/api/v1/vms/{inside.pk}/jit/"
    ssh = {"number": 22, "allowedSourceAddressPrefix": "10.0.0.0/24"}
    rdp = {"number": 3389, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT1H"}
    first = client.put(url, {"ports": [ssh, rdp]})
    assert first.status_code == 202, first.content
    again = client.put(url, {"ports": [rdp, {**ssh, "protocol": "*"}]})  # the same ports, in another order
    assert (again.status_code, again.json(), again["Location"]) == (202, first.json(), first["Location"])
    assert PolicyChange.objects.count() == 1
    assert AuditEvent.objects.filter(action="policy.save_requested").count() == 1

    other = client.put(url, {"ports": [ssh]})  # another configuration: a change of its own
    assert other.status_code == 202 and other.json()["changes"][0]["id"] != first.json()["changes"][0]["id"]
    # The first configuration again, now after another change: queued anew, to be applied last as asked.
    last = client.put(url, {"ports": [ssh, rdp]}).json()["changes"][0]["id"]
    assert last not in {first.json()["changes"][0]["id"], other.json()["changes"][0]["id"]}
    assert client.put(url, {"ports": [ssh, rdp]}).json()["changes"][0]["id"] == last

    removal = client.delete(url)
    assert removal.status_code == 202
    assert (client.delete(url).status_code, client.delete(url).json()) == (202, removal.json())
    assert PolicyChange.objects.filter(kind=PolicyChange.Kind.REMOVE).count() == 1
    # Once applied (or failed), the same ask is a new change.
    PolicyChange.objects.update(state=PolicyChange.State.APPLIED)
    assert client.delete(url).json()["changes"][0]["id"] != removal.json()["changes"][0]["id"]


def test_enabling_jit_sent_again_while_it_is_pending_answers_that_change(vms, policy_admin, api_as):
    inside, _outside = vms
    VirtualMachine.objects.filter(pk=inside.pk).update(state="not_configured", ports=[], policy_name="")
    client = api_as(policy_admin)
    body = {"ports": [{"number": 22, "allowedSourceAddressPrefix": "*"}]}
    first = client.put(f"/api/v1/vms/{inside.pk}/jit/", body)
    assert first.status_code == 202 and first.json()["changes"][0]["kind"] == "enable"
    assert client.put(f"/api/v1/vms/{inside.pk}/jit/", body).json() == first.json()
    PolicyChange.objects.update(state=PolicyChange.State.RUNNING)  # a worker applies it: still pending
    assert client.put(f"/api/v1/vms/{inside.pk}/jit/", body).json()["changes"][0]["id"] == first.json()[
        "changes"][0]["id"]
    assert PolicyChange.objects.count() == 1


def test_setting_other_ports_while_jit_is_being_enabled_queues_a_newer_change_as_the_edit_page_does(
        vms, policy_admin, api_as):
    inside, _outside = vms
    VirtualMachine.objects.filter(pk=inside.pk).update(state="not_configured", ports=[], policy_name="")
    client = api_as(policy_admin)
    url = f"/api/v1/vms/{inside.pk}/jit/"
    first = client.put(url, {"ports": [{"number": 22, "allowedSourceAddressPrefix": "*"}]})
    other = client.put(url, {"ports": [{"number": 3389, "allowedSourceAddressPrefix": "*"}]})
    assert (first.status_code, other.status_code) == (202, 202), other.content
    assert other.json()["changes"][0]["id"] != first.json()["changes"][0]["id"]
    assert client.get(url).json()["pendingChanges"] == [
        first.json()["changes"][0]["id"], other.json()["changes"][0]["id"]]


def test_policy_changes_are_read_in_scope(persona_mappings, reader, outsider, api_as):
    inside, outside = make_policy_change(IN), make_policy_change(OUT)
    assert api_as(reader).get(f"/api/v1/policy-changes/{inside.pk}/").json()["state"] == "applied"
    assert api_as(reader).get(f"/api/v1/policy-changes/{outside.pk}/").status_code == 404
    assert api_as(outsider).get(f"/api/v1/policy-changes/{inside.pk}/").status_code == 404


# --- requests --------------------------------------------------------------------------------------------------
def test_requests_of_others_are_seen_in_scope_and_closed_only_by_who_may(persona_mappings, requester, policy_admin,
                                                                         outsider, api_as):
    inside, outside = make_access_request(IN), make_access_request(OUT)
    assert api_as(requester).get(f"/api/v1/requests/{inside.pk}/").status_code == 200
    assert api_as(requester).get(f"/api/v1/requests/{outside.pk}/").status_code == 404
    assert api_as(outsider).get(f"/api/v1/requests/{inside.pk}/").status_code == 404
    assert api_as(requester).get("/api/v1/requests/").json()["results"] == []  # mine only
    assert [r["id"] for r in api_as(policy_admin).get("/api/v1/requests/", {"all": "1"}).json()["results"]] == [
        inside.pk]
    refused = api_as(requester).post(f"/api/v1/requests/{inside.pk}/close/")
    assert refused.status_code == 403 and "requester or a policy admin" in refused.json()["detail"]
    closed = api_as(policy_admin).post(f"/api/v1/requests/{inside.pk}/close/")
    assert closed.status_code == 200 and closed.json()["closedAt"]
    assert AuditEvent.objects.filter(action="access.close_requested", actor=policy_admin).count() == 1


def test_a_requester_whose_role_was_taken_away_still_reads_and_closes_only_their_own(persona_mappings, requester,
                                                                                      outsider, api_as):
    from accounts.models import RoleMapping

    mine, theirs = make_access_request(IN), make_access_request(IN)
    AccessRequest.objects.filter(pk=mine.pk).update(requester=requester, requester_name=requester.username)
    RoleMapping.objects.filter(role="requester").delete()  # the requester's last requester mappings
    api = api_as(requester)
    assert [r["id"] for r in api.get("/api/v1/requests/").json()["results"]] == [mine.pk]
    assert api.get(f"/api/v1/requests/{mine.pk}/").status_code == 200
    assert api.get(f"/api/v1/requests/{theirs.pk}/").status_code == 404
    assert api.post(f"/api/v1/requests/{theirs.pk}/close/").status_code == 404
    assert api.post(f"/api/v1/requests/{mine.pk}/extend/", {"duration": "PT1H"}).status_code == 404
    stranger = api_as(outsider)  # no role, not theirs
    assert stranger.get(f"/api/v1/requests/{mine.pk}/").status_code == 404
    assert stranger.post(f"/api/v1/requests/{mine.pk}/close/").status_code == 404
    closed = api.post(f"/api/v1/requests/{mine.pk}/close/")
    assert closed.status_code == 200 and closed.json()["closedAt"]
    assert AccessRequest.objects.get(pk=theirs.pk).closed_at is None
    assert AuditEvent.objects.filter(action="access.close_requested", actor=requester).count() == 1
    assert AccessRequest.objects.count() == 2  # nothing new asked for


def test_someone_elses_request_shows_only_the_vms_in_the_callers_scope(persona_mappings, requester, policy_admin,
                                                                       approver, api_as):
    from tests.policies.access.factories import add_vm_at

    spanning = make_access_request(IN)  # someone else's, on a VM in the personas' scope ...
    # ... and on one in a subscription none of them may read
    add_vm_at(spanning, OUT, name="vm-elsewhere", number=1433, address="51.105.20.9")
    answers = [api_as(requester).get(f"/api/v1/requests/{spanning.pk}/"),
               api_as(approver).get(f"/api/v1/requests/{spanning.pk}/"),
               api_as(policy_admin).get("/api/v1/requests/", {"all": "1"})]
    for answer in answers:
        assert answer.status_code == 200, answer.content
        body = answer.json()
        shown = body["results"][0] if "results" in body else body
        assert [vm["id"] for vm in shown["virtualMachines"]] == [make_vm(IN).arm_id]
        assert "vm-elsewhere" not in answer.content.decode() and "51.105.20.9" not in answer.content.decode()


def test_only_the_requester_reads_the_connection_details_of_a_request(persona_mappings, requester, policy_admin,
                                                                       approver, reader, api_as):
    """Others who may read a request (another requester or a reader at its VM, a policy admin, an approver) see its
    state, ports and times, but not how to connect: ``connection`` and ``mappedPort`` are null, no address."""
    from policies.access.models import AccessRequestPort, AccessRequestVm

    theirs = make_access_request(IN)  # open, by someone else
    AccessRequestVm.objects.filter(request=theirs).update(address="20.50.10.4", address_kind="firewall")
    AccessRequestPort.objects.filter(request=theirs).update(mapped_port=50022)
    url = f"/api/v1/requests/{theirs.pk}/"
    own = api_as(theirs.requester).get(url).json()["virtualMachines"][0]
    assert own["address"] == "20.50.10.4" and own["ports"][0]["mappedPort"] == 50022
    assert own["ports"][0]["connection"]["endpoint"] == "20.50.10.4:50022"
    for user in (requester, reader, policy_admin, approver):
        answer = api_as(user).get(url)
        assert answer.status_code == 200, answer.content
        [vm] = answer.json()["virtualMachines"]
        assert [(p["status"], p["connection"], p["mappedPort"]) for p in vm["ports"]] == [("open", None, None)]
        assert "address" not in vm and "20.50.10.4" not in answer.content.decode()
    listed = api_as(policy_admin).get("/api/v1/requests/", {"all": "1"}).json()["results"][0]
    assert listed["virtualMachines"][0]["ports"][0]["connection"] is None


def test_an_approver_who_may_read_a_request_is_told_who_may_close_it(persona_mappings, approver, reader, api_as):
    """An approver at its VM reads the request; closing it was a 404 (as if it did not exist), not the 403 another
    reader gets."""
    theirs = make_access_request(IN)
    for user in (reader, approver):
        assert api_as(user).get(f"/api/v1/requests/{theirs.pk}/").status_code == 200
        response = api_as(user).post(f"/api/v1/requests/{theirs.pk}/close/")
        assert response.status_code == 403
        assert response.json()["detail"] == "Only the requester or a policy admin may close this request."
    assert AccessRequest.objects.get(pk=theirs.pk).closed_at is None
    outside = make_access_request(OUT)
    assert api_as(approver).post(f"/api/v1/requests/{outside.pk}/close/").status_code == 404


@pytest.mark.parametrize(("value", "everyone"), [("1", True), ("TRUE", True), ("true", True), ("0", False),
                                                 ("False", False), ("", False)])
def test_all_takes_the_usual_booleans(persona_mappings, policy_admin, value, everyone, api_as):
    theirs = make_access_request(IN)
    response = api_as(policy_admin).get("/api/v1/requests/", {"all": value})
    assert response.status_code == 200, response.content
    assert [r["id"] for r in response.json()["results"]] == ([theirs.pk] if everyone else [])


@pytest.mark.parametrize("value", ["on", "2", "everyone", "x" * 40])
def test_all_with_another_value_is_a_400_naming_it(persona_mappings, policy_admin, value, api_as):
    """``all=on`` read as false: the list answered only the caller's own requests, without a word."""
    make_access_request(IN)
    response = api_as(policy_admin).get("/api/v1/requests/", {"all": value})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("all must be true or false (or 1 or 0), not ") and value[:20] in detail


def test_an_approver_who_may_read_a_request_is_told_only_the_requester_may_extend_it(persona_mappings, approver,
                                                                                    reader, api_as):
    """An approver at its VM reads the request; extending it was a 404 (as if it did not exist), not the 403 another
    reader gets."""
    theirs = make_access_request(IN)
    for user in (reader, approver):
        assert api_as(user).get(f"/api/v1/requests/{theirs.pk}/").status_code == 200
        response = api_as(user).post(f"/api/v1/requests/{theirs.pk}/extend/", {"duration": "PT1H"})
        assert response.status_code == 403
        assert response.json()["detail"] == "Only the requester may extend their own request (Azure records them)."
    assert not AccessRequest.objects.filter(extends=theirs).exists()
    outside = make_access_request(OUT)
    assert api_as(approver).post(f"/api/v1/requests/{outside.pk}/extend/", {"duration": "PT1H"}).status_code == 404


def test_only_the_requester_extends(persona_mappings, policy_admin, requester, api_as):
    """Someone else is refused whatever the body holds (a bad body was answered with its 400 first); the requester's
    bad body is the 400."""
    inside = make_access_request(IN)
    for body in ({"duration": "PT1H"}, {}, {"duration": "P9999999999D"}):
        response = api_as(policy_admin).post(f"/api/v1/requests/{inside.pk}/extend/", body)
        assert response.status_code == 403 and "Only the requester" in response.json()["detail"]
    AccessRequest.objects.filter(pk=inside.pk).update(requester=requester)
    assert api_as(requester).post(f"/api/v1/requests/{inside.pk}/extend/", {}).status_code == 400
    huge = api_as(requester).post(f"/api/v1/requests/{inside.pk}/extend/", {"duration": "P9999999999D"})
    assert huge.status_code == 400 and "far longer" in huge.json()["detail"]
    assert not AccessRequest.objects.filter(extends=inside).exists()


def test_another_requester_is_not_told_a_policy_admin_may_extend(persona_mappings, requester, api_as):
    """Another requester at the VM (who may read the request) was told "Only the requester or a policy admin may
    extend this request", though a policy admin may not."""
    theirs = make_access_request(IN)
    response = api_as(requester).post(f"/api/v1/requests/{theirs.pk}/extend/", {"duration": "PT1H"})
    assert response.status_code == 403
    assert response.json()["detail"] == "Only the requester may extend their own request (Azure records them)."
    assert AccessRequest.objects.count() == 1


def test_an_extension_with_both_duration_and_end_time_is_a_400(persona_mappings, requester, api_as):
    mine = make_access_request(IN)
    AccessRequest.objects.filter(pk=mine.pk).update(requester=requester)
    end = (timezone.now() + timedelta(hours=2)).isoformat()
    response = api_as(requester).post(f"/api/v1/requests/{mine.pk}/extend/", {"duration": "PT1H", "endTimeUtc": end})
    assert response.status_code == 400 and response.json()["detail"] == "Give duration or endTimeUtc, not both."
    assert AccessRequest.objects.count() == 1  # no extension made


@pytest.mark.parametrize(("body", "said"), [
    ({"endTimeUtc": "2020-07-15T17:00:00Z"}, "'endTimeUtc' 2020-07-15T17:00:00Z is not after now"),
    ({"endTimeUtc": "0001-01-01T00:00:00Z"}, "'endTimeUtc' 0001-01-01T00:00:00Z is not after now"),
    ({"duration": "P3000000D"}, "may be opened for at most 3 h")])
def test_an_extension_ending_in_the_past_or_ages_ahead_is_a_400_saying_why(persona_mappings, requester, api_as,
                                                                          body, said):
    """A past end read as a negative window ("an extension of -2 hours 4 minutes"), and one so far off that now plus
    it passes the year 9999 (or so far back that it precedes year 1) was a 500."""
    mine = make_access_request(IN)
    AccessRequest.objects.filter(pk=mine.pk).update(requester=requester)
    response = api_as(requester).post(f"/api/v1/requests/{mine.pk}/extend/", body)
    assert response.status_code == 400, response.content[:300]
    assert said in response.json()["detail"]
    assert AccessRequest.objects.count() == 1  # no extension made


@pytest.mark.parametrize(("body", "message"), [
    ({}, "virtualMachines"),
    ({"virtualMachines": [], "justification": "x"}, "virtualMachines"),
    ({"virtualMachines": [{"id": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/virtualMachines/z",
                           "ports": [{"number": 22, "endTimeUtc": "2099-01-01T00:00:00Z",
                                      "allowedSourceAddressPrefix": "1.2.3.4"}]}], "justification": "x"},
     "that you may request access to"),
    ({"virtualMachines": [{"id": "a", "ports": [{"number": 22, "allowedSourceAddressPrefix": "1.2.3.4"}]}],
      "justification": "x"}, "endTimeUtc"),
    ({"virtualMachines": [{"id": "a", "ports": [{"number": 22, "endTimeUtc": "soon",
                                                 "allowedSourceAddressPrefix": "1.2.3.4"}]}], "justification": "x"},
     "endTimeUtc"),
    # A misspelt field is refused, not ignored: the request would open now instead of at its start.
    ({"virtualMachines": [{"id": "a", "ports": [{"number": 22, "endTimeUtc": "2099-01-01T02:00:00Z",
                                                 "allowedSourceAddressPrefix": "1.2.3.4"}]}], "justification": "x",
      "startTimeUTC": "2099-01-01T01:00:00Z"},
     "startTimeUTC: unknown field (expected justification, startTimeUtc, virtualMachines)."),
    ({"virtualMachines": [{"id": "a", "endTimeUtc": "2099-01-01T02:00:00Z",
                           "ports": [{"number": 22, "allowedSourceAddressPrefix": "1.2.3.4"}]}], "justification": "x"},
     "virtualMachines.0.endTimeUtc: unknown field (expected id, ports)."),
    # A source is named as typed: not "an IP range" for an address, nor by its network (2001::/16).
    ({"virtualMachines": [{"id": "a", "ports": [{"number": 22, "endTimeUtc": "2099-01-01T00:00:00Z",
                                                 "allowedSourceAddressPrefix": "1.2.3.999"}]}], "justification": "x"},
     "'1.2.3.999' is not a valid IP address or range (such as 203.0.113.7 or 203.0.113.0/24)."),
    ({"virtualMachines": [{"id": "a", "ports": [{"number": 22, "endTimeUtc": "2099-01-01T00:00:00Z",
                                                 "allowedSourceAddressPrefix": ["2001:db8::/16"]}]}],
      "justification": "x"}, "'2001:db8::/16' is too wide: ranges must be /32 or narrower."),
    # The schema's maxLength: 64 holds for one string too (stripped, this one would name an address).
    ({"virtualMachines": [{"id": "a", "ports": [{"number": 22, "endTimeUtc": "2099-01-01T00:00:00Z",
                                                 "allowedSourceAddressPrefix": "203.0.113.7" + " " * 54}]}],
      "justification": "x"}, "allowedSourceAddressPrefix: A prefix is at most 64 characters; this one has 65."),
])
def test_invalid_requests_are_a_400_with_the_reason(persona_mappings, requester, api_as, body, message):
    response = api_as(requester).post("/api/v1/requests/", body)
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"]


@pytest.mark.parametrize(("action", "body", "message"), [
    ("extend", {"duration": "PT1H", "reason": "more time"},
     "reason: unknown field (expected duration, endTimeUtc, justification)."),
    ("extend", {"duration": "PT1H", "justification": 5}, "justification: Give text (a JSON string)"),
    ("deny", {"comment": "no", "coment": "no"}, "coment: unknown field (expected comment)."),
])
def test_unknown_or_mistyped_fields_of_an_extension_or_decision_are_a_400(persona_mappings, requester, approver,
                                                                          api_as, action, body, message):
    pending = make_access_request(IN)
    AccessRequest.objects.filter(pk=pending.pk).update(requester=requester)
    caller = api_as(requester if action == "extend" else approver)
    response = caller.post(f"/api/v1/requests/{pending.pk}/{action}/", body)
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"]
    assert AccessRequest.objects.count() == 1 and not pending.approvals.exists()


def test_a_user_without_the_request_role_gets_403(persona_mappings, outsider, api_as):
    body = {"virtualMachines": [{"id": "a", "ports": [{"number": 22, "endTimeUtc": "2099-01-01T00:00:00Z",
                                                      "allowedSourceAddressPrefix": "1.2.3.4"}]}],
            "justification": "x"}
    assert api_as(outsider).post("/api/v1/requests/", body).status_code == 403


def test_a_bad_state_filter_is_a_400(persona_mappings, requester, api_as):
    assert api_as(requester).get("/api/v1/requests/", {"state": "bogus"}).status_code == 400


# --- audit -----------------------------------------------------------------------------------------------------
def test_audit_search_is_restricted_to_the_auditors_scope(persona_mappings, auditor, requester, api_as):
    make_activity_event(IN), make_activity_event(OUT)
    azure = api_as(auditor).get("/api/v1/audit/events/").json()
    assert [e["subscriptionId"] for e in azure["results"]] == [IN_SCOPE.rsplit("/", 1)[1]]
    make_audit_event(IN), make_audit_event(OUT)
    portal = api_as(auditor).get("/api/v1/audit/events/", {"source": "portal", "action": "matrix.probe"}).json()
    assert [e["subscriptionId"] for e in portal["results"]] == [IN_SCOPE.rsplit("/", 1)[1]]
    assert api_as(requester).get("/api/v1/audit/events/").status_code == 403
    assert api_as(auditor).get("/api/v1/audit/events/", {"source": "elsewhere"}).status_code == 400
    assert api_as(auditor).get("/api/v1/audit/events/", {"since": "yesterday"}).status_code == 400


def test_the_api_writes_every_time_in_utc_to_the_microsecond_at_one_width(persona_mappings, auditor, api_as,
                                                                          settings):
    settings.TIME_ZONE = "Europe/Paris"  # the pages' zone, not the API's
    place = make_activity_event(IN)
    on_the_second = (timezone.now() - timedelta(hours=1)).replace(microsecond=0)
    for name, moment in (("on", on_the_second), ("after", on_the_second + timedelta(microseconds=7))):
        ActivityLogEvent.objects.create(event_data_id=f"time-{name}", occurred_at=moment, vm_ids=place.vm_ids,
                                        operation_name=place.operation_name, subscription_id=place.subscription_id,
                                        resource_group=place.resource_group, resource_id=place.resource_id)
    results = api_as(auditor).get("/api/v1/audit/events/").json()["results"]
    second = on_the_second.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert [e["occurredAt"] for e in results if e["occurredAt"].startswith(second)] == [
        f"{second}.000007Z", f"{second}.000000Z"]


@pytest.mark.parametrize(("source", "params", "named"), [
    ("portal", {"caller": "alice@contoso.example"}, "caller applies only to source=azure"),
    ("portal", {"status": "Failed", "operation": "x"}, "operation, status apply only to source=azure"),
    ("azure", {"user": "alice@contoso.example"}, "user applies only to source=portal"),
    ("azure", {"action": "access.requested"}, "action applies only to source=portal")])
def test_a_filter_of_the_other_source_is_a_400_not_ignored(persona_mappings, auditor, api_as, source, params, named):
    make_activity_event(IN), make_audit_event(IN)
    for url in ("/api/v1/audit/events/", "/api/v1/audit/events.csv"):
        response = api_as(auditor).get(url, {"source": source, **params})
        assert response.status_code == 400, response
        assert named in response.json()["detail"]
    assert not AuditEvent.objects.filter(action="audit.export").exists()


@pytest.mark.parametrize(("source", "name"), [
    *[("azure", name) for name in ("q", "caller", "correlation", "subscription", "resource_group", "vm")],
    *[("portal", name) for name in ("q", "user", "action", "subscription", "resource_group", "vm")]])
def test_an_audit_filter_longer_than_any_name_or_id_is_a_400_saying_so(persona_mappings, auditor, api_as, source,
                                                                        name):
    """SQLite refuses a LIKE pattern over 50,000 bytes ("pattern too complex"): such a search was a 500."""
    make_activity_event(IN), make_audit_event(IN)
    limit = 1024 if name == "vm" else 200
    for url in ("/api/v1/audit/events/", "/api/v1/audit/events.csv"):
        response = api_as(auditor).get(url, {"source": source, name: "/" + "a" * 60_000})
        assert response.status_code == 400, response
        assert f"{name}: Ensure this value has at most {limit} characters (it has 60001)." in response.json()["detail"]
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_audit_search_pages_by_cursor(persona_mappings, auditor, api_as, settings):
    settings.AUDIT_PAGE_SIZE = 2
    for _ in range(3):
        make_audit_event(IN)
    client = api_as(auditor)
    first = client.get("/api/v1/audit/events/", {"source": "portal", "action": "matrix.probe"}).json()
    assert len(first["results"]) == 2 and first["next"] and first["previous"] is None
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 1 and second["next"] is None
    assert {e["id"] for e in first["results"]}.isdisjoint({e["id"] for e in second["results"]})


def test_audit_events_name_their_subscription_or_say_null(persona_mappings, auditor, api_as):
    from tests.audit.factories import named_subscription

    make_activity_event(IN), make_audit_event(IN)
    client = api_as(auditor)
    for source in ("azure", "portal"):  # not registered in the portal: no name
        results = client.get("/api/v1/audit/events/", {"source": source}).json()["results"]
        assert [e["subscriptionName"] for e in results if e["source"] == source] == [None], source
    subscription = named_subscription(IN_SCOPE.rsplit("/", 1)[1], "")  # registered without a name
    assert client.get("/api/v1/audit/events/").json()["results"][0]["subscriptionName"] is None
    subscription.display_name = "Contoso <b>Production</b>"  # JSON carries it as it is, for the client to escape
    subscription.save(update_fields=["display_name"])
    for source in ("azure", "portal"):
        event = client.get("/api/v1/audit/events/", {"source": source, "action": "matrix.probe"} if source == "portal"
                           else {"source": source}).json()["results"][0]
        assert (event["subscriptionId"], event["subscriptionName"]) == (
            IN_SCOPE.rsplit("/", 1)[1], "Contoso <b>Production</b>"), source


@pytest.mark.parametrize("source", ["azure", "portal"])
def test_naming_the_audit_events_subscriptions_costs_one_query_per_page(persona_mappings, auditor, api_as, source,
                                                                         settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from audit.ingestion import store_events
    from audit.services import audit_record
    from tests.audit.factories import event, named_subscription

    settings.AUDIT_PAGE_SIZE = 200
    sub = IN_SCOPE.rsplit("/", 1)[1]
    named_subscription(sub, "Contoso Production")

    def add(count: int) -> None:
        if source == "azure":
            store_events([event(sub=sub, rg="rg-api") for _ in range(count)])
        for n in range(count if source == "portal" else 0):
            audit_record(actor=None, action="policy.save", target_label=f"vm-{n}", subscription_id=sub)

    client = api_as(auditor)
    add(3)
    client.get("/api/v1/audit/events/", {"source": source})  # the token's first use is stored: not measured
    with CaptureQueriesContext(connection) as few:
        client.get("/api/v1/audit/events/", {"source": source})
    add(120)
    with CaptureQueriesContext(connection) as many:
        results = client.get("/api/v1/audit/events/", {"source": source}).json()["results"]
    assert len(results) == 123 and {e["subscriptionName"] for e in results} == {"Contoso Production"}
    assert len(many) == len(few), [q["sql"] for q in many]
    assert sum("policies_subscription" in q["sql"] for q in many) == 1


def test_the_schema_documents_the_audit_events_subscription_name(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["components"]["schemas"]["AuditEvent"]
    field = schema["properties"]["subscriptionName"]
    assert field["type"] == "string" and field["nullable"] is True and "null when" in field["description"]
    assert "subscriptionName" in schema["required"]


def test_audit_events_name_their_caller_as_the_page_and_the_csv_do(persona_mappings, auditor, api_as, settings):
    from audit.ingestion import store_events
    from audit.services import audit_record
    from tests.audit.factories import event

    portal = "0d3b6a9e-5c1f-4e2a-9b7d-1a2b3c4d5e6f"
    identity = "7F00AA11-2222-4333-8444-555555555555"
    settings.PORTAL_CREDENTIALS = {"prod": {"kind": "client_secret", "client_id": portal},
                                   "mi": {"kind": "managed_identity", "client_id": identity}}
    sub = IN_SCOPE.rsplit("/", 1)[1]
    store_events([event(sub=sub, rg="rg-api", caller=caller) for caller in (
        portal.upper(), "7f00aa11-2222-4333-8444-555555555555", "Alice@Contoso.example")])
    audit_record(actor=None, action="policy.save", target_label="vm-1", subscription_id=sub)
    client = api_as(auditor)
    azure = client.get("/api/v1/audit/events/").json()["results"]
    assert {(e["caller"], e["callerName"]) for e in azure} == {
        (portal, "jitportal (service principal 0d3b6a9e…)"),
        ("7f00aa11-2222-4333-8444-555555555555", "jitportal (managed identity 7f00aa11…)"),
        ("alice@contoso.example", "alice@contoso.example")}
    csv_rows = csv.DictReader(io.StringIO(b"".join(client.get("/api/v1/audit/events.csv").streaming_content)
                                          .decode("utf-8-sig")))
    assert {(row["Caller"], row["Caller name"]) for row in csv_rows} == {(e["caller"], e["callerName"]) for e in azure}
    portal_rows = client.get("/api/v1/audit/events/", {"source": "portal", "action": "policy.save"}).json()["results"]
    assert [(e["caller"], e["callerName"]) for e in portal_rows] == [("jitportal", "jitportal")]
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["components"]["schemas"]["AuditEvent"]
    assert "callerName" in schema["required"] and "Caller name" in schema["properties"]["callerName"]["description"]


def test_the_csv_export_is_scoped_and_audited(persona_mappings, auditor, reader, api_as):
    make_activity_event(IN), make_activity_event(OUT)
    response = api_as(auditor).get("/api/v1/audit/events.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content)
    assert body.startswith(codecs.BOM_UTF8) and body.count(codecs.BOM_UTF8) == 1  # Excel reads it as UTF-8
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][0] == "Time (UTC)"
    assert len(rows) == 2  # the header and the one event in scope
    assert AuditEvent.objects.filter(action="audit.export", actor=auditor).count() == 1
    assert api_as(reader).get("/api/v1/audit/events.csv").status_code == 403


def test_a_head_of_the_csv_export_answers_its_headers_and_records_no_export(persona_mappings, auditor, reader,
                                                                            api_as):
    make_activity_event(IN)
    client = api_as(auditor)
    response = client.head("/api/v1/audit/events.csv", {"source": "portal"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="jit-portal-activity-')
    assert client.head("/api/v1/audit/events.csv", {"since": "yesterday"}).status_code == 400
    assert api_as(reader).head("/api/v1/audit/events.csv").status_code == 403
    assert not AuditEvent.objects.filter(action="audit.export").exists()  # nothing was exported


def test_the_csv_export_answers_a_client_that_accepts_only_csv(persona_mappings, auditor, api_as):
    make_activity_event(IN)
    client = api_as(auditor)
    response = client.get("/api/v1/audit/events.csv", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    refused = client.get("/api/v1/audit/events.csv", {"since": "yesterday"}, HTTP_ACCEPT="text/csv")
    assert refused.status_code == 400 and "since" in refused.json()["detail"]


@pytest.mark.parametrize(("accept", "status"), [
    ("application/json", 406), ("text/html", 406), ("text/csv;q=0, application/json", 406), ("text/*", 200),
    ("*/*", 200), ("text/html,application/xhtml+xml,*/*;q=0.8", 200), ("application/json, text/csv;q=0.5", 200)])
def test_the_csv_export_refuses_a_client_that_accepts_no_csv(persona_mappings, auditor, api_as, accept, status):
    """A client that asks for JSON only was sent CSV (200): it would read the rows as JSON and fail, or worse."""
    make_activity_event(IN)
    response = api_as(auditor).get("/api/v1/audit/events.csv", HTTP_ACCEPT=accept)
    assert response.status_code == status, accept
    if status == 406:
        assert response["Content-Type"] == "application/json"
        detail = "This URL answers text/csv: accept it (or */*), or leave Accept out."
        assert response.json() == {"detail": detail, "errors": [detail]}
    assert AuditEvent.objects.filter(action="audit.export").count() == (status == 200)


# --- schema and docs -------------------------------------------------------------------------------------------
def test_the_schema_and_docs_are_served_without_a_cdn(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/vms/{id}/jit/" in schema.json()["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "swagger-ui" in page and "cdn" not in page.lower() and "//unpkg" not in page
    bundle = "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
    assert bundle in page
    assert client.get(bundle).status_code == 200  # served by the portal itself


@pytest.mark.parametrize(("url", "wanted", "formats"), [
    ("/api/v1/me/", "xml", "json"), ("/api/v1/vms/", "csv", "json"), ("/api/v1/audit/events.csv", "xml", "csv"),
    ("/api/v1/audit/events.csv", "json", "csv"), ("/api/schema/", "xml", "yaml or json"),
    ("/api/docs/", "json", "html")])
def test_a_format_the_url_does_not_answer_is_a_json_406_naming_those_it_does(persona_mappings, auditor, api_as, url,
                                                                             wanted, formats):
    make_activity_event(IN)
    response = api_as(auditor).get(url, {"format": wanted})
    assert (response.status_code, response["Content-Type"]) == (406, "application/json"), response.content
    detail = f"format={wanted} is not a format this URL answers: ask for {formats}, or leave format out."
    assert response.json() == {"detail": detail, "errors": [detail]}
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_the_formats_a_url_answers_still_work_and_other_accepts_are_json_406s(persona_mappings, auditor, api_as):
    make_activity_event(IN)
    client = api_as(auditor)
    assert client.get("/api/v1/me/", {"format": "json"}).json()["username"] == auditor.username
    assert client.get("/api/schema/", {"format": "json"}).json()["openapi"].startswith("3.")
    assert client.get("/api/schema/", {"format": "yaml"}).content.startswith(b"openapi: ")
    exported = client.get("/api/v1/audit/events.csv", {"format": "csv"})
    assert exported.status_code == 200 and exported["Content-Type"].startswith("text/csv")
    for url in ("/api/v1/me/", "/api/schema/"):
        refused = client.get(url, HTTP_ACCEPT="text/x-nothing")
        assert (refused.status_code, refused["Content-Type"]) == (406, "application/json"), url
        assert refused.json()["errors"] == [refused.json()["detail"]]


@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/"])
def test_the_schema_and_docs_refuse_a_write_in_json_naming_their_methods(client, url):
    """A client told the schema's errors are the API's JSON gets JSON for a wrong method too (DRF answered the
    schema's 405 in YAML and the docs page's as an HTML line)."""
    for method in ("post", "put", "delete"):
        response = getattr(client, method)(url, "{}", content_type="application/json")
        assert (response.status_code, response["Content-Type"]) == (405, "application/json"), (method, url)
        detail = f'Method "{method.upper()}" not allowed.'
        assert response.json() == {"detail": detail, "errors": [detail]}
        assert response["Allow"] == "GET, HEAD, OPTIONS"


@pytest.mark.parametrize("moment", ["1252-03-28T17:28:48+22:42", "0001-01-01T00:00:00+23:00",
                                    "9999-12-31T23:59:00-23:00"])
def test_audit_times_with_any_offset_are_searched_not_a_500(persona_mappings, auditor, api_as, moment):
    make_audit_event(IN)
    for key in ("since", "until"):
        response = api_as(auditor).get("/api/v1/audit/events/", {"source": "portal", key: moment})
        assert response.status_code == 200, response.content


def test_text_with_nul_characters_is_a_400_on_every_database(vms, reader, requester, api_as):
    for params in ({"search": "a\x00b"}, {"subscription": "\x00"}, {"resourceGroup": "\x00"}):
        response = api_as(reader).get("/api/v1/vms/", params)
        assert response.status_code == 400 and "NUL" in response.json()["detail"]
    body = {"virtualMachines": [{"id": vms[0].arm_id, "ports": [{"number": 22, "endTimeUtc": "2099-01-01T00:00:00Z",
                                                                "allowedSourceAddressPrefix": "1.2.3.4"}]}],
            "justification": "why\x00"}
    assert api_as(requester).post("/api/v1/requests/", body).status_code == 400


@pytest.mark.parametrize("rows", [5, 60])
def test_the_vm_list_runs_a_fixed_number_of_queries(persona_mappings, reader, api_as, rows,
                                                    django_assert_max_num_queries):
    from tests.policies.factories import make_many_vms

    make_many_vms(rows)
    client = api_as(reader)
    with django_assert_max_num_queries(8):
        response = client.get("/api/v1/vms/", {"limit": 100})
    assert response.status_code == 200 and len(response.json()["results"]) == rows


@pytest.mark.parametrize("count", [1, 6])
def test_the_request_list_runs_a_fixed_number_of_queries(persona_mappings, policy_admin, api_as, count,
                                                         django_assert_max_num_queries):
    for _ in range(count):
        make_access_request(IN)
    client = api_as(policy_admin)
    with django_assert_max_num_queries(10):
        response = client.get("/api/v1/requests/", {"all": "1"})
    assert response.status_code == 200 and len(response.json()["results"]) == count


@pytest.mark.parametrize("count", [1, 6])
def test_the_request_list_of_access_past_its_end_runs_a_fixed_number_of_queries(
        persona_mappings, policy_admin, api_as, count, django_assert_max_num_queries):
    """Each request shown as ended (``show_as_ended``) loaded its VMs' ports on its own: a query per row until the
    reconcile marked them."""
    ended = timezone.now() - timedelta(seconds=1)
    for _ in range(count):
        request = make_access_request(IN)
        AccessRequest.objects.filter(pk=request.pk).update(end_at=ended)
        request.ports.update(end_at=ended, opened_at=ended - timedelta(hours=1))
    client = api_as(policy_admin)
    with django_assert_max_num_queries(10):
        response = client.get("/api/v1/requests/", {"all": "1"})
    assert response.status_code == 200
    assert [r["state"] for r in response.json()["results"]] == ["expired"] * count


def cursor_of(text: str) -> str:
    """A cursor as the audit search writes one (``<ISO time>|<id>``, base64url), here with any text in it."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(("moment", "status"), [("0001-01-01T00:00:00+23:00", 400),
                                                ("9999-12-31T23:59:00-23:00", 400),
                                                ("2030-01-01T00:00:00+23:59", 200)])
@pytest.mark.parametrize("key", ["after", "before"])
def test_a_forged_audit_cursor_with_any_offset_is_not_a_500(persona_mappings, auditor, api_as, moment, status, key):
    make_audit_event(IN)
    response = api_as(auditor).get("/api/v1/audit/events/", {"source": "portal", key: cursor_of(f"{moment}|1")})
    assert response.status_code == status, response.content


@pytest.mark.parametrize("cursor", ["garbage", "!!", cursor_of("not a cursor"), cursor_of("2030-01-01T00:00:00|1"),
                                    cursor_of("2030-01-01T00:00:00+00:00|x"),
                                    cursor_of("2030-01-01T00:00:00+00:00|99999999999999999999")])
@pytest.mark.parametrize("key", ["after", "before"])
def test_an_audit_cursor_the_search_did_not_give_is_a_400_naming_it(persona_mappings, auditor, api_as, cursor, key):
    make_audit_event(IN)
    response = api_as(auditor).get("/api/v1/audit/events/", {"source": "portal", key: cursor})
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith(f"The {key} cursor is not one this search gave")


def test_audit_cursors_after_and_before_together_are_a_400(persona_mappings, auditor, api_as, settings):
    settings.AUDIT_PAGE_SIZE = 1
    make_audit_event(IN), make_audit_event(IN)
    client = api_as(auditor)
    older = client.get("/api/v1/audit/events/", {"source": "portal"}).json()["next"]
    after = older.rsplit("after=", 1)[1]
    response = client.get("/api/v1/audit/events/", {"source": "portal", "after": after, "before": after})
    assert response.status_code == 400 and "not both" in response.json()["detail"]


def test_a_vm_scoped_policy_admin_follows_the_change_they_queued_and_no_other(persona_mappings, api_as):
    from accounts import services as account_services
    from accounts.models import RoleMapping
    from tests.plugins.personas import Persona

    inside = make_vm(IN)
    RoleMapping.objects.create(source_kind=RoleMapping.SourceKind.APP_ROLE, source_value="JIT.VmAdmin",
                               role="policy_admin", scope=inside.arm_id)
    vm_admin = account_services.user_sign_in_record(claims=Persona(
        "vic@contoso.example", "8a0e7c31-0000-4000-8000-000000000077", "Vic VM Admin", ["JIT.VmAdmin"]).claims())
    client = api_as(vm_admin)
    body = {"ports": [{"number": 22, "allowedSourceAddressPrefix": "*"}]}
    accepted = client.put(f"/api/v1/vms/{inside.pk}/jit/", body)
    assert accepted.status_code == 202, accepted.content
    status = client.get(accepted.json()["statusUrl"])
    assert status.status_code == 200 and status.json()["virtualMachines"] == [inside.arm_id]
    assert client.get(f"/api/v1/policy-changes/{make_policy_change(IN).pk}/").status_code == 200  # its VM only
    neighbour = VirtualMachine.objects.get(pk=inside.pk)
    neighbour.pk, neighbour.name = None, "vm-next-door"  # same policy, another VM
    neighbour.arm_id = inside.arm_id.replace("vm-matrix", "vm-next-door")
    neighbour.resource_id = neighbour.arm_id.lower()
    neighbour.save()
    other = PolicyChange.objects.create(
        kind=PolicyChange.Kind.SAVE, subscription=neighbour.subscription, subscription_key=neighbour.subscription_key,
        resource_group=neighbour.resource_group, resource_group_name=neighbour.resource_group_name,
        location="westeurope", policy_id=neighbour.policy_id.lower(), desired={neighbour.arm_id: []})
    other.vms.set([neighbour])
    assert client.get(f"/api/v1/policy-changes/{other.pk}/").status_code == 404


def test_a_request_past_its_approval_deadline_reads_expired_as_on_the_pages_before_the_reconcile(
        persona_mappings, requester, api_as):
    overdue, waiting = make_access_request(IN), make_access_request(IN)
    AccessRequest.objects.filter(pk__in=[overdue.pk, waiting.pk]).update(
        requester=requester, state="pending", approval_state="pending", approvals_required=1,
        approval_expires_at=timezone.now() + timedelta(hours=1))
    AccessRequest.objects.filter(pk=overdue.pk).update(approval_expires_at=timezone.now() - timedelta(seconds=1))
    overdue.ports.update(state="pending")
    waiting.ports.update(state="pending")
    caller = api_as(requester)
    body = caller.get(f"/api/v1/requests/{overdue.pk}/").json()
    assert body["state"] == "expired" and body["virtualMachines"][0]["ports"][0]["status"] == "expired"
    listed = {state: [r["id"] for r in caller.get("/api/v1/requests/", {"state": state}).json()["results"]]
              for state in ("pending", "expired")}
    assert listed == {"pending": [waiting.pk], "expired": [overdue.pk]}
    assert AccessRequest.objects.get(pk=overdue.pk).state == "pending"  # nothing written on the way


def test_the_docs_start_up_script_holding_a_csrf_token_is_for_the_portals_own_page_only(client):
    """``/api/docs/?script`` carries the caller's CSRF token: another site's page may not load it as a script
    (``Cross-Origin-Resource-Policy``), a browser never takes it for another type, and no cache keeps it."""
    script = client.get("/api/docs/?script")
    assert script.status_code == 200 and script["Content-Type"] == "application/javascript"
    assert "X-CSRFTOKEN" in script.content.decode()
    assert script["Cross-Origin-Resource-Policy"] == "same-origin"
    assert script["X-Content-Type-Options"] == "nosniff"
    assert {"private", "no-store"} <= {part.strip() for part in script["Cache-Control"].split(",")}
    assert "/api/docs/" not in client.get("/api/schema/", {"format": "json"}).json()["paths"]


def test_a_reader_of_one_vm_follows_a_change_that_also_covered_another_without_seeing_it(persona_mappings, api_as):
    from accounts.models import RoleMapping
    from tests.audit.factories import user_with_role

    web_01, web_02 = make_vm(IN, "web-01"), make_vm(IN, "web-02")
    change = PolicyChange.objects.create(
        kind=PolicyChange.Kind.SAVE, subscription=web_01.subscription, subscription_key=web_01.subscription_key,
        resource_group=web_01.resource_group, resource_group_name=web_01.resource_group_name, location="westeurope",
        policy_id=web_01.policy_id.lower(), desired={web_01.arm_id: [], web_02.arm_id: [{"number": 3389}]},
        state=PolicyChange.State.FAILED, last_error=f"InvalidPortNumber: {web_02.arm_id} port 3389 is invalid.")
    change.vms.set([web_01, web_02])
    client = api_as(user_with_role("rita@contoso.example", "reader", web_01.arm_id))
    assert RoleMapping.objects.filter(scope=web_01.arm_id).exists()
    assert client.get(f"/api/v1/vms/{web_01.pk}/jit/").status_code == 200
    answer = client.get(f"/api/v1/policy-changes/{change.pk}/")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["virtualMachines"] == [web_01.arm_id] and body["withheld"] == 1 and body["state"] == "failed"
    assert "web-02" not in answer.content.decode() and not names(answer.content.decode(), "3389")
    assert body["lastError"].startswith("Azure's message (InvalidPortNumber) is withheld")


def test_an_auditor_of_one_vm_gets_an_event_without_the_other_vms_it_names(persona_mappings, api_as):
    from audit.ingestion import store_events
    from tests.audit.factories import event, user_with_role, vm_id

    web_01, web_02 = vm_id(name="web-01"), vm_id(name="web-02")
    body = {"properties": {"virtualMachines": [{"id": web_01, "ports": [{"number": 22}]},
                                               {"id": web_02, "ports": [{"number": 3389}]}]}}
    store_events([event(operation="Microsoft.Security/locations/jitNetworkAccessPolicies/write", properties={
        "virtualMachines": f"{web_01},{web_02}", "ports": "22,3389", "requestbody": json.dumps(body)})])
    client = api_as(user_with_role("vic@contoso.example", "auditor", web_01))
    answer = client.get("/api/v1/audit/events/")
    assert answer.status_code == 200, answer.content
    [found] = answer.json()["results"]
    text = answer.content.decode()
    assert found["withheld"] == 1 and "web-02" not in text and not names(text, "3389")
    assert json.loads(found["details"]["requestbody"])["properties"]["virtualMachines"] == [
        {"id": web_01, "ports": [{"number": 22}]}]
    export = client.get("/api/v1/audit/events.csv")
    assert export.status_code == 200 and "web-02" not in b"".join(export.streaming_content).decode("utf-8-sig")
