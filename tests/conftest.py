"""Suite-wide fixtures: personas, the browser and (once present) the emulator plugins."""
import os

import pytest
from django.db import connection

# Playwright's sync API runs an event loop in the test thread; the ORM must still be usable there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytest_plugins = ["tests.plugins.browser", "tests.plugins.workers", "tests.plugins.emulator", "tests.plugins.personas",
                  "tests.plugins.webhooks", "tests.plugins.script_prefix"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests first: the browser's, and those starting workers or emulators. With the Makefile's
    ``--maxschedchunk 1`` each test process takes the next test when it is free, so a parallel run does not end
    with one process in a long test while the others wait. The browser's tests are transactional and so now run
    before plain database tests, the reverse of pytest-django's order: sound while no migration seeds rows (the
    flush after a transactional test would take them from the tests after it)."""
    items.sort(key=lambda item: not (item.get_closest_marker("browser") or item.get_closest_marker("slow")))


@pytest.fixture
def breakglass_admin(django_user_model):
    """The local superuser: the only account that signs in with a password."""
    return django_user_model.objects.create_superuser("admin", "admin@example.invalid", "correct-horse-1")


@pytest.fixture
def analyze(db):
    """Gather the planner's statistics (``analyze()``), as a long-running database has them. On SQLite they are
    removed again afterwards: the connection keeps them past the test's rollback, and a later test's plans would
    follow statistics of rows it never made."""
    def run() -> None:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

    yield run
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")
            if cursor.fetchone():
                cursor.execute("DELETE FROM sqlite_stat1")
            cursor.execute("ANALYZE sqlite_master")  # reloads the (now empty) statistics
