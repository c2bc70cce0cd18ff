"""JIT policy rules that forms and services share: ports, protocols, source prefixes, durations, names.

Every function raises ``django.core.exceptions.ValidationError`` with a message a user can act on.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError

from jitportal.lib import basis

RECOMMENDED_PORTS = (22, 3389, 5985, 5986)
PORT_LABELS = {22: "SSH", 3389: "RDP", 5985: "WinRM HTTP", 5986: "WinRM HTTPS"}  # what a well-known port is for
PROTOCOLS = ("TCP", "UDP", "*")
PROTOCOL_LABELS = {"TCP": "TCP", "UDP": "UDP", "*": "Any"}
ANY_SOURCE = "*"
# What a port whose allowed sources name none (an empty box, or only separators) is told: Any is typed as ``*``.
SOURCES_REQUIRED = "Enter one or more IP addresses or ranges, or * for any source."
# The most source addresses and ranges one port takes: as many as Azure takes in one network security group.
MAX_SOURCES = 4000
# The longest text of them a form takes: each at its longest (a full IPv6 CIDR, 43 characters) and a separator.
MAX_SOURCES_TEXT = MAX_SOURCES * 45
DEFAULT_DURATION = "PT3H"
MIN_DURATION = timedelta(minutes=5)
MAX_DURATION = timedelta(hours=24)
MAX_POLICY_AND_VM_NAME = 56
DEFAULT_POLICY_NAME = "default"
# The digits 0 to 9 only (``\d`` also matches other scripts' digits, which the forms refuse: ``jitportal.lib.numbers``).
_DURATION_RE = re.compile(
    r"^P(?:(?P<d>[0-9]+)D)?(?:T(?:(?P<h>[0-9]+)H)?(?:(?P<m>[0-9]+)M)?(?:(?P<s>[0-9]+)S)?)?$")


@dataclass(frozen=True)
class PortRule:
    """One JIT port of one VM: what Azure stores as a policy port."""

    number: int
    protocol: str = "*"
    sources: tuple[str, ...] = (ANY_SOURCE,)
    max_duration: str = DEFAULT_DURATION

    @property
    def max_duration_label(self) -> str:
        """The maximum request time in words ("3 h", "1 h 30 min")."""
        return duration_label(self.max_duration)

    def to_azure(self) -> dict:
        """The port in Azure's shape: one prefix as ``allowedSourceAddressPrefix``, several as ``…Prefixes``."""
        body: dict = {"number": self.number, "protocol": self.protocol, "maxRequestAccessDuration": self.max_duration}
        if len(self.sources) == 1:
            body["allowedSourceAddressPrefix"] = self.sources[0]
        else:
            body["allowedSourceAddressPrefixes"] = list(self.sources)
        return body

    @classmethod
    def from_azure(cls, port: dict) -> PortRule:
        sources = port.get("allowedSourceAddressPrefixes") or []
        if not sources and port.get("allowedSourceAddressPrefix"):
            sources = [port["allowedSourceAddressPrefix"]]
        return cls(int(port["number"]), str(port.get("protocol") or "*").upper(), tuple(sources or [ANY_SOURCE]),
                   str(port.get("maxRequestAccessDuration") or DEFAULT_DURATION))


def validate_port_number(value: object) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValidationError("Enter a port number between 1 and 65535.", code="port") from None
    if not 1 <= number <= 65535:
        raise ValidationError("Enter a port number between 1 and 65535.", code="port")
    return number


def validate_protocol(value: str) -> str:
    text = (value or "").strip().upper()
    text = "*" if text in ("ANY", "") else text
    if text not in PROTOCOLS:
        raise ValidationError("Choose TCP, UDP or Any.", code="protocol")
    return text


def too_many_sources(count: int) -> str:
    """What a port naming ``count`` (more than ``MAX_SOURCES``) sources is told, on the page and by the API."""
    return (f"Give at most {MAX_SOURCES:,} source addresses or ranges per port (this has {count:,}): a wider "
            f"range can cover several.")


def parse_sources(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``*`` (Any), or IPv4/IPv6 addresses and CIDR prefixes, comma/space/newline separated. Nothing (an empty
    box, or separators only) is refused: a port opens to every address only when ``*`` says so."""
    items = re.split(r"[\s,;]+", value.strip()) if isinstance(value, str) else [str(v).strip() for v in value]
    items = [item for item in items if item]
    if not items:
        raise ValidationError(SOURCES_REQUIRED, code="sources_required")
    if items == [ANY_SOURCE] or all(item.lower() == "any" for item in items):
        return (ANY_SOURCE,)
    if len(items) > MAX_SOURCES:
        raise ValidationError(too_many_sources(len(items)), code="sources")
    cleaned: dict[str, None] = {}  # in the order given, each once
    for item in items:
        if item in (ANY_SOURCE,) or item.lower() == "any":
            raise ValidationError("Any (*) cannot be combined with addresses.", code="sources")
        if "%" in item:  # an IPv6 zone names an interface of one host, not a source Azure can match
            raise ValidationError(f"'{item}' names a network interface: give the address without the interface "
                                  "(the part from %).", code="sources")
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValidationError(f"'{item}' is not an IP address or CIDR prefix.", code="sources") from None
        cleaned[str(network) if "/" in item else str(network.network_address)] = None
    return tuple(cleaned)


def parse_duration(value: str) -> timedelta:
    """An ISO 8601 duration such as ``PT3H`` or ``PT90M``."""
    match = _DURATION_RE.match((value or "").strip().upper())
    if not match or not any(match.groupdict().values()):
        raise ValidationError(f"'{value}' is not an ISO 8601 duration such as PT3H.", code="duration")
    try:  # int() refuses more than 4,300 digits (ValueError), timedelta more than 999,999,999 days
        parts = {k: int(v or 0) for k, v in match.groupdict().items()}
        return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])
    except (OverflowError, ValueError):
        raise ValidationError(f"'{value}' is far longer than any time the portal accepts.", code="duration") from None


def format_duration(delta: timedelta) -> str:
    """The shortest ISO 8601 form Azure accepts (``PT3H``, ``PT2H30M``, ``PT45M``)."""
    total = int(delta.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{seconds}S" if seconds
                                                                                       else "")
    return text if text != "PT" else "PT0S"


def validate_duration(value: str | timedelta) -> str:
    delta = value if isinstance(value, timedelta) else parse_duration(value)
    if not MIN_DURATION <= delta <= MAX_DURATION:
        raise ValidationError("The maximum request time must be between 5 minutes and 24 hours.", code="duration")
    return format_duration(delta)


def duration_label(value: str) -> str:
    try:
        delta = parse_duration(value)
    except ValidationError:
        return value
    hours, rest = divmod(int(delta.total_seconds()), 3600)
    minutes = rest // 60
    return " ".join(p for p in (f"{hours} h" if hours else "", f"{minutes} min" if minutes else "") if p) or value


_POLICY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


def validate_policy_name(name: str) -> str:
    """A JIT policy name as a path segment of its ARM id: letters, digits, ``_ . -``, starting alphanumeric."""
    name = (name or "").strip()
    if not _POLICY_NAME.match(name):
        raise ValidationError(f"'{name}' is not a valid JIT policy name: use letters, digits, '_', '.' and '-', "
                              "starting with a letter or digit.", code="policy_name")
    return name


def name_fits(policy_name: str, vm_name: str) -> bool:
    """Whether a VM named ``vm_name`` may be in a JIT policy named ``policy_name`` (Azure: both together at most
    ``MAX_POLICY_AND_VM_NAME`` characters)."""
    return len(policy_name) + len(vm_name) <= MAX_POLICY_AND_VM_NAME


def name_length_message(policy_name: str, vm_name: str, *, group: str = "", location: str = "",
                        subject: str = "") -> str:
    """Why the VM ``vm_name`` cannot go in the policy ``policy_name`` of ``group`` and ``location``, and what to do
    (``subject``: how the VM's name is called, default "<vm_name>'s name")."""
    room = MAX_POLICY_AND_VM_NAME - len(vm_name)
    subject = subject or f"{vm_name}'s name"
    said = (f"{subject} ({len(vm_name)} characters) and the JIT policy name "
            f"'{policy_name}' are {len(policy_name) + len(vm_name)} characters together; Azure allows at most "
            f"{MAX_POLICY_AND_VM_NAME}.")
    if room < 1:
        return (f"{said} No JIT policy name is short enough for it: JIT can be enabled only on a VM whose name has at "
                f"most {MAX_POLICY_AND_VM_NAME - 1} characters.")
    where = f" of resource group {group}, location {location}," if group else " of its resource group and location,"
    return (f"{said} To enable JIT on it, put it in a JIT policy{where} with a policy name of at most {room} "
            f"character{'s' if room != 1 else ''} (the command jit_policy set --name, or Set-AzJitNetworkAccessPolicy "
            "-Name in Azure): once such a policy exists there, the portal puts the VM in it.")


def validate_name_length(policy_name: str, vm_name: str, *, group: str = "", location: str = "") -> None:
    if not name_fits(policy_name, vm_name):
        raise ValidationError(name_length_message(policy_name, vm_name, group=group, location=location),
                              code="name_length")


def validate_ports(ports: list[PortRule]) -> list[PortRule]:
    """A VM's whole port list: at least one port, each valid, no number twice."""
    if not ports:
        raise ValidationError("Add at least one port, or remove JIT from the VM.", code="no_ports")
    seen: set[int] = set()
    cleaned = []
    for port in ports:
        number = validate_port_number(port.number)
        if number in seen:
            raise ValidationError(f"Port {number} is listed twice.", code="duplicate_port")
        seen.add(number)
        cleaned.append(PortRule(number, validate_protocol(port.protocol), parse_sources(port.sources),
                                validate_duration(port.max_duration)))
    return cleaned


def default_ports(os_type: str) -> list[PortRule]:
    """Enabling from a VM's page: Windows RDP 3389, Linux SSH 22; 3 hours; source Any."""
    number = 3389 if (os_type or "").lower() == "windows" else 22
    return [PortRule(number, "*", (ANY_SOURCE,), DEFAULT_DURATION)]


def recommended_ports() -> list[PortRule]:
    """Enabling selected VMs: 22, 3389, 5985, 5986; 3 hours; source Any."""
    return [PortRule(number, "*", (ANY_SOURCE,), DEFAULT_DURATION) for number in RECOMMENDED_PORTS]


def normalized(ports: list[dict]) -> list[dict]:
    """Ports in a canonical form, for comparing Azure's policy with the portal's last applied one."""
    rules = sorted((PortRule.from_azure(p) for p in ports), key=lambda r: r.number)
    return [{"number": r.number, "protocol": r.protocol, "sources": sorted(r.sources),
             "max": _canonical_duration(r.max_duration)} for r in rules]


def _canonical_duration(value: str) -> str:
    """``value`` in one spelling (PT180M → PT3H); as it is when the portal cannot read it (PT1.5H, PT)."""
    try:
        return format_duration(parse_duration(value))
    except ValidationError:
        return value


def ports_basis(ports: list[dict] | None) -> str:
    """A short digest of what a VM's ports mean (``normalized``: in any order, a maximum however Azure spells it):
    the basis a form that shows them carries (``jitportal.lib.basis``), to tell on its return whether they changed
    since."""
    return basis.digest(normalized(ports or []))
