"""The embedded broker: kombu's filesystem transport, with every message written whole before a worker can see it.

kombu's own ``_put`` creates the message file under its final name and then writes it, so a worker polling the
folder can take the file while it is still empty: the message is lost and the worker dies on the JSON error
(the demo's ``notifier`` did, stopping every process of ``make run`` with it). Here the message is written under a
name no queue reads (``….msg.part``) and renamed into place, which is atomic on one filesystem.
"""
from __future__ import annotations

import contextlib
import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

PARTIAL_SUFFIX = ".part"


class Channel(filesystem.Channel):
    """A filesystem channel whose messages appear in the queue folder complete or not at all."""

    def _put(self, queue, payload, **kwargs) -> None:
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL_SUFFIX  # readers take '<stamp>.<queue>.msg' only
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.remove(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def install() -> None:
    """Make ``filesystem://`` broker URLs use this transport, in every process that imports the Celery app."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
