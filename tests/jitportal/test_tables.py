"""The django-tables2 list pages: ``?per_page=`` may shrink a page but never grow it past the shared maximum, and
the sorted column's header says so to screen readers."""
import importlib
import re
import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.urls import reverse
from django_tables2 import Table

from accounts.models import RoleMapping
from jitportal.lib.tables import MAX_PER_PAGE, SortableTable
from tests.plugins.personas import IN_SCOPE
from tests.policies.factories import make_many_vms

ROWS = MAX_PER_PAGE + 10


def many_vms():
    make_many_vms(3 * ROWS)  # ROWS in each tab


def many_requests():
    from tests.policies.access.factories import make_access_request

    for _ in range(ROWS):
        make_access_request(IN_SCOPE)


def many_mappings():
    RoleMapping.objects.bulk_create(RoleMapping(source_kind="group", role="reader", scope=IN_SCOPE,
                                                source_value=f"00000000-0000-4000-8000-{n:012d}")
                                    for n in range(ROWS))


LISTS = {"policies:inventory": many_vms, "policies:requests": many_requests, "accounts:rolemapping_list": many_mappings}
# The lists paged by number; the Requests list pages by cursor (``jitportal.lib.keyset``): a page number means nothing.
NUMBERED = [name for name in LISTS if name != "policies:requests"]


def rows_shown(table) -> list:
    """The records of the page a list shows, paged by number or by cursor."""
    if getattr(table, "seek", None) is not None:
        return table.seek.rows
    return [row.record for row in table.page.object_list]


def next_page(response) -> dict:
    """The query of the page after the one shown (``{}`` at the end)."""
    table = response.context["table"]
    if getattr(table, "seek", None) is not None:
        return {"after": table.seek.next} if table.seek.next else {}
    return {"page": str(table.page.next_page_number())} if table.page.has_next() else {}


@pytest.mark.django_db
@pytest.mark.parametrize("name", LISTS)
@pytest.mark.parametrize(("asked", "shown"), [("100000", MAX_PER_PAGE), ("20", 20), ("0", 50), ("-1", 50),
                                              ("many", 50), ("9" * 5000, 50), ("", 50)])
def test_a_list_page_shows_at_most_the_maximum_rows(client, breakglass_admin, name, asked, shown):
    LISTS[name]()
    client.force_login(breakglass_admin)
    response = client.get(reverse(name), {"per_page": asked})
    assert response.status_code == 200
    assert len(rows_shown(response.context["table"])) == shown


@pytest.mark.django_db
@pytest.mark.parametrize("name", NUMBERED)
@pytest.mark.parametrize("asked", ["99999999999999999999999", str(2**63), str(2**63 // 100 + 2)])
def test_a_page_number_beyond_any_database_offset_shows_the_last_page(client, breakglass_admin, name, asked):
    LISTS[name]()
    client.force_login(breakglass_admin)
    response = client.get(reverse(name), {"page": asked, "per_page": "100"})
    assert response.status_code == 200
    page = response.context["table"].page
    assert (page.number, len(page.object_list), page.has_next()) == (2, 10, False)


def headers(page: str) -> dict[str, tuple[str | None, str | None]]:
    """Each header cell of the page's table: its text → (its ``aria-sort``, its sort link)."""
    thead = re.search(r"<thead.*?</thead>", page, re.S).group(0)
    cells = {}
    for attrs, content in re.findall(r"<th\b([^>]*)>(.*?)</th>", thead, re.S):
        sort = re.search(r'aria-sort="([^"]*)"', attrs)
        link = re.search(r'<a href="([^"]*)">', content)
        text = re.sub(r"<[^>]+>", "", content).strip()
        cells[text] = (sort and sort.group(1), link and link.group(1))
    return cells


# Each list: a sortable column (by its alias and header), and the column its rows are sorted by by default.
SORTS = {"policies:inventory": ("location", "Location", ("Name", "ascending")),
         "policies:requests": ("requester_name", "Requester", ("Requested", "descending")),
         "accounts:rolemapping_list": ("role", "Role", ("Source", "ascending"))}


@pytest.mark.django_db
@pytest.mark.parametrize("name", LISTS)
@pytest.mark.parametrize(("sort", "expected"), [(None, None), ("", "ascending"), ("-", "descending")])
def test_only_the_sorted_column_header_says_how_the_rows_are_sorted(client, breakglass_admin, name, sort, expected):
    LISTS[name]()
    client.force_login(breakglass_admin)
    alias, header, default = SORTS[name]
    query = {} if sort is None else {"sort": f"{sort}{alias}"}
    cells = headers(client.get(reverse(name), query).content.decode())
    sorted_header, direction = (header, expected) if sort is not None else default
    assert {text: aria for text, (aria, _) in cells.items() if aria} == {sorted_header: direction}
    # The sort stays a link in the header (reachable with the keyboard), the next click turning the order around.
    opposite = "-" if direction == "ascending" else ""
    assert f"sort={opposite}" in cells[sorted_header][1]
    assert all(link for text, (_, link) in cells.items() if text in {header, default[0]})


@pytest.mark.django_db
@pytest.mark.parametrize("name", LISTS)
def test_a_new_sort_starts_again_at_page_one(client, breakglass_admin, name):
    LISTS[name]()
    client.force_login(breakglass_admin)
    alias, header, _ = SORTS[name]
    cells = headers(client.get(reverse(name), {"page": "2", "per_page": "100", "q": ""}).content.decode())
    links = [link for _, link in cells.values() if link]
    assert links and not any(re.search(r"(^|[?&;])page=", link) for link in links), links
    assert all("per_page=100" in link for link in links)  # the rest of the query stays
    assert f"sort={alias}" in cells[header][1]


# Each list: a column many of its rows share a value of.
TIES = {"policies:inventory": "location", "policies:requests": "state", "accounts:rolemapping_list": "role"}


@pytest.mark.django_db
@pytest.mark.parametrize("name", LISTS)
@pytest.mark.parametrize("direction", ["", "-"])
def test_rows_that_tie_on_the_sort_are_in_id_order_so_pages_neither_repeat_nor_skip_them(
        client, breakglass_admin, name, direction):
    LISTS[name]()
    client.force_login(breakglass_admin)
    field = TIES[name]
    shown, query = [], {}
    for number in (1, 2):
        response = client.get(reverse(name), {"sort": f"{direction}{field}", "per_page": "60", **query})
        table = response.context["table"]
        shown += [(getattr(record, field), record.pk) for record in rows_shown(table)]
        # Asked of the database, not left to the order it happens to return ties in.
        assert table.data.data.query.order_by[-1] == f"{direction}pk"
        query = next_page(response)
        assert query or number == 2
    assert len(shown) > 60 and len({pk for _, pk in shown}) == len(shown)
    assert shown == sorted(shown, reverse=direction == "-")


def test_every_table_with_a_sortable_column_says_how_it_is_sorted():
    """A portal table with a column a click sorts is a ``SortableTable`` (its headers carry ``aria-sort``)."""
    for app in apps.get_app_configs():
        if _ours(app.path):
            for path in Path(app.path).rglob("tables.py"):
                importlib.import_module(".".join(path.relative_to(settings.BASE_DIR).with_suffix("").parts))
    tables = [table for table in _subclasses(Table) if _ours(sys.modules[table.__module__].__file__)]
    assert {table.__name__ for table in tables} >= {"VirtualMachineTable", "AccessRequestTable", "RoleMappingTable"}
    for table in tables:
        sortable = table._meta.orderable and any(column.orderable is not False
                                                 for column in table.base_columns.values())
        assert not sortable or issubclass(table, SortableTable), table


def _ours(path: str) -> bool:
    """Whether ``path`` is the portal's code (not an installed package)."""
    path = Path(path)
    return path.is_relative_to(settings.BASE_DIR) and ".venv" not in path.relative_to(settings.BASE_DIR).parts


def _subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]
