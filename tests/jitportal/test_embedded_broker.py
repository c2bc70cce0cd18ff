"""The embedded broker never hands a worker a message that is still being written, and clears what a writer that
died before its rename left behind."""
import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from queue import Empty

from jitportal.celery import app
from jitportal.lib.broker import broker_options
from jitportal.lib.filesystem_broker import PARTIAL_MAX_AGE_SECONDS, _writing
from jitportal.lib.health import ensure_broker_folders

ROOT = Path(__file__).resolve().parents[2]


def channels(folder: Path, **options):
    """A producer's and a consumer's channel on the embedded broker in ``folder`` (extra transport options)."""
    options = broker_options("filesystem://", folder)[0] | options
    ensure_broker_folders(options)
    return (app.connection_for_write(url="filesystem://", transport_options=options).channel(),
            app.connection_for_read(url="filesystem://", transport_options=options).channel())


def poll(consumer) -> None:
    """One poll of queue ``q`` (a worker's ``_get``), whether or not it holds a message."""
    with contextlib.suppress(Empty):
        consumer._get("q")


def aged(path: Path, seconds: float, body: bytes = b'{"half": ') -> Path:
    """``path`` written with ``body`` and last modified ``seconds`` ago."""
    path.write_bytes(body)
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_a_worker_polling_while_messages_are_written_gets_each_one_whole(tmp_path):
    """A reader polling the queue folder while a producer writes takes every message complete: none empty, none
    lost (kombu's own transport made the file visible before writing it; a worker then died on the JSON)."""
    producer, consumer = channels(tmp_path)
    assert_each_message_whole(producer, consumer)


def test_a_part_file_being_written_is_never_removed_even_by_a_sweep_at_every_poll_taking_any_age(tmp_path):
    """The worker sweeps while the producer writes, with no minimum age: only the writer's lock keeps its file."""
    producer, consumer = channels(tmp_path, partial_max_age=0, partial_sweep_interval=0)
    assert_each_message_whole(producer, consumer)


def assert_each_message_whole(producer, consumer) -> None:
    body, sent = "x" * 500_000, 150
    received, errors, done = [], [], threading.Event()

    def poll() -> None:
        while True:
            finished = done.is_set()  # read before the listing: an Empty after it means every message was taken
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


def test_a_poll_removes_the_part_files_dead_writers_left_and_nothing_else(tmp_path):
    producer, consumer = channels(tmp_path)
    queue = tmp_path / "queue"
    dead = aged(queue / "1_a.q.msg.part", PARTIAL_MAX_AGE_SECONDS + 60)
    recent = aged(queue / "2_b.q.msg.part", PARTIAL_MAX_AGE_SECONDS - 60)  # its writer may still rename it
    other = aged(queue / "notes.txt", PARTIAL_MAX_AGE_SECONDS + 60)
    producer._put("q", {"body": "waiting"})
    waiting = next(queue.glob("*.q.msg"))
    aged(waiting, PARTIAL_MAX_AGE_SECONDS + 60, waiting.read_bytes())  # an old message is still delivered

    assert consumer._get("q") == {"body": "waiting"}
    assert not dead.exists() and recent.exists() and other.exists()


def test_no_part_file_is_removed_while_a_writer_is_at_work_however_old(tmp_path):
    _producer, consumer = channels(tmp_path, partial_sweep_interval=0)
    part = aged(tmp_path / "queue" / "1_a.q.msg.part", PARTIAL_MAX_AGE_SECONDS * 10)
    with _writing(str(tmp_path / "queue")):  # a writer (in any process) that has not renamed its file yet
        for _ in range(3):
            poll(consumer)
        assert part.exists()
    poll(consumer)
    assert not part.exists()  # once no writer holds the lock (one that dies releases it)


def test_the_sweep_looks_at_most_once_per_interval(tmp_path):
    _producer, consumer = channels(tmp_path)  # the default interval: the first poll sweeps, the next ones wait
    for _ in range(2):
        poll(consumer)
    dead = aged(tmp_path / "queue" / "1_a.q.msg.part", PARTIAL_MAX_AGE_SECONDS + 60)
    poll(consumer)
    assert dead.exists()


DIES_WRITING = """
import os, sys
from jitportal.lib.filesystem_broker import _writing
with _writing(sys.argv[1]):
    with open(os.path.join(sys.argv[1], "1_a.q.msg.part"), "wb") as f:
        f.write(b'{"half": ')
    os._exit(9)  # killed before its rename, its lock still held
"""


def test_a_writer_that_died_before_its_rename_leaves_a_part_file_the_next_sweep_past_its_age_removes(tmp_path):
    _producer, consumer = channels(tmp_path, partial_sweep_interval=0)
    queue = tmp_path / "queue"
    died = subprocess.run([sys.executable, "-c", DIES_WRITING, str(queue)], cwd=ROOT, capture_output=True,
                          timeout=60)
    assert died.returncode == 9, died.stderr
    part = queue / "1_a.q.msg.part"
    poll(consumer)
    assert part.exists()  # as young as a file being written
    aged(part, PARTIAL_MAX_AGE_SECONDS, part.read_bytes())
    poll(consumer)
    assert not part.exists()
