"""CSV export: streamed, UTF-8 with a BOM, header row, ISO 8601 UTC, formula-safe, scoped and itself audited."""
import codecs
import csv
import io
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from audit.csv_export import neutralize
from audit.ingestion import store_events
from audit.models import AuditEvent
from tests.audit.factories import DEV, PROD, event, named_subscription, user_with_role, vm_id

pytestmark = pytest.mark.django_db
EXPORT = reverse("audit:export")


def download(client, **params) -> tuple[list[str], list[dict]]:
    response = client.get(EXPORT, params)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")
    body = b"".join(response.streaming_content)
    assert body.startswith(codecs.BOM_UTF8)
    text = body.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    return reader.fieldnames, list(reader)


@pytest.mark.parametrize("first", ["=", "+", "-", "@", "\t", "\r"])
def test_each_dangerous_first_character_is_neutralized(first):
    assert neutralize(f"{first}cmd|' /C calc'!A0") == f"'{first}cmd|' /C calc'!A0"


def test_a_formula_character_after_a_separator_in_a_cell_is_neutralized_too():
    assert neutralize("web;=1+1") == "web;'=1+1"
    assert neutralize("a\t@b\n+c\r -d") == "a\t'@b\n'+c\r' -d"
    assert neutralize("a, -b; c") == "a, -b; c"  # commas are quoted by the writer; no formula follows the ";"


def test_harmless_cells_and_times_are_written_as_they_are():
    assert neutralize("alice@contoso.example") == "alice@contoso.example"
    assert neutralize(None) == ""
    assert neutralize(datetime(2030, 1, 2, 3, 4, 5, 7, tzinfo=UTC)) == "2030-01-02T03:04:05.000007Z"


def test_a_time_on_the_second_keeps_its_fraction_so_the_column_sorts_as_text():
    on_the_second = neutralize(datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    just_after = neutralize(datetime(2030, 1, 2, 3, 4, 5, 1, tzinfo=UTC))
    assert on_the_second == "2030-01-02T03:04:05.000000Z"
    assert sorted([just_after, on_the_second]) == [on_the_second, just_after]


def test_the_export_has_a_header_the_shown_columns_and_the_ids(client, auditor):
    store_events([event(caller="alice@contoso.example", correlation_id="c0ffee00-0000-4000-8000-000000000001",
                        event_data_id="e0000000-0000-4000-8000-000000000001")])
    client.force_login(auditor)
    header, rows = download(client)
    assert header == ["Time (UTC)", "Subscription", "Subscription name", "Resource group", "Resource name",
                      "Resource id", "VMs", "VM ids", "Operation", "Status", "Caller", "Caller name", "Correlation id",
                      "Event id"]
    assert len(rows) == 1
    row = rows[0]
    assert row["Caller"] == row["Caller name"] == "alice@contoso.example"
    assert row["Correlation id"] == "c0ffee00-0000-4000-8000-000000000001"
    assert row["Event id"] == "e0000000-0000-4000-8000-000000000001"
    assert row["Time (UTC)"].endswith("Z")
    assert datetime.fromisoformat(row["Time (UTC)"]).tzinfo is not None


def test_a_formula_like_caller_and_vm_name_are_neutralized_in_the_csv(client, auditor):
    evil_vm = vm_id(name="=HYPERLINK(1)")
    store_events([event(caller="=cmd|' /C calc'!A0", resource_id=evil_vm, properties={"virtualMachines": evil_vm}),
                  event(caller="@SUM(1+1)", resource_id="-2+3", properties={})])
    client.force_login(auditor)
    _header, rows = download(client)
    callers = {r["Caller"] for r in rows}
    assert callers == {"'=cmd|' /c calc'!a0", "'@sum(1+1)"}
    assert "'=hyperlink(1)" in {r["Resource name"] for r in rows}
    assert "'-2+3" in {r["Resource id"] for r in rows}
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for cell in r.values())


def test_a_formula_after_a_separator_inside_a_cell_cannot_start_a_cell_of_its_own(client, auditor):
    """A spreadsheet splits a line at its locale's list separator (";" in much of Europe), and one reading the file as
    tab-separated, or not honouring the quotes around a cell, at tabs and line breaks too: a name such as "x;=1+1"
    made a cell "=1+1" there, whatever its own first character. A formula character right after one of those (spaces
    between) is neutralized as at the start of a cell."""
    from audit.services import audit_record

    audit_record(actor=None, action="access_rule.created", subscription_id=PROD,
                 target_label="x;=cmd|' /C calc'!A0\t+1\n@SUM(1)\r -2;\t=3")
    client.force_login(auditor)
    response = client.get(EXPORT, {"source": "portal"})
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    for separator in (";", "\t", "\r", "\n"):
        pieces = [piece.lstrip(' "') for piece in text.split(separator)]
        assert not [piece for piece in pieces if piece.startswith(("=", "+", "-", "@"))], separator
    _header, rows = download(client, source="portal")
    assert [r["Target"] for r in rows if r["Action"] == "access_rule.created"] == [
        "x;'=cmd|' /C calc'!A0\t'+1\n'@SUM(1)\r' -2;'\t'=3"]


def test_the_export_starts_with_a_bom_and_non_ascii_names_round_trip(client, auditor):
    """Excel reads a CSV without a byte-order mark in a legacy code page ("ZoÃ«"); the BOM comes once, first."""
    from audit.services import audit_record

    store_events([event(caller="zoë.łukasz@contoso.example", resource_id=vm_id(name="vm-ærø"))])
    audit_record(actor=None, action="policy.save", target_label="Łukasz's VM for Zoë", subscription_id=PROD)
    client.force_login(auditor)
    body = b"".join(client.get(EXPORT).streaming_content)
    assert body[:3] == codecs.BOM_UTF8 and body.count(codecs.BOM_UTF8) == 1
    assert body[3:].startswith(b"Time (UTC),")
    row = next(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert row["Caller"] == "zoë.łukasz@contoso.example"
    assert row["Resource name"] == "vm-ærø"
    _header, rows = download(client, source="portal")
    assert "Łukasz's VM for Zoë" in {r["Target"] for r in rows}


def test_a_jit_calls_row_names_its_vms_not_only_the_policy(client, auditor):
    """An initiate's resource is the JIT policy (``default``): the VMs it opened are in their own columns."""
    web, app = vm_id(name="web-01"), vm_id(rg="rg-web-prod", name="app-07")
    store_events([event(properties={"virtualMachines": f"{web},{app}", "ports": "22"})])
    client.force_login(auditor)
    _header, rows = download(client)
    assert [(r["Resource name"], r["VMs"], r["VM ids"]) for r in rows] == [
        ("default", "web-01 app-07", f"{web} {app}".lower())]


def test_a_scoped_auditors_export_names_no_vm_outside_their_scope(client):
    web, data = vm_id(name="web-01"), vm_id(rg="rg-data-prod", name="db-01")
    store_events([event(properties={"virtualMachines": f"{web},{data}", "ports": "22"})])
    client.force_login(user_with_role("vic@contoso.example", "auditor",
                                      f"/subscriptions/{PROD}/resourceGroups/rg-web-prod"))
    _header, rows = download(client)
    assert [(r["VMs"], r["VM ids"]) for r in rows] == [("web-01", web.lower())]
    assert not any("db-01" in cell for r in rows for cell in r.values())


def test_the_export_contains_only_rows_in_the_auditors_scope(client, auditor):
    store_events([event(caller="prod@contoso.example"), event(sub=DEV, rg="rg-dev", caller="dev@contoso.example")])
    client.force_login(auditor)
    _header, rows = download(client)
    assert [r["Caller"] for r in rows] == ["prod@contoso.example"]
    assert {r["Subscription"] for r in rows} == {PROD}


def test_the_export_follows_the_search_filters(client, auditor):
    store_events([event(caller="web01@contoso.example"),
                  event(caller="web02@contoso.example", properties={"virtualMachines": vm_id(name="web-02")})])
    client.force_login(auditor)
    _header, rows = download(client, vm=vm_id(), range="7d")
    assert [r["Caller"] for r in rows] == ["web01@contoso.example"]


def test_the_export_is_recorded_in_the_trail_with_the_filters(client, auditor):
    client.force_login(auditor)
    download(client, vm=vm_id(), range="7d")
    export = AuditEvent.objects.get(action="audit.export")
    assert export.actor_label == "carol@contoso.example"
    assert export.after["source"] == "azure"
    assert export.after["filters"] == {"vm": vm_id(), "range": "7d"}
    assert export.client_ip == "127.0.0.1"


def test_the_portal_trail_exports_too(client, auditor):
    from audit.services import audit_record

    audit_record(actor=None, action="policy.save", target_label="+web-01", subscription_id=PROD)
    client.force_login(auditor)
    header, rows = download(client, source="portal")
    assert header[:3] == ["Time (UTC)", "User", "Action"]
    assert [r["Target"] for r in rows] == ["'+web-01"]


def test_the_export_names_each_subscription_next_to_its_id(client, breakglass_admin):
    from audit.services import audit_record

    named_subscription(PROD, "=Contoso Production")  # a name is text too: formula-safe
    store_events([event(caller="prod@contoso.example"), event(sub=DEV, rg="rg-dev", caller="dev@contoso.example")])
    audit_record(actor=None, action="policy.save", target_label="web-01", subscription_id=PROD.upper())
    audit_record(actor=None, action="settings.save", target_label="global")
    client.force_login(breakglass_admin)
    header, rows = download(client)
    assert header[1:3] == ["Subscription", "Subscription name"]
    assert {(r["Caller"], r["Subscription"], r["Subscription name"]) for r in rows} == {
        ("prod@contoso.example", PROD, "'=Contoso Production"), ("dev@contoso.example", DEV, "")}  # DEV: unknown
    header, rows = download(client, source="portal")
    assert header[5:7] == ["Subscription", "Subscription name"]
    assert {(r["Target"], r["Subscription"], r["Subscription name"]) for r in rows
            if r["Action"] != "audit.export"} == {("web-01", PROD.upper(), "'=Contoso Production"), ("global", "", "")}


def test_the_export_streams_many_rows_in_order(client, auditor):
    store_events([event() for _ in range(4500)])
    client.force_login(auditor)
    _header, rows = download(client)
    assert len(rows) == 4500
    times = [datetime.fromisoformat(r["Time (UTC)"]) for r in rows]
    assert times == sorted(times, reverse=True)


def test_the_export_records_the_client_behind_a_trusted_proxy_not_the_proxy(client, auditor, settings):
    settings.ACCESS_TRUSTED_PROXIES = ["10.0.0.0/8"]
    client.force_login(auditor)
    response = client.get(EXPORT, REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.9")
    b"".join(response.streaming_content)
    assert AuditEvent.objects.get(action="audit.export").client_ip == "203.0.113.9"
    client.get(EXPORT, REMOTE_ADDR="192.0.2.7", HTTP_X_FORWARDED_FOR="203.0.113.9")  # not a proxy: its own address
    assert AuditEvent.objects.filter(action="audit.export").latest("id").client_ip == "192.0.2.7"


def test_the_export_names_the_portals_own_identity_beside_its_client_id(client, auditor, settings):
    settings.PORTAL_CREDENTIALS = {
        "prod": {"kind": "client_secret", "client_id": "0D3B6A9E-5C1F-4E2A-9B7D-1A2B3C4D5E6F"},
        "hub": {"kind": "managed_identity", "client_id": "7e57ab1e-0000-4000-8000-000000000001"}}
    store_events([event(caller="0d3b6a9e-5c1f-4e2a-9b7d-1a2b3c4d5e6f"),
                  event(caller="7e57ab1e-0000-4000-8000-000000000001"),
                  event(caller="9999aaaa-0000-4000-8000-000000000001")])
    client.force_login(auditor)
    _header, rows = download(client)
    assert {(r["Caller"], r["Caller name"]) for r in rows} == {
        ("0d3b6a9e-5c1f-4e2a-9b7d-1a2b3c4d5e6f", "jitportal (service principal 0d3b6a9e…)"),
        ("7e57ab1e-0000-4000-8000-000000000001", "jitportal (managed identity 7e57ab1e…)"),
        ("9999aaaa-0000-4000-8000-000000000001", "9999aaaa-0000-4000-8000-000000000001")}  # not the portal's
