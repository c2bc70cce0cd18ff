"""Real Celery worker processes for integration tests."""
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from celery import Celery

from jitportal.lib.broker import broker_options
from jitportal.lib.health import ensure_broker_folders

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class WorkerProcess:
    """A worker subprocess and a producer app configured for the same broker and queue."""

    process: subprocess.Popen
    producer: Celery
    queue: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """Kill the worker at once, as a crash would."""
        self.process.kill()
        self.process.wait()


def producer_for(broker_url: str, folder: Path, queue: str) -> Celery:
    """A Celery app that sends to ``queue`` on the given broker, configured as the portal is."""
    options, backend = broker_options(broker_url, folder)
    ensure_broker_folders(options, backend)
    # Not the current app: the portal's shared tasks (``open_ports.delay``) must keep sending with the portal's.
    producer = Celery("producer", broker=broker_url, backend=backend, set_as_current=False)
    producer.conf.update(
        broker_transport_options=options,
        result_backend_transport_options=options,
        task_default_queue=queue,
        task_serializer="json",
        accept_content=["json"],
    )
    return producer


def start_worker(broker_url: str, folder: Path, *, queue: str | None = None, env: dict | None = None) -> WorkerProcess:
    """Start ``celery worker`` for the portal on ``broker_url`` and wait until it consumes."""
    queue = queue or f"test-{uuid.uuid4().hex[:10]}"
    log_path = folder / f"worker-{queue}.log"
    folder.mkdir(parents=True, exist_ok=True)
    worker_env = dict(os.environ)
    worker_env.update(
        DJANGO_SETTINGS_MODULE="jitportal.settings.test",
        CELERY_BROKER_URL=broker_url,
        CELERY_FILESYSTEM_FOLDER=str(folder),
        CELERY_TASK_DEFAULT_QUEUE=queue,
        **(env or {}),
    )
    worker_env.pop("CELERY_RESULT_BACKEND", None)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "jitportal", "worker", "--pool=solo", "--loglevel=INFO",
             "--without-mingle", "--without-gossip", "-Q", queue, "-n", f"{queue}@%h"],
            cwd=ROOT, env=worker_env, stdout=log, stderr=subprocess.STDOUT,
        )
    worker = WorkerProcess(process, producer_for(broker_url, folder, queue), queue, log_path)
    deadline = time.monotonic() + 60
    while "ready." not in worker.log():
        if process.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise RuntimeError(f"worker did not start:\n{worker.log()}")
        time.sleep(0.2)
    return worker


@pytest.fixture
def celery_worker_factory(tmp_path, monkeypatch) -> Iterator:
    """Start real workers; each is stopped at the end of the test."""
    # Celery lets these variables override any app's configuration: the producer must use its own.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    started: list[WorkerProcess] = []

    def factory(broker_url: str, **kwargs) -> WorkerProcess:
        worker = start_worker(broker_url, tmp_path / "broker", **kwargs)
        started.append(worker)
        return worker

    yield factory
    for worker in started:
        worker.stop()
