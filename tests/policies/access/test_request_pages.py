"""The Requests page pages by cursor: every request once, in order, with its filters and sort, within the user's
scope; a page link it did not give shows the first page, saying so."""
from __future__ import annotations

import base64
import html
import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from policies.access.models import AccessRequest
from tests.plugins.personas import IN_SCOPE, OUT_OF_SCOPE
from tests.policies.access.factories import make_access_request, requests_in_groups

IN = f"{IN_SCOPE}/resourceGroups/rg-pages"
OUT = f"{OUT_OF_SCOPE}/resourceGroups/rg-pages"


def newest_first(requests) -> list[int]:
    rows = AccessRequest.objects.filter(pk__in=[r.pk for r in requests]).values_list("created_at", "pk")
    return [pk for _, pk in sorted(rows, reverse=True)]


def link(page: str, name: str) -> str | None:
    found = re.search(rf'id="page-{name}"[^>]* href="([^"]+)"', page)
    return html.unescape(found.group(1)) if found else None


def shown(page: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr data-request="(\d+)"', page)]


def walk(client, params: dict) -> tuple[list[int], list[str]]:
    """Every page from the first, following Older: the ids in order, and each page's HTML."""
    url, pages, ids = reverse("policies:requests"), [], []
    response = client.get(url, params)
    while True:
        assert response.status_code == 200
        text = response.content.decode()
        pages.append(text)
        ids += shown(text)
        following = link(text, "next")
        if following is None:
            return ids, pages
        response = client.get(url + following)


@pytest.fixture
def admin(client, policy_admin):
    client.force_login(policy_admin)
    return client


def test_the_pages_show_every_request_once_newest_first_ties_by_id_and_lead_back(admin):
    made = requests_in_groups(IN, [4, 1, 5, 3])
    ids, pages = walk(admin, {"per_page": "3"})
    assert ids == newest_first(made) and len(pages) == 5
    assert link(pages[0], "previous") is None and link(pages[0], "first") is None
    assert all(link(page, "first") == "?per_page=3" for page in pages[1:])
    assert all("Newer" in page and "newest first" in page for page in pages[1:])
    # Newer, from the last page back: the same rows, page by page.
    back, text = [], pages[-1]
    while link(text, "previous"):
        text = admin.get(reverse("policies:requests") + link(text, "previous")).content.decode()
        back = shown(text) + back
    assert back == ids[: -len(shown(pages[-1]))]


@pytest.mark.parametrize("sort", ["state", "-requester_name", "id", "-end_at"])
def test_every_sort_pages_through_every_request_once_in_its_order(admin, sort):
    made = requests_in_groups(IN, [3, 4], state="open") + requests_in_groups(IN, [3], state="closed")
    ids, pages = walk(admin, {"per_page": "2", "sort": sort})
    field = sort.lstrip("-")
    rows = AccessRequest.objects.filter(pk__in=[r.pk for r in made]).values_list(field, "pk")
    assert ids == [pk for _, pk in sorted(rows, reverse=sort.startswith("-"))]
    assert all(f"sort={sort}" in link(page, "next") for page in pages[:-1])
    assert "Next" in pages[1] and "newest first" not in pages[1]


def test_filters_and_the_scope_hold_on_every_page(admin, client, requester):
    inside = requests_in_groups(IN, [3, 3])
    requests_in_groups(IN, [2, 2], state="closed")
    outside = requests_in_groups(OUT, [3, 3])  # another subscription's: never on the admin's pages
    ids, pages = walk(admin, {"per_page": "2", "state": "open"})
    assert ids == newest_first(inside)
    assert all("state=open" in link(page, "next") for page in pages[:-1])
    assert not set(ids) & {r.pk for r in outside}
    client.force_login(requester)
    assert walk(client, {"per_page": "2"})[0] == []  # none of them theirs


def cursor_of(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", ["garbage", "%%", cursor_of("not json"), cursor_of(["created_at", "x", 1]),
                                    cursor_of(["state", "open", 1]), cursor_of(["created_at", "2030-01-01", 2**64]),
                                    cursor_of(["created_at", "2030-01-01T00:00:00+00:00\u0000", 1])])
@pytest.mark.parametrize("key", ["after", "before"])
def test_a_page_link_it_did_not_give_shows_the_first_page_saying_so(admin, cursor, key):
    made = requests_in_groups(IN, [3])
    response = admin.get(reverse("policies:requests"), {key: cursor, "per_page": "2", "state": "open"})
    assert response.status_code == 200
    text = response.content.decode()
    assert 'id="cursor-error"' in text and "here is the first page" in text
    assert shown(text) == newest_first(made)[:2] and 'state=open' in link(text, "next")


@pytest.mark.parametrize("sort", ["requester_name", "-source_prefix", "state", "-kind"])
def test_a_text_cursor_the_database_cannot_take_shows_the_first_page_saying_so(admin, sort):
    """A lone surrogate (``\\ud800`` in the cursor's JSON) is no UTF-8 text: refused as a cursor, not a 500."""
    made = requests_in_groups(IN, [3])
    cursor = cursor_of([sort.lstrip("-"), "\ud800", made[0].pk])  # JSON writes it as the escape \\ud800
    response = admin.get(reverse("policies:requests"), {"sort": sort, "after": cursor, "per_page": "2"})
    assert response.status_code == 200
    text = response.content.decode()
    assert 'id="cursor-error"' in text and len(shown(text)) == 2


def test_a_forged_but_well_formed_cursor_only_moves_within_the_scope(admin):
    inside, outside = make_access_request(IN), make_access_request(OUT)
    later = (timezone.now() + timedelta(days=1)).isoformat()
    text = admin.get(reverse("policies:requests"), {"after": cursor_of(["created_at", later, outside.pk + 1])}
                     ).content.decode()
    assert shown(text) == [inside.pk] and 'id="cursor-error"' not in text


def test_the_sort_links_start_again_at_the_first_page(admin):
    requests_in_groups(IN, [3])
    first = admin.get(reverse("policies:requests"), {"per_page": "1"}).content.decode()
    text = admin.get(reverse("policies:requests") + link(first, "next")).content.decode()
    headers = re.findall(r'<th[^>]*><a href="([^"]+)"', text)
    assert headers and not any("after=" in h or "before=" in h for h in headers), headers


def test_filtering_keeps_the_lists_sort_and_rows_per_page(admin):
    """The filter form carries the sort and rows per page the list shows (a search dropped both), escaped."""
    page = admin.get(reverse("policies:requests"), {"sort": "-requester_name", "per_page": '5"><b>'}).content.decode()
    form = page.split('id="request-filter"')[1].split("</form>")[0]
    assert '<input type="hidden" name="sort" value="-requester_name">' in form
    assert '<input type="hidden" name="per_page" value="5&quot;&gt;&lt;b&gt;">' in form
    plain = admin.get(reverse("policies:requests")).content.decode().split('id="request-filter"')[1].split("</form>")[0]
    assert 'name="sort"' not in plain and 'name="per_page"' not in plain


def page_size_form(page: str) -> tuple[dict, list] | None:
    """The paging bar's "Rows per page": the parameters it sends again and its choices (size, selected)."""
    bar = re.search(r'<nav class="paginator request-pager" aria-label="Pages">(.*?)</nav>', page, re.S)
    found = bar and re.search(r'<form method="get" class="page-size" id="page-size-form">(.*?)</form>', bar.group(1),
                              re.S)
    if not found:
        return None
    form = found.group(1)
    assert '<label for="page-size">Rows per page</label>' in form and 'id="page-size-show">Show</button>' in form
    return (dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)),
            re.findall(r'<option value="(\d+)"( selected)?>', form))


def test_the_paging_bar_offers_rows_per_page_keeping_the_filters_and_sort_from_the_first_page(admin):
    """``?per_page=`` worked only typed into the address. The choice keeps the filters and sort, not the cursor."""
    requests_in_groups(IN, [3])
    few = admin.get(reverse("policies:requests")).content.decode()  # the smallest size shows them all: none offered
    assert len(shown(few)) == 3 and "3 shown" in few and 'id="page-size"' not in few
    requests_in_groups(IN, [27])
    first = admin.get(reverse("policies:requests"), {"state": "open", "sort": "-requester_name", "per_page": "10"})
    second = admin.get(reverse("policies:requests") + link(first.content.decode(), "next")).content.decode()
    kept, choices = page_size_form(second)
    assert kept == {"state": "open", "sort": "-requester_name"}  # no after= or before=: the first page
    assert choices == [("10", " selected"), ("25", ""), ("50", ""), ("100", "")]
    chosen = admin.get(reverse("policies:requests"), {**kept, "per_page": "25"}).content.decode()
    assert len(shown(chosen)) == 25 and link(chosen, "first") is None and link(chosen, "next")
    assert page_size_form(chosen)[1] == [("25", " selected"), ("50", ""), ("100", "")]
    assert page_size_form(admin.get(reverse("policies:requests")).content.decode())[1] == [
        ("25", ""), ("50", " selected"), ("100", "")]
