"""Access request tests: the demo emulator, personas, Production registered and synced.

Unless a test says it runs a real Celery worker, tasks run in the test process: tests call the task's
service (``request_open``, ``request_close_apply``, ``reconcile``) directly and synchronously.
"""
from __future__ import annotations

import pytest

from policies.access import gateways
from tests.plugins.emulator import emulator, emulator_factory, fresh_emulator  # noqa: F401 - fixtures
from tests.plugins.personas import (  # noqa: F401 - fixtures, used by name
    entra_page,
    entra_settings,
    outsider,
    persona_mappings,
    policy_admin,
    reader,
    requester,
)
from tests.policies.factories import PROD, register_and_sync


@pytest.fixture(autouse=True)
def fresh_gateways():
    """Each test builds its gateways afresh (emulators come and go between tests)."""
    gateways.reset()
    yield
    gateways.reset()


@pytest.fixture
def prod(db, fresh_emulator):  # noqa: F811 - the fixture imported above
    """Contoso Production (Defender P2) registered against the fresh demo emulator, synced once."""
    return register_and_sync(fresh_emulator, PROD, "Contoso Production")
