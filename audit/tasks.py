"""Celery tasks of the audit app: thin wrappers that take ids and call the ingestion and retention services."""
from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from . import ingestion, retention, sources

log = logging.getLogger(__name__)
MAX_COUNTDOWN = 3000  # below the Redis visibility timeout (1 h): a longer wait would run the task twice


@shared_task(name="audit.ingest_all", acks_late=True)
def ingest_all() -> int:
    """Beat: queue one ingestion task per registered subscription."""
    subscription_ids = sources.registered_subscription_ids()
    for subscription_id in subscription_ids:
        ingest_subscription.delay(subscription_id)
    return len(subscription_ids)


@shared_task(name="audit.ingest_subscription", bind=True, acks_late=True, max_retries=24)
def ingest_subscription(self, subscription_id: str) -> dict:
    """Read one subscription's Activity Log; retry when throttled, continue when the time budget ran out."""
    from cloud.errors import Transient

    try:
        reader = sources.gateway_for(subscription_id)
    except Exception as exc:  # the task's guard, re-raised: its credential or endpoint cannot be used (CloudError),
        # it is not registered, a bug: said on its ingestion state, as a run's error is
        ingestion.record_failure(subscription_id, f"{type(exc).__name__}: {exc}")
        raise
    try:
        with reader as gateway:
            outcome = ingestion.ingest_subscription(subscription_id, gateway,
                                                    time_budget=settings.AUDIT_INGEST_TIME_BUDGET_SECONDS)
    except Transient as exc:
        raise self.retry(exc=exc, countdown=min(MAX_COUNTDOWN, 30 * 2 ** self.request.retries)) from exc
    if outcome.retry_after is not None:
        raise self.retry(countdown=min(MAX_COUNTDOWN, max(1.0, outcome.retry_after)))
    if outcome.claimed and not outcome.complete:
        ingest_subscription.apply_async((subscription_id,), countdown=1)
    return {"subscription": outcome.subscription_id, "claimed": outcome.claimed, "pages": outcome.pages,
            "seen": outcome.seen, "added": outcome.added, "skipped": outcome.skipped, "complete": outcome.complete}


@shared_task(name="audit.prune", acks_late=True)
def prune() -> dict:
    """Daily: drop Activity Log copies past retention, and the portal trail only when configured."""
    return {"activity": retention.activity_prune(), "trail": retention.trail_prune()}
