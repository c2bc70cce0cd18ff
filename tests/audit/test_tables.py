"""The Activity Log results name a JIT event's VMs, ports, source and end under Resource, escaped, at no extra query
per row."""
import html
import re
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.ingestion import store_events
from tests.audit.factories import PROD, RULE_WRITE, event, vm_id

pytestmark = pytest.mark.django_db
SEARCH = reverse("audit:search")
AT = datetime(2026, 11, 20, 0, 30, tzinfo=UTC)
NSG = f"/subscriptions/{PROD}/resourceGroups/rg-web-prod/providers/Microsoft.Network/networkSecurityGroups/nsg-web"
RULES = f"{NSG}/securityRules"


def resource_cells(body: str) -> list[str]:
    """The Resource column's cells as text, newest first."""
    cells = re.findall(r'<td[^>]* class="field-resource_id"[^>]*>(.*?)</td>', body, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", cell)) for cell in cells]


def test_an_initiate_names_its_vm_port_source_and_end(client, auditor):
    store_events([event(when=AT, properties={
        "virtualMachines": vm_id(name="web-04"), "ports": "22", "sourceAddressPrefixes": "203.0.113.25",
        "endTimeUtc": "2026-11-20T02:00:00.0000000Z", "justification": "alice: patch"})])
    client.force_login(auditor)
    body = client.get(SEARCH).content.decode()
    assert resource_cells(body) == ["web-04 · 22 · from 203.0.113.25 · until 02:00 UTC"]
    policy = vm_id(name="x").split("/providers/")[0] + "/providers/Microsoft.Security/locations/westeurope/"
    assert f'title="{policy.lower()}jitnetworkaccesspolicies/default"' in body  # the resource id, on hover


def test_several_vms_wrap_between_names_and_the_rest_is_counted(client, auditor):
    vms = ",".join(vm_id(name=f"web-0{n}") for n in range(1, 6))
    store_events([event(when=AT, properties={"virtualMachines": vms, "ports": "22,3389",
                                             "sourceAddressPrefixes": "2001:db8::25", "endTimeUtc": "*"}),
                  event(when=AT, properties={"virtualMachines": vm_id(), "sourceAddressPrefixes": "*",
                                             "endTimeUtc": "2026-11-21T01:00:00+01:00"})])
    client.force_login(auditor)
    body = client.get(SEARCH).content.decode()
    assert sorted(resource_cells(body)) == [
        "web-01 · from any · until 2026-11-21 00:00 UTC",  # another day: the date too
        "web-01, web-02, web-03 +2 more · 22, 3389 · from 2001:db8::25 · until *"]
    assert '<span class="jit-vm">web-01</span>, <span class="jit-vm">web-02</span>' in body  # each name whole


def test_jit_rules_and_policy_writes_name_vm_and_port_and_other_events_keep_their_name(client, auditor):
    store_events([
        event(when=AT, operation=RULE_WRITE, resource_id=f"{RULES}/SecurityCenter-JITRule_1_web-01_22_Allow",
              properties={"access": "Allow", "sourceAddressPrefix": "203.0.113.7"}),
        event(when=AT, operation=RULE_WRITE, resource_id=f"{RULES}/SecurityCenter-JITRule_1_db-01_3389",
              properties={"access": "Deny", "sourceAddressPrefix": "*"}),
        event(when=AT, operation="Microsoft.Security/locations/jitNetworkAccessPolicies/write",
              properties={"virtualMachines": vm_id(name="web-02"), "ports": "22,5985"}),
        event(when=AT, operation="Microsoft.Security/locations/jitNetworkAccessPolicies/delete", properties={}),
        event(when=AT, operation=RULE_WRITE, resource_id=f"{RULES}/allow-office", properties={}),
    ])
    client.force_login(auditor)
    assert sorted(resource_cells(client.get(SEARCH).content.decode())) == [
        "allow-office", "db-01 · 3389 · deny", "default", "web-01 · 22 · allow from 203.0.113.7", "web-02 · 22, 5985"]


def test_hostile_text_from_azure_stays_text_in_the_summary(client, auditor):
    store_events([event(when=AT, properties={
        "virtualMachines": "web-01<img src=x onerror=alert(1)>,/x/virtualMachines/\"><script>alert(2)",
        "ports": '22"><svg onload=alert(3)>', "sourceAddressPrefixes": "<b>203.0.113.9</b>",
        "endTimeUtc": "<i>soon</i>"})])
    client.force_login(auditor)
    body = client.get(SEARCH).content.decode()
    for raw in ("<script>alert(2)", "<img src=x", "<svg onload", "<b>203", "<i>soon"):
        assert raw not in body
    assert ("web-01&lt;img src=x onerror=alert(1)&gt;" in body and "&quot;&gt;&lt;script&gt;alert(2)" in body
            and "22&quot;&gt;&lt;svg onload=alert(3)&gt;" in body and "until &lt;i&gt;soon&lt;/i&gt;" in body)


def test_the_summaries_cost_no_query_however_many_rows(client, auditor, settings):
    settings.AUDIT_PAGE_SIZE = 200

    def add(count: int) -> None:
        store_events([event(properties={
            "virtualMachines": f"{vm_id(name=f'web-{n}')},{vm_id(name=f'db-{n}')}", "ports": "22,3389",
            "sourceAddressPrefixes": "203.0.113.7", "endTimeUtc": "2030-01-01T10:00:00Z"}) for n in range(count)]
            + [event(operation=RULE_WRITE, resource_id=f"{RULES}/SecurityCenter-JITRule_1_web-{n}_22_Allow",
                     properties={"access": "Allow"}) for n in range(count)])

    client.force_login(auditor)
    add(3)
    client.get(SEARCH)  # the first request of a session stores it: not what is measured
    with CaptureQueriesContext(connection) as few:
        client.get(SEARCH)
    add(72)
    with CaptureQueriesContext(connection) as many:
        body = client.get(SEARCH).content.decode()
    assert body.count('class="jit-summary"') == 150
    assert len(many) == len(few), [q["sql"] for q in many]


def test_an_end_at_the_calendars_edge_shows_as_azure_wrote_it_on_the_results_and_the_timeline(client, auditor):
    written = "9999-12-31T23:59:59-01:00"  # a year past 9999 in UTC: no time the portal can hold
    store_events([event(when=AT, properties={"virtualMachines": vm_id(name="web-04"), "ports": "22",
                                             "endTimeUtc": written})])
    client.force_login(auditor)
    assert resource_cells(client.get(SEARCH).content.decode()) == [f"web-04 · 22 · until {written}"]
    timeline = client.get(reverse("audit:vm_timeline"), {"vm": vm_id(name="web-04")})
    assert timeline.status_code == 200 and f">{written}</td>" in timeline.content.decode()
