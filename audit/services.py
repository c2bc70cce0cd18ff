"""Writes to the audit trail. Services of every app call ``audit_record`` (one event) or ``audit_record_many``
(a batch) in the same transaction."""
from typing import Any

from django.db import transaction
from django.utils import timezone

from .chain import GENESIS, event_hash
from .models import AuditChainHead, AuditEvent

AUDIT_BATCH = 500  # rows per INSERT of ``audit_record_many``


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
        head = _locked_head()
        fields = _event_fields(actor=actor, action=action, target_type=target_type, target_id=target_id,
                               target_label=target_label, subscription_id=subscription_id,
                               resource_group=resource_group, resource_id=resource_id, before=before, after=after,
                               client_ip=client_ip, correlation_id=correlation_id)
        digest = event_hash(head.last_hash, fields)
        event = AuditEvent(prev_hash=head.last_hash, hash=digest, **fields)
        event.save(force_insert=True)
        AuditChainHead.objects.filter(id=1).update(last_hash=digest, count=head.count + 1)
    return event


def audit_record_many(events: list[dict]) -> None:
    """Append ``events`` (each the keyword arguments of ``audit_record``) to the chain in their order, as
    ``audit_record`` would one by one: the chain head is locked and moved once, the rows inserted in bulk (a save
    of many VMs writes one event per VM). Joins the caller's transaction as ``audit_record`` does."""
    if not events:
        return
    with transaction.atomic(savepoint=False):
        head = _locked_head()
        last_hash = head.last_hash
        rows = []
        for given in events:
            fields = _event_fields(**given)
            digest = event_hash(last_hash, fields)
            rows.append(AuditEvent(prev_hash=last_hash, hash=digest, **fields))
            last_hash = digest
        # Inserted in order (the ids follow the chain, as ``audit_verify`` walks it), in batches of at most
        # ``AUDIT_BATCH`` rows (fewer on SQLite: its 999 parameters a statement).
        AuditEvent.objects.bulk_create(rows, batch_size=AUDIT_BATCH)
        AuditChainHead.objects.filter(id=1).update(last_hash=last_hash, count=head.count + len(rows))


def _locked_head() -> AuditChainHead:
    """The chain head, locked for the rest of the transaction (appends are serialized across processes)."""
    head, _ = AuditChainHead.objects.select_for_update().get_or_create(
        id=1, defaults={"last_hash": GENESIS, "count": 0}
    )
    return head


def _event_fields(*, actor: Any, action: str, target_type: str = "", target_id: str = "", target_label: str = "",
                  subscription_id: str = "", resource_group: str = "", resource_id: str = "",
                  before: dict | None = None, after: dict | None = None, client_ip: str | None = None,
                  correlation_id: str = "") -> dict:
    """An event's stored and hashed fields."""
    is_user = actor is not None and getattr(actor, "pk", None) is not None
    return {
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
