"""Retention: drop Activity Log copies older than the configured days; the portal's trail only if configured.

The trail is pruned from its start, under the chain head's lock, and the prune itself is appended as an
``audit.prune`` event naming the anchor hash (the ``prev_hash`` of the first event kept) and the running
total of pruned events, so ``audit_verify`` can still check the rest of the chain end to end.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from .models import ActivityLogEvent, ActivityLogEventVm, AuditChainHead, AuditEvent
from .services import audit_record

PRUNE_ACTION = "audit.prune"


def activity_prune(*, days: int | None = None, now: datetime | None = None, batch_size: int = 5000) -> int:
    """Delete Activity Log copies older than ``days`` (default ``AUDIT_ACTIVITY_RETENTION_DAYS``) in batches."""
    days = settings.AUDIT_ACTIVITY_RETENTION_DAYS if days is None else days
    if not days or days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    removed = 0
    while True:
        ids = list(ActivityLogEvent.objects.filter(occurred_at__lt=cutoff).order_by().values_list("id", flat=True)[
            :batch_size])
        if not ids:
            break
        removed += ActivityLogEvent.objects.filter(id__in=ids).delete()[0]
    while True:
        links = list(ActivityLogEventVm.objects.filter(occurred_at__lt=cutoff).order_by().values_list(
            "id", flat=True)[:batch_size])
        if not links:
            return removed
        ActivityLogEventVm.objects.filter(id__in=links).delete()


def trail_prune(*, days: int | None = None, now: datetime | None = None) -> int:
    """Delete portal trail events older than ``days`` (default ``AUDIT_TRAIL_RETENTION_DAYS``; 0 keeps all).

    Returns how many were removed; records an ``audit.prune`` event when any were.
    """
    days = settings.AUDIT_TRAIL_RETENTION_DAYS if days is None else days
    if not days or days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().filter(id=1).first()
        if head is None:
            return 0
        last_old = AuditEvent.objects.filter(occurred_at__lt=cutoff).order_by("-id").values_list("id", flat=True)
        last_old_id = last_old.first()
        if last_old_id is None:
            return 0
        previous_total = _pruned_total()
        doomed = AuditEvent.objects.filter(id__lte=last_old_id)
        # The trail's own queryset refuses deletes; retention is the one sanctioned path.
        removed = models.QuerySet.delete(doomed)[0]
        first_kept = AuditEvent.objects.order_by("id").values_list("prev_hash", flat=True).first()
        anchor = first_kept if first_kept is not None else head.last_hash
        audit_record(
            actor=None,
            action=PRUNE_ACTION,
            target_type="audit_trail",
            target_label=f"events before {cutoff.isoformat()}",
            after={"anchor_hash": anchor, "pruned": removed, "pruned_total": previous_total + removed,
                   "cutoff": cutoff.isoformat()},
        )
    return removed


def _pruned_total() -> int:
    latest = AuditEvent.objects.filter(action=PRUNE_ACTION).order_by("-id").values_list("after", flat=True).first()
    return int((latest or {}).get("pruned_total", 0))


def trail_anchor() -> tuple[str | None, int]:
    """Where verification of the kept trail starts: the newest prune's anchor hash and pruned total."""
    latest = AuditEvent.objects.filter(action=PRUNE_ACTION).order_by("-id").values_list("after", flat=True).first()
    if not latest:
        return None, 0
    return latest.get("anchor_hash"), int(latest.get("pruned_total", 0))
