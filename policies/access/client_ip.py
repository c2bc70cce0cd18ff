"""The requester's own IP ("my IP"): the client address, honouring ``X-Forwarded-For`` only from trusted proxies.

``REMOTE_ADDR`` is the peer that connected to us. When (and only when) that peer is one of
``ACCESS_TRUSTED_PROXIES`` the ``X-Forwarded-For`` chain is walked from the right, skipping trusted proxies;
the first address that is not one is the client. A client can prepend anything to the header, so the
left-most value is never trusted blindly.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
CGNAT = ipaddress.ip_network("100.64.0.0/10")
PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")]


@dataclass(frozen=True)
class ClientAddress:
    """The detected address, its single-address prefix (``/32`` or ``/128``) and a warning, if any."""

    address: IPAddress

    @property
    def prefix(self) -> str:
        return f"{self.address}/{self.address.max_prefixlen}"

    @property
    def warning(self) -> str:
        return shared_address_warning(self.address)

    @property
    def connect_warning(self) -> str:
        """The warning as the Connect page gives it: it has no box to type another address in, its link does."""
        return shared_address_warning(self.address, elsewhere=CONNECT_FULL_FORM)


def _networks(values) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(str(v).strip(), strict=False) for v in values if str(v).strip()]


def _parse(value: str) -> IPAddress | None:
    text = (value or "").strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1 and "." in text:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _trusted(address: IPAddress, proxies) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_address(meta: dict, trusted_proxies=None) -> ClientAddress | None:
    """The client's address from a request's ``META`` (``None`` when it cannot be read)."""
    proxies = _networks(settings.ACCESS_TRUSTED_PROXIES if trusted_proxies is None else trusted_proxies)
    peer = _parse(meta.get("REMOTE_ADDR", ""))
    if peer is None:
        return None
    if not _trusted(peer, proxies):
        return ClientAddress(peer)
    chain = [part for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    for raw in reversed(chain):
        hop = _parse(raw)
        if hop is None:
            return ClientAddress(peer)  # a malformed hop: trust nothing further left
        if not _trusted(hop, proxies):
            return ClientAddress(hop)
    return ClientAddress(peer)


def client_ip(meta: dict) -> str | None:
    """The client's address as text (``client_address``), for the audit trail and rate limits; ``None`` when it
    cannot be read."""
    found = client_address(meta)
    return str(found.address) if found else None


CONNECT_FULL_FORM = "under “Choose ports, source and time range…” below"  # the Connect page's link to the form


def shared_address_warning(address: IPAddress, *, elsewhere: str = "") -> str:
    """Why opening a port for ``address`` may not do what the requester expects (empty when it looks fine). Its
    advice to type another address says where (``elsewhere``) when the page has no box for it."""
    where = f" {elsewhere}" if elsewhere else ""
    shared = _networks(getattr(settings, "ACCESS_SHARED_EGRESS_PREFIXES", []))
    if _trusted(address, shared):
        return (f"{address} is a shared proxy or NAT address: everyone behind it can reach the port while it is "
                f"open.")
    if address.is_loopback or address.is_link_local:
        return f"{address} is a local address; Azure will see your public address instead. Enter it yourself{where}."
    if _trusted(address, [*PRIVATE, CGNAT]):
        return (f"{address} is a private or carrier-grade NAT address: your traffic likely reaches Azure from a "
                f"shared public address. Check it, or enter your proxy's range{where}.")
    return ""


def request_source_note(prefix: str) -> str:
    """What a request's page says about its source, detected as the requester's IP with a warning
    (``shared_address_warning``): the same facts about the request as made, for the requester and its approvers,
    without the form's advice to type another address (there is no box to type it in)."""
    try:
        address = ipaddress.ip_network(prefix, strict=False).network_address
    except ValueError:
        return ""
    shared = _networks(getattr(settings, "ACCESS_SHARED_EGRESS_PREFIXES", []))
    if _trusted(address, shared):
        return (f"{address} is a shared proxy or NAT address: everyone behind it can reach the port while it is "
                f"open.")
    if address.is_loopback or address.is_link_local:
        return (f"{address} is a local address (the requester's IP as the portal saw it): Azure sees their public "
                f"address instead, which this request does not let in.")
    if _trusted(address, [*PRIVATE, CGNAT]):
        return (f"{address} is a private or carrier-grade NAT address (the requester's IP as the portal saw it): "
                f"their traffic likely reaches Azure from a shared public address, which this request would not let "
                f"in.")
    return ""
