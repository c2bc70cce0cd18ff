"""Reading a JIT event's VMs, ports, sources, end, requestor and justification off what Azure wrote, whatever
shape it has: text or lists, missing parts, hostile text."""
import json
from datetime import UTC, datetime

import pytest

from audit.ingestion import row_from_event
from audit.jit_events import jit_summary
from tests.audit.factories import INITIATE, PROD, RULE_WRITE, event, vm_id

POLICY_WRITE = "Microsoft.Security/locations/jitNetworkAccessPolicies/write"
POLICY_DELETE = "Microsoft.Security/locations/jitNetworkAccessPolicies/delete"
RULE_DELETE = "Microsoft.Network/networkSecurityGroups/securityRules/delete"
NSG = f"/subscriptions/{PROD}/resourceGroups/rg-web-prod/providers/Microsoft.Network/networkSecurityGroups/nsg-web"


def summary(operation: str = INITIATE, properties=None, resource_id: str | None = None):
    return jit_summary(row_from_event(event(operation=operation, properties=properties, resource_id=resource_id)))


def test_an_initiate_as_azure_writes_it_names_the_vm_port_source_end_requestor_and_why():
    found = summary(properties={
        "virtualMachines": vm_id(name="web-04"), "ports": "22", "sourceAddressPrefixes": "203.0.113.25",
        "endTimeUtc": "2030-01-01T02:00:00.1234567Z", "requestor": "portal@contoso.example",
        "justification": "alice: patching"})
    assert found.kind == "initiate" and found.vm_names == ("web-04",) and found.vms == (vm_id(name="web-04"),)
    assert (found.ports, found.sources) == (("22",), ("203.0.113.25",))
    assert found.end == datetime(2030, 1, 1, 2, 0, 0, 123456, tzinfo=UTC) and found.end_text == ""
    assert (found.requestor, found.justification) == ("portal@contoso.example", "alice: patching")


def test_several_vms_ports_and_an_ipv6_source_in_comma_separated_text():
    found = summary(properties={"virtualMachines": f"{vm_id(name='web-01')},{vm_id(name='web-02')}",
                                "ports": "22,3389", "sourceAddressPrefixes": "2001:db8::25/128,203.0.113.7",
                                "endTimeUtc": "2030-01-01T12:00:00+02:00"})
    assert found.vm_names == ("web-01", "web-02") and found.ports == ("22", "3389")
    assert found.sources == ("2001:db8::25/128", "203.0.113.7") and found.end == datetime(2030, 1, 1, 10, tzinfo=UTC)


def test_lists_and_the_request_bodys_objects_are_read_too():
    source = {"allowedSourceAddressPrefix": "2001:db8::1"}
    body_vms = [{"id": vm_id(name="web-01"), "ports": [
                    {"number": 22, "endTimeUtc": "2030-01-01T10:00:00Z", **source},
                    {"number": 3389, "endTimeUtc": "2030-01-01T11:00:00Z", **source}]},
                {"id": vm_id(name="db-01"), "ports": [{"number": 5985, "endTimeUtc": "2030-01-01T09:00:00Z"}]}]
    found = summary(properties={"virtualMachines": body_vms})
    assert found.vm_names == ("web-01", "db-01") and found.ports == ("22", "3389", "5985")
    assert found.sources == ("2001:db8::1",) and found.end == datetime(2030, 1, 1, 11, tzinfo=UTC)  # the latest
    listed = summary(properties={"virtualMachines": [vm_id(name="web-01")], "ports": [22, 3389],
                                 "sourceAddressPrefixes": ["203.0.113.7"], "endTimeUtc": ["2030-01-01T10:00:00Z"]})
    assert (listed.vm_names, listed.ports, listed.sources) == (("web-01",), ("22", "3389"), ("203.0.113.7",))


@pytest.mark.parametrize("properties", [{}, {"virtualMachines": None, "ports": None}, {"virtualMachines": 42},
                                        {"virtualMachines": [None, True, {"no": "id"}]}, {"justification": "why"}])
def test_an_initiate_that_names_no_vm_has_no_summary(properties):
    found = summary(properties=properties)
    assert found is None


def test_missing_parts_are_left_empty_and_an_end_that_is_no_utc_time_is_kept_as_written():
    found = summary(properties={"virtualMachines": vm_id(), "endTimeUtc": "2030-01-01T10:00:00"})  # no offset
    assert found.vm_names == ("web-01",) and found.ports == () and found.sources == ()
    assert found.end is None and found.end_text == "2030-01-01T10:00:00"
    assert (found.requestor, found.justification) == ("", "")
    assert summary(properties={"virtualMachines": vm_id(), "endTimeUtc": "2030-13-45T99:00:00Z"}).end_text == (
        "2030-13-45T99:00:00Z")
    wrong_types = summary(properties={"virtualMachines": vm_id(), "requestor": ["x"], "justification": {"a": 1},
                                      "ports": {"number": "22"}, "sourceAddressPrefixes": 7})
    assert (wrong_types.requestor, wrong_types.justification, wrong_types.ports) == ("", "", ("22",))


@pytest.mark.parametrize("written", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_an_end_that_leaves_the_calendar_in_utc_is_kept_as_written_not_an_error(written):
    found = summary(properties={"virtualMachines": vm_id(), "endTimeUtc": written})
    assert found.end is None and found.end_text == written


def test_a_vm_named_by_name_only_stays_a_name():
    assert summary(properties={"virtualMachines": " web-09 ", "ports": "22"}).vm_names == ("web-09",)


def test_policy_writes_and_deletes_name_their_vms_and_ports_but_no_source_or_end():
    for operation in (POLICY_WRITE, POLICY_DELETE):
        found = summary(operation, {"virtualMachines": f"{vm_id()},{vm_id(name='web-02')}", "ports": "22,3389",
                                    "endTimeUtc": "2030-01-01T10:00:00Z", "sourceAddressPrefixes": "1.2.3.4"})
        assert found.kind == "policy" and found.vm_names == ("web-01", "web-02") and found.ports == ("22", "3389")
        assert found.sources == () and found.end is None
    assert summary(POLICY_WRITE, {"provisioningState": "Succeeded"}) is None  # nothing to name: as before


@pytest.mark.parametrize(("name", "properties", "vm", "port", "access", "sources"), [
    ("SecurityCenter-JITRule_d066f386_web-01_22_Allow", {"access": "Allow", "sourceAddressPrefix": "203.0.113.7"},
     "web-01", "22", "allow", ("203.0.113.7",)),
    ("SecurityCenter-JITRule_d066f386_web_01_3389", {"access": "Deny", "sourceAddressPrefix": "*"},
     "web_01", "3389", "deny", ()),
    ("SecurityCenter-JITRule_d066f386_web-01_22_Allow", {}, "web-01", "22", "allow", ()),  # read off the name
    ("SecurityCenter-JITRule_-1185713326_web-01_22", None, "web-01", "22", "deny", ()),
])
def test_the_nsg_rules_jit_writes_name_the_vm_and_port_off_the_rule_name(name, properties, vm, port, access, sources):
    for operation in (RULE_WRITE, RULE_DELETE):
        found = summary(operation, properties if properties is not None else {}, f"{NSG}/securityRules/{name}")
        assert (found.kind, found.vm_names, found.ports, found.access, found.sources) == (
            "rule", (vm,), (port,), access, sources)


def test_a_jit_rule_with_another_name_takes_its_port_from_the_properties():
    found = summary(RULE_WRITE, {"destinationPortRange": "22", "access": "Allow"},
                    f"{NSG}/securityRules/SecurityCenter-JITRule_odd")
    assert found.ports == ("22",) and found.vm_names == () and found.access == "allow"


def test_other_nsg_rules_and_other_operations_have_no_summary():
    assert summary(RULE_WRITE, {"access": "Allow"}, f"{NSG}/securityRules/allow-ssh-from-office") is None
    assert summary("Microsoft.Network/azureFirewalls/write", {"virtualMachines": vm_id()}) is None


def test_a_call_body_logged_as_json_text_is_read_too():
    body = {"virtualMachines": [{"id": vm_id(name="web-07"), "ports": [
        {"number": 22, "endTimeUtc": "2030-01-01T10:00:00Z", "allowedSourceAddressPrefix": "2001:db8::7"}]}],
        "justification": "bob: deploy"}
    found = summary(properties={"requestbody": json.dumps(body), "requestor": "bob@contoso.example"})
    assert (found.vm_names, found.ports, found.sources, found.justification, found.requestor) == (
        ("web-07",), ("22",), ("2001:db8::7",), "bob: deploy", "bob@contoso.example")
    assert found.end == datetime(2030, 1, 1, 10, tzinfo=UTC)
    policy = {"properties": {"virtualMachines": [{"id": vm_id(name="web-08"), "ports": [{"number": 3389}]}]}}
    assert summary(POLICY_WRITE, {"requestbody": json.dumps(policy)}).vm_names == ("web-08",)
    for broken in ("{not json", "[1, 2]"):
        assert summary(properties={"requestbody": broken}) is None
    too_long = summary(properties={"requestbody": json.dumps(body) + " " * 70000})  # not parsed: the VM ingestion
    assert too_long.vm_names == ("web-07",) and too_long.ports == () and too_long.justification == ""  # found only
