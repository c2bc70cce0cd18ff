"""What a request may ask for: ports in the VM's policy, a window within each port's maximum, an allowed source.

Every function raises ``django.core.exceptions.ValidationError`` with a message the requester can act on.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError

from jitportal.lib.times import zoned_text
from policies.rules import ANY_SOURCE, PortRule, duration_label, parse_duration

from .models import PortState

ANY = "*"
ANY_WORDS = {"*", "any", "internet"}
MIN_WINDOW = timedelta(minutes=5)
DURATION_STEPS = (timedelta(minutes=15), timedelta(minutes=30), timedelta(hours=1), timedelta(hours=2),
                  timedelta(hours=3), timedelta(hours=4), timedelta(hours=6), timedelta(hours=8),
                  timedelta(hours=12), timedelta(hours=24))


# A scheduled start must lie at least this far ahead; the API and the CLI read an earlier one as "now".
SCHEDULE_MIN_LEAD = timedelta(minutes=1)


def policy_port(vm_ports: list[dict], number: int, vm_name: str = "") -> PortRule:
    """The VM's policy rule for port ``number``, or a ``port_not_in_policy`` error naming the VM (``vm_name``)."""
    for port in vm_ports or []:
        if int(port.get("number", 0)) == int(number):
            return PortRule.from_azure(port)
    raise ValidationError(f"Port {number} is not in the JIT policy of {vm_name or 'this VM'}.",
                          code="port_not_in_policy")


def port_maximum(rule: PortRule, vm_name: str = "") -> timedelta:
    """The port's maximum request time; a ``window_unreadable`` error naming the port when Azure holds one the
    portal cannot read (``PT1.5H``, set in Azure itself): no window can be checked against it."""
    try:
        return parse_duration(rule.max_duration)
    except ValidationError:
        raise ValidationError(
            f"Port {rule.number} of {vm_name or 'this VM'} cannot be requested: Azure holds its maximum request time "
            f"'{rule.max_duration}', which the portal cannot read. A JIT policy admin can set it again in the VM's "
            "JIT settings.", code="window_unreadable") from None


def readable_maximum(rule: PortRule) -> timedelta | None:
    """``port_maximum``, or ``None`` when the portal cannot read it."""
    try:
        return port_maximum(rule)
    except ValidationError:
        return None


def validate_window(duration: timedelta, rule: PortRule, vm_name: str) -> timedelta:
    """``duration`` if it lies between 5 minutes and the port's maximum request time."""
    if duration < MIN_WINDOW:
        raise ValidationError("Ask for at least 5 minutes.", code="window_too_short")
    if duration > port_maximum(rule, vm_name):
        raise ValidationError(
            f"Port {rule.number} of {vm_name} may be opened for at most {duration_label(rule.max_duration)}.",
            code="window_too_long")
    return duration


def duration_choices(maximum: timedelta) -> list[tuple[int, str]]:
    """Steps (seconds, label) up to ``maximum``, the maximum itself included."""
    steps = [step for step in DURATION_STEPS if step <= maximum]
    if maximum not in steps and maximum >= MIN_WINDOW:
        steps.append(maximum)
    return [(int(step.total_seconds()), window_label(step)) for step in sorted(steps)]


@dataclass(frozen=True)
class OpenPort:
    """A port of a request open now: its VM, number and end, and the longest its policy lets it open now (``None``
    when the portal cannot read that or the port left the policy: ``request_create`` refuses it, saying why)."""

    vm_name: str
    number: int
    until: datetime
    maximum: timedelta | None

    def window(self, duration: timedelta) -> timedelta:
        """What an extension of ``duration`` gives this port: ``duration``, or its maximum where that is shorter."""
        return min(duration, self.maximum) if self.maximum is not None else duration

    def ends_later(self, duration: timedelta, now: datetime) -> bool:
        """Whether an extension of ``duration`` from ``now`` ends this port's access later than it ends now."""
        return self.window(duration) > self.until - now  # now + duration overflows for a huge duration


def open_ports(vm_rows, now: datetime) -> list[OpenPort]:
    """The ports of a request's VM rows (``AccessRequestVm``, its VM and ports prefetched) open now: not past their
    end (expired in Azure, though the reconciler may not have marked them so yet)."""
    found = []
    for row in vm_rows:
        for port in row.ports.all():
            if port.state == PortState.OPEN and port.end_at > now:
                try:
                    maximum = readable_maximum(policy_port(row.vm.ports, port.number))
                except ValidationError:  # no longer in the policy
                    maximum = None
                found.append(OpenPort(row.vm_name, port.number, port.end_at, maximum))
    return found


def ends_later(duration: timedelta, *, ports: list[OpenPort], now: datetime) -> bool:
    """Whether an extension of ``duration`` from ``now`` ends every port of ``ports`` (``open_ports``) later than it
    ends now (any does when none is open)."""
    return all(port.ends_later(duration, now) for port in ports)


def validate_extension(duration: timedelta, *, ports: list[OpenPort], now: datetime) -> timedelta:
    """``duration`` if an extension of it ends every open port (``open_ports``) later than now: it replaces their
    access, so one ending sooner would shorten it. A port whose maximum was lowered since it opened, below the time
    left on it, is named, with when it can be extended."""
    until = max((port.until for port in ports), default=None)
    if until is not None and not duration > until - now:
        raise ValidationError(f"Your access is open until {zoned_text(until)}; an extension of "
                              f"{window_label(duration)} would end sooner: choose a time range that ends later (or "
                              "Close now to end it early).", code="extension_not_later")
    refusals = []
    for port in ports:
        if not port.ends_later(duration, now):  # longer than what is left, but its maximum is shorter
            window = port.window(duration)
            refusals.append(ValidationError(
                f"Port {port.number} of {port.vm_name} is open until {zoned_text(port.until)} and may now be opened "
                f"for at most {window_label(window)}: this extension would end it sooner, at "
                f"{zoned_text(now + window)}. Extend after {zoned_text(port.until - window)}, when less than that "
                "is left on it.", code="extension_not_later"))
    if refusals:
        raise ValidationError(refusals)
    return duration


def window_label(step: timedelta) -> str:
    """A window in words: 2 hours, 1 hour 1 minute, 15 minutes (under a minute: 0 minutes)."""
    hours, rest = divmod(int(step.total_seconds()), 3600)
    minutes = rest // 60
    parts = [f"{hours} hour{'s' if hours != 1 else ''}" if hours else "",
             f"{minutes} minute{'s' if minutes != 1 else ''}" if minutes or not hours else ""]
    return " ".join(p for p in parts if p)


def parse_source(kind: str, value: str, *, check_width: bool = True) -> str:
    """The source prefix for ``kind`` ``ip`` (one address → /32 or /128), ``range`` (a CIDR) or ``any``. A range
    wider than ``ACCESS_WIDEST_PREFIX_V4``/``_V6`` is refused, named as typed, unless ``check_width`` is false (an
    access rule's ranges, which open nothing)."""
    text = (value or "").strip()
    if kind == "any":
        return ANY
    if kind in ("ip", "range") and not text:
        raise ValidationError("Enter the IP address you connect from." if kind == "ip" else
                              "Enter an IP range such as 203.0.113.0/24.", code="missing_source")
    if kind in ("ip", "range") and "%" in text:  # an IPv6 zone names one of the requester's own interfaces
        raise ValidationError(f"'{_shown(text)}' names a network interface: give the address without the interface "
                              "(the part from %).", code="malformed_source")
    if kind == "ip":
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise ValidationError(f"'{_shown(text)}' is not a valid IP address (such as 203.0.113.7 or "
                                  "2001:db8::7).", code="malformed_source") from None
        address = getattr(address, "ipv4_mapped", None) or address  # ::ffff:a.b.c.d is IPv4 traffic
        return f"{address}/{address.max_prefixlen}"
    if kind == "range":  # or one address (as /32 or /128): the API's and the CLI's sources are read as ranges
        if text.lower() in ANY_WORDS:
            return ANY
        try:
            network = _ipv4_of_mapped(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValidationError(f"'{_shown(text)}' is not a valid IP address or range (such as 203.0.113.7 or "
                                  "203.0.113.0/24).", code="malformed_source") from None
        widest = settings.ACCESS_WIDEST_PREFIX_V4 if network.version == 4 else settings.ACCESS_WIDEST_PREFIX_V6
        if check_width and network.prefixlen < widest:  # named as typed, not as its network (2001::/16)
            raise ValidationError(f"'{_shown(text)}' is too wide: ranges must be /{widest} or narrower.",
                                  code="source_too_wide")
        return str(network)
    raise ValidationError("Choose where you connect from.", code="malformed_source")


def _shown(text: str) -> str:
    """What was typed, cut to a length a message can carry (no address or range is longer)."""
    return text if len(text) <= 64 else text[:64] + "…"


def host_bits_note(typed: str, prefix: str) -> str:
    """What to tell the requester when the range they ``typed`` had host bits set (``203.0.113.7/24``), which
    ``parse_source`` stores as its network ``prefix`` (``203.0.113.0/24``): that the whole range opens, and how to
    ask for one address instead; ``""`` otherwise."""
    text = (typed or "").strip()
    if "/" not in text or prefix == ANY:
        return ""
    try:
        ipaddress.ip_network(text)
    except ValueError:
        network = ipaddress.ip_network(prefix)
        return (f"{text} names an address inside the range {prefix}: the request is for that whole range "
                f"({network.num_addresses:,} addresses, {network[0]} to {network[-1]}). For one address only, "
                "ask again with “A specific IP”.")
    return ""


IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")


def _ipv4_of_mapped(network: ipaddress.IPv4Network | ipaddress.IPv6Network
                    ) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An IPv4-mapped IPv6 range (``::ffff:203.0.113.0/120``) as the IPv4 range it stands for; others as they are."""
    if network.version == 6 and network.prefixlen >= IPV4_MAPPED.prefixlen and network.subnet_of(IPV4_MAPPED):
        return ipaddress.ip_network((network.network_address.ipv4_mapped, network.prefixlen - IPV4_MAPPED.prefixlen))
    return network


def source_kind(prefix: str) -> str:
    """How the request form would have named a source given as a prefix (API, CLI): ``any``, ``ip`` (one
    address) or ``range``."""
    if prefix == ANY_SOURCE:
        return "any"
    return "range" if "/" in prefix and not prefix.endswith(("/32", "/128")) else "ip"


def source_allowed(allowed: str, prefix: str) -> bool:
    """Whether the allowed source ``allowed`` (a CIDR or *) covers ``prefix``."""
    if allowed.strip().lower() in ANY_WORDS:
        return True
    if prefix == ANY:
        return False
    try:
        outer = ipaddress.ip_network(allowed.strip(), strict=False)
        inner = ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        return False
    return inner.version == outer.version and inner.subnet_of(outer)


def validate_source(prefix: str, rule: PortRule, vm_name: str) -> str:
    """``prefix`` if the port's allowed sources cover it and it is not wider than the portal accepts."""
    if prefix == ANY:
        if not any(s.strip().lower() in ANY_WORDS for s in rule.sources):
            raise ValidationError(
                f"Port {rule.number} of {vm_name} does not allow any source (*); allowed: "
                f"{', '.join(rule.sources)}.", code="source_too_wide")
        return prefix
    network = ipaddress.ip_network(prefix, strict=False)
    widest = settings.ACCESS_WIDEST_PREFIX_V4 if network.version == 4 else settings.ACCESS_WIDEST_PREFIX_V6
    if network.prefixlen < widest:
        raise ValidationError(f"{prefix} is too wide: ranges must be /{widest} or narrower.",
                              code="source_too_wide")
    if not any(source_allowed(allowed, prefix) for allowed in rule.sources):
        raise ValidationError(
            f"Source {prefix} is not allowed for port {rule.number} of {vm_name} (allowed: "
            f"{', '.join(rule.sources)}).", code="source_not_allowed")
    return prefix
