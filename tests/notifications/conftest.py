"""Fixtures of the notifications tests: Celery pointed at an in-process or an unreachable broker."""
from __future__ import annotations

import socket
from contextlib import contextmanager

import pytest
from kombu import pools as kombu_pools

from jitportal.celery import app as celery_app


@contextmanager
def celery_broker(url: str, options: dict):
    """Point this process's Celery app (what on_commit enqueues with) at another broker for a while."""
    conf = celery_app.conf
    saved = (conf.broker_url, conf.broker_transport_options, conf.task_always_eager)

    def apply(broker_url, transport_options, eager):
        conf.broker_url, conf.broker_transport_options, conf.task_always_eager = broker_url, transport_options, eager
        if celery_app._pool is not None:
            celery_app._pool.force_close_all()
            celery_app._pool = None
        celery_app.amqp._producer_pool = None
        kombu_pools.reset()

    apply(url, options, False)
    try:
        yield
    finally:
        apply(*saved)


@pytest.fixture
def broker_down(monkeypatch):
    """Celery's broker is a Redis port nobody listens on: every enqueue fails at once."""
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = celery_app.conf
    with celery_broker(f"redis://127.0.0.1:{port}/0", {"max_retries": 0}):
        saved = (conf.broker_connection_retry, conf.broker_connection_max_retries, conf.task_publish_retry)
        conf.broker_connection_retry, conf.broker_connection_max_retries, conf.task_publish_retry = False, 0, False
        try:
            yield
        finally:
            conf.broker_connection_retry, conf.broker_connection_max_retries, conf.task_publish_retry = saved


@pytest.fixture
def eager_celery():
    """Tasks run in this process when enqueued (this test says so: no worker, no broker)."""
    saved = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = saved
