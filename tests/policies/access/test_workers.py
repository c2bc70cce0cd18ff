"""Access requests through a real broker (a private Redis server) and real Celery worker processes.

The worker process must see the test's database: the test settings keep SQLite's test database in a file
(``DATABASES["default"]["TEST"]["NAME"]``), and the worker gets ``DATABASE_URL`` pointing at that file (on
PostgreSQL it would be the ``test_…`` database). ``transaction=True`` makes the test's writes visible to it.
The beat reconciler runs in this process (``services.reconcile``), as beat would every minute.
"""
from __future__ import annotations

import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.db import connection
from kombu import pools as kombu_pools

from jitportal.celery import app as celery_app
from notifications.models import PendingEvent
from notifications.services import webhook_create
from policies.access import services
from policies.access.models import AccessRequestPort
from tests.plugins.workers import start_worker
from tests.policies.access.factories import ask
from tests.policies.azure_side import Azure, vm_id

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
STUCK_SECONDS = 2


class RedisServer:
    """A throwaway ``redis-server`` on a free port that a test can stop and start again (same port)."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.folder = folder
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@contextmanager
def portal_sends_to(broker_url: str, queue: str):
    """Point this process's Celery app (what ``transaction.on_commit`` enqueues with) at a broker and queue."""
    conf = celery_app.conf
    saved = (conf.broker_url, conf.broker_transport_options, conf.task_default_queue)

    def apply(url, options, default_queue):
        conf.broker_url, conf.broker_transport_options, conf.task_default_queue = url, options, default_queue
        if celery_app._pool is not None:
            celery_app._pool.force_close_all()
            celery_app._pool = None
        celery_app.amqp.__dict__.pop("queues", None)
        celery_app.amqp.__dict__.pop("router", None)
        celery_app.amqp._producer_pool = None
        kombu_pools.reset()  # kombu caches producer pools per connection: drop the ones over the closed pool

    apply(broker_url, {"visibility_timeout": 3600, "max_retries": 1}, queue)
    try:
        yield
    finally:
        apply(*saved)


@pytest.fixture(autouse=True)
def no_celery_env_override(monkeypatch):
    """Celery lets these variables override any app's configuration: this module points the app itself."""
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)


@pytest.fixture
def worker_env(settings):
    settings.ACCESS_STUCK_SECONDS = STUCK_SECONDS
    return {"DATABASE_URL": worker_database_url(), "ACCESS_STUCK_SECONDS": str(STUCK_SECONDS)}


def worker_database_url() -> str:
    """The URL of the test database this process uses, for worker subprocesses (SQLite file or PostgreSQL)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    host = f"{credentials}@" if credentials else ""
    return f"postgres://{host}{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_for(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def port_state(request) -> str:
    return AccessRequestPort.objects.get(request=request).state


def accepted_initiates(emu) -> int:
    return sum(1 for c in emu.calls() if c["method"] == "POST" and c["path"].endswith("/initiate")
               and c["status"] == 202)


def test_a_worker_killed_between_store_and_initiate_loses_nothing(prod, requester, fresh_emulator, redis_server,
                                                                 worker_env, tmp_path):
    queue = "access-kill"
    # The first worker hangs fetching its token (before any initiate), and is killed there.
    fresh_emulator.add_fault("/oauth2/v2.0/token", "slow", delay=30, count=1)
    first = start_worker(redis_server.url, tmp_path / "broker", queue=queue, env=worker_env)
    second = None
    try:
        with portal_sends_to(redis_server.url, queue):
            request = ask(requester, {"web-02": [22]})
            assert wait_for(lambda: port_state(request) == "opening"), first.log()
            first.kill()
            fresh_emulator.clear_faults()
            second = start_worker(redis_server.url, tmp_path / "broker", queue=queue, env=worker_env)
            time.sleep(STUCK_SECONDS + 0.5)
            assert services.reconcile()["resent"] == 1
            assert wait_for(lambda: port_state(request) == "open"), second.log()
    finally:
        first.stop()
        if second is not None:
            second.stop()
    port = AccessRequestPort.objects.get(request=request)
    assert port.attempts == 2
    assert accepted_initiates(fresh_emulator) == 1
    rules = Azure(fresh_emulator).jit_rules(vm_id("rg-web-prod", "web-02"), "Allow")
    assert [r["sourceAddressPrefix"] for r in rules.values()] == ["203.0.113.50/32"]


def test_a_request_made_while_the_broker_is_down_is_kept_and_sent_when_it_is_back(
        prod, requester, fresh_emulator, redis_server, worker_env, tmp_path):
    queue = "access-down"
    redis_server.stop()
    with portal_sends_to(redis_server.url, queue):
        request = ask(requester, {"web-02": [22]})  # the enqueue after commit fails; the row is kept
        assert port_state(request) == "queued"
        assert services.reconcile()["resent"] == 0  # not stuck yet
        redis_server.start()
        worker = start_worker(redis_server.url, tmp_path / "broker", queue=queue, env=worker_env)
        try:
            time.sleep(STUCK_SECONDS + 0.5)
            assert services.reconcile()["resent"] == 1
            assert wait_for(lambda: port_state(request) == "open"), worker.log()
        finally:
            worker.stop()
    assert accepted_initiates(fresh_emulator) == 1


def test_notifications_run_on_their_own_worker_beside_the_open_worker(
        prod, requester, fresh_emulator, redis_server, worker_env, tmp_path, webhook_receiver, settings):
    _, secret = webhook_create(actor=None, name="everything", url=webhook_receiver.url, format="json",
                               events=["submitted", "opened"])
    queue, notify_queue = "access-notify", settings.CELERY_NOTIFICATIONS_QUEUE  # what this process routes to
    env = {**worker_env, "CELERY_NOTIFICATIONS_QUEUE": notify_queue}
    worker = start_worker(redis_server.url, tmp_path / "broker", queue=queue, env=env)
    notifier = start_worker(redis_server.url, tmp_path / "broker", queue=notify_queue, env=env)
    try:
        with portal_sends_to(redis_server.url, queue):
            request = ask(requester, {"web-02": [22]})
            assert wait_for(lambda: port_state(request) == "open"), worker.log()
            posts = webhook_receiver.wait_for(2, timeout=60)
    finally:
        worker.stop()
        notifier.stop()
    assert sorted(post.json()["event"] for post in posts) == ["opened", "submitted"]
    assert all(webhook_receiver.verify(post, secret) for post in posts)
    opens, notifies = worker.log(), notifier.log()  # with "Task <name>[<id>] received" lines
    assert "Task access.open_ports[" in opens and "Task access.open_ports[" not in notifies
    for task in ("notifications.expand_event", "notifications.deliver_webhook"):
        assert f"Task {task}[" in notifies and f"Task {task}[" not in opens
    assert not PendingEvent.objects.exists()
