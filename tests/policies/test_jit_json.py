"""Azure's JIT JSON ↔ the portal: the seed's PowerShell examples, the REST spec's examples, and bad input."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from policies import jit_json, rules
from policies.access import services
from policies.access.models import AccessRequestPort, PortState
from tests.cloud.conftest import specs_dir
from tests.plugins.personas import IN_SCOPE, OUT_OF_SCOPE
from tests.policies.factories import make_vm

JIT_EXAMPLES = "security-2020-01-01/examples/JitNetworkAccessPolicies"
SEED_VM = ("/subscriptions/SUBSCRIPTIONID/resourceGroups/RESOURCEGROUP/providers/Microsoft.Compute/virtualMachines/"
           "VMNAME")
# The seed's $JitPolicy (Set-AzJitNetworkAccessPolicy) as PowerShell serialises it to JSON.
SEED_POLICY = {"id": SEED_VM, "ports": [
    {"number": 22, "protocol": "*", "allowedSourceAddressPrefix": ["*"], "maxRequestAccessDuration": "PT3H"},
    {"number": 3389, "protocol": "*", "allowedSourceAddressPrefix": ["*"], "maxRequestAccessDuration": "PT3H"}]}
NOW = datetime(2020, 7, 15, 15, 0, tzinfo=UTC)


def example(name: str) -> dict:
    return json.loads((specs_dir() / JIT_EXAMPLES / name).read_text())


def messages(excinfo) -> str:
    return " | ".join(excinfo.value.messages)


# --- policy ports ------------------------------------------------------------------------------------------------
def test_the_seeds_policy_example_reads_as_two_ports_any_source_three_hours():
    [entry] = jit_json.policy_vms_from_azure([SEED_POLICY])
    assert entry.vm_id == SEED_VM
    assert entry.ports == [rules.PortRule(22, "*", ("*",), "PT3H"), rules.PortRule(3389, "*", ("*",), "PT3H")]
    assert jit_json.policy_ports_to_azure(entry.ports) == [
        {"number": 22, "protocol": "*", "maxRequestAccessDuration": "PT3H", "allowedSourceAddressPrefix": "*"},
        {"number": 3389, "protocol": "*", "maxRequestAccessDuration": "PT3H", "allowedSourceAddressPrefix": "*"}]


@pytest.mark.parametrize("name", ["CreateJitNetworkAccessPolicy_example.json",
                                  "GetJitNetworkAccessPolicy_example.json"])
def test_the_spec_examples_policy_round_trips(name):
    body = example(name)["responses"]["200"]["body"]
    vms = body["properties"]["virtualMachines"]
    parsed = jit_json.policy_vms_from_azure(vms)
    assert [p.vm_id for p in parsed] == [vm["id"] for vm in vms]
    assert [jit_json.policy_ports_to_azure(p.ports) for p in parsed] == [
        [{k: port[k] for k in ("number", "protocol", "maxRequestAccessDuration", "allowedSourceAddressPrefix")}
         for port in vm["ports"]] for vm in vms]


def test_the_subscription_list_example_reads_every_policy():
    for policy in example("GetJitNetworkAccessPoliciesSubscription_example.json")["responses"]["200"]["body"]["value"]:
        parsed = jit_json.policy_vms_from_azure(policy["properties"]["virtualMachines"])
        assert all(port.number > 0 for entry in parsed for port in entry.ports)


def test_several_sources_protocols_and_durations_are_normalised():
    ports = jit_json.policy_ports_from_azure([
        {"number": "22", "protocol": "tcp", "allowedSourceAddressPrefixes": ["203.0.113.7", "2001:db8::/32"],
         "maxRequestAccessDuration": "pt90m"},
        {"number": 3389, "protocol": "Udp", "allowedSourceAddressPrefix": "10.0.0.0/8"},
    ])
    assert ports == [rules.PortRule(22, "TCP", ("203.0.113.7", "2001:db8::/32"), "PT1H30M"),
                     rules.PortRule(3389, "UDP", ("10.0.0.0/8",), "PT3H")]
    assert jit_json.policy_ports_to_azure(ports)[0]["allowedSourceAddressPrefixes"] == ["203.0.113.7",
                                                                                       "2001:db8::/32"]


@pytest.mark.parametrize(("ports", "message"), [
    ("22", "'ports' must be a list"),
    ([], "add at least one port"),
    ([{"protocol": "*", "allowedSourceAddressPrefix": "*"}], "Port entry 1: 'number' is required"),
    ([{"number": 70000, "allowedSourceAddressPrefix": "*"}], "Port 70000: Enter a port number between 1 and 65535"),
    ([{"number": 22, "protocol": "ICMP", "allowedSourceAddressPrefix": "*"}], "Port 22: Choose TCP, UDP or Any"),
    ([{"number": 22}], "Port 22: give 'allowedSourceAddressPrefix'"),
    ([{"number": 22, "allowedSourceAddressPrefix": "10.0.0.300"}], "Port 22: '10.0.0.300' is not an IP address"),
    ([{"number": 22, "allowedSourceAddressPrefix": ["*", "10.0.0.1"]}], "Any (*) cannot be combined"),
    ([{"number": 22, "allowedSourceAddressPrefix": 5}], "must be a string or a list of strings"),
    ([{"number": 22, "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "3 hours"}],
     "Port 22: '3 hours' is not an ISO 8601 duration"),
    ([{"number": 22, "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT25H"}],
     "Port 22: The maximum request time must be between 5 minutes and 24 hours"),
    ([{"number": 22, "allowedSourceAddressPrefix": "*", "maxRequestAccessDuraton": "PT1H"}],
     "Port 22: unknown field 'maxRequestAccessDuraton'"),
    ([{"number": 22, "allowedSourceAddressPrefix": "*"}, {"number": 22, "allowedSourceAddressPrefix": "*"}],
     "Port 22: listed twice"),
    (["22"], "Port entry 1: must be an object"),
])
def test_bad_policy_ports_are_refused_with_a_message_per_port(ports, message):
    with pytest.raises(ValidationError) as excinfo:
        jit_json.policy_ports_from_azure(ports)
    assert message in messages(excinfo)


def test_every_bad_port_of_every_vm_is_reported_at_once():
    with pytest.raises(ValidationError) as excinfo:
        jit_json.policy_vms_from_azure([
            {"id": SEED_VM, "ports": [{"number": 0, "allowedSourceAddressPrefix": "*"},
                                      {"number": 3389, "protocol": "GRE", "allowedSourceAddressPrefix": "*"}]},
            {"id": SEED_VM.replace("VMNAME", "vm2"), "ports": []},
            {"ports": []},
            {"id": SEED_VM},
        ])
    assert excinfo.value.messages == [
        "VM VMNAME: Port 0: Enter a port number between 1 and 65535.",
        "VM VMNAME: Port 3389: Choose TCP, UDP or Any.",
        "VM vm2: add at least one port, or remove JIT from the VM.",
        "VM entry 3: must be an object with 'id' (the VM's resource id) and 'ports'.",
        f"VM {SEED_VM} is listed twice.",
    ]


@pytest.mark.django_db
def test_a_vms_stored_ports_come_back_as_azure_spells_them():
    vm = make_vm(f"{IN_SCOPE}/resourceGroups/RG-Web")
    vm.ports = [{"number": 22, "protocol": "TCP", "allowedSourceAddressPrefixes": ["203.0.113.0/24", "10.0.0.1"],
                 "maxRequestAccessDuration": "PT2H"}]
    assert jit_json.vm_jit_to_azure(vm) == {
        "id": f"{IN_SCOPE}/resourceGroups/RG-Web/providers/Microsoft.Compute/virtualMachines/vm-matrix",
        "ports": [{"number": 22, "protocol": "TCP", "maxRequestAccessDuration": "PT2H",
                   "allowedSourceAddressPrefixes": ["203.0.113.0/24", "10.0.0.1"]}]}


# --- access requests -------------------------------------------------------------------------------------------
def seed_request(vm_id: str, **port) -> dict:
    """The seed's $JitPolicyVm1 (Start-AzJitNetworkAccessPolicy) as JSON, for ``vm_id``."""
    return {"virtualMachines": [{"id": vm_id, "ports": [
        {"number": 22, "endTimeUtc": "2020-07-15T17:00:00.3658798Z", "allowedSourceAddressPrefix": ["203.0.113.9"],
         **port}]}], "justification": "Patch the kernel"}


@pytest.fixture
def web_vm(db):
    vm = make_vm(f"{IN_SCOPE}/resourceGroups/rg-web-prod")
    vm.ports = [{"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"},
                {"number": 3389, "protocol": "*", "allowedSourceAddressPrefix": "*",
                 "maxRequestAccessDuration": "PT3H"}]
    vm.save()
    return vm


def test_the_seeds_request_example_reads_as_one_source_and_window(web_vm, requester):
    body = seed_request(web_vm.arm_id.upper())  # ids compare case-insensitively
    parsed = jit_json.request_from_azure(body, user=requester, now=NOW)
    assert [(s.vm.pk, s.ports) for s in parsed.selections] == [(web_vm.pk, (22,))]
    assert parsed.source_prefix == "203.0.113.9/32"
    assert parsed.duration == timedelta(hours=2, microseconds=365879)
    assert (parsed.justification, parsed.start_at) == ("Patch the kernel", None)


def test_the_spec_initiate_example_reads_with_its_vm_replaced_by_one_of_ours(web_vm, requester):
    body = example("InitiateJitNetworkAccessPolicy_example.json")["parameters"]["body"]
    body["virtualMachines"][0]["id"] = web_vm.arm_id
    parsed = jit_json.request_from_azure(body, user=requester, now=datetime(2018, 7, 12, 9, 0, tzinfo=UTC))
    assert parsed.selections[0].ports == (3389,)
    assert parsed.source_prefix == "192.127.0.2/32"
    assert parsed.duration == timedelta(minutes=53, seconds=3, microseconds=365879)
    assert parsed.justification == "testing a new version of the product"


@pytest.mark.parametrize(("source", "prefix"), [("2001:db8::5", "2001:db8::5/128"),
                                                ("203.0.113.7/24", "203.0.113.0/24"), ("*", "*"), ("Any", "*")])
def test_sources_are_normalised_like_the_form_does(web_vm, requester, source, prefix):
    body = seed_request(web_vm.arm_id, allowedSourceAddressPrefix=source)
    assert jit_json.request_from_azure(body, user=requester, now=NOW).source_prefix == prefix


def test_a_future_start_schedules_the_window_from_then(web_vm, requester):
    body = {**seed_request(web_vm.arm_id), "startTimeUtc": "2020-07-15T16:00:00Z"}
    parsed = jit_json.request_from_azure(body, user=requester, now=NOW)
    assert parsed.start_at == datetime(2020, 7, 15, 16, 0, tzinfo=UTC)
    assert parsed.duration == timedelta(hours=1, microseconds=365879)


@pytest.mark.parametrize("seconds_ahead", [-3600, 0, 30])
def test_a_start_past_or_under_a_minute_ahead_is_now_not_a_refusal(web_vm, requester, seconds_ahead):
    start = (NOW + timedelta(seconds=seconds_ahead)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    parsed = jit_json.request_from_azure({**seed_request(web_vm.arm_id), "startTimeUtc": start}, user=requester,
                                         now=NOW)
    assert parsed.start_at is None  # the service would refuse one this close (not a minute ahead)


def test_a_default_duration_stands_in_for_a_missing_end(web_vm, requester):
    body = seed_request(web_vm.arm_id, endTimeUtc=None)
    parsed = jit_json.request_from_azure(body, user=requester, now=NOW, default_duration=timedelta(hours=1))
    assert parsed.duration == timedelta(hours=1)


def test_what_it_reads_is_what_request_create_accepts(web_vm, requester):
    parsed = jit_json.request_from_azure(seed_request(web_vm.arm_id, endTimeUtc=None), user=requester,
                                         default_duration=timedelta(hours=1))
    request, created = services.request_create(
        actor=requester, selections=parsed.selections, source_prefix=parsed.source_prefix, duration=parsed.duration,
        justification=parsed.justification, idempotency_key="json-1")
    assert created and request.source_prefix == "203.0.113.9/32"
    assert list(request.ports.values_list("number", flat=True)) == [22]


@pytest.mark.parametrize(("body", "message"), [
    ([], "must be an object with 'virtualMachines'"),
    ({"virtualMachines": []}, "non-empty list"),
    ({"virtualMachines": [{"ports": []}]}, "VM entry 1: must be an object with 'id'"),
    ({"virtualMachines": [{"id": "VMID", "ports": []}]}, "VM vm-matrix: 'ports' must be a non-empty list"),
    (seed_request("VMID", number="ssh"), "VM vm-matrix, port ssh: Enter a port number"),
    (seed_request("VMID", endTimeUtc="tomorrow"), "'endTimeUtc' must be a UTC time"),
    (seed_request("VMID", endTimeUtc=None), "'endTimeUtc' is required"),
    (seed_request("VMID", endTimeUtc="2020-07-15T14:00:00Z"), "is not after now"),
    (seed_request("VMID", allowedSourceAddressPrefix=None), "give 'allowedSourceAddressPrefix'"),
    (seed_request("VMID", allowedSourceAddressPrefix=["1.2.3.4", "5.6.7.8"]), "give one source address"),
    (seed_request("VMID", allowedSourceAddressPrefix="not-an-ip"), "'not-an-ip' is not a valid IP address or range"),
    (seed_request("VMID", allowedSourceAddressPrefix="1.2.3.999"), "'1.2.3.999' is not a valid IP address or range"),
    # named as typed, not as its network (2001::/16)
    (seed_request("VMID", allowedSourceAddressPrefix="2001:db8::/16"),
     "'2001:db8::/16' is too wide: ranges must be /32 or narrower."),
    (seed_request("VMID", allowedSourceAddressPrefix="10.1.2.3/7"), "'10.1.2.3/7' is too wide: ranges must be /8"),
    (seed_request("VMID", maxRequestAccessDuration="PT3H"), "unknown field 'maxRequestAccessDuration'"),
    ({**seed_request("VMID"), "startTimeUtc": "soon"}, "'startTimeUtc' must be a UTC time"),
    ({**seed_request("VMID"), "startTimeUtc": "2020-07-15T18:00:00Z"}, "is not after the start 2020-07-15T18:00"),
    ({**seed_request("VMID"), "justification": ["x"]}, "'justification' must be text"),
])
def test_bad_request_bodies_are_refused_with_a_clear_message(web_vm, requester, body, message):
    text = json.dumps(body).replace("VMID", web_vm.arm_id)
    with pytest.raises(ValidationError) as excinfo:
        jit_json.request_from_azure(json.loads(text), user=requester, now=NOW)
    assert message in messages(excinfo)


def test_one_request_has_one_source_and_one_window(web_vm, requester):
    body = {"virtualMachines": [{"id": web_vm.arm_id, "ports": [
        {"number": 22, "endTimeUtc": "2020-07-15T17:00:00Z", "allowedSourceAddressPrefix": "203.0.113.9"},
        {"number": 3389, "endTimeUtc": "2020-07-15T16:00:00Z", "allowedSourceAddressPrefix": "203.0.113.10"}]}]}
    with pytest.raises(ValidationError) as excinfo:
        jit_json.request_from_azure(body, user=requester, now=NOW)
    text = messages(excinfo)
    assert "one source" in text and "203.0.113.9/32 for vm-matrix:22; 203.0.113.10/32 for vm-matrix:3389" in text
    assert "one time window" in text and "2020-07-15T16:00:00Z, 2020-07-15T17:00:00Z" in text


def test_an_unknown_vm_and_one_out_of_scope_get_the_same_answer(web_vm, requester):
    outside = make_vm(f"{OUT_OF_SCOPE}/resourceGroups/rg-dev")
    unknown = web_vm.arm_id.replace("vm-matrix", "vm-nowhere")
    for vm_id in (outside.arm_id, unknown):
        with pytest.raises(ValidationError) as excinfo:
            jit_json.request_from_azure(seed_request(vm_id), user=requester, now=NOW)
        assert messages(excinfo) == f"No VM {vm_id} that you may request access to (check the id, or sync the " \
                                    f"subscription)."


def test_a_user_without_a_role_may_not_request(web_vm, outsider):
    with pytest.raises(ValidationError, match="that you may request access to"):
        jit_json.request_from_azure(seed_request(web_vm.arm_id), user=outsider, now=NOW)


def test_a_requests_times_in_json_are_utc_to_the_microsecond_even_on_the_second(web_vm, requester):
    request, _ = services.request_create(
        actor=requester, selections=[services.Selection(web_vm, (22,))], source_prefix="203.0.113.9/32",
        duration=timedelta(hours=1), justification="Patch", idempotency_key="json-times")
    on_the_second, just_after = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC), datetime(2030, 1, 2, 3, 4, 5, 7, tzinfo=UTC)
    type(request).objects.filter(pk=request.pk).update(end_at=on_the_second, created_at=just_after)
    AccessRequestPort.objects.filter(request=request).update(end_at=on_the_second)
    body = jit_json.request_to_json(type(request).objects.get(pk=request.pk))
    assert (body["endTimeUtc"], body["createdAt"]) == ("2030-01-02T03:04:05.000000Z", "2030-01-02T03:04:05.000007Z")
    assert body["virtualMachines"][0]["ports"][0]["endTimeUtc"] == "2030-01-02T03:04:05.000000Z"


def test_a_request_as_json_names_its_ports_states_and_where_to_connect(web_vm, requester):
    request, _ = services.request_create(
        actor=requester, selections=[services.Selection(web_vm, (22, 3389))], source_prefix="203.0.113.9/32",
        duration=timedelta(hours=1), justification="Patch", idempotency_key="json-2")
    queued = jit_json.request_to_json(request)
    assert (queued["id"], queued["state"], queued["requester"]) == (request.pk, "queued", "alice@contoso.example")
    assert queued["endTimeUtc"].endswith("Z") and queued["createdAt"].endswith("Z")
    [vm] = queued["virtualMachines"]
    assert (vm["id"], vm["name"], "address" not in vm) == (web_vm.arm_id, "vm-matrix", True)
    assert [(p["number"], p["status"], p["allowedSourceAddressPrefix"]) for p in vm["ports"]] == [
        (22, "queued", "203.0.113.9/32"), (3389, "queued", "203.0.113.9/32")]
    request.vms.update(address="51.105.10.9", address_kind="public")
    AccessRequestPort.objects.filter(request=request, number=22).update(
        state=PortState.OPEN, azure_status="Initiated", azure_status_reason="UserRequested")
    AccessRequestPort.objects.filter(request=request, number=3389).update(state=PortState.FAILED,
                                                                          last_error="Azure said no")
    opened = jit_json.request_to_json(request)
    [vm] = opened["virtualMachines"]
    assert vm["address"] == "51.105.10.9"
    ssh, rdp = vm["ports"]
    assert (ssh["status"], ssh["azureStatus"], ssh["statusReason"], ssh["error"]) == (
        "open", "Initiated", "UserRequested", None)
    assert ssh["connection"] == {"host": "51.105.10.9", "port": 22, "via": "public", "endpoint": "51.105.10.9:22"}
    assert (rdp["status"], rdp["error"], "connection" in rdp) == ("failed", "Azure said no", False)
    json.dumps(opened)  # plain JSON all the way down
