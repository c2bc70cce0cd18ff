"""An auditor scoped below an event's scope sees only the entries of their VMs: pages, search, CSV and timeline."""
import json
import uuid

import pytest
from django.urls import reverse

from audit.ingestion import store_events
from audit.models import ActivityLogEvent, AuditEvent
from audit.services import audit_record
from tests.audit.factories import PROD, RULE_WRITE, event, policy_id, user_with_role, vm_id
from tests.words import names

pytestmark = pytest.mark.django_db
POLICY_WRITE = "Microsoft.Security/locations/jitNetworkAccessPolicies/write"
WEB_01, WEB_02 = vm_id(name="web-01"), vm_id(name="web-02")
RULE_02 = (f"/subscriptions/{PROD}/resourceGroups/rg-web-prod/providers/Microsoft.Network/networkSecurityGroups/"
           "nsg-web/securityRules/SecurityCenter-JITRule_1234_web-02_3389")


def _policy_write(correlation: str = ""):
    body = {"properties": {"virtualMachines": [
        {"id": WEB_01, "ports": [{"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*",
                                  "maxRequestAccessDuration": "PT3H"}]},
        {"id": WEB_02, "ports": [{"number": 3389, "protocol": "*", "allowedSourceAddressPrefix": "10.9.9.9",
                                  "maxRequestAccessDuration": "PT3H"}]}]}}
    return event(operation=POLICY_WRITE, correlation_id=correlation or str(uuid.uuid4()), properties={
        "virtualMachines": f"{WEB_01},{WEB_02}", "ports": "22,3389", "requestbody": json.dumps(body)})


@pytest.fixture
def web_01_auditor(persona_mappings):
    return user_with_role("vic@contoso.example", "auditor", WEB_01)


def test_an_auditor_of_one_vm_sees_neither_the_ports_nor_the_ids_of_the_other_vms_of_an_event(
        client, web_01_auditor, auditor, django_assert_max_num_queries):
    correlation = str(uuid.uuid4())
    store_events([_policy_write(), event(correlation_id=correlation, properties={
        "virtualMachines": f"{WEB_01},{WEB_02}", "ports": "22,3389", "justification": "patching"}),
        event(correlation_id=correlation, resource_id=RULE_02, operation=RULE_WRITE, properties={"access": "Allow"})])
    write = ActivityLogEvent.objects.get(operation_name=POLICY_WRITE)
    client.force_login(web_01_auditor)
    page = client.get(reverse("audit:activity_event", args=[write.pk])).content.decode()
    assert "web-02" not in page and not names(page, "3389") and "10.9.9.9" not in page
    assert "web-01" in page and "maxRequestAccessDuration" in page  # their VM's entry, with its port
    assert "1 entry about VMs outside your audit scope was withheld" in page

    with django_assert_max_num_queries(12):  # no query per row for the scope
        found = client.get(reverse("audit:search"), {"q": "web"})
    assert found.status_code == 200 and found.content.decode().count("jit-withheld") == 2
    assert "web-02" not in found.content.decode() and not names(found.content.decode(), "3389")
    export = b"".join(client.get(reverse("audit:export")).streaming_content).decode("utf-8-sig")
    assert "web-02" not in export and not names(export, "3389")
    # the header and the two events naming web-01: web-02's NSG rule row is web-02's alone (its rule names it)
    assert len(export.strip().splitlines()) == 3
    timeline = client.get(reverse("audit:vm_timeline"), {"vm": WEB_01}).content.decode()
    assert "web-02" not in timeline and not names(timeline, "3389") and "securitycenter-jitrule" not in timeline.lower()

    client.force_login(auditor)  # audits the whole subscription: sees everything
    page = client.get(reverse("audit:activity_event", args=[write.pk])).content.decode()
    assert "web-02" in page and "10.9.9.9" in page and "event-withheld" not in page
    assert "web-02" in b"".join(client.get(reverse("audit:export")).streaming_content).decode("utf-8-sig")


def test_a_portal_trail_row_of_their_vm_shows_no_other_vm_azure_named_in_its_error(client, web_01_auditor, auditor):
    audit_record(actor=None, action="access.failed", target_type="vm", target_id="1", target_label="web-01",
                 after={"error": f"VirtualMachineNotFound: The virtual machine {WEB_02} (port 3389) does not exist."},
                 subscription_id=PROD, resource_group="rg-web-prod", resource_id=WEB_01.lower())
    row = AuditEvent.objects.get(action="access.failed")
    client.force_login(web_01_auditor)
    page = client.get(reverse("audit:trail_event", args=[row.pk])).content.decode()
    assert "VirtualMachineNotFound: [withheld: outside your audit scope]" in page and "event-withheld" in page
    assert "web-02" not in page and not names(page, "3389")  # Azure's message names the other VM: only its code shows
    client.force_login(auditor)
    assert "web-02" in client.get(reverse("audit:trail_event", args=[row.pk])).content.decode()


def test_an_auditor_of_the_resource_group_sees_the_whole_policy_event(client, persona_mappings):
    store_events([_policy_write()])
    group_auditor = user_with_role("gus@contoso.example", "auditor",
                                   f"/subscriptions/{PROD}/resourceGroups/rg-web-prod")
    client.force_login(group_auditor)
    write = ActivityLogEvent.objects.get(resource_id=policy_id().lower())
    page = client.get(reverse("audit:activity_event", args=[write.pk])).content.decode()
    assert "web-02" in page and "3389" in page and "event-withheld" not in page


def test_a_vm_named_like_a_word_is_withheld_where_it_is_named_not_wherever_the_word_is(client, web_01_auditor):
    """A VM outside the auditor's scope named "web" (or "test"): its id, its name as a path segment, in quotes, after
    "virtual machine" or as a field's whole value are withheld; the words "web" and "test" in other text are not."""
    web, test = vm_id(name="web"), vm_id(name="test")
    correlation = str(uuid.uuid4())
    store_events([event(correlation_id=correlation, properties={
        "virtualMachines": f"{WEB_01},{web},{test}", "ports": "22",
        "justification": "Patch the web tier, then test the web-01 health probe (unit_test, web.config)",
        "target": "web", "names": "web-01,test",
        "statusMessage": "The virtual machine web could not be reached on port 3389",
        "details": f"Resource 'Microsoft.Compute/virtualMachines/test' in {web} is busy",
        "hint": "Retry \u201ctest\u201d later"})])
    shown = ActivityLogEvent.objects.get(correlation_id=correlation)
    client.force_login(web_01_auditor)
    page = client.get(reverse("audit:activity_event", args=[shown.pk])).content.decode()
    # ordinary text naming no VM stays whole, in the summary and in the properties
    assert "Patch the web tier, then test the web-01 health probe (unit_test, web.config)" in page
    assert not names(page, "3389") and "could not be reached" not in page  # "the virtual machine web": a mention
    assert "is busy" not in page and "Retry" not in page  # a path segment, quotes
    details = client.get(reverse("api:audit_events")).json()["results"][0]["details"]
    assert details["justification"] == "Patch the web tier, then test the web-01 health probe (unit_test, web.config)"
    assert details["target"] == "[withheld: outside your audit scope]"
    assert details["names"] == "web-01,[withheld: outside your audit scope]"
    assert details["virtualMachines"].lower() == WEB_01.lower()
    assert details["statusMessage"] == details["details"] == details["hint"] == "[withheld: outside your audit scope]"


DB_07 = vm_id(rg="rg-data", name="db-07")
NET_RULE = (f"/subscriptions/{PROD}/resourceGroups/rg-net/providers/Microsoft.Network/networkSecurityGroups/"
            "nsg-shared/securityRules/SecurityCenter-JITRule_77_db-07_22")


def _found(client, **params) -> tuple[str, list, list]:
    """The search page's body, the API's results and the CSV's rows (header left out) for ``params``."""
    page = client.get(reverse("audit:search"), params).content.decode()
    api = client.get(reverse("api:audit_events"), params).json()
    export = b"".join(client.get(reverse("audit:export"), params).streaming_content).decode("utf-8-sig")
    assert api["next"] is None and api["previous"] is None
    return page, api["results"], export.strip().splitlines()[1:]


def test_free_text_and_the_vm_filter_find_nothing_through_a_vm_outside_the_auditors_scope(client, persona_mappings,
                                                                                          auditor):
    """A rule of a shared NSG in rg-net opened for db-07 of rg-data: an auditor of rg-net sees the rule's row, db-07
    withheld from it; searching for db-07 (or what only its withheld parts hold) answers as for a name nobody has."""
    correlation = str(uuid.uuid4())
    store_events([event(rg="rg-data", correlation_id=correlation, caller="dave@contoso.example", properties={
                      "virtualMachines": DB_07, "ports": "22", "justification": "quarterly db patching"}),
                  event(rg="rg-net", correlation_id=correlation, resource_id=NET_RULE, operation=RULE_WRITE,
                        caller="dave@contoso.example", properties={"access": "Allow"})])
    net_auditor = user_with_role("nina@contoso.example", "auditor", f"/subscriptions/{PROD}/resourceGroups/rg-net")
    client.force_login(net_auditor)
    page, results, rows = _found(client)
    assert len(results) == len(rows) == 1 and results[0]["withheld"] == 1 and "db-07" not in page
    nobody = _found(client, q="no-such-vm")
    assert "No activity matches this search." in nobody[0] and nobody[1:] == ([], [])
    for params in ({"q": "db-07"}, {"q": "DB-0"}, {"q": "b-07"}, {"q": "jitrule_77_db"}, {"q": "07_22"},
                   {"vm": DB_07}, {"vm": DB_07.upper()}):
        page, results, rows = _found(client, **params)
        assert "No activity matches this search." in page and (results, rows) == ([], []), params
        assert "jit-withheld" not in page, params
    for term in ("dave@contoso", "securityrules/write", "succeeded"):  # what the row shows still finds it
        assert len(_found(client, q=term)[1]) == 1, term

    client.force_login(auditor)  # audits the whole subscription: db-07 is theirs to find
    assert len(_found(client, q="db-07")[1]) == 2 and len(_found(client, vm=DB_07)[1]) == 2


def test_free_text_finds_an_auditors_own_vm_of_an_event_but_not_the_others(client, web_01_auditor):
    store_events([_policy_write()])
    client.force_login(web_01_auditor)
    assert len(_found(client, q="web-01")[1]) == 1 and len(_found(client, q="WEB")[1]) == 1
    for term in ("web-02", "b-02", "3389", "10.9.9.9"):  # web-02's name, its port and source
        page, results, rows = _found(client, q=term)
        assert "No activity matches this search." in page and (results, rows) == ([], []), term


@pytest.mark.parametrize(("outside", "text", "expected"), [
    # no VM outside is named like a word: the pattern has no "VM"-noun alternative (a text without spaces was an
    # IndexError, a 500 on any page showing it)
    ("db-07", "nic/db-07/ipconfig", "nic/[withheld: outside your audit scope]/ipconfig"),
    ("web", "virtualMachines/web", "virtualMachines/[withheld: outside your audit scope]"),
    ("web", "VM:web", "VM:[withheld: outside your audit scope]"),
])
def test_an_id_naming_a_vm_outside_is_withheld_whatever_the_vms_names(outside, text, expected):
    from audit.redaction import _Redactor

    assert _Redactor([vm_id()], [vm_id(name=outside)]).text(text) == (expected, False)


def test_a_long_run_of_spaces_after_vm_does_not_stall_the_redaction():
    """Text Azure logged (up to 64 KB of a request body: a justification sent to Azure directly) with "vm" and a long
    run of spaces, shown to an auditor while a VM outside their scope is named like a word: the "VM"-noun context
    tried every split of the spaces between its two optional runs, quadratic in their length (about 24 s for 32,000
    spaces), on every page, API answer and CSV showing the event."""
    import time

    from audit.redaction import _Redactor

    redactor = _Redactor([vm_id()], [vm_id(name="web")])
    text = "vm" + " " * 20000 + "x"
    started = time.monotonic()
    assert redactor.text(text) == (text, False)
    assert redactor.text("VM:web") == ("VM:[withheld: outside your audit scope]", False)
    assert redactor.text("vm :  web is down") == ("[withheld: outside your audit scope]", False)  # a sentence
    assert time.monotonic() - started < 1
