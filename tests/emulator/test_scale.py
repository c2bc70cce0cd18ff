"""The large scenario: 10,000 VMs listed quickly through paging, a million Activity Log events generated lazily."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.emulator.conftest import make_arm


@pytest.mark.slow
def test_ten_thousand_vms_and_a_million_events_are_served_quickly(emulator_factory):
    emu = emulator_factory("large", extra_args=("--large-vms", "10000", "--large-events", "1000000"))
    arm = make_arm(emu)
    started = time.monotonic()
    names = {vm.name for vm in arm.compute().virtual_machines.list_all()}
    assert len(names) == 10_000 + 38
    assert time.monotonic() - started < 30
    now = datetime.now(UTC)
    flt = (f"eventTimestamp ge '{now - timedelta(days=30):%Y-%m-%dT%H:%M:%SZ}' and "
           f"eventTimestamp le '{now:%Y-%m-%dT%H:%M:%SZ}' and resourceGroupName eq 'rg-large-042'")
    started = time.monotonic()
    pages = arm.monitor().activity_logs.list(filter=flt).by_page()
    first = list(next(pages))
    assert len(first) == 200
    assert {e.resource_group_name for e in first} == {"rg-large-042"}
    assert time.monotonic() - started < 5
    stamps = [e.event_timestamp for e in first]
    assert stamps == sorted(stamps, reverse=True)
