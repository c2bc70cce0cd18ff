"""The portal's audit trail: append-only, hash-chained, verified by `audit_verify`."""
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit.models import AuditEvent
from audit.services import audit_record

pytestmark = pytest.mark.django_db


def record_three(user):
    for n in range(3):
        audit_record(
            actor=user,
            action="policy.save",
            target_type="vm",
            target_id=f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{n}",
            target_label=f"vm{n}",
            before={"ports": []},
            after={"ports": [22]},
            client_ip="203.0.113.7",
        )


def test_events_chain_each_to_the_previous(breakglass_admin):
    record_three(breakglass_admin)
    events = list(AuditEvent.objects.order_by("id"))
    assert events[0].prev_hash == "0" * 64
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert events[0].actor_label == "admin"


def test_audit_verify_accepts_an_untouched_trail(breakglass_admin, capsys):
    record_three(breakglass_admin)
    call_command("audit_verify")
    assert "audit trail OK: 3 events verified" in capsys.readouterr().out


def test_audit_verify_catches_a_tampered_row(breakglass_admin):
    record_three(breakglass_admin)
    middle = AuditEvent.objects.order_by("id")[1]
    with connection.cursor() as cursor:  # an attacker with database access, bypassing the ORM
        cursor.execute("UPDATE audit_auditevent SET actor_label = %s WHERE id = %s", ["someone-else", middle.id])
    with pytest.raises(CommandError, match="FAILED"):
        call_command("audit_verify")


def test_audit_verify_catches_a_removed_row(breakglass_admin):
    record_three(breakglass_admin)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [AuditEvent.objects.order_by("id")[1].id])
    with pytest.raises(CommandError, match="FAILED"):
        call_command("audit_verify")


def test_audit_verify_catches_a_truncated_tail(breakglass_admin):
    record_three(breakglass_admin)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [AuditEvent.objects.order_by("-id")[0].id])
    with pytest.raises(CommandError, match="FAILED"):
        call_command("audit_verify")


def test_the_orm_refuses_to_change_or_delete_events(breakglass_admin):
    record_three(breakglass_admin)
    event = AuditEvent.objects.first()
    event.action = "something.else"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().update(action="x")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()


def test_the_portal_itself_can_be_the_actor():
    event = audit_record(actor=None, action="sync.run", target_label="Contoso Production")
    assert event.actor_label == "jitportal"
    call_command("audit_verify")


def test_an_address_the_database_stores_in_another_spelling_still_verifies(breakglass_admin, capsys):
    audit_record(actor=breakglass_admin, action="audit.export", client_ip="2001:DB8:0:0::7")
    audit_record(actor=breakglass_admin, action="audit.export", client_ip="")  # REMOTE_ADDR of a unix socket
    call_command("audit_verify")
    assert "audit trail OK: 2 events verified" in capsys.readouterr().out
    assert list(AuditEvent.objects.order_by("id").values_list("client_ip", flat=True)) == ["2001:db8::7", None]


def test_an_expiry_is_recorded_for_each_vm_where_its_auditors_see_it():
    from audit.selectors import trail_for_user
    from policies.access.services import request_mark_expired
    from tests.audit.factories import PROD, user_with_role
    from tests.policies import factories as _  # noqa: F401 - imported before the access factories, which import it
    from tests.policies.access.factories import add_vm_at, make_access_request

    request = make_access_request(f"/subscriptions/{PROD}/resourceGroups/rg-one")  # port 22, and 3389 in rg-two:
    add_vm_at(request, f"/subscriptions/{PROD}/resourceGroups/rg-two")
    assert request_mark_expired(port_ids=list(request.ports.values_list("pk", flat=True)), reasons={}) == 2
    for group, port in (("rg-one", 22), ("rg-two", 3389)):
        auditor = user_with_role(f"auditor-{group}", "auditor", f"/subscriptions/{PROD}/resourceGroups/{group}")
        [expired] = trail_for_user(auditor).filter(action="access.expired")
        assert expired.after == {"request": request.pk, "ports": [port]}
        assert expired.resource_id == request.vms.get(resource_group=group).vm_arm_id.lower()
