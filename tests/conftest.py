"""Suite-wide fixtures: personas, the browser and (once present) the emulator plugins."""
import os

import pytest
from django.db import connection

# Playwright's sync API runs an event loop in the test thread; the ORM must still be usable there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytest_plugins = ["tests.plugins.browser", "tests.plugins.workers", "tests.plugins.emulator", "tests.plugins.personas",
                  "tests.plugins.webhooks", "tests.plugins.script_prefix"]


# The modules whose tests can tell the backends apart (marked ``backends``; CI runs them on the embedded defaults
# too, the whole suite on PostgreSQL and Redis). Each names what differs between SQLite and PostgreSQL or between
# the filesystem broker and Redis:
BACKEND_MODULES = {
    # the broker: real Celery workers, publishing, its health and its settings
    "tests/jitportal/test_celery_roundtrip.py", "tests/jitportal/test_celery_connections.py",
    "tests/jitportal/test_embedded_broker.py", "tests/jitportal/test_health.py", "tests/jitportal/test_settings.py",
    "tests/policies/access/test_workers.py", "tests/policies/test_tasks.py", "tests/policies/test_cli.py",
    "tests/audit/test_tasks.py", "tests/notifications/test_tasks.py", "tests/notifications/test_guard_and_broker.py",
    # storing: sync's chunked transactions (with SQLite's pauses), ingestion's conflict-ignoring inserts, batched saves
    "tests/policies/test_sync.py", "tests/policies/test_bulk_enable_batching.py", "tests/audit/test_ingestion.py",
    "tests/audit/test_retention.py", "tests/audit/test_trail.py",
    # reading: filters with per-backend prefix matching and case folding, keyset pages, index plans
    "tests/audit/test_views.py", "tests/audit/test_pagination.py", "tests/api/test_list_pages.py",
    "tests/api/test_request_pages.py", "tests/policies/access/test_approval_queue.py",
    "tests/audit/test_admin.py",  # the admin's filters: PostgreSQL refuses NUL, SQLite long LIKE patterns
    "tests/accounts/test_access_contact.py",  # matching text inside JSON claims
    "tests/jitportal/test_admin_queries.py",  # SQLite's LIKE limits, PostgreSQL's NUL
    # row locks and concurrent writers (PostgreSQL's; SQLite's one writer at a time)
    "tests/policies/test_concurrency.py", "tests/policies/access/test_concurrency.py",
}
# Fixtures that make a test depend on the backend wherever it lives: the planner's statistics, a Celery worker.
BACKEND_FIXTURES = {"analyze", "celery_worker_factory"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests that can tell the backends apart (``backends``), then put the long tests first: the
    browser's, and those starting workers or emulators. With the Makefile's ``--maxschedchunk 1`` each test process
    takes the next test when it is free, so a parallel run does not end with one process in a long test while the
    others wait. The browser's tests are transactional and so now run
    before plain database tests, the reverse of pytest-django's order: sound while no migration seeds rows (the
    flush after a transactional test would take them from the tests after it)."""
    root = config.rootpath
    if missing := sorted(path for path in BACKEND_MODULES if not (root / path).is_file()):
        raise pytest.UsageError(f"BACKEND_MODULES names modules that are not there: {missing}")
    for item in items:
        if (item.path.relative_to(root).as_posix() in BACKEND_MODULES
                or BACKEND_FIXTURES & set(getattr(item, "fixturenames", ()))):
            item.add_marker(pytest.mark.backends)
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
