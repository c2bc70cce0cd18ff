"""The operators' commands ``jit_policy`` and ``jit_request`` against the emulator, with the seed's examples.

``--wait`` runs the apply/open services in the test process; without it the changes stay queued (the tests'
transactions never commit, so nothing reaches the broker).
"""
from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from audit.models import AuditEvent
from policies import jit_json
from policies.access import approvals, gateways
from policies.access.models import AccessRequest
from policies.models import PolicyChange, SyncRun, VmState
from tests.plugins.personas import approver  # noqa: F401 - fixture, used by name
from tests.policies.access.factories import open_all, rule
from tests.policies.azure_side import Azure, vm_id
from tests.policies.factories import PROD, apply_all, vm

pytestmark = pytest.mark.django_db
WEB_POLICY = (f"/subscriptions/{PROD}/resourceGroups/rg-web-prod/providers/Microsoft.Security/locations/westeurope/"
              f"jitNetworkAccessPolicies/default")
# The seed's Set-AzJitNetworkAccessPolicy example ($JitPolicyArr), as JSON, with its placeholders filled in.
SEED_POLICY = """[{
  "id": "/subscriptions/SUBSCRIPTIONID/resourceGroups/RESOURCEGROUP/providers/Microsoft.Compute/virtualMachines/VMNAME",
  "ports": [
    {"number": 22, "protocol": "*", "allowedSourceAddressPrefix": ["*"], "maxRequestAccessDuration": "PT3H"},
    {"number": 3389, "protocol": "*", "allowedSourceAddressPrefix": ["*"], "maxRequestAccessDuration": "PT3H"}
  ]
}]"""
# The seed's Start-AzJitNetworkAccessPolicy example ($JitPolicyArr of $JitPolicyVm1).
SEED_REQUEST = """[{
  "id": "/subscriptions/SUBSCRIPTIONID/resourceGroups/RESOURCEGROUP/providers/Microsoft.Compute/virtualMachines/VMNAME",
  "ports": [{"number": 22, "endTimeUtc": "2020-07-15T17:00:00.3658798Z", "allowedSourceAddressPrefix": ["IPV4ADDRESS"]}]
}]"""
MY_IP = "198.51.100.23"


def fill(template: str, vm_name: str, group: str = "rg-web-prod", **more: str) -> str:
    text = template.replace("SUBSCRIPTIONID", PROD).replace("RESOURCEGROUP", group).replace("VMNAME", vm_name)
    for placeholder, value in more.items():
        text = text.replace(placeholder, value)
    return text


def run(*args: str, stdin: str | None = None) -> tuple[object, str]:
    """Run a command as ``manage.py`` would: (its JSON on stdout, its human message on stderr)."""
    out, err = io.StringIO(), io.StringIO()
    extra = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    call_command(*args, stdout=out, stderr=err, **extra)
    return json.loads(out.getvalue()) if out.getvalue() else None, err.getvalue()


def fails(*args: str, stdin: str | None = None) -> CommandError:
    with pytest.raises(CommandError) as excinfo:
        run(*args, stdin=stdin)
    return excinfo.value


@pytest.fixture(autouse=True)
def fresh_gateways():
    gateways.reset()
    yield
    gateways.reset()


@pytest.fixture
def azure(fresh_emulator):
    return Azure(fresh_emulator)


def set_policy(actor, body: str, *extra: str, group: str = "rg-web-prod", location: str = "westeurope"):
    return run("jit_policy", "set", "--kind", "Basic", "--location", location, "--name", "default",
               "--resource-group", group, "--virtual-machine", body, "--actor", actor.username, *extra)


# --- jit_policy set -------------------------------------------------------------------------------------------------
def test_the_seeds_set_example_produces_that_policy_in_azure(prod, policy_admin, azure, tmp_path):
    path = tmp_path / "JitPolicyArr.json"
    path.write_text(fill(SEED_POLICY, "web-05"), encoding="utf-8-sig")  # as PowerShell's Out-File writes it
    policy, _ = set_policy(policy_admin, f"@{path}", "--wait")
    target = vm_id("rg-web-prod", "web-05")
    ports = azure.policy_ports("rg-web-prod", "westeurope", target)
    assert sorted(ports) == [22, 3389]
    assert {(p["protocol"], p["allowed_source_address_prefix"], p["max_request_access_duration"])
            for p in ports.values()} == {("*", "*", "PT3H")}
    assert azure.jit_ports(target) == {22, 3389}  # Azure closed them in the VM's NSG
    assert (policy["id"], policy["name"], policy["location"], policy["kind"]) == (WEB_POLICY, "default", "westeurope",
                                                                                   "Basic")
    assert policy["properties"]["provisioningState"] == "Succeeded"
    entry = next(v for v in policy["properties"]["virtualMachines"] if v["id"] == target)
    assert entry["ports"] == [
        {"number": 22, "protocol": "*", "maxRequestAccessDuration": "PT3H", "allowedSourceAddressPrefix": "*"},
        {"number": 3389, "protocol": "*", "maxRequestAccessDuration": "PT3H", "allowedSourceAddressPrefix": "*"}]
    assert vm("web-05").state == VmState.CONFIGURED
    audit = AuditEvent.objects.filter(action__in=["policy.enable_requested", "policy.enable_applied"])
    assert sorted(audit.values_list("action", "actor_label")) == [
        ("policy.enable_applied", "bob@contoso.example"), ("policy.enable_requested", "bob@contoso.example")]


def test_without_wait_the_change_is_queued_for_the_worker(prod, policy_admin, fresh_emulator):
    fresh_emulator.clear_calls()
    out, err = run("jit_policy", "set", "--resource-group", "rg-web-prod", "--location", "westeurope",
                   "--virtual-machine", "-", "--actor", policy_admin.username, stdin=fill(SEED_POLICY, "web-06"))
    [change] = out["changes"]
    assert (change["kind"], change["state"], change["policyId"]) == ("enable", "queued", WEB_POLICY)
    assert change["virtualMachines"] == [vm_id("rg-web-prod", "web-06")]
    assert "Queued 1 JIT change" in err
    assert not [c for c in fresh_emulator.calls() if c["method"] == "PUT"]
    assert apply_all() == ["applied"]
    assert sorted(p["number"] for p in vm("web-06").ports) == [22, 3389]


def test_set_on_a_configured_vm_replaces_its_ports(prod, policy_admin, azure):
    body = json.dumps([{"id": vm("web-02").arm_id.upper(), "ports": [
        {"number": 22, "protocol": "tcp", "allowedSourceAddressPrefixes": ["203.0.113.0/24", "198.51.100.23"],
         "maxRequestAccessDuration": "PT1H"}]}])
    policy, _ = set_policy(policy_admin, body, "--wait")
    ports = azure.policy_ports("rg-web-prod", "westeurope", vm("web-02").arm_id)
    assert ports[22]["allowed_source_address_prefixes"] == ["203.0.113.0/24", "198.51.100.23"]
    assert (ports[22]["protocol"], ports[22]["max_request_access_duration"]) == ("TCP", "PT1H")
    assert {v["id"].rsplit("/", 1)[1] for v in policy["properties"]["virtualMachines"]} >= {
        "web-01", "web-02", "web-03", "web-04", "web-win-01"}  # the other VMs keep their JIT
    assert PolicyChange.objects.get().kind == "save"


def test_a_refused_write_prints_the_change_and_exits_1(prod, policy_admin, azure):
    azure.set_jit_security_policy("rg-web-prod", "Off")
    with pytest.raises(CommandError) as excinfo:
        out = io.StringIO()
        call_command("jit_policy", "set", "--resource-group", "rg-web-prod", "--location", "westeurope",
                     "--virtual-machine", fill(SEED_POLICY, "web-05"), "--actor", policy_admin.username, "--wait",
                     stdout=out, stderr=io.StringIO())
    assert excinfo.value.returncode == 1
    assert "failed" in str(excinfo.value) and "security policy" in str(excinfo.value)
    [change] = json.loads(out.getvalue())["changes"]
    assert change["state"] == "failed" and "security policy" in change["error"]


BAD_POLICY_INPUT = [
    ("[{\"id\": ", "--virtual-machine is not valid JSON: Expecting value at line 1 column 9"),
    ("@/nonexistent/policy.json", "--virtual-machine: cannot read /nonexistent/policy.json"),
    ("{}", "VM entry 1: must be an object with 'id'"),
    (fill(SEED_POLICY, "web-05").replace("PT3H", "PT30H"),
     "VM web-05: Port 22: The maximum request time must be between 5 minutes and 24 hours."),
    (fill(SEED_POLICY, "web-05").replace('"*"]', '"10.0.0.999"]'), "VM web-05: Port 22: '10.0.0.999' is not"),
    (fill(SEED_POLICY, "vm-nowhere"), f"No VM {vm_id('rg-web-prod', 'vm-nowhere')} that you may see"),
    (fill(SEED_POLICY, "ana-01", group="rg-analytics-prod"),
     "VM ana-01 is in resource group rg-analytics-prod, location northeurope"),
]


def test_bad_input_is_a_clear_message_with_exit_code_2(prod, policy_admin):
    for body, message in BAD_POLICY_INPUT:
        error = fails("jit_policy", "set", "--resource-group", "rg-web-prod", "--location", "westeurope",
                      "--virtual-machine", body, "--actor", policy_admin.username)
        assert (error.returncode, message in str(error)) == (2, True), (message, str(error))
    assert not PolicyChange.objects.exists()


def test_a_file_windows_powershell_wrote_is_read_whatever_its_encoding(prod, policy_admin, tmp_path):
    body = fill(SEED_POLICY, "web-05")
    path = tmp_path / "JitPolicyArr.json"
    path.write_text(body, encoding="utf-16")  # Windows PowerShell's Out-File: UTF-16 with a BOM
    set_policy(policy_admin, f"@{path}")
    piped = io.TextIOWrapper(io.BytesIO(body.encode("utf-16")))  # ... | python manage.py jit_policy ... -
    call_command("jit_policy", "set", "--location", "westeurope", "--resource-group", "rg-web-prod",
                 "--virtual-machine", "-", "--actor", policy_admin.username, stdin=piped, stdout=io.StringIO(),
                 stderr=io.StringIO())
    # Both read the same ports: the second, the same change while the first is pending, queues nothing more.
    assert PolicyChange.objects.count() == 1
    path.write_bytes(body.replace("*", "\xa7").encode("latin-1"))
    error = fails("jit_policy", "set", "--resource-group", "rg-web-prod", "--location", "westeurope",
                  "--virtual-machine", f"@{path}", "--actor", policy_admin.username)
    assert error.returncode == 2 and "is not UTF-8 or UTF-16 text" in str(error)


def test_json_nested_too_deeply_is_bad_input_not_a_traceback(prod, policy_admin):
    for action in ("set", "remove"):
        error = fails("jit_policy", action, "--resource-group", "rg-web-prod", "--location", "westeurope",
                      "--virtual-machine", "[" * 100_000, "--actor", policy_admin.username)
        assert (error.returncode, str(error)) == (2, "--virtual-machine is not valid JSON: it is nested too deeply.")
    assert not PolicyChange.objects.exists()


def test_json_text_with_a_nul_character_is_bad_input_on_every_database(prod, policy_admin, requester):
    web_02 = vm("web-02").arm_id
    port = {"number": 22, "allowedSourceAddressPrefix": MY_IP}
    for command in (
            ("jit_policy", "remove", "--actor", policy_admin.username, "--virtual-machine",
             json.dumps([web_02 + "\0"])),
            ("jit_policy", "set", "--actor", policy_admin.username, "--location", "westeurope", "--resource-group",
             "rg-web-prod", "--virtual-machine", json.dumps([{"id": web_02 + "\0", "ports": [port]}])),
            ("jit_request", "--resource-id", WEB_POLICY, "--actor", requester.username, "--duration", "PT1H",
             "--virtual-machine", json.dumps({"virtualMachines": [{"id": web_02, "ports": [port]}],
                                              "justification": "Patch\0"}))):
        error = fails(*command)
        assert (error.returncode, str(error)) == (2, "--virtual-machine: text must not contain NUL (\\u0000) "
                                                     "characters."), command
    assert not PolicyChange.objects.exists() and not AccessRequest.objects.exists()


@pytest.mark.parametrize("timeout", ["nan", "inf", "0", "-5"])
def test_a_timeout_that_would_never_end_or_is_not_positive_is_refused(prod, policy_admin, timeout):
    policy = ["jit_policy", "set", "--resource-group", "rg-web-prod", "--location", "westeurope",
              "--virtual-machine", fill(SEED_POLICY, "web-05")]
    for command in (policy, ["jit_request", "--resource-id", WEB_POLICY, "--virtual-machine", "[]"]):
        error = fails(*command, "--actor", policy_admin.username, "--wait", "--timeout", timeout)
        assert (error.returncode, str(error)) == (2, "--timeout must be a positive number of seconds.")
    assert not PolicyChange.objects.exists()


def test_an_actor_without_the_policy_admin_role_is_refused(prod, requester, outsider):
    body = fill(SEED_POLICY, "web-05")
    error = fails("jit_policy", "set", "--resource-group", "rg-web-prod", "--location", "westeurope",
                  "--virtual-machine", body, "--actor", requester.username)
    assert error.returncode == 1
    assert str(error) == "Only JIT policy admins at the scope of web-05 may change its JIT settings."
    error = fails("jit_policy", "set", "--resource-group", "rg-web-prod", "--location", "westeurope",
                  "--virtual-machine", body, "--actor", outsider.username)
    assert "that you may see" in str(error)  # the VM is out of sight altogether
    assert not PolicyChange.objects.exists() and not AuditEvent.objects.filter(action__startswith="policy.").exists()


def test_missing_or_unknown_options_are_explained(prod, policy_admin):
    for args, message in [
        ((), "--actor is required"),
        (("--actor", "nobody@contoso.example"), "No portal user 'nobody@contoso.example'"),
        (("--actor", "bob@contoso.example", "--kind", "Premium"), "--kind 'Premium' is not supported"),
        (("--actor", "bob@contoso.example", "--location", "westeurope"), "Name the policy"),
    ]:
        error = fails("jit_policy", "set", "--virtual-machine", fill(SEED_POLICY, "web-05"), *args)
        assert message in str(error), (message, str(error))


def test_name_puts_a_new_vm_in_its_own_policy_as_the_seed_shows(prod, policy_admin, azure):
    """The seed: "Use the -Name parameter to specify a VM ... Set-AzJitNetworkAccessPolicy -Name VM1"."""
    policy, _ = run("jit_policy", "set", "--resource-group", "rg-web-prod", "--location", "westeurope", "--name",
                    "web-05", "--virtual-machine", fill(SEED_POLICY, "web-05"), "--actor", policy_admin.username,
                    "--wait")
    assert policy["name"] == "web-05" and policy["id"].endswith("/jitNetworkAccessPolicies/web-05")
    target = vm_id("rg-web-prod", "web-05")
    assert sorted(azure.policy_ports("rg-web-prod", "westeurope", target, name="web-05")) == [22, 3389]
    assert not azure.policy_ports("rg-web-prod", "westeurope", target)  # not in "default"
    assert (vm("web-05").state, vm("web-05").policy_name) == (VmState.CONFIGURED, "web-05")
    # A VM already in a policy stays there; a name Azure would not take is refused before anything is stored.
    error = fails("jit_policy", "set", "--resource-group", "rg-web-prod", "--location", "westeurope", "--name",
                  "other", "--virtual-machine", fill(SEED_POLICY, "web-02"), "--actor", policy_admin.username)
    assert "VM web-02 is in JIT policy 'default', not 'other'" in str(error)
    error = fails("jit_policy", "set", "--resource-group", "rg-web-prod", "--location", "westeurope", "--name",
                  "bad/name", "--virtual-machine", fill(SEED_POLICY, "web-06"), "--actor", policy_admin.username)
    assert "'bad/name' is not a valid JIT policy name" in str(error)
    assert PolicyChange.objects.count() == 1


def test_show_prints_the_stored_policy_to_whoever_may_read_it(prod, reader, outsider):
    policy, _ = run("jit_policy", "show", "--resource-group", "RG-WEB-PROD", "--location", "WestEurope",
                    "--actor", reader.username)
    names = {v["id"].rsplit("/", 1)[1]: v for v in policy["properties"]["virtualMachines"]}
    assert sorted(names) == ["web-01", "web-02", "web-03", "web-04", "web-win-01"]
    assert [p["number"] for p in names["web-win-01"]["ports"]] == [3389, 5985, 5986]
    by_id, _ = run("jit_policy", "show", "--resource-id", WEB_POLICY.lower(), "--actor", reader.username)
    assert by_id == policy
    error = fails("jit_policy", "show", "--resource-id", WEB_POLICY, "--actor", outsider.username)
    assert (error.returncode, str(error)) == (1, f"No JIT policy {WEB_POLICY} that you may read.")


def test_show_refresh_syncs_first_for_policy_admins_only(prod, policy_admin, reader):
    before = SyncRun.objects.count()
    policy, err = run("jit_policy", "show", "--resource-id", WEB_POLICY, "--refresh", "--actor",
                      policy_admin.username)
    assert SyncRun.objects.count() == before + 1 and SyncRun.objects.latest("pk").state == "succeeded"
    assert "Synced Contoso Production" in err and policy["properties"]["virtualMachines"]
    error = fails("jit_policy", "show", "--resource-id", WEB_POLICY, "--refresh", "--actor", reader.username)
    assert "Only JIT policy admins in subscription" in str(error)


@pytest.mark.parametrize("kind", ["nulls", "garbled"])
def test_show_refresh_meeting_an_answer_it_cannot_read_ends_with_a_clear_error(prod, policy_admin, fresh_emulator,
                                                                              kind):
    """Azure's list of VMs cannot be read (a null where a VM belongs, or not JSON): the sync fails saying why and
    the command ends with a ``CommandError`` naming it, not a traceback."""
    fresh_emulator.add_fault(r"/Microsoft\.Compute/virtualMachines$", kind, method="GET")
    error = fails("jit_policy", "show", "--resource-id", WEB_POLICY, "--refresh", "--actor", policy_admin.username)
    assert error.returncode == 1
    assert str(error).startswith("The sync of Contoso Production failed: Unreadable: UnreadableAnswer: Azure's "
                                 "answer could not be read: ")
    run_ = SyncRun.objects.latest("pk")
    assert run_.state == "failed" and "UnreadableAnswer" in run_.error


def test_set_wait_meeting_a_bug_fails_the_change_with_the_reason_instead_of_leaving_it_running(
        prod, policy_admin, fresh_emulator, monkeypatch):
    """``--wait`` applies the change in the command, as the apply task does: an exception that is not the gateway's
    (a bug; here raised by it) fails the change with the reason, then propagates, instead of leaving it "running"
    until the beat sends it to a worker."""
    from tests.policies.factories import unexpected_gateways

    unexpected_gateways(monkeypatch, "put_jit_policy", KeyError("properties"))
    with pytest.raises(KeyError):
        run("jit_policy", "set", "--resource-group", "rg-web-prod", "--location", "westeurope",
            "--virtual-machine", fill(SEED_POLICY, "web-05"), "--actor", policy_admin.username, "--wait")
    change = PolicyChange.objects.get()
    assert (change.state, change.last_error) == (PolicyChange.State.FAILED, "Unexpected error: KeyError: 'properties'")
    assert change.finished_at is not None


def test_remove_takes_the_vm_out_of_the_policy_in_azure(prod, policy_admin, azure):
    out, _ = run("jit_policy", "remove", "--vm-id", vm("web-02").arm_id, "--resource-group", "rg-web-prod",
                 "--location", "westeurope", "--actor", policy_admin.username, "--wait")
    assert [c["state"] for c in out["changes"]] == ["applied"]
    assert azure.policy_ports("rg-web-prod", "westeurope", vm("web-02").arm_id) == {}
    assert vm("web-02").arm_id not in [v["id"] for v in out["policies"][0]["properties"]["virtualMachines"]]
    assert vm("web-02").state == VmState.NOT_CONFIGURED
    error = fails("jit_policy", "remove", "--vm-id", vm("web-06").arm_id, "--actor", policy_admin.username)
    assert "web-06 has no JIT policy to remove" in str(error) and error.returncode == 2


# --- jit_request ----------------------------------------------------------------------------------------------------
def in_an_hour() -> str:
    return (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def test_the_seeds_request_example_opens_port_22_for_the_ip(prod, requester, fresh_emulator):
    body = fill(SEED_REQUEST, "web-02", IPV4ADDRESS=MY_IP).replace("2020-07-15T17:00:00.3658798Z", in_an_hour())
    out, _ = run("jit_request", "--resource-id", WEB_POLICY, "--virtual-machine", body, "--justification",
                 "Patch the kernel", "--actor", requester.username, "--wait")
    assert out["state"] == "open" and out["requester"] == "alice@contoso.example"
    [entry] = out["virtualMachines"]
    [port] = entry["ports"]
    assert (entry["name"], port["number"], port["status"], port["azureStatus"]) == ("web-02", 22, "open",
                                                                                   "Initiated")
    assert port["allowedSourceAddressPrefix"] == f"{MY_IP}/32"
    allow = Azure(fresh_emulator).jit_rules(vm_id("rg-web-prod", "web-02"), "Allow").values()
    assert [(r["sourceAddressPrefix"], r["destinationPortRange"]) for r in allow] == [(f"{MY_IP}/32", "22")]
    request = AccessRequest.objects.get()
    assert request.source_kind == "ip" and AuditEvent.objects.filter(action="access.opened").exists()


def test_wait_rides_out_throttling(prod, requester, fresh_emulator):
    fresh_emulator.add_fault(path="/initiate", kind="429", method="POST", count=1, retry_after=1)
    body = json.dumps([{"id": vm("web-02").arm_id, "ports": [{"number": 22, "allowedSourceAddressPrefix": MY_IP}]}])
    out, _ = run("jit_request", "--resource-id", WEB_POLICY, "--virtual-machine", body, "--duration", "PT1H",
                 "--justification", "Deploy", "--actor", requester.username, "--wait", "--timeout", "30")
    assert out["state"] == "open" and out["virtualMachines"][0]["ports"][0]["error"] is None
    statuses = [c["status"] for c in fresh_emulator.calls() if c["path"].endswith("/initiate")]
    assert statuses == [429, 202]


def test_the_seeds_exact_end_time_has_passed_and_says_so(prod, requester):
    error = fails("jit_request", "--resource-id", WEB_POLICY, "--virtual-machine",
                  fill(SEED_REQUEST, "web-02", IPV4ADDRESS=MY_IP), "--justification", "x", "--actor",
                  requester.username)
    assert error.returncode == 2
    assert "'endTimeUtc' 2020-07-15T17:00:00.365879Z is not after now" in str(error)


@pytest.mark.parametrize(("field", "moment"), [("--start-time", "9999-12-31T23:59:59-23:00"),
                                               ("endTimeUtc", "0001-01-01T00:00:00+23:00")])
def test_a_time_outside_the_calendar_in_utc_is_bad_input_not_a_traceback(prod, requester, field, moment):
    port = {"number": 22, "allowedSourceAddressPrefix": MY_IP}
    extra = ("--start-time", moment) if field == "--start-time" else ()
    if field == "endTimeUtc":
        port["endTimeUtc"] = moment
    error = fails("jit_request", "--resource-id", WEB_POLICY, "--duration", "PT1H", "--justification", "x",
                  "--virtual-machine", json.dumps([{"id": vm("web-02").arm_id, "ports": [port]}]), *extra,
                  "--actor", requester.username)
    assert error.returncode == 2 and "must be a UTC time such as 2020-07-15T17:00:00Z" in str(error)
    assert not AccessRequest.objects.exists()


def test_a_request_without_wait_is_queued_and_a_retry_with_its_key_is_the_same_request(prod, requester):
    body = json.dumps([{"id": vm("web-02").arm_id, "ports": [{"number": 22, "allowedSourceAddressPrefix": MY_IP}]}])
    args = ("jit_request", "--resource-id", WEB_POLICY, "--virtual-machine", body, "--duration", "PT30M",
            "--justification", "Deploy", "--actor", requester.username, "--idempotency-key", "deploy-42")
    first, err = run(*args)
    assert first["state"] == "queued" and "the portal's worker opens it" in err
    assert first["endTimeUtc"] is not None
    again, err = run(*args)
    assert again["id"] == first["id"] and "made earlier with this idempotency key" in err
    assert AccessRequest.objects.count() == 1


def test_an_idempotency_key_is_the_actors_own_and_may_be_long(prod, requester, policy_admin):
    body = json.dumps([{"id": vm("web-02").arm_id, "ports": [{"number": 22, "allowedSourceAddressPrefix": MY_IP}]}])
    key = "release-2026-11-26/" + "x" * 100
    args = ("jit_request", "--resource-id", WEB_POLICY, "--virtual-machine", body, "--duration", "PT30M",
            "--justification", "Deploy", "--idempotency-key", key)
    alices, _ = run(*args, "--actor", requester.username)
    bobs, _ = run(*args, "--actor", policy_admin.username)  # the same words from someone else: their own request
    again, err = run(*args, "--actor", requester.username)
    assert again["id"] == alices["id"] != bobs["id"] and "made earlier with this idempotency key" in err
    assert sorted(AccessRequest.objects.values_list("requester_name", flat=True)) == [
        "alice@contoso.example", "bob@contoso.example"]
    assert max(len(k) for k in AccessRequest.objects.values_list("idempotency_key", flat=True)) <= 64


def test_requests_the_policy_does_not_allow_are_refused(prod, requester):
    for vm_name, port, extra, message in [
        ("web-05", {}, (), "VM web-05 is not in JIT policy"),  # JIT not enabled on it
        ("jump-02", {}, (), "VM jump-02 is not in JIT policy"),  # another policy
        ("web-02", {"number": 3389}, (), "Port 3389 is not in the JIT policy of web-02."),
        ("web-02", {}, ("--duration", "PT4H"), "may be opened for at most 3 h"),
        ("web-02", {}, ("--resource-id", WEB_POLICY.replace("web", "w")), "VM web-02 is not in JIT policy"),
        ("web-03", {"allowedSourceAddressPrefix": "192.0.2.10"}, (),
         "Source 192.0.2.10/32 is not allowed for port 22"),
        ("web-02", {"allowedSourceAddressPrefix": ["1.1.1.1", "2.2.2.2"]}, (), "give one source address"),
        ("web-02", {}, ("--duration", "3 hours"), "'3 hours' is not an ISO 8601 duration"),
        ("web-02", {}, ("--resource-id", "/subscriptions/x/policies/default"), "is not a JIT policy id"),
    ]:
        body = json.dumps([{"id": vm(vm_name).arm_id, "ports": [{"number": 22, "allowedSourceAddressPrefix": MY_IP,
                                                                **port}]}])
        error = fails("jit_request", "--resource-id", WEB_POLICY, "--virtual-machine", body, "--duration", "PT1H",
                      "--justification", "x", "--actor", requester.username, *extra)
        assert (error.returncode, message in str(error)) == (2, True), (message, str(error))
    assert not AccessRequest.objects.exists()


def test_an_actor_without_the_requester_role_is_refused(prod, outsider):
    body = json.dumps([{"id": vm("web-02").arm_id, "ports": [{"number": 22, "allowedSourceAddressPrefix": MY_IP}]}])
    error = fails("jit_request", "--resource-id", WEB_POLICY, "--virtual-machine", body, "--duration", "PT1H",
                  "--justification", "x", "--actor", outsider.username)
    assert str(error) == f"No VM {vm('web-02').arm_id} that you may request access to (check the id, or sync the " \
                         f"subscription)."
    assert error.returncode == 2 and not AccessRequest.objects.exists()


# --- when the broker is down ----------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_rows_stay_stored_when_telling_the_worker_fails_after_commit():
    from django.db import transaction

    from accounts.models import User
    from policies.management.cli import stored

    def broker_down() -> None:
        raise OSError("Connection refused")

    err = io.StringIO()
    with stored(err):
        User.objects.create(username="kept@contoso.example")
        transaction.on_commit(broker_down)
    assert User.objects.filter(username="kept@contoso.example").exists()
    assert "the task broker is unreachable (Connection refused)" in err.getvalue()
    with pytest.raises(OSError), stored(err):  # the same error before commit is a real failure: rolled back
        User.objects.create(username="gone@contoso.example")
        broker_down()
    assert not User.objects.filter(username="gone@contoso.example").exists()


# --- with access rules (approvals) ----------------------------------------------------------------------------------
def request_web_02(requester, *extra: str) -> tuple[object, str]:
    body = json.dumps([{"id": vm("web-02").arm_id, "ports": [{"number": 22, "allowedSourceAddressPrefix": MY_IP}]}])
    return run("jit_request", "--resource-id", WEB_POLICY, "--virtual-machine", body, "--duration", "PT1H",
               "--justification", "Deploy CHG-7", "--actor", requester.username, *extra)


def test_a_request_that_needs_approval_waits_for_it_and_opens_once_approved(
        prod, requester, approver, fresh_emulator):  # noqa: F811 - the fixture imported above
    rule(f"/subscriptions/{PROD}/resourceGroups/rg-web-prod", "manual", approvals_required=1)
    fresh_emulator.clear_calls()
    out, err = request_web_02(requester, "--wait")
    assert (out["state"], out["approvalState"], out["approvalsRequired"]) == ("pending", "pending", 1)
    assert out["virtualMachines"][0]["ports"][0]["status"] == "pending" and out["startTimeUtc"] is None
    # Its window starts when the last approval lands: no end yet, the window's length instead.
    assert (out["endTimeUtc"], out["duration"]) == (None, "PT1H")
    assert [(p["endTimeUtc"], p["duration"]) for p in out["virtualMachines"][0]["ports"]] == [(None, "PT1H")]
    assert "awaits approval (1 needed)" in err
    assert not [c for c in fresh_emulator.calls() if c["path"].endswith("/initiate")]
    request = AccessRequest.objects.get()
    approvals.request_decide(actor=approver, request=request, approve=True, comment="ok")
    assert open_all(request) == ["open"]
    approved = jit_json.request_to_json(AccessRequest.objects.get())
    assert approved["approvalState"] == "approved" and approved["state"] == "open"
    assert [(a["approver"], a["decision"], a["comment"]) for a in approved["approvals"]] == [
        ("dave@contoso.example", "approve", "ok")]
    assert approved["startTimeUtc"] is not None and approved["endTimeUtc"] is not None
    assert approved["duration"] == approved["virtualMachines"][0]["ports"][0]["duration"] == "PT1H"


def test_a_future_start_time_schedules_the_window(prod, requester):
    start = (timezone.now() + timedelta(minutes=30)).replace(microsecond=0)
    out, err = request_web_02(requester, "--start-time", start.strftime("%Y-%m-%dT%H:%M:%SZ"), "--wait")
    assert out["state"] == "scheduled" and out["startTimeUtc"] == start.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    assert out["endTimeUtc"] == (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    assert "scheduled: the portal opens it at" in err


def test_a_deny_rule_refuses_with_its_reason(prod, requester):
    rule(vm("web-02").arm_id, "deny", message="No SSH to web-02 during the freeze.")
    with pytest.raises(CommandError, match="No SSH to web-02 during the freeze"):
        request_web_02(requester)
    assert not AccessRequest.objects.exists()
