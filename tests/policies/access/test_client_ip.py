"""My-IP detection: X-Forwarded-For only from trusted proxies; IPv4 and IPv6; shared addresses warn."""
from __future__ import annotations

import pytest

from policies.access.client_ip import client_address

PROXIES = ["10.0.0.0/8", "fd00::/8"]


@pytest.mark.parametrize(("meta", "expected"), [
    ({"REMOTE_ADDR": "198.51.100.7"}, "198.51.100.7/32"),
    ({"REMOTE_ADDR": "2001:db8::7"}, "2001:db8::7/128"),
    ({"REMOTE_ADDR": "::ffff:198.51.100.7"}, "198.51.100.7/32"),
    # an untrusted peer cannot pick its own address through the header
    ({"REMOTE_ADDR": "198.51.100.7", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}, "198.51.100.7/32"),
    # a trusted proxy: the right-most address that is not a proxy is the client
    ({"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "1.2.3.4, 203.0.113.9, 10.0.0.7"}, "203.0.113.9/32"),
    ({"REMOTE_ADDR": "fd00::5", "HTTP_X_FORWARDED_FOR": "2001:db8::42"}, "2001:db8::42/128"),
    ({"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "[2001:db8::42]:5555"}, "2001:db8::42/128"),
    ({"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "203.0.113.9:443"}, "203.0.113.9/32"),
    ({"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "not-an-ip, 10.0.0.8"}, "10.0.0.5/32"),
])
def test_it_finds_the_client_address(settings, meta, expected):
    settings.ACCESS_TRUSTED_PROXIES = PROXIES
    assert client_address(meta).prefix == expected


def test_it_reads_nothing_from_a_missing_address(settings):
    assert client_address({"REMOTE_ADDR": ""}) is None


@pytest.mark.parametrize(("address", "words"), [
    ("10.1.2.3", "private"), ("100.64.1.1", "carrier-grade NAT"), ("127.0.0.1", "local address"),
    ("198.51.100.1", "shared proxy"),
])
def test_it_warns_when_the_address_looks_shared(settings, address, words):
    settings.ACCESS_TRUSTED_PROXIES = []
    settings.ACCESS_SHARED_EGRESS_PREFIXES = ["198.51.100.0/24"]
    assert words in client_address({"REMOTE_ADDR": address}).warning


def test_a_plain_public_address_has_no_warning(settings):
    settings.ACCESS_SHARED_EGRESS_PREFIXES = []
    assert client_address({"REMOTE_ADDR": "203.0.113.5"}).warning == ""
