"""Azure's JIT JSON shapes ↔ the portal's services, shared by the REST API and the operators' commands.

The shapes are those of ``Set-AzJitNetworkAccessPolicy`` / ``Start-AzJitNetworkAccessPolicy`` and the
``jitNetworkAccessPolicies`` REST API (2020-01-01): a policy's ``virtualMachines`` are ``{"id", "ports"}``
with ports ``{"number", "protocol", "allowedSourceAddressPrefix(es)", "maxRequestAccessDuration"}``; an
initiate body's ports carry ``endTimeUtc`` and the source instead. Readers raise
``django.core.exceptions.ValidationError`` with one message per problem, naming the VM and port.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.roles import JIT_INITIATE
from jitportal.lib.times import utc_iso

from . import rules, selectors, shapes
from .access.connection import details_for
from .access.ends import port_end
from .access.services import Selection
from .access.validation import ANY_WORDS, SCHEDULE_MIN_LEAD, parse_source
from .models import VirtualMachine

POLICY_PORT_FIELDS = {"number", "protocol", "allowedSourceAddressPrefix", "allowedSourceAddressPrefixes",
                      "maxRequestAccessDuration"}
REQUEST_PORT_FIELDS = {"number", "endTimeUtc", "allowedSourceAddressPrefix", "allowedSourceAddressPrefixes"}
_POLICY_ID_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Security/locations/"
    r"(?P<location>[^/]+)/jitNetworkAccessPolicies/(?P<name>[^/]+)/?$", re.IGNORECASE)
APPROVAL_FIELDS = (("approval_state", "approvalState"), ("approvals_required", "approvalsRequired"),
                   ("second_level_approvals", "secondLevelApprovals"), ("approval_expires_at", "approvalExpiresAt"),
                   ("approved_at", "approvedAt"), ("rule_name", "ruleName"))


# --- small helpers -----------------------------------------------------------------------------------------------
def iso(moment: datetime | None) -> str | None:
    """A time in the JSON this module writes: UTC to the microsecond at a fixed width (``utc_iso``, as the API
    writes it: ``2020-07-15T17:00:00.000000Z``), or None."""
    return utc_iso(moment)


def said(moment: datetime) -> str:
    """A time in a message: UTC with a Z, its fraction only where it has one (``2020-07-15T17:00:00Z``)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _port_label(port: object, index: int) -> str:
    number = port.get("number") if isinstance(port, dict) else None
    return f"Port {number}" if isinstance(number, int | str) and str(number).strip() else f"Port entry {index + 1}"


def _text_list(value: object, field: str) -> list[str]:
    """``value`` as a list of non-empty strings (a string is a list of one), else a ValidationError."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise ValidationError(f"'{field}' must be a string or a list of strings.", code="invalid")
    return [item.strip() for item in items if item.strip()]


def _sources(port: dict) -> list[str]:
    return (_text_list(port.get("allowedSourceAddressPrefixes"), "allowedSourceAddressPrefixes")
            + _text_list(port.get("allowedSourceAddressPrefix"), "allowedSourceAddressPrefix"))


def _unknown(port: dict, allowed: set[str]) -> None:
    extra = sorted(set(port) - allowed)
    if extra:
        raise ValidationError(f"unknown field{'s' if len(extra) > 1 else ''} "
                              f"{', '.join(repr(e) for e in extra)} (expected {', '.join(sorted(allowed))}).",
                              code="unknown_field")


# --- policy ports ------------------------------------------------------------------------------------------------
def policy_ports_from_azure(ports: object, *, vm_label: str = "") -> list[rules.PortRule]:
    """A VM's policy ports in Azure's shape → validated ``PortRule``s (``rules.validate_ports``).

    ``allowedSourceAddressPrefix`` may be a string or a list (``@("*")`` in PowerShell); a missing source is
    an error (say ``"*"`` for Any); ``maxRequestAccessDuration`` defaults to ``PT3H``; ``protocol`` to ``*``.
    """
    prefix = f"{vm_label}: " if vm_label else ""
    if not isinstance(ports, list):
        raise ValidationError(f"{prefix}'ports' must be a list of port objects.", code="invalid")
    if not ports:
        raise ValidationError(f"{prefix}add at least one port, or remove JIT from the VM.", code="no_ports")
    problems: list[str] = []
    parsed: list[rules.PortRule] = []
    seen: set[int] = set()
    for index, port in enumerate(ports):
        where = prefix + _port_label(port, index)
        if not isinstance(port, dict):
            problems.append(f"{where}: must be an object with 'number', 'protocol', 'allowedSourceAddressPrefix' "
                            f"and 'maxRequestAccessDuration'.")
            continue
        try:
            _unknown(port, POLICY_PORT_FIELDS)
            if "number" not in port:
                raise ValidationError("'number' is required.", code="port")
            number = rules.validate_port_number(port["number"])
            if number in seen:
                raise ValidationError("listed twice.", code="duplicate_port")
            seen.add(number)
            protocol = port.get("protocol", "*")
            if not isinstance(protocol, str):
                raise ValidationError("Choose TCP, UDP or Any.", code="protocol")
            protocol = rules.validate_protocol(protocol)
            sources = _sources(port)
            if not sources:
                raise ValidationError("give 'allowedSourceAddressPrefix' (\"*\" for any source, or IP addresses "
                                      "and CIDR ranges).", code="sources")
            duration = port.get("maxRequestAccessDuration", rules.DEFAULT_DURATION)
            if not isinstance(duration, str):
                raise ValidationError(f"'{duration}' is not an ISO 8601 duration such as PT3H.", code="duration")
            parsed.append(rules.PortRule(number, protocol, rules.parse_sources(sources),
                                         rules.validate_duration(duration)))
        except ValidationError as exc:
            problems.extend(f"{where}: {m}" for m in exc.messages)
    if problems:
        raise ValidationError(list(dict.fromkeys(problems)))
    return rules.validate_ports(parsed)


def policy_ports_to_azure(port_rules: Iterable[rules.PortRule]) -> list[dict]:
    """``PortRule``s → Azure's port objects (one source as ``allowedSourceAddressPrefix``, several as ``…es``)."""
    return [rule.to_azure() for rule in port_rules]


def vm_jit_to_azure(vm: VirtualMachine) -> dict:
    """One VM's entry of a policy, ``{"id", "ports"}``, from the inventory's stored ports."""
    return {"id": vm.arm_id, "ports": policy_ports_to_azure(rules.PortRule.from_azure(p) for p in vm.ports or [])}


@dataclass(frozen=True)
class VmPorts:
    """One entry of a policy's ``virtualMachines`` as given: the VM's ARM id and its validated ports."""

    vm_id: str
    ports: list[rules.PortRule]


def policy_vms_from_azure(entries: object) -> list[VmPorts]:
    """A policy's ``virtualMachines`` (``$JitPolicyArr``) → one ``VmPorts`` per VM; every problem reported."""
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list) or not entries:
        raise ValidationError("Give the VMs as a non-empty list of {\"id\": ..., \"ports\": [...]} objects.",
                              code="invalid")
    problems: list[str] = []
    parsed: list[VmPorts] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        vm_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(vm_id, str) or not vm_id.strip():
            problems.append(f"VM entry {index + 1}: must be an object with 'id' (the VM's resource id) and 'ports'.")
            continue
        vm_id = vm_id.strip()
        if vm_id.lower() in seen:
            problems.append(f"VM {vm_id} is listed twice.")
            continue
        seen.add(vm_id.lower())
        extra = sorted(set(entry) - {"id", "ports", "publicIpAddress"})
        if extra:
            problems.append(f"VM {shapes.last_segment(vm_id)}: unknown field(s) {', '.join(map(repr, extra))} "
                            f"(expected 'id' and 'ports').")
            continue
        try:
            parsed.append(VmPorts(vm_id, policy_ports_from_azure(entry.get("ports"),
                                                                 vm_label=f"VM {shapes.last_segment(vm_id)}")))
        except ValidationError as exc:
            problems.extend(exc.messages)
    if problems:
        raise ValidationError(list(dict.fromkeys(problems)))
    return parsed


def vms_by_arm_id(user, vm_ids: Iterable[str], action: str, *, verb: str = "manage") -> dict[str, VirtualMachine]:
    """VM ARM id (lower case) → the inventory's VM, for VMs ``user`` may perform ``action`` on.

    An unknown VM and one out of the user's scope get the same message (nothing leaks about other scopes).
    """
    wanted = {vm_id.strip().lower(): vm_id.strip() for vm_id in vm_ids}
    found = {vm.resource_id: vm for vm in selectors.vm_list(user, action).filter(resource_id__in=list(wanted))}
    missing = [given for key, given in wanted.items() if key not in found]
    if missing:
        raise ValidationError([f"No VM {given} that you may {verb} (check the id, or sync the subscription)."
                               for given in missing], code="unknown_vm")
    return found


@dataclass(frozen=True)
class PolicyPlace:
    """Where a JIT policy lives: subscription (lower case), resource group, location (lower case), name."""

    subscription_id: str
    resource_group: str
    location: str
    name: str

    @property
    def id(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/providers/"
                f"Microsoft.Security/locations/{self.location}/jitNetworkAccessPolicies/{self.name}")

    def holds(self, vm: VirtualMachine) -> bool:
        """Whether ``vm`` is in this policy (as the inventory last saw it)."""
        return bool(vm.policy_name) and vm.policy_id.lower() == self.id.lower()


def parse_policy_id(text: str) -> PolicyPlace:
    """A JIT policy's ARM id (``…/providers/Microsoft.Security/locations/{l}/jitNetworkAccessPolicies/{n}``)."""
    match = _POLICY_ID_RE.match((text or "").strip())
    if not match:
        raise ValidationError(
            f"'{text}' is not a JIT policy id such as /subscriptions/{{id}}/resourceGroups/{{group}}/providers/"
            f"Microsoft.Security/locations/{{location}}/jitNetworkAccessPolicies/default.", code="policy_id")
    return PolicyPlace(match["sub"].lower(), match["rg"], match["location"].lower(), match["name"])


def policy_to_azure(*, subscription_id: str, resource_group: str, location: str, name: str,
                    vms: Iterable[VirtualMachine], provisioning_state: str = "") -> dict:
    """A JIT policy as Azure shapes it, from the inventory's VMs of that policy."""
    policy_id = (f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.Security/"
                 f"locations/{location}/jitNetworkAccessPolicies/{name}")
    properties: dict = {"virtualMachines": [vm_jit_to_azure(vm) for vm in vms]}
    if provisioning_state:
        properties["provisioningState"] = provisioning_state
    return {"id": policy_id, "name": name, "type": "Microsoft.Security/locations/jitNetworkAccessPolicies",
            "location": location, "kind": "Basic", "properties": properties}


# --- access requests -----------------------------------------------------------------------------------------------
@dataclass
class RequestInput:
    """What ``policies.access.services.request_create`` needs, read from an initiate-like body."""

    selections: list[Selection]
    source_prefix: str
    duration: timedelta
    justification: str
    start_at: datetime | None = None


def normalize_source(value: str) -> str:
    """A source as the request form stores it: ``*``, a bare IP as /32 or /128, a CIDR as its network."""
    text = (value or "").strip()
    if text.lower() in ANY_WORDS:
        return "*"
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return parse_source("range", text)
    return parse_source("ip", text)


def _time(value: object, field: str) -> datetime:
    """``value`` as a UTC time; one whose offset puts it outside the calendar in UTC is refused like bad text."""
    moment = shapes.parse_time(value) if isinstance(value, str | datetime) else None
    try:
        moment = moment.astimezone(UTC) if moment is not None else None
    except OverflowError:
        moment = None
    if moment is None:
        raise ValidationError(f"'{field}' must be a UTC time such as 2020-07-15T17:00:00Z.", code="invalid_time")
    return moment


def request_from_azure(body: object, *, user, now: datetime | None = None,
                       default_duration: timedelta | None = None) -> RequestInput:
    """A ``Start-AzJitNetworkAccessPolicy``-like body → ``RequestInput`` for ``request_create``.

    The portal opens every port of a request for one source and one window, so every port must give the
    same ``allowedSourceAddressPrefix`` and ``endTimeUtc`` (``default_duration`` from the start stands in
    when no port gives ``endTimeUtc``). VMs are looked up by ARM id among those ``user`` may request access to.
    """
    now = now or timezone.now()
    if not isinstance(body, dict):
        raise ValidationError("The request must be an object with 'virtualMachines'.", code="invalid")
    entries = body.get("virtualMachines")
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list) or not entries:
        raise ValidationError("Give 'virtualMachines': a non-empty list of {\"id\": ..., \"ports\": [...]}.",
                              code="invalid")
    problems: list[str] = []
    start = None
    if body.get("startTimeUtc") not in (None, ""):
        try:
            start = _time(body["startTimeUtc"], "startTimeUtc")
        except ValidationError as exc:
            problems.extend(exc.messages)
    justification = body.get("justification", "")
    if not isinstance(justification, str):
        problems.append("'justification' must be text.")
        justification = ""
    wanted: list[tuple[str, list[int]]] = []
    sources: dict[str, list[str]] = {}
    ends: dict[datetime, list[str]] = {}
    no_end: list[str] = []
    seen_vms: set[str] = set()
    for index, entry in enumerate(entries):
        vm_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(vm_id, str) or not vm_id.strip():
            problems.append(f"VM entry {index + 1}: must be an object with 'id' (the VM's resource id) and 'ports'.")
            continue
        vm_id = vm_id.strip()
        vm_name = shapes.last_segment(vm_id)
        if vm_id.lower() in seen_vms:
            problems.append(f"VM {vm_id} is listed twice.")
            continue
        seen_vms.add(vm_id.lower())
        ports = entry.get("ports")
        if not isinstance(ports, list) or not ports:
            problems.append(f"VM {vm_name}: 'ports' must be a non-empty list of ports.")
            continue
        numbers: list[int] = []
        for port_index, port in enumerate(ports):
            where = f"VM {vm_name}, {_port_label(port, port_index).lower()}"
            if not isinstance(port, dict):
                problems.append(f"{where}: must be an object with 'number', 'endTimeUtc' and "
                                f"'allowedSourceAddressPrefix'.")
                continue
            try:
                _unknown(port, REQUEST_PORT_FIELDS)
                if "number" not in port:
                    raise ValidationError("'number' is required.", code="port")
                number = rules.validate_port_number(port["number"])
                if number in numbers:
                    raise ValidationError("listed twice.", code="duplicate_port")
                numbers.append(number)
                label = f"{vm_name}:{number}"
                given = _sources(port)
                if not given:
                    raise ValidationError("give 'allowedSourceAddressPrefix', the IP address or range you connect "
                                          "from.", code="source")
                if len(given) > 1:
                    raise ValidationError("give one source address or range (a request opens for one source).",
                                          code="source")
                sources.setdefault(normalize_source(given[0]), []).append(label)
                if port.get("endTimeUtc") not in (None, ""):
                    ends.setdefault(_time(port["endTimeUtc"], "endTimeUtc"), []).append(label)
                elif default_duration is None:
                    raise ValidationError("'endTimeUtc' is required (when the port should close).", code="end")
                else:
                    no_end.append(label)
            except ValidationError as exc:
                problems.extend(f"{where}: {m}" for m in exc.messages)
        wanted.append((vm_id, numbers))
    if len(sources) > 1:
        problems.append("A request opens for one source: give every port the same 'allowedSourceAddressPrefix' "
                        "(found " + "; ".join(f"{s} for {', '.join(where)}" for s, where in sources.items()) + ").")
    if len(ends) > 1 or (ends and no_end):
        found = [said(e) for e in sorted(ends)] + (["none"] if no_end else [])
        problems.append("A request opens for one time window: give every port the same 'endTimeUtc' (found "
                        + ", ".join(found) + ").")
    # A start already past, or too close to schedule, is "now" (a record read back from Azure carries its start).
    scheduled = start if start is not None and start > now + SCHEDULE_MIN_LEAD else None
    begin = scheduled or now
    end = next(iter(ends)) if ends else (begin + default_duration if default_duration is not None else None)
    if end is not None and end <= begin:
        problems.append(f"'endTimeUtc' {said(end)} is not after {'the start ' + said(begin) if scheduled else 'now'}"
                        f": ask for a window that has not ended.")
    vms: dict[str, VirtualMachine] = {}
    if wanted:
        try:
            vms = vms_by_arm_id(user, [vm_id for vm_id, _ in wanted], JIT_INITIATE, verb="request access to")
        except ValidationError as exc:
            problems.extend(exc.messages)
    if problems or end is None or not sources:
        raise ValidationError(list(dict.fromkeys(problems)) or ["Give at least one port."])
    selections = [Selection(vms[vm_id.lower()], tuple(numbers)) for vm_id, numbers in wanted]
    return RequestInput(selections=selections, source_prefix=next(iter(sources)), duration=end - begin,
                        justification=justification.strip(), start_at=scheduled)


def request_to_json(request, *, connection: bool = True) -> dict:
    """An access request with its VMs, ports and approvals, in Azure's words where Azure has them.

    ``startTimeUtc`` is the scheduled start, or when the first port opened (None before that); ``endTimeUtc`` the
    end once it is known (``ends.port_end``; the request's: None until one of its ports' is), and ``duration`` the
    window's length asked for (ISO 8601; the request's: its longest port's), which holds from the start; ``status``
    is the portal's port state, ``azureStatus``/``statusReason`` Azure's. The connection details are the
    requester's: without ``connection`` (anyone else reading it) each port's ``connection`` and ``mappedPort`` are
    null and the VMs' address is left out.
    """
    vm_rows = list(request.vms.all())
    ports_by_vm: dict[int, list] = {}
    opened: list[datetime] = []
    ends: dict[int, datetime | None] = {}
    for port in request.ports.all():
        ports_by_vm.setdefault(port.request_vm_id, []).append(port)
        ends[port.pk] = port_end(request, port)
        if port.opened_at is not None:
            opened.append(port.opened_at)
    longest = max((port.duration_seconds for ports in ports_by_vm.values() for port in ports), default=0)
    body: dict = {
        "id": request.pk,
        "kind": request.kind,
        "state": request.state,
        "requester": request.requester_name,
        "justification": request.justification,
        "correlationId": str(request.correlation_id),
        "allowedSourceAddressPrefix": request.source_prefix,
        "createdAt": iso(request.created_at),
        "startTimeUtc": iso(request.scheduled_start or (min(opened) if opened else None)),
        "endTimeUtc": iso(request.end_at) if any(end is not None for end in ends.values()) else None,
        "duration": rules.format_duration(timedelta(seconds=longest)),
        "closedAt": iso(request.closed_at),
    }
    if request.extends_id:
        body["extends"] = request.extends_id
    for attribute, key in APPROVAL_FIELDS:
        if hasattr(request, attribute):
            value = getattr(request, attribute)
            body[key] = iso(value) if isinstance(value, datetime) else value
    if hasattr(request, "approvals"):
        body["approvals"] = [{"approver": a.approver_name, "level": a.level, "decision": a.decision,
                              "comment": a.comment, "at": iso(a.created_at)} for a in request.approvals.all()]
    body["virtualMachines"] = []
    for row in vm_rows:
        ports = sorted(ports_by_vm.get(row.pk, []), key=lambda p: p.number)
        entry: dict = {"id": row.vm_arm_id, "name": row.vm_name, "ports": []}
        for port in ports:
            item = {"number": port.number, "protocol": port.protocol or "*",
                    "allowedSourceAddressPrefix": port.source_prefix, "endTimeUtc": iso(ends[port.pk]),
                    "duration": rules.format_duration(timedelta(seconds=port.duration_seconds)),
                    "status": port.state, "azureStatus": port.azure_status or None,
                    "statusReason": port.azure_status_reason or None,
                    "mappedPort": port.mapped_port if connection else None,
                    "error": port.last_error or None}
            if not connection:
                item["connection"] = None
            elif port.state == "open":
                details = details_for(address=row.address, address_kind=row.address_kind, number=port.number,
                                      mapped_port=port.mapped_port)
                if details is not None:
                    item["connection"] = {"host": details.host, "port": details.port, "via": details.via,
                                          "endpoint": details.endpoint}
            entry["ports"].append(item)
        if any(p.state == "open" for p in ports) and row.address and connection:
            entry["address"] = row.address
            entry["addressKind"] = row.address_kind
        body["virtualMachines"].append(entry)
    return body
