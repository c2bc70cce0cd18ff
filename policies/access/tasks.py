"""Celery tasks of access requests: thin wrappers that take ids, call one service and retry when told to.

``open_ports`` and ``close_ports`` are idempotent (they claim rows by a conditional update and look the
request up in Azure before initiating again), so ``acks_late`` redelivery and the reconciler's re-sends are safe.
Every countdown stays below an hour (Redis' visibility timeout); expiry is the reconciler's job, never a
long countdown. Their return values are only logged (the rows are the record), so no result is stored.
"""
from __future__ import annotations

from celery import shared_task

from . import services

MAX_COUNTDOWN = 600


def backoff(retries: int, retry_after: float | None) -> float:
    """Azure's Retry-After when it gave one, else exponential from 1 s; bounded well below an hour."""
    wait = max(float(retry_after or 0), float(2 ** min(retries, 9)))
    return min(MAX_COUNTDOWN, wait)


@shared_task(name="access.open_ports", bind=True, acks_late=True, max_retries=None, ignore_result=True)
def open_ports(self, request_id: int, policy_key: str) -> str:
    """Open the ports of request ``request_id`` that belong to the JIT policy ``policy_key`` (one initiate)."""
    outcome = services.request_open(request_id=request_id, policy_key=policy_key)
    if outcome.retry_after is not None:
        raise self.retry(countdown=backoff(self.request.retries, outcome.retry_after))
    return outcome.state


@shared_task(name="access.close_ports", bind=True, acks_late=True, max_retries=8, ignore_result=True)
def close_ports(self, request_id: int) -> str:
    """Close the open ports of request ``request_id`` early (see ``services`` for the mechanism)."""
    outcome = services.request_close_apply(request_id=request_id)
    if outcome.retry_after is not None and self.request.retries < self.max_retries:
        raise self.retry(countdown=backoff(self.request.retries, outcome.retry_after))
    return outcome.state


@shared_task(name="access.reconcile", acks_late=True)
def reconcile() -> dict:
    """Beat (every minute): re-send stuck requests, fail exhausted ones, expire those past their end, close what
    Azure revoked; returns (and so the worker logs) the counts of ``services.reconcile``."""
    return services.reconcile()
