"""Policies tests: the demo emulator, the suite's personas, and the demo subscriptions registered against it.

Tasks run in the test process: tests call the task functions (or the services they wrap) directly and
synchronously, unless a test says it runs a real worker.
"""
from __future__ import annotations

import pytest

from tests.plugins.emulator import emulator, emulator_factory, fresh_emulator  # noqa: F401 - fixtures, used by name
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

__all__ = ["PROD"]


@pytest.fixture
def prod(db, fresh_emulator):  # noqa: F811 - the fixture imported above
    """Contoso Production (Defender P2) registered against the fresh demo emulator, synced once."""
    return register_and_sync(fresh_emulator, PROD, "Contoso Production")
