"""Inventory syncs: queue one per subscription at a time, run it, fail it; the beat's round over every
subscription."""
from __future__ import annotations

import logging
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import audit_record

from .. import inventory
from ..models import Subscription, SyncRun
from .task_runs import BROKER_ERRORS, CHANGE_UNSENT, LOST_QUEUED, STALE_RUNNING, Outcome, _retry_after

log = logging.getLogger(__name__)
DISABLED_BEFORE_RUN = ("The subscription was disabled before this sync ran, so it did not run: switch Enabled on and "
                       "Save to sync it.")


class SubscriptionDisabled(ValidationError):
    """A sync asked of a subscription whose Enabled switch is off (the beat and the inventory's Sync now skip it)."""

    def __init__(self, subscription: Subscription) -> None:
        super().__init__(f"{subscription} is disabled, so it is not synced: switch Enabled on and Save to sync it.",
                         code="subscription_disabled")


def sync_request(*, actor, subscription: Subscription, client_ip: str | None = None) -> SyncRun:
    """Queue a sync of ``subscription`` unless one is already queued or running (that one is returned); a disabled
    subscription is refused (``SubscriptionDisabled``)."""
    return _sync_request(actor=actor, subscription=subscription, client_ip=client_ip)[0]


def _pending(subscription: Subscription, now: datetime) -> SyncRun | None:
    """The subscription's sync that is queued (however long it has waited for a worker, up to ``LOST_QUEUED``) or
    running (started within ``STALE_RUNNING``): while there is one, another would only overlap it."""
    return SyncRun.objects.filter(subscription=subscription).filter(
        Q(state=SyncRun.State.QUEUED) & (Q(created_at__gte=now - LOST_QUEUED) | Q(started_at__gte=now - LOST_QUEUED))
        | Q(state=SyncRun.State.RUNNING, started_at__gte=now - STALE_RUNNING)).first()


def _sync_request(*, actor, subscription: Subscription, client_ip: str | None = None) -> tuple[SyncRun, bool]:
    """``sync_request``, and whether it queued a new run. The subscription's row is locked first, so two asking at
    once (an admin's "Sync now" and the beat) queue one run, not two syncs of one subscription side by side. The lock
    is FOR NO KEY UPDATE: it lets others store rows naming the subscription (a policy change) meanwhile, so one that
    holds the audit trail's head as it does so does not deadlock with the audit of this request."""
    with transaction.atomic():
        enabled = list(Subscription.objects.select_for_update(no_key=True).filter(pk=subscription.pk).values_list(
            "enabled", flat=True))
        if enabled != [True]:  # switched off, even since the caller read it
            raise SubscriptionDisabled(subscription)
        now = timezone.now()
        running = _pending(subscription, now)
        if running is not None:
            if running.state == SyncRun.State.QUEUED and running.started_at is None \
                    and running.created_at < now - CHANGE_UNSENT:  # its task may never have reached the broker
                transaction.on_commit(lambda: _enqueue_sync(running.pk))  # a duplicate finds it claimed: harmless
            return running, False
        run = SyncRun.objects.create(subscription=subscription,
                                     requested_by=actor if getattr(actor, "pk", None) else None)
        if actor is not None:
            audit_record(actor=actor, action="subscription.sync_requested", target_type="subscription",
                         target_id=subscription.pk, target_label=str(subscription),
                         subscription_id=subscription.subscription_id, correlation_id=str(run.pk),
                         client_ip=client_ip)
        transaction.on_commit(lambda: _enqueue_sync(run.pk))
    return run, True


def _enqueue_sync(run_id: int) -> None:
    from ..tasks import sync_subscription

    try:
        sync_subscription.delay(run_id)
    except BROKER_ERRORS as exc:  # the row is stored; the beat's next sync_all takes over
        log.warning("policies: could not enqueue sync run %s (%s)", run_id, exc)


def sync_run(*, run_id: int, gateway=None) -> Outcome:
    """Do the sync ``run_id`` names (claimed first; a second runner finds it taken); one of a subscription disabled
    since it was queued is cancelled, saying why, without calling Azure."""
    from cloud.errors import CloudError, summary

    from ..gateway import gateway_in_use

    now = timezone.now()
    claimed = SyncRun.objects.filter(pk=run_id).filter(
        Q(state=SyncRun.State.QUEUED) | Q(state=SyncRun.State.RUNNING, started_at__lt=now - STALE_RUNNING)
    ).update(state=SyncRun.State.RUNNING, started_at=now, phase="starting", error="")
    if not claimed:
        return Outcome("skipped")
    run = SyncRun.objects.select_related("subscription").get(pk=run_id)
    subscription = run.subscription
    if not subscription.enabled:  # switched off while the run waited: Azure is not called, the run says why
        SyncRun.objects.filter(pk=run_id).update(state=SyncRun.State.CANCELLED, phase="", error=DISABLED_BEFORE_RUN,
                                                 finished_at=timezone.now())
        return Outcome(SyncRun.State.CANCELLED, None, DISABLED_BEFORE_RUN)
    Subscription.objects.filter(pk=subscription.pk).update(last_sync_status=Subscription.SyncStatus.RUNNING)
    counters = {"items": 0}

    def progress(phase: str, items: int) -> None:
        counters["items"] = items
        calls = getattr(gateway, "calls_made", None)
        SyncRun.objects.filter(pk=run_id).update(
            phase=phase, pages_read=F("pages_read") + (1 if items == 0 or items % 200 == 0 else 0),
            vms_seen=items if phase == "virtual machines" else F("vms_seen"),
            **({"calls_made": int(calls)} if isinstance(calls, int) else {}))

    try:
        with gateway_in_use(subscription, gateway) as gateway:
            seen, findings = inventory.sync_subscription(subscription, gateway, progress, now=now)
    except CloudError as exc:
        retryable = bool(getattr(exc, "retryable", False))
        message = summary(exc)[:2000]
        SyncRun.objects.filter(pk=run_id).update(state=SyncRun.State.QUEUED if retryable else SyncRun.State.FAILED,
                                                 error=message, finished_at=None if retryable else timezone.now())
        Subscription.objects.filter(pk=subscription.pk).update(
            last_sync_status=Subscription.SyncStatus.FAILED, last_sync_error=message, last_sync_at=timezone.now())
        if retryable:
            return Outcome(SyncRun.State.QUEUED, _retry_after(exc), message)
        return Outcome(SyncRun.State.FAILED, None, message)
    except Exception as exc:  # kept on purpose, and re-raised: not Azure's failure (an unreadable answer is the
        # gateway's CloudError above) but a bug, the worker's time limit, the database; the run fails saying why,
        # whoever runs it (the task, ``jit_policy --refresh``), as the task says it (``tasks.sync_subscription``)
        sync_fail(run_id=run_id, message=summary(exc)[:2000])
        raise
    calls = getattr(gateway, "calls_made", None)
    SyncRun.objects.filter(pk=run_id).update(
        state=SyncRun.State.SUCCEEDED, phase="done", vms_seen=seen, findings=findings, finished_at=timezone.now(),
        **({"calls_made": int(calls)} if isinstance(calls, int) else {}))
    Subscription.objects.filter(pk=subscription.pk).update(
        last_sync_status=Subscription.SyncStatus.OK, last_sync_error="", last_sync_at=timezone.now())
    return Outcome(SyncRun.State.SUCCEEDED)


def sync_fail(*, run_id: int, message: str) -> None:
    """Give up on a sync (retries exhausted)."""
    run = SyncRun.objects.filter(pk=run_id).first()
    if run is None:
        return
    SyncRun.objects.filter(pk=run_id).update(state=SyncRun.State.FAILED, error=message, finished_at=timezone.now())
    Subscription.objects.filter(pk=run.subscription_id).update(
        last_sync_status=Subscription.SyncStatus.FAILED, last_sync_error=message, last_sync_at=timezone.now())


def sync_fail_abandoned() -> int:
    """Fail the runs still "running" past ``STALE_RUNNING`` (their worker was lost: killed at the hard time limit,
    crashed, as no task runs that long) and those queued past ``LOST_QUEUED`` (no worker took their message, nor
    a retry's, in that time: the broker lost it). Returns how many."""
    now = timezone.now()
    failed = 0
    for stale, message in (
            (SyncRun.objects.filter(state=SyncRun.State.RUNNING, started_at__lt=now - STALE_RUNNING),
             "The worker running this sync stopped before it finished (crash or time limit)."),
            (SyncRun.objects.filter(Q(started_at__isnull=True) | Q(started_at__lt=now - LOST_QUEUED),
                                    state=SyncRun.State.QUEUED, created_at__lt=now - LOST_QUEUED),
             "No worker took this sync up within an hour (its queued message was lost); a new one is queued.")):
        for pk, subscription_id in list(stale.values_list("pk", "subscription_id")):
            if stale.filter(pk=pk).update(state=SyncRun.State.FAILED, error=message, finished_at=now):
                failed += 1
                Subscription.objects.filter(pk=subscription_id, last_sync_status__in=[
                    Subscription.SyncStatus.RUNNING, Subscription.SyncStatus.NEVER]).update(
                    last_sync_status=Subscription.SyncStatus.FAILED, last_sync_error=message, last_sync_at=now)
    return failed


def sync_all() -> int:
    """Beat: fail abandoned runs, then queue a sync of every enabled subscription that has none queued or
    running."""
    sync_fail_abandoned()
    queued = 0
    for subscription in Subscription.objects.filter(enabled=True):
        try:
            queued += int(_sync_request(actor=None, subscription=subscription)[1])
        except SubscriptionDisabled:  # switched off since it was listed
            continue
    return queued
