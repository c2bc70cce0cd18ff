"""Workers keep their database connection between tasks, and drop it as Django would between requests."""
import time
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.db import connection

from jitportal.celery import _database_hygiene, app

pytestmark = pytest.mark.django_db(transaction=True)


def _task(eager: bool = False):
    return SimpleNamespace(request=SimpleNamespace(is_eager=eager))


def test_celery_is_told_not_to_close_the_connection_after_every_task():
    assert app.conf.get("CELERY_DB_REUSE_MAX") == settings.CELERY_DB_REUSE_MAX >= 100_000


def test_a_healthy_connection_is_kept_between_tasks():
    connection.ensure_connection()
    connection.close_at = time.monotonic() + 60  # within its max age (the test process's may be older than that)
    before = connection.connection
    _database_hygiene(sender=_task())
    assert connection.connection is before


def test_a_connection_past_its_max_age_is_closed_before_the_next_task():
    connection.ensure_connection()
    connection.close_at = time.monotonic() - 1
    _database_hygiene(sender=_task())
    assert connection.connection is None


def test_an_eager_task_never_closes_its_callers_connection():
    connection.ensure_connection()
    before = connection.connection
    connection.close_at = time.monotonic() - 1
    _database_hygiene(sender=_task(eager=True))
    assert connection.connection is before
