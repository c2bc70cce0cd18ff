"""Retention prunes Activity Log copies; the portal's trail only when configured, and it still verifies."""
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from audit.ingestion import store_events
from audit.models import ActivityLogEvent, AuditEvent
from audit.retention import activity_prune, trail_prune
from audit.services import audit_record
from tests.audit.factories import event

pytestmark = pytest.mark.django_db


def age_trail(days: int, count: int) -> None:
    """Make the first ``count`` trail events ``days`` old (as time would), keeping their hashes valid."""
    from audit.chain import GENESIS, event_hash

    events = list(AuditEvent.objects.order_by("id"))
    previous = GENESIS
    with connection.cursor() as cursor:
        for index, item in enumerate(events):
            moment = item.occurred_at - timedelta(days=days) if index < count else item.occurred_at
            fields = {name: getattr(item, name) for name in (
                "actor_id", "actor_label", "action", "target_type", "target_id", "target_label", "subscription_id",
                "resource_group", "resource_id", "before", "after", "client_ip", "correlation_id")}
            digest = event_hash(previous, {**fields, "occurred_at": moment})
            cursor.execute("UPDATE audit_auditevent SET occurred_at = %s, prev_hash = %s, hash = %s WHERE id = %s",
                           [moment, previous, digest, item.id])
            previous = digest
        cursor.execute("UPDATE audit_auditchainhead SET last_hash = %s WHERE id = 1", [previous])


def test_old_activity_copies_are_pruned_and_recent_ones_kept(settings):
    settings.AUDIT_ACTIVITY_RETENTION_DAYS = 30
    now = timezone.now()
    store_events([event(when=now - timedelta(days=40), caller="old@x.example"),
                  event(when=now - timedelta(days=31), caller="old2@x.example"),
                  event(when=now - timedelta(days=2), caller="new@x.example")])
    assert activity_prune(batch_size=1) == 2
    assert list(ActivityLogEvent.objects.values_list("caller", flat=True)) == ["new@x.example"]


def test_the_trail_is_kept_unless_its_retention_is_configured(settings):
    settings.AUDIT_ACTIVITY_RETENTION_DAYS = 1
    settings.AUDIT_TRAIL_RETENTION_DAYS = 0
    for n in range(3):
        audit_record(actor=None, action="policy.save", target_label=f"vm{n}")
    age_trail(400, 3)
    from audit.tasks import prune

    assert prune() == {"activity": 0, "trail": 0}
    assert AuditEvent.objects.count() == 3
    call_command("audit_verify")


def test_a_configured_trail_prune_keeps_the_chain_verifiable(settings, capsys):
    settings.AUDIT_TRAIL_RETENTION_DAYS = 365
    for n in range(5):
        audit_record(actor=None, action="policy.save", target_label=f"vm{n}")
    age_trail(400, 3)
    assert trail_prune() == 3
    labels = list(AuditEvent.objects.order_by("id").values_list("action", "target_label"))
    assert labels == [("policy.save", "vm3"), ("policy.save", "vm4"), ("audit.prune", "events before " +
                                                                       labels[2][1].split("before ", 1)[1])]
    prune_event = AuditEvent.objects.get(action="audit.prune")
    assert prune_event.after["pruned"] == 3 and prune_event.after["pruned_total"] == 3
    call_command("audit_verify")
    assert "3 events verified (3 older events pruned by retention)" in capsys.readouterr().out


def test_tampering_after_a_prune_is_still_caught(settings):
    settings.AUDIT_TRAIL_RETENTION_DAYS = 365
    for n in range(5):
        audit_record(actor=None, action="policy.save", target_label=f"vm{n}")
    age_trail(400, 2)
    trail_prune()
    with connection.cursor() as cursor:  # someone removes the first kept event as well
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [AuditEvent.objects.order_by("id")[0].id])
    with pytest.raises(CommandError, match="FAILED"):
        call_command("audit_verify")


def test_a_tampered_trail_row_fails_audit_verify():
    for n in range(3):
        audit_record(actor=None, action="request.create", target_label=f"vm{n}", client_ip="203.0.113.1")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET client_ip = %s WHERE id = %s",
                       ["198.51.100.66", AuditEvent.objects.order_by("id")[0].id])
    with pytest.raises(CommandError, match="FAILED"):
        call_command("audit_verify")
