"""``Idempotency-Key`` on ``POST /requests/`` and ``…/extend/``: the same key with the same body for the same
operation returns the first result; the same key for another operation (a new request, or extending another
request) or with another body is a 422."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from policies.access.models import AccessRequest
from tests.policies.access.factories import open_all
from tests.policies.factories import vm

pytestmark = pytest.mark.django_db
REQUESTS = "/api/v1/requests/"


def body(name: str) -> dict:
    return {"virtualMachines": [{"id": vm(name).arm_id, "ports": [
        {"number": 22, "endTimeUtc": (timezone.now() + timedelta(hours=1)).isoformat(),
         "allowedSourceAddressPrefix": ["198.51.100.23"]}]}], "justification": "Patch the kernel"}


def opened(client, name: str, key: str, sent: dict | None = None) -> int:
    """A new request for ``name`` (the body ``sent``, else a fresh one) made with ``key``, opened in Azure; its id."""
    response = client.post(REQUESTS, sent or body(name), HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 201, response.content
    assert response["Location"] == response.json()["url"]
    open_all(AccessRequest.objects.get(pk=response.json()["id"]))
    return response.json()["id"]


def test_a_key_of_a_new_request_is_refused_for_extending_it(prod, requester, api_as):
    client = api_as(requester)
    sent = body("web-02")
    first = opened(client, "web-02", "k", sent)
    reused = client.post(f"{REQUESTS}{first}/extend/", {"duration": "PT2H"}, HTTP_IDEMPOTENCY_KEY="k")
    assert reused.status_code == 422, reused.content
    detail = reused.json()["detail"]
    assert f"key was already used for a new request (request #{first})" in detail
    assert reused.json()["errors"] == [detail]
    assert AccessRequest.objects.count() == 1  # no extension made
    replayed = client.post(REQUESTS, sent, HTTP_IDEMPOTENCY_KEY="k")
    assert (replayed.status_code, replayed.json()["id"]) == (200, first)


def test_a_key_of_an_extension_is_refused_for_a_new_request_or_another_extension(prod, requester, api_as):
    client = api_as(requester)
    first, second = opened(client, "web-02", "a"), opened(client, "web-04", "b")
    extended = client.post(f"{REQUESTS}{first}/extend/", {"duration": "PT2H"}, HTTP_IDEMPOTENCY_KEY="ext")
    assert extended.status_code == 201, extended.content
    assert extended["Location"] == extended.json()["url"]  # the new request the extension made
    again = client.post(f"{REQUESTS}{first}/extend/", {"duration": "PT2H"}, HTTP_IDEMPOTENCY_KEY="ext")
    assert (again.status_code, again.json()["id"], again["Location"]) == (200, extended.json()["id"],
                                                                          extended["Location"])
    assert client.post(REQUESTS, body("web-02"), HTTP_IDEMPOTENCY_KEY="ext").status_code == 422
    other = client.post(f"{REQUESTS}{second}/extend/", {"duration": "PT2H"}, HTTP_IDEMPOTENCY_KEY="ext")
    assert other.status_code == 422, other.content
    assert AccessRequest.objects.count() == 3


def test_a_key_replayed_with_another_body_is_refused_and_asks_for_nothing(prod, requester, api_as):
    client = api_as(requester)
    sent = body("web-02")
    first = client.post(REQUESTS, sent, HTTP_IDEMPOTENCY_KEY="same")
    assert first.status_code == 201, first.content
    other = {**sent, "justification": "Something else entirely"}
    refused = client.post(REQUESTS, other, HTTP_IDEMPOTENCY_KEY="same")
    assert refused.status_code == 422, refused.content
    assert f"already used with another body (request #{first.json()['id']})" in refused.json()["detail"]
    elsewhere = client.post(REQUESTS, body("web-04"), HTTP_IDEMPOTENCY_KEY="same")
    assert elsewhere.status_code == 422
    # The same body again, keys in another order, is the retry it claims to be.
    again = client.post(REQUESTS, dict(reversed(list(sent.items()))), HTTP_IDEMPOTENCY_KEY="same")
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    assert AccessRequest.objects.count() == 1
    assert AccessRequest.objects.get().justification == "Patch the kernel"


def test_an_extension_replayed_with_another_duration_is_refused(prod, requester, api_as):
    client = api_as(requester)
    first = opened(client, "web-02", "a")
    extended = client.post(f"{REQUESTS}{first}/extend/", {"duration": "PT2H"}, HTTP_IDEMPOTENCY_KEY="ext")
    assert extended.status_code == 201, extended.content
    longer = client.post(f"{REQUESTS}{first}/extend/", {"duration": "PT3H"}, HTTP_IDEMPOTENCY_KEY="ext")
    assert longer.status_code == 422, longer.content
    assert "another body" in longer.json()["detail"]
    assert AccessRequest.objects.count() == 2


def test_a_request_made_through_a_trusted_proxy_records_the_client_not_the_proxy(prod, requester, api_as, settings):
    settings.ACCESS_TRUSTED_PROXIES = ["10.0.0.0/8"]
    response = api_as(requester).post(REQUESTS, body("web-02"), REMOTE_ADDR="10.0.0.5",
                                      HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.9")
    assert response.status_code == 201, response.content
    assert AccessRequest.objects.get().client_ip == "203.0.113.9"


@pytest.mark.parametrize(("source", "kind"), [("*", "any"), ("198.51.100.23", "ip"), ("198.51.100.0/24", "range"),
                                              ("2001:db8::1/128", "ip")])
def test_a_request_through_the_api_names_its_source_as_the_form_would(prod, requester, api_as, source, kind):
    sent = body("web-02")
    sent["virtualMachines"][0]["ports"][0]["allowedSourceAddressPrefix"] = source
    response = api_as(requester).post(REQUESTS, sent)
    assert response.status_code == 201, response.content
    assert AccessRequest.objects.get().source_kind == kind


def test_a_range_with_host_bits_opens_its_network_as_on_the_form_and_the_answer_and_schema_say_so(
        prod, requester, api_as, client):
    sent = body("web-02")
    sent["virtualMachines"][0]["ports"][0]["allowedSourceAddressPrefix"] = "203.0.113.7/24"
    response = api_as(requester).post(REQUESTS, sent)
    assert response.status_code == 201, response.content
    answer = response.json()
    assert answer["allowedSourceAddressPrefix"] == "203.0.113.0/24"
    assert answer["virtualMachines"][0]["ports"][0]["allowedSourceAddressPrefix"] == "203.0.113.0/24"
    schemas = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["components"]["schemas"]
    said = schemas["RequestPortInRequest"]["properties"]["allowedSourceAddressPrefix"]["description"]
    assert "host bits set is stored as its network (203.0.113.7/24 opens 203.0.113.0/24)" in said
    assert "as its network" in schemas["Request"]["properties"]["allowedSourceAddressPrefix"]["description"]
