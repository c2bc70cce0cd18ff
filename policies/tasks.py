"""Celery tasks of the policies app: thin wrappers that take ids, call one service and retry when told to."""
from __future__ import annotations

from celery import shared_task

from . import services

MAX_COUNTDOWN = 3000  # below the Redis visibility timeout (1 h): a longer wait would run the task twice
MAX_RETRIES = 12


def backoff(retries: int, retry_after: float | None) -> float:
    """Azure's Retry-After when given, else exponential; bounded below an hour either way."""
    wait = max(float(retry_after or 0), float(2 ** min(retries, 11)))
    return min(MAX_COUNTDOWN, wait)


@shared_task(name="policies.sync_all", acks_late=True)
def sync_all() -> int:
    """Beat: queue one inventory sync per enabled subscription (skipping those already syncing)."""
    return services.sync_all()


@shared_task(name="policies.resend_changes", acks_late=True)
def resend_changes() -> dict:
    """Beat: send again the policy changes no worker has (stored while the broker was down, or a lost worker's)."""
    return services.policy_changes_resend()


@shared_task(name="policies.sync_subscription", bind=True, acks_late=True, max_retries=MAX_RETRIES)
def sync_subscription(self, run_id: int) -> str:
    """Sync one subscription's inventory (``SyncRun`` ``run_id``). Whatever else stops it (the soft time limit,
    a database error) fails the run with the reason, then propagates: a run never stays "running"."""
    from cloud.errors import summary

    try:
        outcome = services.sync_run(run_id=run_id)
    except Exception as exc:  # the task's top-level guard (an unreadable answer is the gateway's CloudError, which
        # the service handles): the run fails saying why, then the task fails
        services.sync_fail(run_id=run_id, message=summary(exc)[:2000])
        raise
    if outcome.retry_after is not None:
        if self.request.retries >= self.max_retries:
            services.sync_fail(run_id=run_id, message=f"Gave up after {self.request.retries} retries: "
                                                      f"{outcome.message}")
            return "failed"
        raise self.retry(countdown=backoff(self.request.retries, outcome.retry_after))
    return outcome.state


@shared_task(name="policies.apply_policy_change", bind=True, acks_late=True, max_retries=MAX_RETRIES)
def apply_policy_change(self, change_id: int) -> str:
    """Apply one ``PolicyChange`` to Azure; throttling and transient errors retry with bounded backoff. Whatever
    else stops it (a bug, the soft time limit, a database error) fails the change with the reason, then
    propagates: a change never stays "running"."""
    from cloud.errors import unexpected

    try:
        outcome = services.policy_change_apply(change_id=change_id)
    except Exception as exc:  # the task's top-level guard: Azure's failures, an unreadable answer included, are the
        # gateway's CloudError, which the service handles; this is for the rest, said on the change, then raised
        services.policy_change_fail(change_id=change_id, message=unexpected(exc))
        raise
    if outcome.retry_after is not None:
        if self.request.retries >= self.max_retries:
            services.policy_change_fail(change_id=change_id, message=f"Gave up after {self.request.retries} "
                                                                     f"retries: {outcome.message}")
            return "failed"
        raise self.retry(countdown=backoff(self.request.retries, outcome.retry_after))
    return outcome.state
