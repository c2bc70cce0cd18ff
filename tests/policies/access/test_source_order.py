"""The Requests list's sort key for sources (``policies.access.source_order``)."""
import importlib

import pytest

from policies.access.source_order import KEY_LENGTH, source_sort_key

SOURCES_IN_ORDER = ["0.0.0.0/0", "10.0.0.0/8", "10.0.0.0/24", "10.0.0.9/32", "198.51.100.0/24", "203.0.113.7/32",
                    "203.0.113.69/32", "2001:db8::/32", "2001:db8::1/128", "fd00::1/128", "*"]


def test_sources_sort_by_their_numbers_ipv4_before_ipv6_and_any_last():
    keys = [source_sort_key(source) for source in SOURCES_IN_ORDER]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert all(len(key) <= KEY_LENGTH for key in keys)


@pytest.mark.parametrize("source, same_as", [
    ("203.0.113.7", "203.0.113.7/32"), ("203.0.113.5/24", "203.0.113.0/24"), (" 203.0.113.0/24 ", "203.0.113.0/24"),
    ("2001:DB8::1", "2001:db8::1/128")])
def test_an_address_is_its_own_network_and_host_bits_are_cleared(source, same_as):
    assert source_sort_key(source) == source_sort_key(same_as)


def test_the_migration_fills_existing_requests_with_the_same_key():
    migration = importlib.import_module("policies.migrations.0016_access_request_source_numeric_sort")
    for source in [*SOURCES_IN_ORDER, "", "not an address " * 5]:
        assert migration.sort_key(source) == source_sort_key(source)
