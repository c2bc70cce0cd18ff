"""The large scenario: its VMs listed through paging, a million Activity Log events generated lazily and filtered.

How fast the portal syncs 10,000 of its VMs is ``make bench``'s (``bench_inventory``), not a timed test's."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.emulator.conftest import make_arm


@pytest.mark.slow
def test_the_large_scenarios_vms_are_listed_through_pages_and_its_million_events_filtered(emulator_factory):
    emu = emulator_factory("large", extra_args=("--large-vms", "2000", "--large-events", "1000000"))
    arm = make_arm(emu)
    names = {vm.name for vm in arm.compute().virtual_machines.list_all()}
    assert len(names) == 2_000 + 38  # ten pages of 200 and more, each VM once
    now = datetime.now(UTC)
    flt = (f"eventTimestamp ge '{now - timedelta(days=30):%Y-%m-%dT%H:%M:%SZ}' and "
           f"eventTimestamp le '{now:%Y-%m-%dT%H:%M:%SZ}' and resourceGroupName eq 'rg-large-012'")
    pages = arm.monitor().activity_logs.list(filter=flt).by_page()
    first = list(next(pages))
    assert len(first) == 200
    assert {e.resource_group_name for e in first} == {"rg-large-012"}
    stamps = [e.event_timestamp for e in first]
    assert stamps == sorted(stamps, reverse=True)
