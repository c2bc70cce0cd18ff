"""The API's VM list and approval queue page by cursor, as its request list does: every row once, in order (ties on
the sort column by id), at any depth, with their filters and within the caller's scope on every page; no ``count``;
a cursor they did not give, or a non-zero offset, is a 400 saying so."""
from __future__ import annotations

import base64
import json
from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import services as account_services
from accounts.config import DEMO_TENANT_ID
from accounts.models import RoleMapping
from jitportal.lib.keyset import encode_cursor, seek_page
from policies import selectors as policy_selectors
from policies.access.models import AccessRequest, Approval
from policies.models import VirtualMachine, VmState
from tests.plans import plans_of
from tests.plugins.personas import IN_SCOPE, OUT_OF_SCOPE
from tests.policies.access.factories import add_vm_at, pending_in_groups
from tests.policies.factories import make_vm

pytestmark = pytest.mark.django_db
RG_A, RG_B = f"{IN_SCOPE}/resourceGroups/rg-a", f"{IN_SCOPE}/resourceGroups/rg-b"
OUT = f"{OUT_OF_SCOPE}/resourceGroups/rg-a"
RG_A_GROUP = "9c1d2e3f-0000-4000-8000-000000000931"


def walk(client, url: str, params: dict) -> tuple[list[int], list[dict]]:
    """Every page from the first, following ``next``: the ids in order, and each page's body."""
    pages, ids = [], []
    response = client.get(url, params)
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"next", "previous", "results"}  # no count
        pages.append(body)
        ids += [row["id"] for row in body["results"]]
        if not body["next"]:
            return ids, pages
        assert len(pages) < 50
        response = client.get(body["next"])


def walk_back(client, last: dict) -> list[int]:
    """The ids of every page before ``last``, following ``previous`` back to the first."""
    ids, body = [], last
    while body["previous"]:
        body = client.get(body["previous"]).json()
        ids = [row["id"] for row in body["results"]] + ids
    return ids


def cursor_of(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture
def group_member(persona_mappings):
    """Gus holds ``role`` in ``rg-a`` of Production alone (through a group): ``group_member("reader")``."""
    def make(role: str):
        RoleMapping.objects.create(source_kind=RoleMapping.SourceKind.GROUP, source_value=RG_A_GROUP, role=role,
                                   scope=RG_A, description=f"rg-a {role}s")
        return account_services.user_sign_in_record(claims={
            "tid": DEMO_TENANT_ID, "oid": "8a0e7c31-0000-4000-8000-000000000093",
            "preferred_username": "gus@contoso.example", "name": "Gus", "roles": [], "groups": [RG_A_GROUP]})
    return make


# --- VMs -------------------------------------------------------------------------------------------------------
def vms_named(scope: str, names: list[str]) -> list[VirtualMachine]:
    return [make_vm(scope, name) for name in names]


def by_name(vms) -> list[int]:
    return [vm.pk for vm in sorted(vms, key=lambda vm: (vm.name, vm.pk))]


NAMES = ["web-02", "db-01", "web-02", "app", "db-01", "web-02", "web-02", "zz", "app", "db-01"]


def test_the_vm_pages_walk_every_vm_once_by_name_ties_by_id_and_back(persona_mappings, reader, api_as):
    # The same names in two resource groups of the scope: most rows tie with another on the name.
    made = vms_named(RG_A, NAMES[:6]) + vms_named(RG_B, NAMES)
    made = list({vm.pk: vm for vm in made}.values())  # make_vm gives the same row for the same group and name
    assert len({vm.name for vm in made}) < len(made)
    client = api_as(reader)
    ids, pages = walk(client, "/api/v1/vms/", {"limit": "2"})
    assert ids == by_name(made) and len(ids) == len(set(ids)) and len(pages) == -(-len(made) // 2)
    assert pages[0]["previous"] is None and all(page["previous"] for page in pages[1:])
    assert walk_back(client, pages[-1]) == ids[:-len(pages[-1]["results"])]


def test_filters_and_the_scope_hold_on_every_vm_page(persona_mappings, reader, group_member, api_as):
    inside = vms_named(RG_A, ["a1", "a2", "a3", "b1", "b2"])
    other_group = vms_named(RG_B, ["a1", "a2", "b1"])
    outside = vms_named(OUT, ["a1", "a2", "b1"])  # another subscription's, same names
    VirtualMachine.objects.filter(pk__in=[inside[1].pk, other_group[0].pk]).update(state=VmState.NOT_CONFIGURED)
    ids, pages = walk(api_as(reader), "/api/v1/vms/", {"limit": "2", "state": "configured"})
    assert ids == by_name([vm for vm in inside + other_group if vm.pk not in (inside[1].pk, other_group[0].pk)])
    assert all("state=configured" in page["next"] for page in pages[:-1])
    assert not set(ids) & {vm.pk for vm in outside}
    # A reader of one resource group: the VMs of that group alone, on every page, however the names tie.
    ids, _ = walk(api_as(group_member("reader")), "/api/v1/vms/", {"limit": "1"})
    assert ids == by_name(inside)


@pytest.mark.parametrize("name", ["search", "q"])
def test_a_vm_search_longer_than_any_name_is_a_400_not_a_crash(persona_mappings, reader, api_as, name):
    """SQLite refuses a LIKE pattern over 50,000 bytes ("pattern too complex"): the search is refused first."""
    vms_named(RG_A, ["a1"])
    response = api_as(reader).get("/api/v1/vms/", {name: "a" * 60_000})
    assert response.status_code == 400
    assert "at most 200 characters" in response.content.decode()


def test_a_forged_vm_cursor_only_moves_within_the_callers_scope(persona_mappings, group_member, api_as):
    inside, other = make_vm(RG_A, "m"), make_vm(RG_B, "a")
    body = api_as(group_member("reader")).get("/api/v1/vms/", {"after": cursor_of(["name", "a", other.pk])}).json()
    assert [row["id"] for row in body["results"]] == [inside.pk]


def test_a_deep_vm_page_seeks_the_name_index_and_sorts_nothing(persona_mappings, reader, api_as, analyze):
    from tests.policies.factories import DEV, make_many_vms

    make_many_vms(12)
    make_many_vms(1500, DEV)  # out of the reader's scope; a table of a dozen rows PostgreSQL reads whole and sorts
    analyze()
    VirtualMachine.objects.filter(name__in=["vm-00004", "vm-00005", "vm-00006"]).update(name="vm-tie")
    deep = walk(api_as(reader), "/api/v1/vms/", {"limit": "2"})[1][2]["next"]
    cursor = deep.split("after=")[1]
    with CaptureQueriesContext(connection) as queries:
        seek_page(VirtualMachine.objects.all(), key="name", descending=False, after=cursor, size=2)
    plans = plans_of(queries)
    if connection.vendor == "sqlite":  # the rows tying with the cursor's, then those past it: two index seeks
        assert "pol_vm_name_id (name=? AND id>?)" in plans[0] and "pol_vm_name_id (name>?)" in plans[1], plans
        assert not any("TEMP B-TREE" in plan for plan in plans), plans
    else:
        assert not any("Sort" in plan for plan in plans), plans


@pytest.mark.parametrize("scope", ["subscription", "resource group"])
def test_a_one_scope_readers_deep_vm_page_seeks_an_index_of_that_scope_and_sorts_nothing(
        persona_mappings, reader, group_member, analyze, scope):
    from tests.policies.factories import DEV, PROD, make_many_vms

    # The reader's subscription is a small part of the table and its names tie with the other subscription's.
    make_many_vms(150, PROD, "rg-bulk"), make_many_vms(150, PROD, "rg-a"), make_many_vms(1500, DEV)
    analyze()
    user = reader if scope == "subscription" else group_member("reader")
    tie = VirtualMachine.objects.get(subscription_key=PROD, resource_group="rg-a", name="vm-00100")
    visible = policy_selectors.vm_list(user)
    with CaptureQueriesContext(connection) as queries:
        page = seek_page(visible, key="name", descending=False, after=encode_cursor("name", tie.name, tie.pk - 1),
                         size=2)
    past = sorted((vm.name, vm.pk) for vm in visible if (vm.name, vm.pk) > (tie.name, tie.pk - 1))
    assert [vm.pk for vm in page.rows] == [pk for _, pk in past[:2]] and page.rows[0].pk == tie.pk
    plans = plans_of(queries)
    if connection.vendor == "sqlite":  # the ties with the cursor, then the names past it: two seeks of one index
        seek = ("pol_vm_sub_name_id (subscription_key=? AND" if scope == "subscription"
                else "pol_vm_sub_rg_name_id (subscription_key=? AND resource_group=? AND")
        assert f"{seek} name=? AND id>?)" in plans[0] and f"{seek} name>?)" in plans[1], plans
        assert not any("TEMP B-TREE" in plan for plan in plans), plans
    else:
        index = "pol_vm_sub_name_id" if scope == "subscription" else "pol_vm_sub_rg_name_id"
        assert all(f"Index Scan using {index}" in plan for plan in plans), plans
        assert not any("Sort" in plan for plan in plans), plans


# --- approvals -------------------------------------------------------------------------------------------------
def first_to_expire(requests) -> list[int]:
    rows = AccessRequest.objects.filter(pk__in=[r.pk for r in requests]).values_list("approval_expires_at", "pk")
    return [pk for _, pk in sorted(rows)]


def test_the_approval_pages_walk_every_request_once_first_to_expire_first_ties_by_id_and_back(
        persona_mappings, approver, api_as):
    made = pending_in_groups(RG_A, [3, 1, 4, 2])
    client = api_as(approver)
    ids, pages = walk(client, "/api/v1/approvals/", {"limit": "3"})
    assert ids == first_to_expire(made) and len(pages) == 4
    assert pages[0]["previous"] is None and all(page["previous"] for page in pages[1:])
    assert all("progress" in row for page in pages for row in page["results"])
    assert walk_back(client, pages[-1]) == ids[:-len(pages[-1]["results"])]


def test_the_approval_scope_holds_on_every_page(persona_mappings, approver, group_member, api_as):
    mine = pending_in_groups(RG_A, [2, 2, 1])
    other_group = pending_in_groups(RG_B, [2, 1])
    outside = pending_in_groups(OUT, [2, 2])  # another subscription's: never on these pages
    spanning = pending_in_groups(RG_A, [1])[0]
    add_vm_at(spanning, RG_B)  # one of its VMs out of the group approver's scope: not theirs to decide
    gus = group_member("approver")
    decided = pending_in_groups(RG_A, [1])[0]
    Approval.objects.create(request=decided, approver=gus, approver_name=gus.username, decision="approve")
    ids, _ = walk(api_as(gus), "/api/v1/approvals/", {"limit": "2"})
    assert ids == first_to_expire(mine)
    ids, _ = walk(api_as(approver), "/api/v1/approvals/", {"limit": "2"})  # the subscription's approver
    assert ids == first_to_expire([*mine, *other_group, spanning, decided])
    assert not set(ids) & {r.pk for r in outside}


def test_a_forged_approval_cursor_only_moves_within_the_callers_scope(persona_mappings, group_member, api_as):
    inside, other = pending_in_groups(RG_A, [1])[0], pending_in_groups(RG_B, [1])[0]
    earlier = (timezone.now() - timedelta(days=1)).astimezone(UTC).isoformat()
    body = api_as(group_member("approver")).get("/api/v1/approvals/", {
        "after": cursor_of(["approval_expires_at", earlier, other.pk])}).json()
    assert [row["id"] for row in body["results"]] == [inside.pk]


# --- both: bad cursors and offsets -----------------------------------------------------------------------------
LISTS = {"/api/v1/vms/": ("reader", "name", "vm"), "/api/v1/approvals/": ("approver", "approval_expires_at", "ask")}


@pytest.fixture
def listed(persona_mappings, reader, approver, api_as):
    """``listed(url)``: a client of the persona that reads the list at ``url``, with a row in it."""
    make_vm(RG_A)
    pending_in_groups(RG_A, [1])
    return lambda url: api_as({"reader": reader, "approver": approver}[LISTS[url][0]])


@pytest.mark.parametrize("url", list(LISTS))
@pytest.mark.parametrize("cursor", [
    "garbage", "!!", "\u00e9\u00e9", cursor_of("not json"), cursor_of({"name": 1}), cursor_of(["created_at",
    "2030-01-01T00:00:00+00:00", 1]), cursor_of(["name", "a"]), cursor_of(["name", "a", 0]),
    cursor_of(["name", "a", 2**63]), cursor_of(["name", "a\u0000", 1]), cursor_of(["name", "\ud800", 1]),
    cursor_of(["name", 5, 1]), cursor_of(["approval_expires_at", "2030-01-01T00:00:00", 1]),
    cursor_of(["approval_expires_at", "tomorrow", 1]), cursor_of(["approval_expires_at", None, 1]),
    cursor_of(["nosuchfield", "a", 1])])
@pytest.mark.parametrize("key", ["after", "before"])
def test_a_cursor_the_list_did_not_give_is_a_400_naming_it(listed, url, cursor, key):
    response = listed(url).get(url, {key: cursor})
    assert response.status_code == 400, response.content
    detail = response.json()["detail"]
    assert detail.startswith(f"The {key} cursor is not one this list gave") and "for the first page" in detail


@pytest.mark.parametrize("url", list(LISTS))
def test_the_other_lists_cursor_is_refused_and_an_empty_one_is_the_first_page(listed, url):
    client = listed(url)
    other = next(u for u in LISTS if u != url)
    key = LISTS[other][1]
    value = "2030-01-01T00:00:00+00:00" if key == "approval_expires_at" else "vm"
    assert client.get(url, {"after": cursor_of([key, value, 1])}).status_code == 400
    first = client.get(url, {"after": ""})
    assert first.status_code == 200 and len(first.json()["results"]) == 1


@pytest.mark.parametrize("url", list(LISTS))
@pytest.mark.parametrize(("params", "status"), [({"offset": "5"}, 400), ({"offset": "-1"}, 400),
                                                ({"offset": "x"}, 400), ({"offset": "0"}, 200), ({"offset": ""}, 200),
                                                ({"after": "x", "before": "y"}, 400)])
def test_offset_is_refused_rather_than_answering_the_first_page_again(listed, url, params, status):
    response = listed(url).get(url, params)
    assert response.status_code == status, response.content
    if "offset" in params and status == 400:
        assert response.json()["detail"].startswith("offset is no longer taken by this list")


def test_both_cursors_at_once_are_a_400_saying_so(listed):
    client = listed("/api/v1/vms/")
    first = client.get("/api/v1/vms/", {"limit": "1"}).json()
    cursor = first["results"] and cursor_of(["name", first["results"][0]["name"], first["results"][0]["id"]])
    response = client.get("/api/v1/vms/", {"after": cursor, "before": cursor})
    assert response.status_code == 400 and response.json()["detail"] == (
        "Give after or before, not both: a page follows one cursor.")
