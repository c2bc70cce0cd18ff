"""The embedded broker never hands a worker a message that is still being written."""
import threading
from queue import Empty

from jitportal.celery import app
from jitportal.lib.broker import broker_options
from jitportal.lib.health import ensure_broker_folders


def test_a_worker_polling_while_messages_are_written_gets_each_one_whole(tmp_path):
    """A reader polling the queue folder while a producer writes takes every message complete: none empty, none
    lost (kombu's own transport made the file visible before writing it; a worker then died on the JSON)."""
    options, _ = broker_options("filesystem://", tmp_path)
    ensure_broker_folders(options)
    producer = app.connection_for_write(url="filesystem://", transport_options=options).channel()
    consumer = app.connection_for_read(url="filesystem://", transport_options=options).channel()
    body, sent = "x" * 500_000, 150
    received, errors, done = [], [], threading.Event()

    def poll() -> None:
        while True:
            finished = done.is_set()  # read before the get: a message written after an empty get is still taken
            try:
                received.append(consumer._get("q")["body"])
            except Empty:
                if finished:
                    return
            except ValueError as exc:  # the JSON error that stopped the worker
                errors.append(exc)

    reader = threading.Thread(target=poll)
    reader.start()
    for _ in range(sent):
        producer._put("q", {"body": body})
    done.set()
    reader.join(timeout=60)
    assert errors == [], f"{len(errors)} of {sent} messages were taken unwritten: {errors[0]!r}"
    assert len(received) == sent and set(received) == {body}
