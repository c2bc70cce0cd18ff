"""Every API list reads ``limit``: a whole number from 1 gives that many rows a page (more than 500 gives 500); text
that is not one, 0 or a negative number is a 400 saying so, never the default page as if nothing was wrong."""
from __future__ import annotations

import pytest
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from api.pagination import MAX_LIMIT, Pagination, page_size
from tests.accounts.test_authorization_matrix import make_audit_event
from tests.plugins.personas import IN_SCOPE
from tests.policies.access.factories import pending_in_groups
from tests.policies.factories import make_vm

pytestmark = pytest.mark.django_db
IN = f"{IN_SCOPE}/resourceGroups/rg-api"
LISTS = [("reader", "/api/v1/vms/", {}), ("policy_admin", "/api/v1/requests/", {"all": "1"}),
         ("approver", "/api/v1/approvals/", {}),
         ("auditor", "/api/v1/audit/events/", {"source": "portal", "action": "matrix.probe"})]


@pytest.fixture
def rows(persona_mappings):
    """Two rows in every list: two requests waiting for approval on one VM and another VM, two audit events."""
    pending_in_groups(IN, [2])
    make_vm(IN, "vm-other")
    make_audit_event(IN), make_audit_event(IN)


@pytest.fixture
def callers(api_as, reader, policy_admin, approver, auditor):
    return {"reader": api_as(reader), "policy_admin": api_as(policy_admin), "approver": api_as(approver),
            "auditor": api_as(auditor)}


@pytest.mark.parametrize("limit", ["-1", "0", "abc", "1.5", "+5", "1_0", "٣", " -3 ", "1e3", "x" * 300])
@pytest.mark.parametrize(("persona", "url", "params"), LISTS)
def test_a_limit_that_is_not_a_whole_number_of_at_least_one_is_a_400_naming_it(rows, callers, persona, url, params,
                                                                               limit):
    response = callers[persona].get(url, {**params, "limit": limit})
    assert (response.status_code, response["Content-Type"]) == (400, "application/json"), response.content
    detail = response.json()["detail"]
    assert detail.startswith("limit must be a whole number of rows per page, at least 1"), detail
    assert repr(limit.strip()[:20])[1:-1] in detail and len(detail) < 200


@pytest.mark.parametrize(("persona", "url", "params"), LISTS)
def test_a_limit_gives_that_many_rows_and_a_huge_one_gives_them_all(rows, callers, persona, url, params):
    client = callers[persona]
    first = client.get(url, {**params, "limit": "1"}).json()
    assert len(first["results"]) == 1 and "limit=1" in first["next"]
    assert len(client.get(first["next"]).json()["results"]) == 1
    for limit in ("", "2", "00002", str(MAX_LIMIT + 1), "9" * 40):  # empty: the default page
        response = client.get(url, {**params, "limit": limit})
        assert response.status_code == 200 and len(response.json()["results"]) == 2, (limit, response.content)


def _request(query: str) -> Request:
    return Request(APIRequestFactory().get(f"/api/v1/vms/?{query}"))


@pytest.mark.parametrize(("query", "size"), [("", 50), ("limit=", 50), ("limit=7", 7), ("limit=500", 500),
                                             ("limit=501", 500), (f"limit={10**30}", 500)])
def test_the_page_size_defaults_to_50_and_clamps_a_larger_limit_to_500(query, size):
    assert page_size(_request(query)) == size
    assert Pagination().get_limit(_request(query)) == size


def test_a_list_whose_default_is_larger_keeps_it_as_its_maximum():
    assert page_size(_request("limit=9999"), default=800) == 800
    assert page_size(_request(""), default=800) == 800


def test_the_schema_says_what_limit_takes_on_every_list(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    for _persona, url, _params in LISTS:
        operation = schema["paths"][url]["get"]
        limit = next(p for p in operation["parameters"] if p["name"] == "limit")
        assert limit["schema"] == {"type": "integer", "minimum": 1}
        assert "larger one than 500 gives 500" in limit["description"]
        assert "0 or less) is a 400" in limit["description"]
        assert "400" in operation["responses"]
