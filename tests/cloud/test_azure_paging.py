"""Lists follow nextLink: every item comes back, and calls grow with pages, not with items."""
from __future__ import annotations

import math

import pytest

from tests.cloud.conftest import arm_calls


@pytest.mark.parametrize(("method", "count"), [
    ("list_virtual_machines", 38),
    ("list_network_interfaces", 38),
    ("list_jit_policies", 3),
    ("list_classic_virtual_machines", 3),
    ("list_security_policies", 7),
])
def test_a_small_page_size_still_returns_every_item_in_one_call_per_page(gateway, fresh_emulator, method, count):
    fresh_emulator.set_page_size(5)

    items = list(getattr(gateway, method)())

    assert len(items) == count
    assert len({item.id.lower() for item in items}) == count
    assert len(arm_calls(fresh_emulator)) == math.ceil(count / 5)
    assert gateway.calls_made == math.ceil(count / 5)


def test_calls_grow_with_pages_not_with_items(gateway, fresh_emulator):
    fresh_emulator.set_page_size(12)
    assert len(list(gateway.list_virtual_machines())) == 38
    with_12 = len(arm_calls(fresh_emulator))
    fresh_emulator.clear_calls()

    fresh_emulator.set_page_size(38)
    assert len(list(gateway.list_virtual_machines())) == 38

    assert (with_12, len(arm_calls(fresh_emulator))) == (4, 1)


def test_a_list_is_lazy_and_reads_pages_only_as_they_are_consumed(gateway, fresh_emulator):
    fresh_emulator.set_page_size(10)
    vms = gateway.list_virtual_machines()
    assert arm_calls(fresh_emulator) == []

    first = [next(vms) for _ in range(10)]

    assert len(first) == 10
    assert len(arm_calls(fresh_emulator)) == 1
