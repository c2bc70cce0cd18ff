"""The JIT policy rules forms and services share (``policies.rules``), one by one."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from policies import rules


@pytest.mark.parametrize("value", ["0", "65536", "-1", "ssh", ""])
def test_it_refuses_a_port_outside_1_to_65535(value):
    with pytest.raises(ValidationError, match="between 1 and 65535"):
        rules.validate_port_number(value)


def test_it_accepts_the_edges_of_the_port_range():
    assert rules.validate_port_number("1") == 1
    assert rules.validate_port_number(65535) == 65535


def test_it_refuses_a_port_listed_twice_for_one_vm():
    with pytest.raises(ValidationError, match="Port 22 is listed twice"):
        rules.validate_ports([rules.PortRule(22), rules.PortRule(22, "TCP")])


def test_it_refuses_an_empty_port_list():
    with pytest.raises(ValidationError, match="at least one port"):
        rules.validate_ports([])


@pytest.mark.parametrize(("text", "expected"), [
    ("*", ("*",)), ("any", ("*",)), ("Any, any", ("*",)),
    ("203.0.113.7", ("203.0.113.7",)),
    ("203.0.113.0/24, 198.51.100.0/24", ("203.0.113.0/24", "198.51.100.0/24")),
    ("2001:db8::1\n2001:db8::/32", ("2001:db8::1", "2001:db8::/32")),
    ("10.1.2.3/16", ("10.1.0.0/16",)),
])
def test_it_parses_any_and_ip_addresses_and_cidrs_of_both_families(text, expected):
    assert rules.parse_sources(text) == expected


@pytest.mark.parametrize("text", ["10.0.0.256", "10.0.0.0/33", "2001:db8::/129", "example.com", "*, 10.0.0.1",
                                  "fe80::1%eth0", "10.0.0.1, fe80::1%12/128"])
def test_it_refuses_sources_that_do_not_parse(text):
    with pytest.raises(ValidationError):
        rules.parse_sources(text)


@pytest.mark.parametrize("value", ["", "   ", " , , ", ";\n,", [], ["", " "]])
def test_it_refuses_sources_that_name_none_rather_than_read_them_as_any(value):
    with pytest.raises(ValidationError, match=r"Enter one or more IP addresses or ranges, or \* for any source\."):
        rules.parse_sources(value)


@pytest.mark.parametrize(("value", "iso"), [("PT5M", "PT5M"), ("PT3H", "PT3H"), ("PT90M", "PT1H30M"),
                                            ("PT24H", "PT24H"), ("P1D", "PT24H"), (timedelta(hours=2), "PT2H")])
def test_it_stores_durations_between_5_minutes_and_24_hours_as_iso_8601(value, iso):
    assert rules.validate_duration(value) == iso


@pytest.mark.parametrize("value", ["PT4M", "PT24H1M", "P2D", "PT0S", "3 hours", "PT"])
def test_it_refuses_durations_outside_5_minutes_to_24_hours(value):
    with pytest.raises(ValidationError):
        rules.validate_duration(value)


@pytest.mark.parametrize(("value", "message"), [
    ("PT\uff12H", "is not an ISO 8601 duration"),  # full-width digits, which \\d matched: refused as a port typed so is
    ("PT\u0663H", "is not an ISO 8601 duration"),  # Arabic-Indic
    ("PT" + "9" * 5000 + "S", "is far longer than any time the portal accepts"),  # past int()'s 4,300 digits
])
def test_it_reads_durations_written_with_the_digits_0_to_9_only(value, message):
    with pytest.raises(ValidationError, match=message):
        rules.parse_duration(value)


def test_policy_name_and_vm_name_together_may_not_exceed_56_characters():
    rules.validate_name_length("default", "v" * 49)
    with pytest.raises(ValidationError, match="are 57 characters together; Azure allows at most 56"):
        rules.validate_name_length("default", "v" * 50)


@pytest.mark.parametrize("protocol", ["TCP", "udp", "*", "Any"])
def test_it_accepts_tcp_udp_and_any(protocol):
    assert rules.validate_protocol(protocol) in ("TCP", "UDP", "*")


def test_it_refuses_other_protocols():
    with pytest.raises(ValidationError, match="TCP, UDP or Any"):
        rules.validate_protocol("ICMP")


def test_defaults_follow_the_os_and_the_recommended_ports():
    assert [p.number for p in rules.default_ports("Windows")] == [3389]
    assert [p.number for p in rules.default_ports("Linux")] == [22]
    assert [p.number for p in rules.recommended_ports()] == [22, 3389, 5985, 5986]
    assert {(p.protocol, p.sources, p.max_duration) for p in rules.recommended_ports()} == {("*", ("*",), "PT3H")}


def test_a_port_round_trips_azures_two_source_forms():
    single = {"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}
    many = {"number": 22, "protocol": "TCP", "allowedSourceAddressPrefixes": ["10.0.0.0/8", "2001:db8::/32"],
            "maxRequestAccessDuration": "PT1H"}
    assert rules.PortRule.from_azure(single).to_azure() == single
    assert rules.PortRule.from_azure(many).to_azure() == many


def test_a_port_takes_as_many_sources_as_one_network_security_group_and_no_more():
    many = [f"10.{i // 250}.{i % 250}.0/24" for i in range(rules.MAX_SOURCES)]
    assert rules.parse_sources(", ".join(many)) == tuple(many)
    with pytest.raises(ValidationError, match="at most 4,000 source addresses or ranges"):
        rules.parse_sources([*many, "192.0.2.1"])
