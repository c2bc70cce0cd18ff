"""The links of the lists paged by cursor (``generic/_seek_pager.html``): clean query strings, filtered or not."""
from types import SimpleNamespace

from django.contrib.auth.models import AnonymousUser
from django.template.loader import render_to_string
from django.test import RequestFactory


def pager(query: str, **shown) -> str:
    page = SimpleNamespace(**{"first": False, "previous": "b4", "next": "n3", "rows": [1, 2], **shown})
    page.has_other_pages = bool(page.previous or page.next)
    request = RequestFactory().get("/requests/")
    request.user = AnonymousUser()
    return render_to_string("generic/_seek_pager.html", {"page": page, "query": query}, request=request)


def test_without_filters_the_links_carry_only_their_cursor_and_the_first_page_is_the_list_itself():
    html = pager("")
    assert 'id="page-first" href="/requests/"' in html
    assert 'href="?before=b4"' in html and 'href="?after=n3"' in html
    assert "?&" not in html and "?&amp;" not in html


def test_with_filters_the_cursor_follows_them():
    html = pager("state=open&sort=source")
    assert 'id="page-first" href="?state=open&amp;sort=source"' in html
    assert 'href="?state=open&amp;sort=source&amp;before=b4"' in html
    assert 'href="?state=open&amp;sort=source&amp;after=n3"' in html


def test_an_empty_list_says_nothing_of_rows_shown_and_has_no_pager_without_other_pages():
    assert "2 shown" in pager("")
    assert pager("", first=True, previous=None, next=None, rows=[]).strip() == ""  # its empty text says it
    past = pager("", previous=None, next=None, rows=[])  # a cursor past the last row: the way back, no "0 shown"
    assert 'id="page-first"' in past and "shown" not in past
