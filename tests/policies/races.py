"""Helpers for tests of races on PostgreSQL: a service run in a second thread (a connection of its own) while the
test's thread holds a transaction at the point where the race bites."""
from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections

POSTGRESQL_ONLY = pytest.mark.skipif(connection.vendor != "postgresql",
                                     reason="row locks need PostgreSQL (SQLite's writers run one at a time)")


class Other(threading.Thread):
    """Run ``func`` on a connection of its own; ``result`` or ``error`` after ``join``."""

    def __init__(self, func, *args, **kwargs) -> None:
        super().__init__(daemon=True)
        self.func, self.args, self.kwargs = func, args, kwargs
        self.result = self.error = self.pid = None

    def run(self) -> None:
        try:
            if connection.vendor == "postgresql":  # this thread's connection, whose lock waits the test watches
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    self.pid = cursor.fetchone()[0]
            self.result = self.func(*self.args, **self.kwargs)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            self.error = exc
        finally:
            connections.close_all()


def wait_until_blocked(other: Other, seconds: float = 10) -> None:
    """Return once ``other`` waits for a lock this test's connection holds (or has finished). Only its own waits
    count: the server's other waits include those of the tests other processes run at the same time."""
    deadline = time.monotonic() + seconds
    while other.is_alive() and time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = %s", [other.pid])
            if cursor.fetchone()[0]:
                return
        time.sleep(0.02)
