"""The API's request list pages by cursor: every row once, in order, at any depth, with its filters and its scope;
a cursor it did not give is a 400."""
from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from policies.access.models import AccessRequest
from tests.plans import plans_of
from tests.plugins.personas import IN_SCOPE, OUT_OF_SCOPE
from tests.policies.access.factories import make_access_request, requests_in_groups

IN = f"{IN_SCOPE}/resourceGroups/rg-api"
OUT = f"{OUT_OF_SCOPE}/resourceGroups/rg-api"


def walk(client, params: dict) -> tuple[list[int], list[dict]]:
    """Every page from the first, following ``next``: the ids in order, and each page's body."""
    pages, ids = [], []
    response = client.get("/api/v1/requests/", params)
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        assert "count" not in body
        pages.append(body)
        ids += [row["id"] for row in body["results"]]
        if not body["next"]:
            return ids, pages
        response = client.get(body["next"])


def newest_first(requests) -> list[int]:
    rows = AccessRequest.objects.filter(pk__in=[r.pk for r in requests]).values_list("created_at", "pk")
    return [pk for _, pk in sorted(rows, reverse=True)]


def test_the_pages_walk_every_request_once_newest_first_ties_by_id_and_back(persona_mappings, policy_admin, api_as):
    made = requests_in_groups(IN, [4, 1, 5, 3])
    client = api_as(policy_admin)
    ids, pages = walk(client, {"all": "1", "limit": "3"})
    assert ids == newest_first(made) and len(pages) == 5
    assert pages[0]["previous"] is None and all(page["previous"] for page in pages[1:])
    # Back from the last page, following previous: the same pages in reverse.
    back, body = [], pages[-1]
    while body["previous"]:
        body = client.get(body["previous"]).json()
        back.insert(0, [row["id"] for row in body["results"]])
    assert [pk for page in back for pk in page] == ids[:-len(pages[-1]["results"])]


def test_filters_and_the_scope_hold_on_every_page(persona_mappings, policy_admin, requester, api_as):
    inside = requests_in_groups(IN, [3, 3])
    closed = requests_in_groups(IN, [2, 2], state="closed")
    requests_in_groups(OUT, [3, 3])  # another subscription's: never on the admin's pages
    ids, pages = walk(api_as(policy_admin), {"all": "1", "limit": "2", "state": "open"})
    assert ids == newest_first(inside)
    assert all("state=open" in page["next"] and "all=1" in page["next"] for page in pages[:-1])
    assert walk(api_as(policy_admin), {"all": "1", "limit": "2"})[0] == newest_first(inside + closed)
    assert walk(api_as(requester), {"limit": "2"})[0] == []  # none of them theirs


def test_a_deep_page_reads_an_index_range_and_sorts_nothing(persona_mappings, policy_admin, api_as):
    made = requests_in_groups(IN, [3, 3, 3])
    client = api_as(policy_admin)
    deep = walk(client, {"all": "1", "limit": "2"})[1][2]["next"]
    assert deep and client.get(deep).status_code == 200
    from jitportal.lib.keyset import seek_page

    cursor = deep.split("after=")[1]
    page = seek_page(AccessRequest.objects.all(), key="created_at", descending=True, after=cursor, size=2)
    assert [r.pk for r in page.rows] == newest_first(made)[6:8]
    with CaptureQueriesContext(connection) as queries:
        seek_page(AccessRequest.objects.all(), key="created_at", descending=True, after=cursor, size=2)
    plans = plans_of(queries, index_if_possible=True)
    if connection.vendor == "sqlite":  # two seeks of the index, each walked in its order: nothing sorted or skipped
        assert "acc_req_recent (created_at=? AND id<?)" in plans[0] and "acc_req_recent (created_at<?)" in plans[1]
        assert not any("TEMP B-TREE" in plan or "MULTI-INDEX" in plan for plan in plans), plans
    else:
        assert not any("Sort" in plan for plan in plans), plans


def cursor_of(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode() if not isinstance(value, str) else value.encode()
                                    ).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "garbage", "!!", "", cursor_of("not json"), cursor_of({"created_at": 1}), cursor_of(["created_at", "x", 1]),
    cursor_of(["created_at", "2030-01-01T00:00:00", 1]), cursor_of(["created_at", "2030-01-01T00:00:00+00:00", 0]),
    cursor_of(["created_at", "2030-01-01T00:00:00+00:00", 2**63]), cursor_of(["created_at", 5, 1]),
    cursor_of(["end_at", "2030-01-01T00:00:00+00:00", 1]), cursor_of(["created_at", "2030-01-01T00:00:00+00:00", "1"]),
    cursor_of(["created_at", "2030-01-01T00:00:00+00:00"]), cursor_of(["nosuchfield", "a", 1]),
    cursor_of(["created_at", "0001-01-01T00:00:00+23:00", 1]), "\u00e9\u00e9"])
@pytest.mark.parametrize("key", ["after", "before"])
def test_a_cursor_the_list_did_not_give_is_a_400_naming_it(persona_mappings, policy_admin, api_as, cursor, key):
    make_access_request(IN)
    response = api_as(policy_admin).get("/api/v1/requests/", {"all": "1", key: cursor})
    if cursor == "":
        assert response.status_code == 200  # an empty cursor is none: the first page
        return
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith(f"The {key} cursor is not one this list gave")


def test_a_forged_but_well_formed_cursor_only_moves_within_the_callers_scope(persona_mappings, policy_admin, api_as):
    inside, outside = make_access_request(IN), make_access_request(OUT)
    later = (timezone.now() + timedelta(days=1)).isoformat()
    body = api_as(policy_admin).get("/api/v1/requests/", {"all": "1", "after": cursor_of(
        ["created_at", later, outside.pk + 1])}).json()
    assert [row["id"] for row in body["results"]] == [inside.pk]


@pytest.mark.parametrize(("params", "status"), [({"offset": "5"}, 400), ({"offset": "0"}, 200),
                                                ({"after": "x", "before": "y"}, 400)])
def test_offset_is_refused_rather_than_answering_the_first_page_again(persona_mappings, policy_admin, api_as, params,
                                                                       status):
    make_access_request(IN)
    response = api_as(policy_admin).get("/api/v1/requests/", {"all": "1", **params})
    assert response.status_code == status, response.content
