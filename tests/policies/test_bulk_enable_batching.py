"""Saving Enable JIT on many VMs at once (all VMs that match, up to ``views.BULK_ENABLE_MAX``): its statements grow
with the policies, not the VMs, and the audit rows it appends in bulk keep the trail's hash chain whole.

No cloud call happens here: changes are only queued (tasks are captured, not run).
"""
from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import authz
from audit.models import AuditChainHead, AuditEvent
from audit.services import audit_record
from policies import rules, services
from policies.models import JitPolicy, PolicyChange, VirtualMachine, VmState
from tests.policies.factories import PROD, make_many_vms


def not_configured(group: str) -> list[VirtualMachine]:
    """The Not configured VMs of ``group``: half in westeurope, half in northeurope (two policies)."""
    return list(VirtualMachine.objects.filter(state=VmState.NOT_CONFIGURED, resource_group=group)
                .select_related("subscription").order_by("name"))


def ops_policy(group: str) -> None:
    """An existing policy ``ops`` in ``group``'s westeurope: its VMs join it, not a new ``default``."""
    JitPolicy.objects.create(
        subscription=VirtualMachine.objects.filter(resource_group=group).first().subscription, subscription_key=PROD,
        resource_id=(f"/subscriptions/{PROD}/resourcegroups/{group}/providers/microsoft.security/locations/westeurope/"
                     f"jitnetworkaccesspolicies/ops"),
        resource_group=group, resource_group_name=group, location="westeurope", name="ops")


def save(admin, vms: list[VirtualMachine]) -> tuple[list[PolicyChange], list[str]]:
    """(the changes, the SQL statements) of one Enable JIT save of ``vms`` with the recommended ports."""
    with CaptureQueriesContext(connection) as queries:
        changes = services.policy_enable(actor=admin, vms=vms, ports=rules.recommended_ports(),
                                         client_ip="203.0.113.9")
    return changes, [query["sql"] for query in queries.captured_queries]


@pytest.mark.django_db
def test_saving_many_vms_over_two_policies_takes_as_many_statements_as_saving_a_few(
        policy_admin, django_capture_on_commit_callbacks):
    make_many_vms(3 * 4, group="rg-few")  # 4 Not configured VMs: 2 in each location
    make_many_vms(3 * 60, group="rg-many")  # 60: 30 in each
    for group in ("rg-few", "rg-many"):
        ops_policy(group)
    few, many = not_configured("rg-few"), not_configured("rg-many")
    assert (len(few), len(many)) == (4, 60)
    authz.grants_for(policy_admin)  # the user's grants, read once per request, are not the save's
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        few_changes, few_statements = save(policy_admin, few)
        many_changes, many_statements = save(policy_admin, many)
    # One lookup of the policies, one pending check per policy, one insert each of the links and the audit rows:
    # nothing per VM.
    assert len(many_statements) == len(few_statements)
    moves = [sql for sql in many_statements if sql.startswith(f'UPDATE "{AuditChainHead._meta.db_table}"')]
    assert len(moves) == 1  # the audit chain's head, for the 60 rows of both changes
    assert len(enqueued) == 4  # one task per policy, sent on commit
    for changes, vms in ((few_changes, few), (many_changes, many)):
        assert sorted(change.policy_name for change in changes) == ["default", "ops"]  # northeurope, westeurope
        for change in changes:
            members = [vm for vm in vms if vm.location == change.location]
            assert set(change.vms.values_list("pk", flat=True)) == {vm.pk for vm in members}
            assert set(change.desired) == {vm.arm_id for vm in members}
            rows = AuditEvent.objects.filter(correlation_id=str(change.pk)).order_by("id")
            assert [(e.action, e.target_id, e.after, e.client_ip) for e in rows] == [
                ("policy.enable_requested", str(vm.pk), {"ports": change.desired[vm.arm_id]}, "203.0.113.9")
                for vm in members]
    # The same save sent again is answered by its pending changes: nothing more stored, nothing enqueued.
    events = AuditEvent.objects.count()
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        again, _ = save(policy_admin, many)
    assert [c.pk for c in again] == [c.pk for c in many_changes] and not enqueued
    assert AuditEvent.objects.count() == events and PolicyChange.objects.count() == 4


@pytest.mark.django_db
def test_a_bulk_save_appends_its_audit_rows_to_the_chain_which_verifies_and_whose_head_moves_once(
        policy_admin, django_capture_on_commit_callbacks, capsys):
    make_many_vms(3 * 40, group="rg-many")
    audit_record(actor=policy_admin, action="test.before")  # the save chains onto an existing trail
    before = AuditChainHead.objects.get(id=1)
    with django_capture_on_commit_callbacks(execute=False):
        changes, _ = save(policy_admin, not_configured("rg-many"))
    head = AuditChainHead.objects.get(id=1)
    saved = list(AuditEvent.objects.filter(correlation_id__in=[str(c.pk) for c in changes]).order_by("id"))
    assert len(saved) == 40 and head.count == before.count + 40
    assert saved[0].prev_hash == before.last_hash and head.last_hash == saved[-1].hash
    audit_record(actor=policy_admin, action="test.after")  # and the next event chains onto the save's last
    assert AuditEvent.objects.order_by("-id").first().prev_hash == saved[-1].hash
    call_command("audit_verify")
    assert f"audit trail OK: {AuditEvent.objects.count()} events verified" in capsys.readouterr().out


@pytest.mark.django_db
def test_a_bulk_save_over_two_policies_names_every_vm_still_being_enabled_in_order_and_stores_nothing(
        policy_admin, django_capture_on_commit_callbacks):
    make_many_vms(3 * 8, group="rg-many")
    vms = not_configured("rg-many")
    with django_capture_on_commit_callbacks(execute=False):
        save(policy_admin, [vms[1], vms[2], vms[5]])  # pending: two in one policy, one in the other
        events, changes = AuditEvent.objects.count(), PolicyChange.objects.count()
        with pytest.raises(ValidationError) as refused:
            services.policy_enable(actor=policy_admin, vms=vms, ports=[rules.PortRule(22, "*", ("*",), "PT1H")])
    # Refused per policy in the order of the VMs' first appearance (northeurope's, then westeurope's), each
    # policy's VMs in their order.
    assert [vm.location for vm in vms[:3]] == ["northeurope", "westeurope", "northeurope"]
    by_policy = [vms[2].name, vms[1].name, vms[5].name]
    assert refused.value.messages == [
        f"JIT is already being enabled on {name} (saved, not applied in Azure yet); to change the ports it gets, "
        "edit its JIT settings (Enable JIT with custom settings… on its page)." for name in by_policy]
    assert {e.code for e in refused.value.error_list} == {"pending"}
    assert (AuditEvent.objects.count(), PolicyChange.objects.count()) == (events, changes)
