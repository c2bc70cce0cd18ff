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


def _table(page: str, marker: str) -> str:
    """The ``<table>`` whose opening tag holds ``marker``, or else the first after it."""
    at = page.index(marker)
    start = page.rfind("<table", 0, at)
    if start < 0 or page.index(">", start) < at:
        start = page.index("<table", at)
    return page[start:page.index("</table>", start)]


def _plain(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", html)).strip()


@pytest.fixture
def portal_lists(breakglass_admin, requester):
    """A row in every wide list: a request of the requester's (open, approved by someone), one waiting for approval,
    a rule, a webhook with a delivery, a token, Azure's record of a request, an Activity Log event, twin VM names."""
    from datetime import timedelta

    from django.utils import timezone

    from api.services import token_create
    from audit.ingestion import store_events
    from audit.models import IngestionState
    from notifications.models import Webhook, WebhookDelivery
    from policies.access.models import AccessRequest, Approval, ApprovalState
    from policies.models import JitPolicy
    from tests.audit.factories import event
    from tests.policies.access.factories import make_access_request, pending_in_groups, rule
    from tests.policies.factories import PROD, make_vm

    scope = f"/subscriptions/{PROD}/resourceGroups/rg-web-prod"
    mine = make_access_request(scope)
    AccessRequest.objects.filter(pk=mine.pk).update(requester=requester, approvals_required=1,
                                                    approval_state=ApprovalState.APPROVED)
    Approval.objects.create(request=mine, approver=breakglass_admin, approver_name="Break Glass", decision="approve",
                            comment="ok")
    pending_in_groups(scope, [1])
    rule(scope, name="Web servers")
    webhook = Webhook(name="Ops", url="https://hooks.example/ops", events=["needs_approval"])
    webhook.secret = "s3cret"
    webhook.save()
    WebhookDelivery.objects.create(webhook=webhook, event="needs_approval", payload={},
                                   next_attempt_at=timezone.now())
    token_create(actor=breakglass_admin, name="laptop")
    IngestionState.objects.create(subscription_id=PROD, watermark=timezone.now(),
                                  backfill_from=timezone.now() - timedelta(days=90))
    store_events([event()])
    vm = make_vm(scope)
    JitPolicy.objects.create(
        subscription=vm.subscription, subscription_key=PROD, resource_id=vm.policy_id.lower(),
        resource_group=vm.resource_group, resource_group_name=vm.resource_group_name, location="westeurope",
        name="default", requests=[{"startTimeUtc": timezone.now().isoformat(), "requestor": "alice@contoso.example",
                                   "justification": "Patch", "ports": [{"vm": vm.resource_id, "number": 22,
                                                                        "status": "Initiated"}]}])
    make_vm(f"/subscriptions/{PROD}/resourceGroups/rg-other", name="vm-matrix")  # a twin name, another group
    return {"request": mine, "webhook": webhook, "vm": vm, "admin": breakglass_admin, "requester": requester}


# Each wide list: its page (from the objects ``portal_lists`` made), who views it, and what marks its table.
WIDE_LISTS = {
    "requests": (lambda d: reverse("policies:requests"), "admin", 'id="request-table"'),
    "approval queue": (lambda d: reverse("policies:approvals"), "admin", 'id="approval-queue"'),
    "access rules": (lambda d: reverse("policies:rules"), "admin", 'id="rule-table"'),
    "subscriptions": (lambda d: reverse("policies:subscriptions"), "admin", 'id="result_list"'),
    "role mappings": (lambda d: reverse("accounts:rolemapping_list"), "admin", 'id="result_list"'),
    "webhooks": (lambda d: reverse("notifications:webhook_list"), "admin", 'id="result_list"'),
    "webhook deliveries": (lambda d: reverse("notifications:webhook_detail", args=[d["webhook"].pk]), "admin",
                           'id="result_list"'),
    "API tokens": (lambda d: reverse("api_tokens"), "admin", 'id="result_list"'),
    "ingestion status": (lambda d: reverse("audit:ingestion_status"), "admin", 'id="ingestion-status"'),
    "VM timeline": (lambda d: reverse("audit:vm_timeline") + "?vm=" + d["timeline_vm"], "admin", 'id="timeline"'),
    "VM timeline choice": (lambda d: reverse("audit:vm_timeline") + "?vm=vm-matrix", "admin",
                           'id="timeline-choices"'),
    "request decisions": (lambda d: reverse("policies:request_detail", args=[d["request"].pk]), "admin",
                          'id="decisions"'),
    "request ports": (lambda d: reverse("policies:request_detail", args=[d["request"].pk]), "admin",
                      'class="request-ports'),
    "VM ports": (lambda d: reverse("policies:vm_detail", args=[d["vm"].pk]), "admin", 'id="vm-ports"'),
    "VM recent requests": (lambda d: reverse("policies:vm_detail", args=[d["vm"].pk]), "admin",
                           'id="recent-requests"'),
    "my access": (lambda d: reverse("my_access"), "requester", 'id="my-roles"'),
    "dashboard open access": (lambda d: reverse("dashboard"), "requester", 'id="my-open-access"'),
}


@pytest.mark.parametrize("name", list(WIDE_LISTS))
def test_every_wide_list_is_stacked_and_each_cell_names_its_column(client, portal_lists, name):
    from tests.audit.factories import vm_id

    url, viewer, marker = WIDE_LISTS[name]
    client.force_login(portal_lists[viewer])
    response = client.get(url({**portal_lists, "timeline_vm": vm_id()}))
    assert response.status_code == 200
    table = _table(response.content.decode(), marker)
    assert re.search(r'<table\b[^>]*class="[^"]*\bstacked\b', table), table[:200]
    headers = [_plain(cell) for cell in re.findall(r"<th\b[^>]*>(.*?)</th>",
                                                   re.search(r"<thead\b.*?</thead>", table, re.S).group(0), re.S)]
    assert headers and all(headers), headers
    rows = re.findall(r"<tr\b[^>]*>(.*?)</tr>", table.split("</thead>", 1)[1], re.S)
    assert rows
    for row in rows:
        labels = [unescape(label) for label in re.findall(r'<t[dh]\b[^>]*?\bdata-label="([^"]*)"', row)]
        assert len(re.findall(r"<t[dh]\b", row)) == len(labels), row  # no cell without its label
        assert labels == headers, row
