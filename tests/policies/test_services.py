"""JIT policy writes end to end against the emulator: enable, edit, remove, throttling, concurrent edits.

Tasks run in the test process: ``apply_all``/``apply`` call the apply service the task wraps, synchronously.
"""
from __future__ import annotations

import time

import pytest
from django.core.exceptions import PermissionDenied

from audit.models import AuditEvent
from policies import rules, services
from policies.models import PolicyChange, VmState
from tests.policies.azure_side import Azure, vm_id
from tests.policies.factories import apply_all, closed_after_use, gateways_built, vm

WEB = ("rg-web-prod", "westeurope")
POLICY_PATH = (r"/resourceGroups/rg-web-prod/providers/Microsoft\.Security/locations/westeurope/"
               r"jitNetworkAccessPolicies/default$")


def put_calls(emu) -> list[dict]:
    return [c for c in emu.calls() if c["method"] == "PUT" and "jitNetworkAccessPolicies" in c["path"]]


@pytest.fixture
def azure(fresh_emulator):
    return Azure(fresh_emulator)


@pytest.mark.django_db
def test_it_enables_two_vms_with_the_recommended_ports_in_one_policy_write(prod, policy_admin, azure):
    changes = services.policy_enable(actor=policy_admin, vms=[vm("web-05"), vm("web-06")], client_ip="203.0.113.9")
    assert len(changes) == 1 and changes[0].state == PolicyChange.State.QUEUED
    assert apply_all() == ["applied"]
    for name in ("web-05", "web-06"):
        ports = azure.policy_ports(*WEB, vm_id("rg-web-prod", name))
        assert sorted(ports) == [22, 3389, 5985, 5986]
        assert all(p["max_request_access_duration"] == "PT3H" for p in ports.values())
        assert azure.jit_ports(vm_id("rg-web-prod", name)) == {22, 3389, 5985, 5986}
        assert vm(name).state == VmState.CONFIGURED
    # The VMs already in the policy keep their ports (read-modify-write of the whole policy).
    assert sorted(azure.policy_ports(*WEB, vm_id("rg-web-prod", "web-win-01"))) == [3389, 5985, 5986]
    applied = AuditEvent.objects.filter(action="policy.enable_applied")
    assert applied.count() == 2
    # The worker's rows carry the address the change was asked from, as the request's rows do.
    assert set(applied.values_list("client_ip", flat=True)) == {"203.0.113.9"}


@pytest.mark.django_db
def test_enabling_from_the_vm_page_uses_the_os_default(prod, policy_admin, azure):
    services.policy_enable(actor=policy_admin, vms=[vm("web-win-02")], os_default=True)
    services.policy_enable(actor=policy_admin, vms=[vm("ana-01")], os_default=True)
    assert apply_all() == ["applied", "applied"]
    windows = azure.policy_ports(*WEB, vm_id("rg-web-prod", "web-win-02"))
    linux = azure.policy_ports("rg-analytics-prod", "northeurope", vm_id("rg-analytics-prod", "ana-01"))
    assert list(windows) == [3389] and list(linux) == [22]
    assert windows[3389]["max_request_access_duration"] == "PT3H"
    assert windows[3389]["allowed_source_address_prefix"] == "*"


@pytest.mark.django_db
def test_enabling_a_vm_whose_enable_is_pending_is_refused_unless_sent_again_or_setting_its_ports(prod, policy_admin):
    from django.core.exceptions import ValidationError

    ssh, rdp = [rules.PortRule(22, "*", ("*",), "PT3H")], [rules.PortRule(3389, "*", ("*",), "PT3H")]
    first = services.policy_enable(actor=policy_admin, vms=[vm("web-05")], ports=ssh)[0]
    assert [c.pk for c in services.policy_enable(actor=policy_admin, vms=[vm("web-05")], ports=ssh)] == [first.pk]
    for vms in ([vm("web-05")], [vm("web-05"), vm("web-06")]):
        with pytest.raises(ValidationError) as refused:
            services.policy_enable(actor=policy_admin, vms=vms, ports=rdp)
        assert refused.value.messages == [
            "JIT is already being enabled on web-05 (saved, not applied in Azure yet); to change the ports it gets, "
            "edit its JIT settings (Enable JIT with custom settings… on its page)."]
    assert PolicyChange.objects.count() == 1
    # Setting the VM's ports (the API's PUT, jit_policy set), as the Edit page: a newer change, applied last.
    newer = services.policy_enable(actor=policy_admin, vms=[vm("web-05")], ports=rdp, replace_pending=True)[0]
    assert newer.pk != first.pk and PolicyChange.objects.count() == 2
    assert apply_all() == ["applied", "applied"] and [p["number"] for p in vm("web-05").ports] == [3389]


@pytest.mark.django_db
def test_an_edit_changes_sources_and_time_and_a_removed_port_leaves_nsg_and_policy(prod, policy_admin, azure):
    services.policy_enable(actor=policy_admin, vms=[vm("web-05")])
    apply_all()
    target = vm("web-05")
    ports = [rules.PortRule.from_azure(p) for p in target.ports if p["number"] != 5986]
    ports[0] = rules.PortRule(22, "TCP", ("203.0.113.0/24", "2001:db8::/32"), "PT2H")
    services.policy_save(actor=policy_admin, vm=target, ports=ports)
    assert apply_all() == ["applied"]
    azure_ports = azure.policy_ports(*WEB, target.arm_id)
    assert sorted(azure_ports) == [22, 3389, 5985]
    assert azure_ports[22]["allowed_source_address_prefixes"] == ["203.0.113.0/24", "2001:db8::/32"]
    assert azure_ports[22]["max_request_access_duration"] == "PT2H"
    assert azure_ports[22]["protocol"] == "TCP"
    assert azure.jit_ports(target.arm_id) == {22, 3389, 5985}
    assert sorted(p["number"] for p in vm("web-05").ports) == [22, 3389, 5985]


@pytest.mark.django_db
def test_a_save_from_a_form_shown_before_another_save_is_refused_under_the_lock(prod, policy_admin):
    """The edit page checks its basis before saving; the service checks it again under the VM's row lock, so two
    admins saving at once cannot both replace the ports each was shown: the second is refused, nothing queued."""
    from django.core.exceptions import ValidationError

    target = vm("jump-02")
    shown = rules.ports_basis(target.ports)
    mine = [rules.PortRule(22, "TCP", ("10.0.0.0/24",), "PT1H")]
    services.policy_save(actor=policy_admin, vm=target, ports=[rules.PortRule(3389)], shown=shown)  # theirs first
    with pytest.raises(ValidationError, match="changed while you saved them") as refused:
        services.policy_save(actor=policy_admin, vm=target, ports=mine, shown=shown)
    assert refused.value.code == "ports_changed" and PolicyChange.objects.count() == 1
    theirs = rules.ports_basis([rules.PortRule(3389).to_azure()])  # shown the pending ports: saved
    services.policy_save(actor=policy_admin, vm=target, ports=mine, shown=theirs)
    assert PolicyChange.objects.count() == 2
    services.policy_save(actor=policy_admin, vm=target, ports=mine, shown=shown)  # sets them exactly: no harm
    assert PolicyChange.objects.count() == 2


@pytest.mark.django_db
def test_removing_jit_takes_the_vm_out_of_the_policy_and_its_rules_out_of_the_nsg(prod, policy_admin, azure):
    target = vm("web-02")
    services.policy_remove(actor=policy_admin, vm=target)
    assert apply_all() == ["applied"]
    assert azure.policy_ports(*WEB, target.arm_id) == {}
    assert azure.jit_ports(target.arm_id) == set()
    assert vm("web-02").state == VmState.NOT_CONFIGURED
    assert 22 in azure.policy_ports(*WEB, vm_id("rg-web-prod", "web-01"))


@pytest.mark.django_db
def test_removing_the_last_vm_deletes_the_policy(prod, policy_admin, azure, fresh_emulator):
    for name in ("jump-01", "jump-02"):
        services.policy_remove(actor=policy_admin, vm=vm(name))
    assert apply_all() == ["applied", "applied"]
    deletes = [c for c in fresh_emulator.calls() if c["method"] == "DELETE" and "rg-ops-prod" in c["path"]]
    assert len(deletes) == 1
    assert vm("jump-01").state == vm("jump-02").state == VmState.NOT_CONFIGURED


@pytest.mark.django_db
def test_a_429_storm_during_save_ends_applied_with_exactly_one_successful_put(prod, policy_admin, fresh_emulator,
                                                                            azure):
    fresh_emulator.add_fault(path=POLICY_PATH, kind="429", count=6, retry_after=1)
    fresh_emulator.clear_calls()
    change = services.policy_enable(actor=policy_admin, vms=[vm("web-05")])[0]
    outcomes = []
    for _ in range(20):  # what the task does: retry after Retry-After until the change is done
        outcome = services.policy_change_apply(change_id=change.pk)
        outcomes.append(outcome.state)
        if outcome.retry_after is None:
            break
        assert outcome.retry_after >= 1
        time.sleep(min(outcome.retry_after, 1.0))
    change.refresh_from_db()
    assert change.state == PolicyChange.State.APPLIED, change.last_error
    assert outcomes[-1] == "applied"
    successful = [c for c in put_calls(fresh_emulator) if c["status"] < 300]
    assert len(successful) == 1
    assert sorted(azure.policy_ports(*WEB, vm_id("rg-web-prod", "web-05"))) == [22, 3389, 5985, 5986]


@pytest.mark.django_db
def test_a_refused_write_fails_with_azures_message(prod, policy_admin, azure):
    target = vm("web-05")
    change = services.policy_enable(actor=policy_admin, vms=[target], client_ip="2001:db8::9")[0]
    # Someone turns JIT off in the resource group's security policy before the task runs.
    azure.set_jit_security_policy("rg-web-prod", "Off")
    assert apply_all() == ["failed"]
    change.refresh_from_db()
    assert change.state == PolicyChange.State.FAILED
    assert "security policy" in change.last_error
    failed = AuditEvent.objects.get(action="policy.enable_failed", correlation_id=str(change.pk))
    assert failed.client_ip == "2001:db8::9"


@pytest.mark.django_db
def test_applying_a_change_closes_the_gateway_it_built_whether_azure_takes_it_or_not(prod, policy_admin, azure,
                                                                                   monkeypatch):
    built = gateways_built(monkeypatch)
    services.policy_enable(actor=policy_admin, vms=[vm("web-05")])
    assert apply_all() == ["applied"]
    services.policy_enable(actor=policy_admin, vms=[vm("web-06")])
    azure.set_jit_security_policy("rg-web-prod", "Off")
    assert apply_all() == ["failed"]
    assert len(built) == 2 and all(closed_after_use(gateway) for gateway in built)


@pytest.mark.django_db
def test_two_edits_queued_together_on_two_vms_of_one_policy_keep_both(prod, policy_admin, azure, fresh_emulator):
    first = services.policy_save(actor=policy_admin, vm=vm("web-01"),
                                 ports=[rules.PortRule(22, "TCP", ("10.0.0.0/8",), "PT1H")])
    second = services.policy_save(actor=policy_admin, vm=vm("web-02"),
                                  ports=[rules.PortRule(2222, "*", ("*",), "PT4H")])
    fresh_emulator.clear_calls()
    # Both were computed before either ran; the later one re-reads the policy and keeps the earlier one's port.
    assert services.policy_change_apply(change_id=second.pk).state == "applied"
    assert services.policy_change_apply(change_id=first.pk).state == "applied"
    calls = [c["method"] for c in fresh_emulator.calls() if "jitNetworkAccessPolicies/default" in c["path"]]
    assert calls == ["GET", "PUT", "GET", "PUT"]  # every write re-reads first
    assert azure.policy_ports(*WEB, vm("web-01").arm_id)[22]["allowed_source_address_prefix"] == "10.0.0.0/8"
    assert list(azure.policy_ports(*WEB, vm("web-02").arm_id)) == [2222]


@pytest.mark.django_db
def test_an_older_edit_retried_after_a_newer_change_was_applied_does_not_undo_it(prod, policy_admin, azure,
                                                                                 fresh_emulator):
    target = vm("web-02")
    edit = services.policy_save(actor=policy_admin, vm=target, ports=[rules.PortRule(2222, "*", ("*",), "PT1H")])
    fresh_emulator.add_fault(path=POLICY_PATH, kind="429", count=4, retry_after=0)  # more than the SDK retries
    assert services.policy_change_apply(change_id=edit.pk).state == "queued"  # throttled: its task retries later
    removal = services.policy_remove(actor=policy_admin, vm=vm("web-02"))  # meanwhile the admin removes JIT
    assert services.policy_change_apply(change_id=removal.pk).state == "applied"
    fresh_emulator.clear_calls()
    assert services.policy_change_apply(change_id=edit.pk).state == "applied"  # the retry comes last
    assert azure.policy_ports(*WEB, target.arm_id) == {}  # JIT stays removed: the newer change wins
    assert vm("web-02").state == VmState.NOT_CONFIGURED
    assert not put_calls(fresh_emulator)  # nothing left to write
    edit.refresh_from_db()
    assert f"newer change #{removal.pk}" in edit.last_error
    assert 22 in azure.policy_ports(*WEB, vm_id("rg-web-prod", "web-01"))


@pytest.mark.django_db
def test_a_change_is_applied_once_even_when_its_task_runs_twice(prod, policy_admin, fresh_emulator):
    change = services.policy_enable(actor=policy_admin, vms=[vm("web-05")])[0]
    fresh_emulator.clear_calls()
    assert services.policy_change_apply(change_id=change.pk).state == "applied"
    assert services.policy_change_apply(change_id=change.pk).state == "skipped"
    assert len(put_calls(fresh_emulator)) == 1


@pytest.mark.django_db
def test_only_policy_admins_at_the_vms_scope_may_change_it(prod, requester, reader, policy_admin, db):
    from tests.policies.factories import DEV, register, sync

    for user in (requester, reader):
        with pytest.raises(PermissionDenied):
            services.policy_enable(actor=user, vms=[vm("web-05")])
        with pytest.raises(PermissionDenied):
            services.policy_save(actor=user, vm=vm("web-01"), ports=rules.default_ports("Linux"))
        with pytest.raises(PermissionDenied):
            services.policy_remove(actor=user, vm=vm("web-01"))
    dev = register(prod_emulator_of(prod), DEV, "Contoso Dev/Test")
    sync(dev)
    with pytest.raises(PermissionDenied):  # policy_admin's grant is on Production only
        services.policy_enable(actor=policy_admin, vms=[vm("dev-01")])
    assert not PolicyChange.objects.exists()


def prod_emulator_of(subscription):
    class _Emu:
        url = subscription.arm_endpoint
        ca_pem = subscription.ca_bundle

    return _Emu()


def test_merging_a_policy_keeps_the_firewall_ip_azure_set_beside_each_vms_ports():
    from policies.services import merge_policy

    port = {"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}
    current = [{"id": "/vms/a", "ports": [port], "publicIpAddress": "20.1.2.3"},
               {"id": "/vms/b", "ports": [port]}, {"id": "/vms/c", "ports": [port], "publicIpAddress": "20.9.9.9"}]
    rdp = {**port, "number": 3389}
    merged = merge_policy(current, {"/VMS/A": [rdp], "/vms/c": None, "/vms/d": [port]})
    assert merged == [{"id": "/VMS/A", "ports": [rdp], "publicIpAddress": "20.1.2.3"},
                      {"id": "/vms/b", "ports": [port]}, {"id": "/vms/d", "ports": [port]}]
