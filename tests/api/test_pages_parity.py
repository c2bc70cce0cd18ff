"""The API answers as the pages do: the same rows for the same user, and the inventory's filters by its names.

Production and Dev/Test come from the emulator's demo inventory; the personas hold their roles in Production
only (the requester also through the web group in ``rg-web-prod``).
"""
from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from policies.models import VmState
from tests.plugins.personas import IN_SCOPE, make_persona
from tests.policies.access.factories import ask, rule
from tests.policies.factories import DEV, PROD, register, sync

pytestmark = pytest.mark.django_db
PERSONAS = ["requester", "policy_admin", "auditor", "approver", "reader", "outsider"]


def page_ids(client: Client, url: str, pattern: str, params: dict | None = None) -> set[int] | int:
    """The object ids a page links to (by ``pattern``, a detail URL with ``0`` for the id), or its status."""
    response = client.get(url, params or {})
    if response.status_code != 200:
        return response.status_code
    return {int(pk) for pk in re.findall(re.escape(pattern).replace("0", "([0-9]+)", 1), response.content.decode())}


def inventory_ids(client: Client, params: dict | None = None) -> set[int] | int:
    found: set[int] = set()
    for tab in VmState.values:
        ids = page_ids(client, reverse("policies:inventory"), reverse("policies:vm_detail", kwargs={"pk": 0}),
                       {**(params or {}), "tab": tab})
        if isinstance(ids, int):
            return ids
        found |= ids
    return found


def api_ids(api, url: str, params: dict | None = None) -> set[int] | int:
    response = api.get(url, {"limit": 500, **(params or {})})
    if response.status_code != 200:
        return response.status_code
    return {row["id"] for row in response.json()["results"]}


@pytest.fixture
def both(prod, fresh_emulator):
    sync(register(fresh_emulator, DEV, "Contoso Dev/Test"))


def test_each_persona_lists_the_same_vms_and_requests_in_the_api_as_on_the_pages(both, persona_mappings, api_as):
    users = {name: make_persona(name) for name in PERSONAS}
    ask(users["requester"], {"web-02": [22]})
    ask(users["policy_admin"], {"db-01": [22]})
    rule(IN_SCOPE, "manual", approvals_required=1)
    ask(users["requester"], {"web-01": [22]})
    for name, user in users.items():
        client = Client()
        client.force_login(user)
        api = api_as(user)
        assert api_ids(api, "/api/v1/vms/") == inventory_ids(client), name
        requests_page = page_ids(client, reverse("policies:requests"),
                                 reverse("policies:request_detail", kwargs={"pk": 0}))
        assert api_ids(api, "/api/v1/requests/", {"all": "1"}) == requests_page, name
        approvals_page = page_ids(client, reverse("policies:approvals"),
                                  reverse("policies:request_review", kwargs={"pk": 0}))
        assert api_ids(api, "/api/v1/approvals/") == approvals_page, name
    assert len(api_ids(api_as(users["approver"]), "/api/v1/approvals/")) == 1
    assert api_ids(api_as(users["outsider"]), "/api/v1/vms/") == 403
    assert len(api_ids(api_as(users["policy_admin"]), "/api/v1/requests/", {"all": "1"})) == 3


@pytest.mark.parametrize("params", [
    {"q": "web"}, {"resource_group": "rg-web-prod"}, {"os": "Windows"}, {"location": "northeurope"},
    {"connection": "firewall"}, {"q": "prod", "os": "Linux"}])
def test_the_vm_list_takes_the_inventorys_filters_with_their_meaning(both, policy_admin, api_as, params):
    client = Client()
    client.force_login(policy_admin)
    shown = inventory_ids(client, params)
    assert shown and api_ids(api_as(policy_admin), "/api/v1/vms/", params) == shown
    assert api_ids(api_as(policy_admin), "/api/v1/vms/") > shown


@pytest.mark.parametrize(("params", "message"), [
    ({"os": "BeOS"}, "os must be one of Linux, Windows."),
    ({"connection": "vpn"}, "connection must be one of nsg, firewall, none."),
    ({"q": "web", "search": "db"}, "search and q are the same filter; give one value.")])
def test_a_bad_inventory_filter_is_a_400(both, policy_admin, api_as, params, message):
    response = api_as(policy_admin).get("/api/v1/vms/", params)
    assert response.status_code == 400 and response.json()["errors"] == [message]


@pytest.mark.parametrize(("params", "count"), [
    ({"q": "web-02"}, 1), ({"q": "alice"}, 1), ({"q": "rotate"}, 1), ({"created_after": "2000-01-01"}, 2),
    ({"created_before": "2000-01-01"}, 0), ({"q": "db-01", "state": "queued"}, 1)])
def test_the_request_list_takes_the_request_pages_filters_with_their_meaning(both, requester, policy_admin, api_as,
                                                                            params, count):
    ask(requester, {"web-02": [22]}, justification="Patch the kernel")
    ask(policy_admin, {"db-01": [22]}, justification="Rotate the keys")
    client = Client()
    client.force_login(policy_admin)
    shown = page_ids(client, reverse("policies:requests"), reverse("policies:request_detail", kwargs={"pk": 0}),
                     params)
    assert api_ids(api_as(policy_admin), "/api/v1/requests/", {"all": "1", **params}) == shown
    assert len(shown) == count


def test_a_bad_request_list_filter_is_a_400(both, requester, api_as):
    response = api_as(requester).get("/api/v1/requests/", {"created_after": "last tuesday"})
    assert response.status_code == 400 and response.json()["errors"] == ["created_after: Enter a valid date."]


def test_a_request_list_range_ending_before_it_starts_is_a_400(both, requester, api_as):
    response = api_as(requester).get("/api/v1/requests/",
                                     {"created_after": "2026-03-02", "created_before": "2026-03-01"})
    assert response.status_code == 400
    assert response.json()["errors"] == ["created_before: Give a day on or after “Requested from”."]


def test_each_persona_opens_the_same_vms_requests_and_changes_in_the_api_as_on_the_pages(both, persona_mappings,
                                                                                           api_as):
    from policies.access.models import AccessRequest
    from policies.models import PolicyChange, VirtualMachine
    from tests.policies.factories import make_policy_change

    users = {name: make_persona(name) for name in PERSONAS}
    ask(users["requester"], {"web-02": [22]})
    ask(users["policy_admin"], {"db-01": [22]})
    make_policy_change(f"/subscriptions/{DEV}/resourceGroups/rg-api")
    make_policy_change(f"/subscriptions/{PROD}/resourceGroups/rg-api")
    vms = list(VirtualMachine.objects.order_by("pk").values_list("pk", flat=True))
    requests = list(AccessRequest.objects.values_list("pk", flat=True))
    changes = list(PolicyChange.objects.values_list("pk", flat=True))
    for name, user in users.items():
        client = Client()
        client.force_login(user)
        api = api_as(user)

        def page_opens(view: str, pk: int, client: Client = client) -> bool:
            return client.get(reverse(view, kwargs={"pk": pk})).status_code == 200

        for pk in vms:
            assert (api.get(f"/api/v1/vms/{pk}/").status_code == 200) == page_opens("policies:vm_detail", pk), \
                (name, pk)
        for pk in requests:
            assert (api.get(f"/api/v1/requests/{pk}/").status_code == 200) == (
                page_opens("policies:request_detail", pk) or page_opens("policies:request_review", pk)), (name, pk)
        for pk in changes:
            assert (api.get(f"/api/v1/policy-changes/{pk}/").status_code == 200) == page_opens(
                "policies:change_status", pk), (name, pk)
