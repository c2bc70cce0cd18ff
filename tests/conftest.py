"""Suite-wide fixtures: personas, the browser and (once present) the emulator plugins."""
import os

import pytest

# Playwright's sync API runs an event loop in the test thread; the ORM must still be usable there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytest_plugins = ["tests.plugins.browser", "tests.plugins.workers", "tests.plugins.emulator", "tests.plugins.personas",
                  "tests.plugins.webhooks"]


@pytest.fixture
def breakglass_admin(django_user_model):
    """The local superuser: the only account that signs in with a password."""
    return django_user_model.objects.create_superuser("admin", "admin@example.invalid", "correct-horse-1")
