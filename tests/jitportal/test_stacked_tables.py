"""Wide lists as cards on a phone (``table.stacked``): every data cell of the inventory (each tab) and of the audit
results names its column in ``data-label`` (its header as plain text), which portal.css shows before the value."""
import re
from html import unescape

import django_tables2 as tables
import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.utils.safestring import mark_safe

from jitportal.lib.tables import NOWRAP, StackedRows, TimeColumn, column_labels
from tests.policies.factories import make_many_vms

pytestmark = pytest.mark.django_db
CELL = re.compile(r"<td\b([^>]*)>")


class Pets(StackedRows, tables.Table):
    name = tables.Column(verbose_name="Pet name")
    born = TimeColumn(verbose_name="Born")  # its own td attributes (the admin's nowrap)
    menu = tables.Column(empty_values=(), verbose_name=mark_safe('<span class="visually-hidden">Actions</span>'))
    kind = tables.Column(attrs={"cell": {"class": "kind"}})

    class Meta:
        orderable = False  # not a portal list: the walk of sortable tables (test_tables) passes it by


def labels_of(row: str) -> list[str | None]:
    """Each cell's ``data-label`` in ``row`` (``None`` for a cell without one)."""
    found = []
    for attrs in CELL.findall(row):
        label = re.search(r'data-label="([^"]*)"', attrs)
        found.append(unescape(label.group(1)) if label else None)
    return found


def test_a_stacked_table_labels_each_cell_with_its_headers_words_keeping_the_columns_own_attributes():
    table = Pets([{"name": "Rex", "born": None, "kind": "dog"}], orderable=False)
    html = table.as_html(RequestFactory().get("/"))
    row = re.search(r"<tbody[^>]*>.*?</tbody>", html, re.S).group(0)
    assert labels_of(row) == ["Pet name", "Born", "Actions", "Kind"]
    assert 'class="nowrap" data-label="Born"' in row and 'class="kind" data-label="Kind"' in row
    assert column_labels(table) == {"name": "Pet name", "born": "Born", "menu": "Actions", "kind": "Kind"}
    assert NOWRAP == {"td": {"class": "nowrap"}}  # the shared setting itself is left as it was
    assert "data-label" not in re.search(r"<thead[^>]*>.*?</thead>", html, re.S).group(0)


@pytest.mark.parametrize(("tab", "columns"), [
    ("configured", ["", "Name", "Subscription", "Resource group", "Location", "OS", "Approved requests (7 days)",
                    "Last access", "Connection details", "Last user", "Actions"]),
    ("not_configured", ["", "Name", "Subscription", "Resource group", "Location", "OS", "Connection details",
                        "Actions"]),
    ("unsupported", ["Name", "Subscription", "Resource group", "Location", "OS", "Reason", "Actions"]),
])
def test_every_inventory_cell_names_its_column(client, policy_admin, tab, columns):
    make_many_vms(6)
    client.force_login(policy_admin)
    page = client.get(reverse("policies:inventory"), {"tab": tab}).content.decode()
    assert '<table id="result_list" class="vm-table stacked sortable">' in page
    rows = re.findall(r"<tr data-vm=.*?</tr>", page, re.S)
    assert len(rows) == 2
    for row in rows:
        assert labels_of(row) == columns
        assert re.search(r'<td data-label="Actions" class="row-actions"><details class="row-menu">', row)


def test_the_inventory_labels_are_escaped_text():
    from policies.tables import render_rows

    [vm] = make_many_vms(1)
    rows = render_rows([vm], {"name": '<b>"Name"</b>', "subscription": "S", "resource_group_name": "R",
                              "location": "L", "os_type": "O", "actions": "A"}, menu=lambda vm: set())
    assert 'data-label="&lt;b&gt;&quot;Name&quot;&lt;/b&gt;"' in rows and "<b>" not in rows


@pytest.mark.parametrize(("source", "columns"), [
    ("portal", ["Time (UTC)", "User", "Action", "Target", "Subscription", "Client IP"]),
    ("azure", ["Time (UTC)", "Subscription", "Resource group", "Resource", "Operation", "Status", "Caller"]),
])
def test_every_audit_result_cell_names_its_column(client, auditor, source, columns):
    from audit.ingestion import store_events
    from audit.services import audit_record
    from tests.audit.factories import PROD, event

    audit_record(actor=None, action="policy.save", target_label="web-01", subscription_id=PROD)
    store_events([event()])
    client.force_login(auditor)
    page = client.get(reverse("audit:search"), {"source": source, "range": "7d"}).content.decode()
    assert '<table id="result_list" class="stacked">' in page
    rows = re.findall(r"<tr>\s*<td.*?</tr>", re.search(r"<tbody>.*?</tbody>", page, re.S).group(0), re.S)
    assert rows
    for row in rows:
        assert labels_of(row) == columns
        assert all(re.search(r'class="field-\w+', attrs) for attrs in CELL.findall(row))
