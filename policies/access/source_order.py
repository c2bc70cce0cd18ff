"""The Requests list's order by source: IP prefixes by their numbers, not as text (``203.0.113.7`` before
``203.0.113.69``).

``source_sort_key`` turns a request's source into fixed-width text that sorts, as text in any collation, in that
order: the network address as 32 lower-case hex digits (an IPv4 network as its IPv4-mapped IPv6 address, so IPv4
comes before the global IPv6 ranges), then the prefix length in IPv6 terms as three digits; anything that is not
an address or a network (``*``, Any) after every address, by its text. The request stores it
(``AccessRequest.source_sort``) and the list walks its (key, id) index, as for its other sorts.
"""
from __future__ import annotations

import ipaddress

KEY_LENGTH = 40
NOT_AN_ADDRESS = "z"  # after every hex digit, in any collation


def source_sort_key(prefix: str) -> str:
    """The text that sorts ``prefix`` among the others by its numbers (at most ``KEY_LENGTH`` characters)."""
    try:
        network = ipaddress.ip_network(prefix.strip(), strict=False)
    except ValueError:
        return (NOT_AN_ADDRESS + prefix)[:KEY_LENGTH]
    if network.version == 4:
        mapped = (0xFFFF << 32) | int(network.network_address)
        return f"{mapped:032x}{network.prefixlen + 96:03d}"
    return f"{int(network.network_address):032x}{network.prefixlen:03d}"
