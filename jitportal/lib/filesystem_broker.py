"""The embedded broker: kombu's filesystem transport, with every message written whole before a worker can see it.

kombu's own ``_put`` creates the message file under its final name and then writes it, so a worker polling the
folder can take the file while it is still empty: the message is lost and the worker dies on the JSON error
(the demo's ``notifier`` did, stopping every process of ``make run`` with it). Here the message is written under a
name no queue reads (``….msg.part``) and renamed into place, which is atomic on one filesystem.

A process that dies between the write and the rename leaves its ``.part`` file behind, which no reader ever takes.
A worker's poll removes those older than ``PARTIAL_MAX_AGE_SECONDS``, looking at most every
``PARTIAL_SWEEP_INTERVAL_SECONDS``. Every writer, in any process, holds a shared lock on the folder's ``.part.lock``
from before it creates its file until after the rename; the sweep runs only while it holds that lock exclusively
(it skips its turn when it cannot have it at once), so a file being written is never removed, however old its time
stamp. A process that dies releases its lock with it.
"""
from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from time import monotonic
from typing import BinaryIO

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

try:
    from fcntl import LOCK_NB
except ImportError:  # Windows: kombu's lock takes win32's flags
    LOCK_NB = filesystem.LOCK_NB

PARTIAL_SUFFIX = ".part"
# Held shared by writers, exclusively by a sweep. No queue reads it (queues read '<stamp>.<queue>.msg').
LOCK_NAME = ".part.lock"
# A ``.part`` file untouched this long is a dead writer's (a message is written in one call, in milliseconds).
PARTIAL_MAX_AGE_SECONDS = 10 * 60
# How often a polling channel looks for them (its first poll looks at once). Transport options
# ``partial_max_age`` and ``partial_sweep_interval`` override both.
PARTIAL_SWEEP_INTERVAL_SECONDS = 60


def _lock_file(folder: str) -> BinaryIO:
    """``folder``'s ``.part.lock``, opened (created if missing, never truncated); closing it releases its lock."""
    return open(os.path.join(folder, LOCK_NAME), "ab")


@contextlib.contextmanager
def _writing(folder: str) -> Iterator[None]:
    """Hold ``folder``'s lock shared while a message is written into it (waiting for a sweep to end)."""
    with _lock_file(folder) as f:
        filesystem.lock(f, filesystem.LOCK_SH)
        yield


def remove_stale_partials(folder: str, max_age: float) -> list[str]:
    """Remove the ``.part`` files in ``folder`` not modified for ``max_age`` seconds; return their names. While a
    writer is at work nothing is removed (the next sweep looks again)."""
    with _lock_file(folder) as f:
        try:
            filesystem.lock(f, filesystem.LOCK_EX | LOCK_NB)
        except BlockingIOError:
            return []
        removed = []
        now = time.time()
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            with contextlib.suppress(FileNotFoundError):
                if name.endswith(PARTIAL_SUFFIX) and now - os.stat(path).st_mtime >= max_age:
                    os.remove(path)
                    removed.append(name)
        return removed


class Channel(filesystem.Channel):
    """A filesystem channel whose messages appear in the queue folder complete or not at all."""

    _next_sweep = 0.0

    def _put(self, queue, payload, **kwargs) -> None:
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL_SUFFIX  # readers take '<stamp>.<queue>.msg' only
        try:
            with _writing(self.data_folder_out):  # no sweep until it is renamed
                with open(partial, "wb") as f:
                    f.write(str_to_bytes(dumps(payload)))
                os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.remove(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue):
        self._sweep_partials()
        return super()._get(queue)

    def _sweep_partials(self) -> None:
        """Remove dead writers' ``.part`` files, at most once per sweep interval."""
        now = monotonic()
        if now < self._next_sweep:
            return
        options = self.transport_options
        self._next_sweep = now + options.get("partial_sweep_interval", PARTIAL_SWEEP_INTERVAL_SECONDS)
        with contextlib.suppress(OSError):  # the folder is gone: kombu's own listing says so next
            remove_stale_partials(self.data_folder_out, options.get("partial_max_age", PARTIAL_MAX_AGE_SECONDS))


class Transport(filesystem.Transport):
    Channel = Channel


def install() -> None:
    """Make ``filesystem://`` broker URLs use this transport, in every process that imports the Celery app."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
