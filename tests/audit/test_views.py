"""Audit search pages: who may open them, what they show, and that Azure-named text stays text."""
import html
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.ingestion import store_events
from audit.models import ActivityLogEvent
from policies.access.models import AccessRequest
from tests.audit.factories import DEV, PROD, RULE_WRITE, event, initiate_with_rule, policy_id, vm_id
from tests.plans import plans_of

pytestmark = pytest.mark.django_db
SEARCH = reverse("audit:search")
EXPORT = reverse("audit:export")


def test_a_requester_can_reach_neither_search_nor_export(client, requester):
    store_events([event()])
    client.force_login(requester)
    assert client.get(SEARCH).status_code == 403
    assert client.get(EXPORT).status_code == 403
    assert client.get(reverse("audit:ingestion_status")).status_code == 403
    assert client.get(reverse("audit:activity_event", args=[ActivityLogEvent.objects.get().pk])).status_code == 404


def test_an_anonymous_visitor_is_sent_to_sign_in(client):
    response = client.get(SEARCH)
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_a_policy_admin_may_search_but_not_export(client, policy_admin):
    client.force_login(policy_admin)
    assert client.get(SEARCH).status_code == 200
    assert client.get(EXPORT).status_code == 403


def test_a_head_of_the_export_is_refused_and_records_no_export(client, auditor):
    from audit.models import AuditEvent

    store_events([event()])
    client.force_login(auditor)
    assert client.head(EXPORT).status_code == 405
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_the_search_refuses_a_post(client, auditor):
    client.force_login(auditor)
    assert client.post(SEARCH).status_code == 405


def test_an_auditor_sees_only_events_in_their_scope(client, auditor):
    store_events([event(caller="in-scope@contoso.example"),
                  event(sub=DEV, rg="rg-dev", caller="out-of-scope@contoso.example")])
    client.force_login(auditor)
    body = client.get(SEARCH).content.decode()
    assert "in-scope@contoso.example" in body
    assert "out-of-scope@contoso.example" not in body
    foreign = ActivityLogEvent.objects.get(subscription_id=DEV)
    assert client.get(reverse("audit:activity_event", args=[foreign.pk])).status_code == 404


def test_a_script_caller_is_escaped_in_the_results_and_the_event_page(client, auditor):
    store_events([event(caller="<script>alert(1)</script>@evil.example",
                        properties={"virtualMachines": vm_id(), "note": "<img src=x onerror=alert(2)>"})])
    client.force_login(auditor)
    body = client.get(SEARCH).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    page = client.get(reverse("audit:activity_event", args=[ActivityLogEvent.objects.get().pk])).content.decode()
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page


def test_the_vm_filter_finds_initiates_on_the_policy_and_the_rules_they_wrote(client, auditor):
    correlation = "11111111-2222-4333-8444-555555555555"
    rule = (f"/subscriptions/{PROD}/resourceGroups/rg-web-prod/providers/Microsoft.Network/networkSecurityGroups/"
            f"nsg-web/securityRules/SecurityCenter-JITRule_1_web-01_22_Allow")
    store_events([
        event(correlation_id=correlation, caller="alice@contoso.example"),
        event(correlation_id=correlation, resource_id=rule, operation=RULE_WRITE, properties={"access": "Allow"},
              caller="alice@contoso.example"),
        event(properties={"virtualMachines": vm_id(name="web-02")}, caller="dave@contoso.example"),
    ])
    client.force_login(auditor)
    body = client.get(SEARCH, {"vm": vm_id()}).content.decode()
    assert body.count("alice@contoso.example") == 2
    assert "dave@contoso.example" not in body
    assert "SecurityCenter-JITRule_1_web-01_22_Allow".lower() in body


POLICY_WRITE = "Microsoft.Security/locations/jitNetworkAccessPolicies/write"
RULE_DELETE = "Microsoft.Network/networkSecurityGroups/securityRules/delete"


def _rule(name: str) -> str:
    return (f"/subscriptions/{PROD}/resourceGroups/rg-web-prod/providers/Microsoft.Network/networkSecurityGroups/"
            f"nsg-web/securityRules/{name}")


@pytest.mark.parametrize("rules_first", [False, True])
def test_a_policy_write_for_two_vms_puts_each_vms_nsg_rules_in_its_own_activity_only(client, auditor, rules_first):
    """One write of a policy naming web-01 and web_win-01 writes both VMs' deny rules under its correlation id:
    a rule's row goes to the VM its name names (read before the policy's row too), a rule the name tells nothing of
    to both, and the rule's later removal (another correlation id) to its VM."""
    correlation = "21111111-2222-4333-8444-555555555555"
    both = f"{vm_id(name='web-01')},{vm_id(name='web_win-01')}"
    rules = [event(correlation_id=correlation, resource_id=_rule(name), operation=RULE_WRITE,
                   properties={"access": "Deny"}, caller="0d3b6a9e-5c1f-4e2a-9b7d-1a2b3c4d5e6f")
             for name in ("SecurityCenter-JITRule_a96ef733_web-01_22",
                          "SecurityCenter-JITRule_a96ef733_web_win-01_9090", "custom-deny-all")]
    write = event(correlation_id=correlation, operation=POLICY_WRITE, properties={"virtualMachines": both})
    store_events(rules if rules_first else [write, *rules])
    store_events([write] if rules_first else [])
    store_events([event(resource_id=_rule("SecurityCenter-JITRule_a96ef733_web_win-01_9090"), operation=RULE_DELETE,
                        properties={})])
    client.force_login(auditor)
    web = client.get(SEARCH, {"vm": vm_id(name="web-01")}).content.decode()
    win = client.get(SEARCH, {"vm": vm_id(name="web_win-01")}).content.decode()
    assert "web-01_22" in web and "web_win-01_9090" not in web and "custom-deny-all" in web
    assert "web_win-01_9090" in win and "web-01_22" not in win and "custom-deny-all" in win
    assert win.count("web_win-01_9090") > web.count("web_win-01_9090") and "securityRules/delete" in win
    web01, win01 = vm_id(name="web-01").lower(), vm_id(name="web_win-01").lower()
    assert ActivityLogEvent.objects.get(resource_id=_rule("SecurityCenter-JITRule_a96ef733_web-01_22").lower(),
                                        ).vm_ids == f" {web01} "
    assert set(ActivityLogEvent.objects.filter(resource_id__endswith="_9090").values_list("vm_ids", flat=True)) == {
        f" {win01} "}


def test_rule_rows_stored_with_every_vm_of_their_policy_write_keep_only_their_own_after_the_migration(monkeypatch):
    import importlib

    from django.apps import apps

    from audit.models import ActivityLogEventVm

    migration = importlib.import_module("audit.migrations.0003_nsg_rule_rows_to_their_own_vm")
    both = f"{vm_id(name='web-01')},{vm_id(name='web_win-01')}"
    store_events([event(correlation_id="31111111-2222-4333-8444-555555555555", operation=POLICY_WRITE,
                        properties={"virtualMachines": both}),
                  *(event(correlation_id="31111111-2222-4333-8444-555555555555", resource_id=_rule(name),
                          operation=RULE_WRITE, properties={}, event_data_id=name[-4:] + "-id")
                    for name in ("SecurityCenter-JITRule_a96ef733_web_win-01_9090", "custom-deny-all"))])
    shared = f" {vm_id(name='web-01').lower()} {vm_id(name='web_win-01').lower()} "
    ActivityLogEvent.objects.filter(operation_name=RULE_WRITE).update(vm_ids=shared)  # as ingestion stored them
    ActivityLogEventVm.objects.bulk_create([ActivityLogEventVm(event_data_id="9090-id", vm_id=vm_id().lower(),
                                                               occurred_at=timezone.now())])
    monkeypatch.setattr(migration, "CHUNK", 1)  # each row in a chunk of its own
    with CaptureQueriesContext(connection) as queries:
        migration.narrow_rule_rows(apps, None)
    deletes = [q for q in queries.captured_queries if q["sql"].startswith('DELETE FROM "audit_activitylogeventvm"')]
    # each through the VM index's (VM, event) key: by the event id alone it read the whole index table per row
    plans = plans_of(SimpleNamespace(captured_queries=deletes), index_if_possible=True)
    assert plans and not any(re.search(r"\bSCAN\b|Seq Scan", plan) for plan in plans), plans
    rows = dict(ActivityLogEvent.objects.filter(operation_name=RULE_WRITE).values_list("event_data_id", "vm_ids"))
    assert rows == {"9090-id": f" {vm_id(name='web_win-01').lower()} ", "-all-id": shared}
    assert list(ActivityLogEventVm.objects.filter(event_data_id="9090-id").values_list("vm_id", flat=True)) == [
        vm_id(name="web_win-01").lower()]


def test_the_portals_own_calls_name_it_as_caller_on_the_search_the_event_and_the_timeline(client, auditor, settings):
    """Azure logs the portal's writes with its credential's client id as the caller: the pages name the portal,
    the id stays in the title, on the event page, and searchable."""
    portal = "0d3b6a9e-5c1f-4e2a-9b7d-1a2b3c4d5e6f"
    settings.PORTAL_CREDENTIALS = {"prod": {"kind": "client_secret", "client_id": portal}}
    correlation = "41111111-2222-4333-8444-555555555555"
    store_events([event(caller=portal, operation=POLICY_WRITE, correlation_id=correlation,
                        properties={"virtualMachines": vm_id()})])
    client.force_login(auditor)
    label = "jitportal (service principal 0d3b6a9e…)"
    for params in ({}, {"caller": portal}, {"q": "0d3b6a9e"}):
        body = client.get(SEARCH, params).content.decode()
        assert f'<span class="caller" title="{portal}">{label}</span>' in body, params
    page = client.get(reverse("audit:activity_event", args=[ActivityLogEvent.objects.get().pk])).content.decode()
    assert f"{label} · <code>{portal}</code>" in page
    timeline = client.get(reverse("audit:vm_timeline"), {"vm": vm_id()}).content.decode()
    assert f'title="{portal}">{label}</span>' in timeline


@pytest.mark.parametrize(("typed", "found"), [
    ("alice", {"alice@contoso.example"}), ("ALICE@contoso", {"alice@contoso.example"}),
    ("alice@contoso.example", {"alice@contoso.example"}), ("a", {"alice@contoso.example", "alina@contoso.example"}),
    ("lice", set()), ("contoso", set()), ("jitportal", {"0d3b6a9e-5c1f-4e2a-9b7d-1a2b3c4d5e6f"}),
    ("0D3B6A9E", {"0d3b6a9e-5c1f-4e2a-9b7d-1a2b3c4d5e6f"}), ("%", set()), ("_lice", set()),
    ("\ud7ff", set())])  # the character before the surrogates: its range ended at one, which SQLite cannot take
def test_the_caller_filter_matches_the_start_of_a_caller_and_says_so(client, auditor, settings, typed, found):
    settings.PORTAL_CREDENTIALS = {"prod": {"client_id": "0d3b6a9e-5c1f-4e2a-9b7d-1a2b3c4d5e6f"}}
    callers = ("alice@contoso.example", "alina@contoso.example", "bob@contoso.example",
               "0d3b6a9e-5c1f-4e2a-9b7d-1a2b3c4d5e6f")
    store_events([event(caller=caller) for caller in callers])
    client.force_login(auditor)
    response = client.get(SEARCH, {"caller": typed})
    shown = {caller for caller in callers if f"{caller}</td>" in response.content.decode()
             or f'title="{caller}"' in response.content.decode()}
    assert shown == found
    page = response.content.decode()
    assert 'aria-describedby="id_caller_helptext"' in page
    assert "the part of a user name before the @ finds that user" in page


def test_the_caller_filter_reads_the_callers_index(analyze):
    """With many callers (and the planner's statistics of them, whatever ran before), one caller's prefix is read
    through the callers' index, not by walking the time index and filtering."""
    from django.db import connection

    from audit.filtersets import ActivityFilterSet

    base = timezone.now() - timedelta(days=1)
    store_events([event(caller=f"user{n:03d}@contoso.example", when=base + timedelta(seconds=n * 5 + k))
                  for n in range(300) for k in range(4)])
    store_events([event(caller="alice@contoso.example")])
    analyze()
    query = ActivityFilterSet({"caller": "alice"}, queryset=ActivityLogEvent.objects.all()).qs.order_by(
        "-occurred_at", "-id")[:50]
    with connection.cursor() as cursor:
        sql, params = query.query.sql_with_params()
        cursor.execute(("EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN ") + sql, params)
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "audit_activity_caller" in plan, plan


@pytest.mark.parametrize(("typed", "found"), [
    ("alice", {"Alice.Smith@Contoso.example"}), ("ALICE.smith@CONTOSO", {"Alice.Smith@Contoso.example"}),
    ("alice.smith@contoso.example", {"Alice.Smith@Contoso.example"}),
    ("al", {"Alice.Smith@Contoso.example", "alina@contoso.example"}), ("jitportal", {"jitportal"}),
    ("smith", set()), ("contoso", set()), ("%", set()), ("_lice", set()), ("\ud7ff", set())])
def test_the_user_filter_matches_the_start_of_a_user_name_in_any_case(client, auditor, typed, found):
    from accounts.models import User
    from audit.services import audit_record

    names = ("Alice.Smith@Contoso.example", "alina@contoso.example", "bob@contoso.example")
    for actor in [User.objects.create(username=name) for name in names] + [None]:
        audit_record(actor=actor, action="policy.save", target_label="web-01", subscription_id=PROD)
    client.force_login(auditor)
    response = client.get(SEARCH, {"source": "portal", "user": typed})
    page = response.content.decode()
    assert response.status_code == 200
    cell = '<td class="field-actor_label" data-label="User">{}</td>'
    assert {name for name in (*names, "jitportal") if cell.format(name) in page} == found
    assert 'aria-describedby="id_user_helptext"' in page
    assert "the part of a user name before the @ finds that user" in page
    api = client.get(reverse("api:audit_events"), {"source": "portal", "user": typed})
    assert api.status_code == 200
    assert {row["caller"] for row in api.json()["results"]} == found


def test_the_user_filter_reads_the_index_of_the_user_names_lower_case(django_user_model, analyze):
    """With many users in the trail (and the planner's statistics of them, whatever ran before), one user's prefix
    is read through the index of the lower-case user names."""
    from audit.filtersets import TrailFilterSet
    from audit.models import AuditEvent
    from audit.services import audit_record_many

    users = django_user_model.objects.bulk_create(
        [django_user_model(username=f"user{n:03d}@contoso.example") for n in range(300)])
    users = list(django_user_model.objects.filter(username__in=[user.username for user in users]))
    audit_record_many([{"actor": user, "action": "access.requested"} for user in users for _ in range(4)])
    analyze()
    query = TrailFilterSet({"user": "Alice"}, queryset=AuditEvent.objects.all()).qs.order_by(
        "-occurred_at", "-id")[:50]
    with connection.cursor() as cursor:
        sql, params = query.query.sql_with_params()
        if connection.vendor == "postgresql":
            cursor.execute("SET enable_seqscan = off")
        try:
            cursor.execute(("EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN ") + sql, params)
            plan = " ".join(str(row) for row in cursor.fetchall())
        finally:
            if connection.vendor == "postgresql":
                cursor.execute("RESET enable_seqscan")
    assert "audit_trail_user_prefix" in plan, plan


def _inventory_vm(arm_id: str):
    """``arm_id`` as a VM of the inventory (the audit's VM filter looks names up there)."""
    from policies.models import VirtualMachine
    from tests.policies.factories import make_vm

    vm = make_vm(arm_id.split("/providers/")[0])
    VirtualMachine.objects.filter(pk=vm.pk).update(arm_id=arm_id, resource_id=arm_id.lower(),
                                                   name=arm_id.rsplit("/", 1)[1])
    return vm


def test_the_vm_filter_takes_a_vms_name_as_an_auditor_types_it_and_links_its_timeline(client, auditor):
    store_events([event(properties={"virtualMachines": vm_id()}, caller="alice@contoso.example"),
                  event(properties={"virtualMachines": vm_id(name="web-02")}, caller="dave@contoso.example")])
    _inventory_vm(vm_id())
    _inventory_vm(vm_id(name="web-02"))
    client.force_login(auditor)
    for typed in ("web-01", " WEB-01 ", vm_id()):
        body = client.get(SEARCH, {"vm": typed}).content.decode()
        assert "alice@contoso.example" in body and "dave@contoso.example" not in body, typed
        timeline = f'href="{reverse("audit:vm_timeline")}?vm={vm_id()}"'
        assert timeline in body, typed  # a timeline that exists
    assert client.get(reverse("audit:vm_timeline"), {"vm": vm_id()}).status_code == 200
    assert "VM (name or resource id)" in body
    nowhere = client.get(SEARCH, {"vm": "no-such-vm"}).content.decode()
    assert "No activity matches this search." in nowhere and 'id="vm-timeline"' not in nowhere
    trail = client.get(SEARCH, {"source": "portal", "vm": "no-such-vm"})
    assert trail.status_code == 200 and "No activity matches this search." in trail.content.decode()
    for empty in (nowhere, trail.content.decode()):  # nothing shown, nothing to page: no "0 shown, newest first"
        assert "shown, newest first" not in empty and "audit-pager" not in empty
    assert "1 shown, newest first" in client.get(SEARCH, {"vm": "web-01"}).content.decode()


def test_time_presets_caller_operation_status_and_text_filter_the_results(client, auditor):
    now = timezone.now()
    store_events([
        event(when=now - timedelta(minutes=10), caller="recent@contoso.example"),
        event(when=now - timedelta(days=3), caller="older@contoso.example", status="Failed"),
        event(when=now - timedelta(days=20), caller="ancient@contoso.example",
              properties={"virtualMachines": vm_id(), "justification": "rotate the HSM keys"}),
    ])
    client.force_login(auditor)

    def callers(**params):
        body = client.get(SEARCH, params).content.decode()
        return {c for c in ("recent", "older", "ancient") if f"{c}@contoso.example" in body}

    assert callers(range="1h") == {"recent"}
    assert callers(range="7d") == {"recent", "older"}
    assert callers(range="30d") == {"recent", "older", "ancient"}
    custom_since = (now - timedelta(days=25)).strftime("%Y-%m-%dT%H:%M")
    custom_until = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert callers(range="custom", since=custom_since, until=custom_until) == {"older", "ancient"}
    assert callers(caller="OLDER@contoso.example") == {"older"}
    assert callers(status="Failed") == {"older"}
    assert callers(q="HSM keys") == {"ancient"}
    assert callers(operation="Microsoft.Security/locations/jitNetworkAccessPolicies/write") == set()
    assert callers(subscription=PROD, resource_group="RG-WEB-PROD") == {"recent", "older", "ancient"}


def test_times_labelled_utc_are_read_and_shown_in_utc_whatever_the_portals_time_zone(client, auditor, settings):
    settings.TIME_ZONE = "Asia/Kolkata"  # UTC+05:30 all year
    # Noon two days ago, not a fixed day: the VM's timeline shows its last 30 days only.
    day = (timezone.now() - timedelta(days=2)).date().isoformat()
    store_events([event(when=datetime.fromisoformat(f"{day}T12:00:00+00:00"), caller="noon@contoso.example")])
    client.force_login(auditor)
    around_noon = {"range": "custom", "since": f"{day}T11:00", "until": f"{day}T13:00"}
    assert "noon@contoso.example" in client.get(SEARCH, around_noon).content.decode()
    assert b"noon@contoso.example" in b"".join(client.get(EXPORT, around_noon).streaming_content)
    before_noon = {"range": "custom", "since": f"{day}T06:00", "until": f"{day}T11:00"}
    assert "noon@contoso.example" not in client.get(SEARCH, before_noon).content.decode()
    page = client.get(reverse("audit:activity_event", args=[ActivityLogEvent.objects.get().pk])).content.decode()
    assert f"{day}T12:00:00+00:00" in page and "17:30" not in page
    timeline = client.get(reverse("audit:vm_timeline"), {"vm": vm_id()}).content.decode()
    assert f"{day} 12:00:00" in timeline and "17:30" not in timeline


@pytest.mark.parametrize("until", ["2026-11-20", "2026-11-20T10:30", "2026-11-20 10:30:45", "2026-11-20T10:30:45Z"])
def test_the_to_time_includes_the_whole_day_minute_or_second_it_names(client, auditor, until):
    store_events([event(when=datetime(2026, 11, 20, 10, 30, 45, 500000, tzinfo=UTC), caller="late@contoso.example"),
                  event(when=datetime(2026, 11, 21, 0, 0, tzinfo=UTC), caller="next-day@contoso.example")])
    client.force_login(auditor)
    params = {"range": "custom", "since": "2026-11-20T10:30", "until": until}
    body = client.get(SEARCH, params).content.decode()
    assert "late@contoso.example" in body and "next-day@contoso.example" not in body
    exported = b"".join(client.get(EXPORT, params).streaming_content).decode()
    assert "late@contoso.example" in exported and "next-day@contoso.example" not in exported


@pytest.mark.parametrize(("until", "last_in", "first_out"), [
    ("2026-11-20T10", datetime(2026, 11, 20, 10, 59, 59), datetime(2026, 11, 20, 11, 0)),  # an hour
    ("2026-11-20 10Z", datetime(2026, 11, 20, 10, 59, 59), datetime(2026, 11, 20, 11, 0)),
    ("20261120T1030", datetime(2026, 11, 20, 10, 30, 59), datetime(2026, 11, 20, 10, 31)),  # ISO 8601's basic format
    ("2026-11-20T103045", datetime(2026, 11, 20, 10, 30, 45, 500000), datetime(2026, 11, 20, 10, 30, 46)),
    ("2026-W47-5T10:30", datetime(2026, 11, 20, 10, 30, 59), datetime(2026, 11, 20, 10, 31)),  # a week date
])
def test_a_to_time_in_any_iso_form_includes_only_the_hour_minute_or_second_it_names(client, auditor, until, last_in,
                                                                                    first_out):
    store_events([event(when=last_in.replace(tzinfo=UTC), caller="inside@contoso.example"),
                  event(when=first_out.replace(tzinfo=UTC), caller="after@contoso.example")])
    client.force_login(auditor)
    params = {"range": "custom", "until": until}
    body = client.get(SEARCH, params).content.decode()
    assert "inside@contoso.example" in body and "after@contoso.example" not in body
    exported = b"".join(client.get(EXPORT, params).streaming_content).decode()
    assert "inside@contoso.example" in exported and "after@contoso.example" not in exported


@pytest.mark.parametrize("until", ["9999-12-31", "9999-12-31T23:59", "9999-12-31T23:59:59-23:59"])
def test_a_to_time_on_the_calendars_last_day_finds_everything_before_it(client, auditor, until):
    store_events([event(caller="now@contoso.example")])
    client.force_login(auditor)
    response = client.get(SEARCH, {"range": "custom", "until": until})
    assert response.status_code == 200 and "now@contoso.example" in response.content.decode()
    assert b"now@contoso.example" in b"".join(client.get(EXPORT, {"until": until}).streaming_content)


def test_a_to_time_before_the_from_time_is_refused_with_a_message(client, auditor):
    store_events([event(when=datetime(2026, 11, 20, 12, 0, tzinfo=UTC), caller="noon@contoso.example")])
    client.force_login(auditor)
    reversed_range = {"range": "custom", "since": "2026-11-21", "until": "2026-11-20"}
    page = client.get(SEARCH, reversed_range).content.decode()
    assert ('<li id="id_until_error"><a href="#id_until">To (UTC): Give a time at or after From (UTC).</a> '
            'The filter was left out.</li>') in page  # a link that puts the focus in the field
    assert "There is a problem with the filters" in page and 'aria-describedby="id_until_error"' in page
    refused = client.get(EXPORT, reversed_range)
    assert refused.status_code == 400 and "To (UTC): Give a time at or after From (UTC)." in refused.content.decode()
    same_day = {"range": "custom", "since": "2026-11-20", "until": "2026-11-20"}
    assert "noon@contoso.example" in client.get(SEARCH, same_day).content.decode()


def test_the_portal_trail_is_a_second_source_in_the_same_search(client, auditor):
    from audit.services import audit_record

    audit_record(actor=None, action="policy.save", target_label="web-01", subscription_id=PROD,
                 resource_group="rg-web-prod", resource_id=vm_id(), client_ip="203.0.113.9")
    audit_record(actor=None, action="policy.save", target_label="dev-vm", subscription_id=DEV)
    client.force_login(auditor)
    body = client.get(SEARCH, {"source": "portal"}).content.decode()
    assert "203.0.113.9" in body and "web-01" in body
    assert "dev-vm" not in body


@pytest.mark.parametrize("typed", [{"resource_group": " rg-MÜNCHEN-prod "}, {"resource_group": "RG-MÜNCHEN-PROD"},
                                   {"resource_group": "\u00a0rg-münchen-prod"}, {"subscription": f" {PROD.upper()} "}])
def test_both_sources_find_a_subscription_or_resource_group_as_typed_in_any_case_whatever_its_letters(client, auditor,
                                                                                                      typed):
    """The Activity Log's filters compare lower case (its letters beyond ASCII too); the trail's compared with SQLite's
    LIKE, which folds only ASCII: a resource group with an Ü typed in another case found nothing there."""
    from audit.services import audit_record

    store_events([event(rg="RG-München-Prod", caller="munich@contoso.example"),
                  event(rg="rg-web-prod", caller="web@contoso.example")])
    for group, label in (("RG-München-Prod", "munich-trail"), ("rg-web-prod", "web-trail")):
        audit_record(actor=None, action="policy.save", target_label=label, subscription_id=PROD,
                     resource_group=group, resource_id=vm_id(rg=group))
    client.force_login(auditor)
    azure = client.get(SEARCH, {"source": "azure", **typed}).content.decode()
    portal = client.get(SEARCH, {"source": "portal", **typed}).content.decode()
    everything = "subscription" in typed
    assert "munich@contoso.example" in azure and ("web@contoso.example" in azure) is everything
    assert "munich-trail" in portal and ("web-trail" in portal) is everything


MUNICH_VM = vm_id(rg="RG-MÜNCHEN", name="VM-MÜNCHEN-01")


@pytest.mark.parametrize(("source", "typed"), [
    *[(source, {"vm": vm}) for source in ("azure", "portal") for vm in ("vm-münchen-01", " Vm-München-01 ")],
    ("portal", {"vm": MUNICH_VM.lower()}), ("portal", {"vm": MUNICH_VM.upper()}),
    ("portal", {"action": "POLICY.ÄNDERUNG"}), ("portal", {"action": "policy.änderung"})])
def test_the_vm_and_action_filters_find_a_value_typed_in_another_case_whatever_its_letters(client, auditor, source,
                                                                                          typed):
    """As the subscription and resource group filters: SQLite's LIKE folds only ASCII, so a VM named VM-MÜNCHEN-01
    typed in lower case (or its resource id, against the trail's as Azure spells it), or an action with an Ä, found
    nothing there."""
    from audit.services import audit_record
    from tests.policies.factories import make_vm

    make_vm(f"/subscriptions/{PROD}/resourceGroups/RG-MÜNCHEN", name="VM-MÜNCHEN-01")
    store_events([event(rg="RG-MÜNCHEN", resource_id=MUNICH_VM, caller="munich@contoso.example"),
                  event(caller="web@contoso.example")])
    for action, target, label in (("policy.Änderung", MUNICH_VM, "munich-trail"),
                                  ("policy.save", vm_id(), "web-trail")):
        audit_record(actor=None, action=action, target_id=target, target_label=label, subscription_id=PROD,
                     resource_group=target.split("/")[4], resource_id=target)
    client.force_login(auditor)
    body = client.get(SEARCH, {"source": source, **typed}).content.decode()
    found = "munich-trail" if source == "portal" else "munich@contoso.example"
    assert found in body and "web-trail" not in body and "web@contoso.example" not in body
    if "vm" in typed:
        timeline = client.get(reverse("audit:vm_timeline"), typed)
        assert timeline.status_code == 200 and "policy.Änderung" in timeline.content.decode()


@pytest.mark.parametrize("typed", [{"user": "jö"}, {"user": "JÖRG@"}, {"q": "jörg"}, {"q": "ÄNDERUNG"},
                                   {"q": "münchen-trail"}])
def test_the_trails_user_and_text_filters_find_a_value_typed_in_another_case_whatever_its_letters(
        client, auditor, django_user_model, typed):
    """SQLite's lower() and LIKE fold only ASCII: a user JÖRG typed "jö", or words with an Ä or Ü typed in the
    other case, found nothing there."""
    from audit.services import audit_record

    jorg = django_user_model.objects.create(username="JÖRG@contoso.example")
    audit_record(actor=jorg, action="policy.Änderung", target_label="MÜNCHEN-trail", subscription_id=PROD)
    audit_record(actor=None, action="policy.save", target_label="web-trail", subscription_id=PROD)
    client.force_login(auditor)
    body = client.get(SEARCH, {"source": "portal", **typed}).content.decode()
    assert "MÜNCHEN-trail" in body and "web-trail" not in body


def test_the_results_page_runs_the_same_number_of_queries_for_ten_or_a_hundred_rows(
        client, auditor, django_assert_max_num_queries):
    store_events([event() for _ in range(10)])
    client.force_login(auditor)
    with django_assert_max_num_queries(8):
        client.get(SEARCH)
    store_events([event() for _ in range(90)])
    with django_assert_max_num_queries(8):
        response = client.get(SEARCH)
    assert "Older" in response.content.decode()


def test_the_ingestion_status_page_shows_progress_and_errors(client, auditor):
    from audit.models import IngestionState

    IngestionState.objects.create(subscription_id=PROD, watermark=timezone.now(), last_success_at=timezone.now(),
                                  backfill_from=timezone.now() - timedelta(days=90),
                                  last_error="Throttled by Azure; retrying in 30 s.")
    IngestionState.objects.create(subscription_id=DEV)
    client.force_login(auditor)
    body = client.get(reverse("audit:ingestion_status")).content.decode()
    assert PROD in body and DEV not in body
    assert "Throttled by Azure" in body and "100 %" in body
    from tests.audit.factories import user_with_role

    client.force_login(user_with_role("rg@contoso.example", "auditor", f"/subscriptions/{PROD}/resourceGroups/rg-a"))
    body = client.get(reverse("audit:ingestion_status")).content.decode()  # PROD was read: not "nothing yet"
    assert PROD not in body and "No subscription you audit as a whole has been read yet" in body


class _Progress(HTMLParser):
    """Every ``<progress>`` of a page: its attributes and the text inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: list[dict] = []
        self._open: dict | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "progress" or dict(attrs).get("role") == "progressbar":
            self._open = {**dict(attrs), "text": ""}
            self.bars.append(self._open)

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "progress":
            self._open = None


def test_the_backfill_progress_bars_have_a_name_and_a_value_in_words(client, auditor):
    from audit.models import IngestionState

    IngestionState.objects.create(subscription_id=PROD, watermark=timezone.now() - timedelta(days=60),
                                  backfill_from=timezone.now() - timedelta(days=90))
    client.force_login(auditor)
    parser = _Progress()
    parser.feed(client.get(reverse("audit:ingestion_status")).content.decode())
    [bar] = parser.bars
    assert bar["aria-label"] == f"Backfill of subscription {PROD}"
    assert bar["aria-valuetext"] == "33 % of the 90-day backfill read"
    assert bar["text"].strip() == "33 %"  # where <progress> is not drawn
    assert (bar["max"], bar["value"]) == ("1", "0.333")


def test_every_progress_bar_in_the_templates_is_named():
    """A ``<progress>`` (or ``role="progressbar"``) added to any template needs a name a screen reader reads."""
    templates = [path for root in (Path(settings.BASE_DIR) / "templates", *Path(settings.BASE_DIR).glob("*/templates"))
                 for path in root.rglob("*.html")]
    assert len(templates) > 20
    named = 0
    for template in templates:
        parser = _Progress()
        parser.feed(template.read_text())
        for bar in parser.bars:
            assert bar.get("aria-label") or bar.get("aria-labelledby"), template
            assert bar.get("aria-valuetext") and bar["text"].strip(), template
            named += 1
    assert named >= 1


def test_the_vm_timeline_joins_the_portal_events_with_the_azure_calls_and_rules(client, auditor):
    from audit.services import audit_record

    correlation = "aaaaaaaa-2222-4333-8444-555555555555"
    store_events(initiate_with_rule(correlation, "jit-web-01-22"))
    audit_record(actor=None, action="request.initiate", target_id=vm_id(), target_label="web-01",
                 subscription_id=PROD, resource_group="rg-web-prod", resource_id=vm_id(),
                 client_ip="198.51.100.20", correlation_id=correlation)
    client.force_login(auditor)
    body = client.get(reverse("audit:vm_timeline"), {"vm": vm_id()}).content.decode()
    assert "Patch the web tier (portal request #7)" in body
    assert "203.0.113.7" in body and "198.51.100.20" in body
    assert "jit-web-01-22" in body and "request.initiate" in body
    assert '<time datetime="2030-01-01T10:00:00+00:00">2030-01-01 10:00:00 UTC</time></td>' in body  # as the Time
    assert "2030-01-01T10:00:00Z" not in body  # column shows a time
    assert client.get(reverse("audit:vm_timeline"), {"vm": vm_id(sub=DEV, rg="rg-dev")}).status_code == 404


def test_the_vm_timeline_takes_a_vms_name_when_one_vm_the_auditor_may_audit_has_it(client, auditor):
    """``?vm=web-01`` was a 404: the timeline took a resource id only, though the search's VM filter takes a name."""
    store_events([event(properties={"virtualMachines": vm_id()}, caller="alice@contoso.example")])
    _inventory_vm(vm_id())
    _inventory_vm(vm_id(sub=DEV, rg="rg-web-dev"))  # the same name where the auditor has no scope: not counted
    client.force_login(auditor)
    timeline = reverse("audit:vm_timeline")
    for typed in ("web-01", " WEB-01 "):
        response = client.get(timeline, {"vm": typed})
        body = response.content.decode()
        assert response.status_code == 200 and "<h1>Timeline of web-01</h1>" in body, typed
        assert "alice@contoso.example" in body and f"{vm_id()} — the last 30 days" in body
        assert "rg-web-dev" not in body
    assert client.get(timeline, {"vm": "no-such-vm"}).status_code == 404
    _inventory_vm(vm_id(sub=DEV, rg="rg-dev", name="web-09"))
    assert client.get(timeline, {"vm": "web-09"}).status_code == 404  # out of scope: as if it did not exist


def test_a_vm_name_several_vms_have_gets_a_page_to_choose_one(client, auditor):
    from urllib.parse import quote

    _inventory_vm(vm_id())
    _inventory_vm(vm_id(rg="rg-web-blue"))
    _inventory_vm(vm_id(sub=DEV, rg="rg-web-dev"))  # out of the auditor's scope: not offered
    client.force_login(auditor)
    response = client.get(reverse("audit:vm_timeline"), {"vm": "web-01"})
    body = response.content.decode()
    assert response.status_code == 200 and "<h1>Several VMs are named web-01</h1>" in body
    links = re.findall(r'<a href="([^"]+)">Timeline of web-01</a>', body)
    assert links == [f'{reverse("audit:vm_timeline")}?vm={quote(vm_id(rg=rg))}'
                     for rg in ("rg-web-blue", "rg-web-prod")]
    assert "rg-web-dev" not in body and DEV not in body
    for link in links:
        assert client.get(html.unescape(link)).status_code == 200


def test_the_vm_timeline_shows_a_dnat_rule_written_in_a_firewall_policy_as_a_rule_change(client, auditor):
    correlation = "aaaaaaaa-3333-4333-8444-555555555555"
    group = (f"/subscriptions/{PROD}/resourceGroups/rg-hub-prod/providers/Microsoft.Network/firewallPolicies/"
             f"fw-hub-weu-policy/ruleCollectionGroups/SecurityCenter-JIT")
    store_events([event(correlation_id=correlation),
                  event(correlation_id=correlation, resource_id=group, properties={"natRule": "jit-web-01-22"},
                        operation="Microsoft.Network/firewallPolicies/ruleCollectionGroups/write")])
    client.force_login(auditor)
    body = client.get(reverse("audit:vm_timeline"), {"vm": vm_id()}).content.decode()
    assert f"written: {group.lower()}" in body  # beside the NSG rules and classic firewalls' writes
    found = client.get(SEARCH, {"operation": "Microsoft.Network/firewallPolicies/ruleCollectionGroups/write"})
    assert group.lower() in found.content.decode()


def test_policy_ids_are_matched_to_the_auditors_resource_group_scope(client):
    from tests.audit.factories import user_with_role

    auditor = user_with_role("rg@contoso.example", "auditor", f"/subscriptions/{PROD}/resourceGroups/RG-Web-Prod")
    store_events([event(caller="web@contoso.example"),
                  event(rg="rg-data-prod", resource_id=policy_id(rg="rg-data-prod"), caller="data@contoso.example")])
    client.force_login(auditor)
    body = client.get(SEARCH).content.decode()
    assert "web@contoso.example" in body and "data@contoso.example" not in body


def test_invalid_filters_show_a_message_not_an_error(client, auditor):
    client.force_login(auditor)
    response = client.get(SEARCH, {"range": "bogus", "since": "not-a-date"})
    assert response.status_code == 200
    page = response.content.decode()
    assert ('<a href="#id_range">Time: Select a valid choice. bogus is not one of the available choices.</a> '
            'The filter was left out.') in page
    assert '<a href="#id_since">From (UTC): Enter a valid date/time.</a> The filter was left out.' in page
    assert "There are 2 problems with the filters" in page
    assert '<li id="id_range_error">' in page and 'aria-describedby="id_range_error"' in page
    refused = client.get(EXPORT, {"range": "bogus", "since": "not-a-date"})
    assert refused.status_code == 400
    assert "Time: Select a valid choice." in refused.content.decode()
    assert "From (UTC): Enter a valid date/time." in refused.content.decode()


@pytest.mark.parametrize(("source", "name", "label", "limit"), [
    *[("azure", name, label, 200) for name, label in [("q", "Text"), ("caller", "Caller"),
                                                      ("correlation", "Correlation id"),
                                                      ("subscription", "Subscription id"),
                                                      ("resource_group", "Resource group")]],
    *[("portal", name, label, 200) for name, label in [("q", "Text"), ("user", "User"), ("action", "Action"),
                                                       ("subscription", "Subscription id"),
                                                       ("resource_group", "Resource group")]],
    ("azure", "vm", "VM (name or resource id)", 1024), ("portal", "vm", "VM (name or resource id)", 1024)])
@pytest.mark.parametrize("typed", ["a" * 60_000, "/" + "a" * 60_000])
def test_a_filter_longer_than_any_name_or_id_is_refused_in_words_not_a_crash(client, auditor, source, name, label,
                                                                           limit, typed):
    """SQLite refuses a LIKE pattern over 50,000 bytes ("pattern too complex"): such a search was a 500, and its
    CSV download broke off after its headers."""
    from audit.models import AuditEvent
    from audit.services import audit_record
    from tests.policies.factories import make_vm

    make_vm(f"/subscriptions/{PROD}/resourceGroups/rg-web-prod", name="a" * 10)  # the VM filter reads names
    store_events([event(caller="alice@contoso.example")])
    audit_record(actor=auditor, action="vm.jit_enabled", target_label="web-01", subscription_id=PROD.lower(),
                 resource_group="rg-web-prod", resource_id=vm_id().lower())
    client.force_login(auditor)
    page = client.get(SEARCH, {"source": source, name: typed})
    assert page.status_code == 200
    assert (f"{label}: Ensure this value has at most {limit} characters (it has {len(typed)}).</a> The filter was "
            "left out.") in page.content.decode()
    refused = client.get(EXPORT, {"source": source, name: typed})
    assert refused.status_code == 400
    assert f"{label}: Ensure this value has at most {limit} characters" in refused.content.decode()
    assert not AuditEvent.objects.filter(action="audit.export").exists()


@pytest.mark.parametrize("key", ["after", "before"])
def test_a_forged_page_cursor_is_a_400_saying_so_with_a_link_to_the_newest_events(client, auditor, key):
    store_events([event(caller="someone@contoso.example")])
    client.force_login(auditor)
    response = client.get(SEARCH, {"source": "azure", "q": "someone", key: "garbage"})
    assert response.status_code == 400
    page = response.content.decode()
    assert f"The {key} cursor is not one this search gave" in page
    assert 'id="cursor-error"' in page and 'href="?source=azure&amp;q=someone">Show the newest events</a>' in page
    assert "someone@contoso.example" not in page.split('id="cursor-error"', 1)[1]  # no page of rows under it


def test_the_request_timeline_answers_who_opened_what_from_where_why_and_when_it_closed(client, auditor):
    from audit.services import audit_record

    portal_request = "bbbbbbbb-3333-4444-8555-666666666666"
    azure_call = "cccccccc-4444-4555-8666-777777777777"
    rule = (f"/subscriptions/{PROD}/resourceGroups/rg-web-prod/providers/Microsoft.Network/networkSecurityGroups/"
            f"nsg-web/securityRules/jit-web-01-22-allow")
    store_events([
        event(correlation_id=azure_call, properties={
            "virtualMachines": vm_id(), "justification": f"alice: Fix TLS (portal request #9, {portal_request})",
            "sourceAddressPrefixes": "203.0.113.9", "endTimeUtc": "2030-01-01T11:00:00Z"}),
        event(correlation_id=azure_call, resource_id=rule, operation=RULE_WRITE, properties={"access": "Allow"}),
        event(correlation_id="dddddddd-5555-4666-8777-888888888888", properties={
            "virtualMachines": vm_id(), "justification": "bob: another request"}),
    ])
    for action in ("access.create", "access.close_requested"):
        audit_record(actor=None, action=action, target_id=vm_id(), target_label="web-01", subscription_id=PROD,
                     resource_group="rg-web-prod", resource_id=vm_id(), client_ip="198.51.100.9",
                     correlation_id=portal_request)
    client.force_login(auditor)
    body = client.get(reverse("audit:vm_timeline"), {"request": portal_request}).content.decode()
    assert "Fix TLS" in body and "203.0.113.9" in body and "jit-web-01-22-allow" in body
    assert "access.create" in body and "access.close_requested" in body and "198.51.100.9" in body
    assert "another request" not in body
    assert client.get(reverse("audit:vm_timeline"), {"request": "no-such-request"}).status_code == 400
    assert client.get(reverse("audit:vm_timeline"), {"request": "eeeeeeee-0000-4000-8000-000000000000"}
                      ).status_code == 404


@pytest.mark.parametrize("named", ["x", "9 OR 1=1", "-1", "1.5", "bbbbbbbb-3333", "#9", "\uff19"])
def test_a_request_timeline_needs_a_request_number_or_id_not_a_fragment(client, auditor, named):
    store_events([event(properties={"virtualMachines": vm_id(), "justification": (
        "alice: Fix TLS (portal request #9, bbbbbbbb-3333-4444-8555-666666666666)")})])
    client.force_login(auditor)
    response = client.get(reverse("audit:vm_timeline"), {"request": named})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Give a request&#x27;s number (such as 42) or its correlation id" in body and "Fix TLS" not in body


def access_request(requester, justification: str) -> AccessRequest:
    return AccessRequest.objects.create(requester=requester, requester_name="owner", justification=justification,
                                        idempotency_key=justification, source_prefix="203.0.113.9/32",
                                        end_at=timezone.now() + timedelta(hours=1))


def test_a_request_timeline_by_number_shows_exactly_that_request(client, auditor):
    mine, other = access_request(auditor, "mine"), access_request(auditor, "other")
    store_events([
        event(properties={"virtualMachines": vm_id(), "justification": f"owner: mine {mine.azure_justification}"}),
        event(properties={"virtualMachines": vm_id(), "justification": other.azure_justification}),
        # another request whose text names mine: the portal's tail (at the end) is what counts
        event(properties={"virtualMachines": vm_id(), "justification": (
            f"mallory: like {mine.azure_justification[7:]} (portal request #{other.pk}, {other.correlation_id})")}),
    ])
    client.force_login(auditor)
    body = client.get(reverse("audit:vm_timeline"), {"request": str(mine.pk)}).content.decode()
    assert "owner: mine" in body and "mallory" not in body and f"#{other.pk}, {other.correlation_id}" not in body
    by_id = client.get(reverse("audit:vm_timeline"), {"request": str(mine.correlation_id).upper()})
    assert by_id.status_code == 200 and "owner: mine" in by_id.content.decode()
    assert client.get(reverse("audit:vm_timeline"), {"request": str(other.pk + 1000)}).status_code == 404
    assert client.get(reverse("audit:vm_timeline"), {"request": "9" * 30}).status_code == 400


@pytest.mark.parametrize("params", [{"vm": vm_id() + "\x00"}, {"request": "\x00"}])
def test_a_timeline_named_with_a_nul_character_is_refused_on_every_database(client, auditor, params):
    client.force_login(auditor)
    response = client.get(reverse("audit:vm_timeline"), params)
    assert response.status_code in (400, 404)


@pytest.mark.parametrize("typed", ["a" * 60_000, vm_id() + "a" * 60_000, "a" * 1025])
def test_a_timeline_vm_longer_than_any_vm_id_is_a_400_saying_so_not_a_crash(client, auditor, typed):
    """SQLite refuses a LIKE pattern over 50,000 bytes ("pattern too complex"): a VM name or id that long (the
    timeline finds both in any case, with LIKE) was a 500. The search's VM filter takes as much (1,024 characters)."""
    from tests.policies.factories import make_vm

    make_vm(f"/subscriptions/{PROD}/resourceGroups/rg-web-prod", name="web-01")
    client.force_login(auditor)
    response = client.get(reverse("audit:vm_timeline"), {"vm": typed})
    assert response.status_code == 400
    assert (f'id="timeline-error">Give a VM&#x27;s name or resource id of at most 1024 characters (this one has '
            f'{len(typed)}).</p>') in response.content.decode()
    assert client.get(reverse("audit:vm_timeline"), {"vm": "web-01"}).status_code == 200


@pytest.mark.parametrize(("recorded", "shown"), [("2030-01-01T10:00:00.016898+01:00", "2030-01-01 09:00:00 UTC</time>"),
                                                 ("2030-13-01T10:00:00Z", "2030-13-01T10:00:00Z"),
                                                 ("soon", "soon"), ("2030-01-01T10:00:00", "2030-01-01T10:00:00")])
def test_the_vm_timeline_shows_the_windows_end_as_a_utc_time_or_as_azure_wrote_it(client, auditor, recorded, shown):
    store_events([event(properties={"virtualMachines": vm_id(), "endTimeUtc": recorded})])
    client.force_login(auditor)
    body = client.get(reverse("audit:vm_timeline"), {"vm": vm_id()}).content.decode()
    assert f">{shown}</td>" in body


def dd(body: str, dd_id: str) -> str:
    """The text of the event page's value ``dd_id`` (tags removed, entities read)."""
    import html
    import re

    found = re.search(rf'<dd id="{dd_id}">(.*?)</dd>', body, re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).split()) if found else ""


def event_page(client, **kwargs) -> str:
    store_events([event(**kwargs)])
    page = client.get(reverse("audit:activity_event", args=[ActivityLogEvent.objects.latest("id").pk]))
    assert page.status_code == 200
    return page.content.decode()


def test_an_initiates_page_says_which_ports_on_which_vms_from_where_until_when_who_and_why(client, auditor):
    client.force_login(auditor)
    dev_vm = vm_id(DEV, "rg-dev", "dev-01")  # outside the auditor's scope: withheld, and Azure's ports with it
    properties = {"virtualMachines": f"{vm_id(name='web-04')},{dev_vm}", "ports": "22,3389",
                  "sourceAddressPrefixes": "2001:db8::25/128", "endTimeUtc": "2030-01-01T02:00:00.0000000Z",
                  "requestor": "jit-portal@contoso.example", "justification": "alice: patch the kernel"}
    body = event_page(client, properties={**properties, "virtualMachines": vm_id(name="web-04")})
    assert 'id="jit-summary"' in body and body.index('id="jit-summary"') < body.index('id="event-properties"')
    assert dd(body, "jit-vms") == f"web-04 {vm_id(name='web-04')}"
    assert f'<a href="{reverse("audit:vm_timeline")}?vm={vm_id(name="web-04")}"' in body
    assert (dd(body, "jit-ports"), dd(body, "jit-sources"), dd(body, "jit-until")) == (
        "22, 3389", "2001:db8::25/128", "2030-01-01 02:00:00 UTC")
    both = event_page(client, properties=properties)
    assert dd(both, "jit-vms") == f"web-04 {vm_id(name='web-04')}" and "dev-01" not in both
    assert dd(both, "jit-ports") == "[withheld: outside your audit scope]" and 'id="event-withheld"' in both
    assert (dd(body, "jit-requestor"), dd(body, "jit-justification")) == (
        "jit-portal@contoso.example", "alice: patch the kernel")
    assert 'id="jit-request"' not in body  # no portal tail: no request named


def test_an_initiates_page_leaves_missing_parts_empty_and_other_events_have_no_summary(client, auditor):
    client.force_login(auditor)
    body = event_page(client, properties={"virtualMachines": [vm_id()], "endTimeUtc": "soon"})
    assert dd(body, "jit-vms").startswith("web-01 ") and dd(body, "jit-ports") == "—"
    assert (dd(body, "jit-sources"), dd(body, "jit-until"), dd(body, "jit-requestor")) == ("—", "soon", "—")
    assert 'id="jit-summary"' not in event_page(client, properties={})
    rule = event_page(client, operation=RULE_WRITE, properties={"access": "Allow"}, resource_id=(
        f"/subscriptions/{PROD}/resourceGroups/rg-web-prod/providers/Microsoft.Network/networkSecurityGroups/"
        f"nsg-web/securityRules/SecurityCenter-JITRule_1_web-01_22_Allow"))
    assert 'id="jit-summary"' not in rule and '<dl class="details">' in rule
    dev_vm = vm_id(DEV, "rg-dev", "dev-01").lower()
    policy = event_page(client, operation="Microsoft.Security/locations/jitNetworkAccessPolicies/write",
                        properties={"virtualMachines": f"{vm_id()},{dev_vm}"})
    assert 'id="jit-summary"' not in policy and f'?vm={vm_id().lower()}">Timeline of web-01</a>' in policy
    assert f"?vm={dev_vm}" not in policy  # a VM the auditor may not audit: no timeline that would answer 404


def test_an_initiates_page_links_the_portal_request_it_names_only_for_whom_may_open_it(client, auditor):
    from accounts.models import User

    client.force_login(auditor)
    mine = access_request(auditor, "mine")
    theirs = access_request(User.objects.create(username="someone"), "theirs")
    timeline = f'href="{reverse("audit:vm_timeline")}?request='
    body = event_page(client, properties={"virtualMachines": vm_id(), "justification": mine.azure_justification})
    link = f'<a href="{reverse("policies:request_detail", args=[mine.pk])}">request #{mine.pk}</a>'
    assert link in body and f"{timeline}{mine.correlation_id}" in body
    assert dd(body, "jit-request") == f"request #{mine.pk} · its timeline"
    body = event_page(client, properties={"virtualMachines": vm_id(), "justification": theirs.azure_justification})
    assert dd(body, "jit-request") == f"request #{theirs.pk} · its timeline"
    assert reverse("policies:request_detail", args=[theirs.pk]) not in body
    forged = f"owner: mine (portal request #{mine.pk}, {theirs.correlation_id})"  # the number and id disagree
    body = event_page(client, properties={"virtualMachines": vm_id(), "justification": forged})
    assert reverse("policies:request_detail", args=[mine.pk]) not in body
    closing = f"close portal request #{mine.pk} early ({mine.correlation_id})"
    body = event_page(client, properties={"virtualMachines": vm_id(), "justification": closing})
    assert dd(body, "jit-request") == f"Closes request #{mine.pk} early · its timeline" and link in body
    huge = f"x (portal request #{'9' * 40}, {mine.correlation_id})"
    assert dd(event_page(client, properties={"virtualMachines": vm_id(), "justification": huge}), "jit-request") == (
        f"request #{'9' * 40} · its timeline")


def test_hostile_text_on_an_initiates_page_stays_text(client, auditor):
    client.force_login(auditor)
    body = event_page(client, caller="<script>alert(0)</script>", properties={
        "virtualMachines": f"{vm_id(name='web-01')},web<img src=x onerror=alert(1)>",
        "ports": "22<svg onload=alert(2)>", "sourceAddressPrefixes": '"><script>alert(3)</script>',
        "endTimeUtc": "<b>soon</b>", "requestor": "<i>mallory</i>",
        "justification": "<script>alert(4)</script> (portal request #1, not-an-id)"})
    for raw in ("<script>alert", "<img src=x", "<svg onload", "<b>soon", "<i>mallory"):
        assert raw not in body
    assert dd(body, "jit-vms").endswith("web<img src=x onerror=alert(1)>")  # a name, not a link: no VM id
    assert dd(body, "jit-sources") == '"><script>alert(3)</script>' and dd(body, "jit-requestor") == "<i>mallory</i>"


def test_an_initiates_page_links_the_portal_request_for_an_approver_who_may_read_it(client, approver):
    """An auditor who is also an approver at the request's VM reads its page (as its approvers do): linked; and
    still as an auditor there once their approver role is elsewhere (auditors read the requests in their scope)."""
    from accounts.models import RoleMapping
    from tests.plugins.personas import IN_SCOPE
    from tests.policies import factories as _policies  # noqa: F401 (imports the access factories in order)
    from tests.policies.access.factories import make_access_request

    RoleMapping.objects.create(source_kind=RoleMapping.SourceKind.APP_ROLE, source_value="JIT.Approver",
                               role="auditor", scope=IN_SCOPE)
    theirs = make_access_request(IN_SCOPE)
    page = reverse("policies:request_detail", args=[theirs.pk])
    client.force_login(approver)
    assert client.get(page).status_code == 200
    body = event_page(client, properties={"virtualMachines": theirs.vms.get().vm_arm_id,
                                          "justification": theirs.azure_justification})
    assert f'<a href="{page}">request #{theirs.pk}</a>' in body
    RoleMapping.objects.filter(source_value="JIT.Approver", role="approver").update(
        scope="/subscriptions/c0a1b2c3-0000-4000-8000-000000000002")  # an approver of another scope: as auditor
    body = event_page(client, properties={"virtualMachines": theirs.vms.get().vm_arm_id,
                                          "justification": theirs.azure_justification})
    assert f'<a href="{page}">request #{theirs.pk}</a>' in body and client.get(page).status_code == 200
    RoleMapping.objects.filter(source_value="JIT.Approver", role="auditor").update(
        scope=f"{IN_SCOPE}/resourceGroups/rg-elsewhere")  # an auditor of another resource group: not linked
    assert client.get(page).status_code == 404


@pytest.mark.parametrize("source", ["trail", "AZURE", "<b>x</b>"])
def test_an_unknown_source_says_so_and_is_left_out_as_other_bad_filters_are(client, auditor, source):
    store_events([event(caller="someone@contoso.example")])
    client.force_login(auditor)
    response = client.get(SEARCH, {"source": source})
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="filter-errors" role="alert"' in page
    assert "is not one of the sources; choose azure (Azure Activity Log) or portal (Portal audit trail). " \
           "The filter was left out." in page
    assert "<b>x</b>" not in page  # the value typed is escaped
    # The sources are the links above the results: the error links there (focusable, so the link moves the focus).
    assert '<li><a href="#audit-sources">Source: ' in page
    assert '<nav class="audit-sources" id="audit-sources" aria-label="Source" tabindex="-1">' in page
    assert "someone@contoso.example" in page  # the Azure Activity Log, as the message says
    refused = client.get(EXPORT, {"source": source})
    assert refused.status_code == 400 and "is not one of the sources" in refused.content.decode()
    for known in ("azure", "portal"):
        assert 'id="filter-errors"' not in client.get(SEARCH, {"source": known}).content.decode()


@pytest.mark.parametrize(("source", "params", "named"), [
    ("portal", {"caller": "someone@contoso.example"}, "Caller: filters only the Azure Activity Log"),
    ("azure", {"user": "nobody"}, "User: filters only the Portal audit trail")])
def test_a_filter_of_the_other_source_is_named_and_the_export_refuses_it_as_the_api_does(client, auditor, source,
                                                                                         params, named):
    from audit.models import AuditEvent
    from audit.services import audit_record

    store_events([event(caller="someone@contoso.example")])
    audit_record(actor=auditor, action="vm.jit_enabled", target_label="web-01", subscription_id=PROD.lower(),
                 resource_group="rg-web-prod", resource_id=vm_id().lower())
    client.force_login(auditor)
    page = client.get(SEARCH, {"source": source, **params}).content.decode()
    assert 'id="filter-errors" role="alert"' in page and f"{named}; this search reads the " in page
    refused = client.get(EXPORT, {"source": source, **params})  # not the whole, unfiltered source
    assert refused.status_code == 400 and named in refused.content.decode()
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_the_page_links_build_clean_query_strings_with_and_without_filters(client, auditor, settings):
    import re

    settings.AUDIT_PAGE_SIZE = 2
    now = timezone.now()
    store_events([event(when=now - timedelta(minutes=m), caller=f"c{m}@contoso.example") for m in range(5)])
    client.force_login(auditor)
    page = client.get(SEARCH).content.decode()
    older = re.search(r'id="page-older" href="([^"]+)"', page).group(1)
    assert re.fullmatch(r"\?after=[A-Za-z0-9_-]+", older), older  # not ?&after=
    page = client.get(SEARCH + older).content.decode()
    newer = re.search(r'id="page-newer" href="([^"]+)"', page).group(1)
    assert re.fullmatch(r"\?before=[A-Za-z0-9_-]+", newer), newer
    filtered = client.get(SEARCH, {"source": "azure", "q": "contoso"}).content.decode()
    older = re.search(r'id="page-older" href="([^"]+)"', filtered).group(1)
    assert re.fullmatch(r"\?source=azure&amp;q=contoso&amp;after=[A-Za-z0-9_-]+", older), older
    forged = client.get(SEARCH, {"after": "garbage"}).content.decode()
    assert f'href="{SEARCH}">Show the newest events</a>' in forged  # the page itself, not a bare "?"


def test_the_portal_trails_rows_about_a_request_link_its_page_for_whom_may_open_it(client, auditor):
    """The trail's event page, the portal search's rows and the timelines link a request's rows to its page: an auditor
    reads every request in their scope. A row naming a request they may not open (no VM of it in their scope) has
    no link."""
    from audit.models import AuditEvent
    from audit.services import audit_record
    from tests.policies import factories as _policies  # noqa: F401 (imports the access factories in order)
    from tests.policies.access.factories import make_access_request

    theirs = make_access_request(f"/subscriptions/{PROD}/resourceGroups/rg-web-prod")
    unseen = access_request(auditor.__class__.objects.create(username="someone"), "no VM of it in scope")
    row = theirs.vms.get()
    place = {"subscription_id": PROD, "resource_group": "rg-web-prod", "resource_id": row.vm_arm_id.lower()}
    for request in (theirs, unseen):
        audit_record(actor=None, action="access.expired", target_type="vm", target_id=row.vm_id,
                     target_label=row.vm_name, after={"request": request.pk},
                     correlation_id=str(request.correlation_id), **place)
    audit_record(actor=None, action="policy.save", target_label=row.vm_name, correlation_id="not-a-request", **place)
    page = reverse("policies:request_detail", args=[theirs.pk])
    link = f'href="{page}">request #{theirs.pk}</a>'
    client.force_login(auditor)
    assert client.get(page).status_code == 200
    linked, other, plain = (AuditEvent.objects.get(correlation_id=key) for key in (
        str(theirs.correlation_id), str(unseen.correlation_id), "not-a-request"))
    assert link in client.get(reverse("audit:trail_event", args=[linked.pk])).content.decode()
    for shown in (other, plain):
        assert 'id="event-request"' not in client.get(reverse("audit:trail_event", args=[shown.pk])).content.decode()
    search = client.get(SEARCH, {"source": "portal"}).content.decode()
    assert search.count('class="portal-request"') == 1 and link in search
    by_request = client.get(reverse("audit:vm_timeline"), {"request": str(theirs.pk)}).content.decode()
    assert f'id="timeline-request" href="{page}">Request #{theirs.pk}</a>' in by_request and link in by_request
    assert link in client.get(reverse("audit:vm_timeline"), {"vm": row.vm_arm_id}).content.decode()


def _page_size_form(page: str) -> tuple[dict, list] | None:
    bar = re.search(r'<div class="paginator audit-pager">(.*?)</div>', page, re.S)
    found = bar and re.search(r'<form method="get" class="page-size" id="page-size-form">(.*?)</form>', bar.group(1),
                              re.S)
    if not found:
        return None
    form = found.group(1)
    assert '<label for="page-size">Rows per page</label>' in form and 'id="page-size-show">Show</button>' in form
    return (dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)),
            re.findall(r'<option value="(\d+)"( selected)?>', form))


def test_the_paging_bar_offers_rows_per_page_keeping_the_search_from_the_newest_events(client, auditor):
    """The search showed ``AUDIT_PAGE_SIZE`` events a page and nothing else: ``?per_page=`` and a "Rows per page"
    choice that keeps the source and filters, not the cursor. The filter forms keep the size chosen."""
    now = timezone.now()
    store_events([event(when=now - timedelta(minutes=m), caller=f"c{m}@contoso.example") for m in range(3)])
    client.force_login(auditor)
    few = client.get(SEARCH).content.decode()  # the smallest size shows them all: none offered
    assert "3 shown, newest first" in few and 'id="page-size"' not in few
    store_events([event(when=now - timedelta(minutes=m), caller=f"c{m}@contoso.example") for m in range(3, 40)])
    first = client.get(SEARCH, {"source": "azure", "q": "contoso", "per_page": "10"}).content.decode()
    assert "10 shown, newest first" in first
    older = re.search(r'id="page-older" href="([^"]+)"', first).group(1)
    second = client.get(SEARCH + html.unescape(older)).content.decode()
    kept, choices = _page_size_form(second)
    assert kept == {"source": "azure", "q": "contoso"}  # no after= or before=: the newest events
    assert choices == [("10", " selected"), ("25", ""), ("50", ""), ("100", "")]
    for form in ("changelist-search", "audit-filter"):
        assert '<input type="hidden" name="per_page" value="10">' in second.split(f'id="{form}"')[1].split("</form>")[0]
    chosen = client.get(SEARCH, {**kept, "per_page": "25"}).content.decode()
    assert "25 shown, newest first" in chosen and 'id="page-newer"' not in chosen
    assert _page_size_form(chosen)[1] == [("25", " selected"), ("50", ""), ("100", "")]
    default = client.get(SEARCH).content.decode()  # AUDIT_PAGE_SIZE (50): all 40, more than the smallest size
    assert "40 shown" in default and _page_size_form(default)[1] == [("25", ""), ("50", " selected"), ("100", "")]
    assert "40 shown" in client.get(SEARCH, {"per_page": "100000"}).content.decode()  # a huge size is cut, not an error
