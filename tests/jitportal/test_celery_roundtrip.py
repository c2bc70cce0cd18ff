"""A task round-trips through a real broker and a real worker process, on both kinds of broker."""
import os

import pytest

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.mark.slow
@pytest.mark.parametrize("broker_url", ["filesystem://", REDIS_URL], ids=["embedded", "redis"])
def test_a_task_round_trips_through_the_broker_and_a_worker(celery_worker_factory, broker_url):
    worker = celery_worker_factory(broker_url)
    result = worker.producer.send_task("jitportal.ping", args=["hello"], queue=worker.queue)
    value = result.get(timeout=60)
    assert value["payload"] == "hello"
    assert value["hostname"].startswith(worker.queue)
    assert "jitportal.ping" in worker.log()
