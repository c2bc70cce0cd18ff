"""Writes to the audit trail. Services of every app call ``audit_record`` in the same transaction."""
from typing import Any

from django.db import transaction
from django.utils import timezone

from .chain import GENESIS, event_hash
from .models import AuditChainHead, AuditEvent


def audit_record(
    *,
    actor: Any,
    action: str,
    target_type: str = "",
    target_id: str = "",
    target_label: str = "",
    subscription_id: str = "",
    resource_group: str = "",
    resource_id: str = "",
    before: dict | None = None,
    after: dict | None = None,
    client_ip: str | None = None,
    correlation_id: str = "",
) -> AuditEvent:
    """Append one event to the chain. ``actor`` is a user, or ``None`` for the portal itself.

    Inside a caller's transaction it joins it (no savepoint: a failure here fails the caller's change too)."""
    with transaction.atomic(savepoint=False):
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(
            id=1, defaults={"last_hash": GENESIS, "count": 0}
        )
        is_user = actor is not None and getattr(actor, "pk", None) is not None
        fields = {
            "occurred_at": timezone.now(),
            "actor_id": actor.pk if is_user else None,
            "actor_label": (actor.get_username() if is_user else "jitportal"),
            "action": action,
            "target_type": target_type,
            "target_id": str(target_id),
            "target_label": target_label,
            "subscription_id": subscription_id,
            "resource_group": resource_group,
            "resource_id": resource_id,
            "before": before,
            "after": after,
            # As the column stores it (IPv6 compressed, lower case; "" as NULL): the hash must match what is read back.
            "client_ip": AuditEvent._meta.get_field("client_ip").get_prep_value(client_ip) or None,
            "correlation_id": correlation_id,
        }
        digest = event_hash(head.last_hash, fields)
        event = AuditEvent(prev_hash=head.last_hash, hash=digest, **fields)
        event.save(force_insert=True)
        AuditChainHead.objects.filter(id=1).update(last_hash=digest, count=head.count + 1)
    return event
