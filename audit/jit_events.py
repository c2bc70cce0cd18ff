"""What a JIT event of the Activity Log says, read off its properties (and, for the NSG rules Defender writes for
JIT, off the rule's name): the VMs, ports, sources, the window's end, who asked and why.

Azure (and the emulator) writes these properties as text (``"id1,id2"``, ``"22,3389"``); lists of strings, numbers
or the request body's objects (``{"id": …, "ports": [{"number": …}]}``) are read too. Anything else reads as
missing, never as an error: the values come from Azure and may hold any text, so callers escape what they show.

Where the properties carry the call's body only as JSON text (``requestbody``, as Azure logs some calls), its keys
are read as if they were properties.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from jitportal.lib.arm import resource_name

INITIATE = "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action"
POLICY_OPERATIONS = ("Microsoft.Security/locations/jitNetworkAccessPolicies/write",
                     "Microsoft.Security/locations/jitNetworkAccessPolicies/delete")
RULE_OPERATIONS = ("Microsoft.Network/networkSecurityGroups/securityRules/write",
                   "Microsoft.Network/networkSecurityGroups/securityRules/delete")
RULE_PREFIX = "securitycenter-jitrule"
# ``SecurityCenter-JITRule_<policy hash>_<vm>_<port>`` (``_Allow`` for the rules a request opens), as
# ``policies.drift`` reads them; a VM's name may itself hold underscores.
JIT_RULE = re.compile(r"^securitycenter-jitrule_[^_]+_(?P<vm>.+)_(?P<port>\d{1,5})(?P<allow>_allow)?$", re.I)
MAX_ITEMS = 200  # of any one list read: a hostile event cannot make a page build a huge summary
MAX_TEXT = 512
MAX_BODY = 65536  # characters of a ``requestbody`` read


@dataclass(frozen=True)
class JitSummary:
    """One JIT event in the words an auditor asks in. ``vms`` are as Azure wrote them (ARM ids, or names);
    ``end`` is the window's end when it reads as a UTC time, else ``end_text`` is what Azure wrote."""

    kind: str  # "initiate", "policy" or "rule"
    vms: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    end: datetime | None = None
    end_text: str = ""
    requestor: str = ""
    justification: str = ""
    access: str = ""  # a rule's: "allow" or "deny" ("" when unknown)

    @property
    def vm_names(self) -> tuple[str, ...]:
        return tuple(vm_name(vm) for vm in self.vms)


def vm_name(vm: str) -> str:
    """A VM's name: the last segment of its ARM id (a name stays as it is)."""
    return resource_name(vm) or vm


def utc_moment(value: object) -> datetime | None:
    """``value`` as an aware time in UTC when it is ISO 8601 text with an offset, else ``None`` (also when it is
    one no UTC time can hold, such as ``9999-12-31T23:59:59-01:00``)."""
    if not isinstance(value, str):
        return None
    try:
        moment = parse_datetime(value.strip())
        return moment.astimezone(UTC) if moment is not None and moment.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None


def _items(value: Any) -> list:
    if isinstance(value, str):
        return value.split(",")[:MAX_ITEMS]
    if isinstance(value, list):
        return value[:MAX_ITEMS]
    return [value] if isinstance(value, (int, dict)) and not isinstance(value, bool) else []


def _texts(value: Any, key: str = "", *, numbers: bool = False) -> list[str]:
    """The distinct texts in ``value`` (comma-separated text, or a list), taking ``key`` of objects; whole numbers
    too when ``numbers`` (ports)."""
    found: list[str] = []
    for item in _items(value):
        if isinstance(item, dict) and key:
            item = item.get(key)
        if not isinstance(item, str) and not (numbers and isinstance(item, int) and not isinstance(item, bool)):
            continue
        text = str(item).strip()[:MAX_TEXT]
        if text and text not in found:
            found.append(text)
    return found


def _nested(vms: Any, key: str) -> list:
    """``key`` of each port of each VM object (the request body's shape)."""
    return [port.get(key) for vm in _items(vms) if isinstance(vm, dict)
            for port in _items(vm.get("ports")) if isinstance(port, dict)]


def _first(*candidates: list[str]) -> tuple[str, ...]:
    return tuple(next((c for c in candidates if c), []))


def _end(properties: dict, vms: Any) -> tuple[datetime | None, str]:
    written = _texts(properties.get("endTimeUtc")) or _texts(_nested(vms, "endTimeUtc"))
    moments = [m for m in map(utc_moment, written) if m is not None]
    if moments:
        return max(moments), ""
    return None, written[0] if written else ""


def _text(value: Any) -> str:
    return value.strip()[:MAX_TEXT * 4] if isinstance(value, str) else ""


def _initiate_or_policy(kind: str, properties: dict, vm_ids: list[str]) -> JitSummary | None:
    vms = properties.get("virtualMachines")
    names = _first(_texts(vms, "id"), vm_ids)
    if not names:
        return None
    ports = _first(_texts(properties.get("ports"), "number", numbers=True),
                   _texts(_nested(vms, "number"), numbers=True))
    if kind != "initiate":
        return JitSummary(kind, vms=names, ports=ports)
    end, end_text = _end(properties, vms)
    sources = _first(_texts(properties.get("sourceAddressPrefixes")), _texts(properties.get("sourceAddressPrefix")),
                     _texts(_nested(vms, "allowedSourceAddressPrefix")),
                     [t for p in _nested(vms, "allowedSourceAddressPrefixes") for t in _texts(p)])
    return JitSummary(kind, vms=names, ports=ports, sources=sources, end=end, end_text=end_text,
                      requestor=_text(properties.get("requestor")),
                      justification=_text(properties.get("justification")))


def _rule(resource_id: str, properties: dict, vm_ids: list[str]) -> JitSummary | None:
    name = vm_name(resource_id)
    if not name.lower().startswith(RULE_PREFIX):
        return None
    match = JIT_RULE.match(name)
    vms = (match["vm"],) if match else tuple(vm_ids[:1]) if len(vm_ids) == 1 else ()
    ports = (match["port"],) if match else _first(_texts(properties.get("destinationPortRange"), numbers=True))
    if not vms and not ports:
        return None
    access = _text(properties.get("access")).lower()
    if access not in ("allow", "deny"):
        access = ("allow" if match["allow"] else "deny") if match else ""
    sources = _first(_texts(properties.get("sourceAddressPrefix")), _texts(properties.get("sourceAddressPrefixes")))
    return JitSummary("rule", vms=vms, ports=ports, sources=sources if access != "deny" else (), access=access)


def _with_body(properties: dict) -> dict:
    """``properties`` with the keys of a JSON ``requestbody`` among them added (those it has itself win)."""
    text = next((v for k, v in properties.items() if str(k).lower() == "requestbody"), None)
    if not isinstance(text, str) or len(text) > MAX_BODY:
        return properties
    try:
        body = json.loads(text)
    except ValueError:
        return properties
    if isinstance(body, dict) and isinstance(body.get("properties"), dict):
        body = {**body["properties"], **{k: v for k, v in body.items() if k != "properties"}}
    return {**body, **properties} if isinstance(body, dict) else properties


def jit_summary(event) -> JitSummary | None:
    """The summary of an ``ActivityLogEvent`` that is a JIT initiate, a JIT policy write or delete, or a write or
    delete of an NSG rule Defender named for JIT; ``None`` for other events, or when nothing names a VM or port."""
    properties = _with_body(event.properties) if isinstance(event.properties, dict) else {}
    vm_ids = event.vm_id_list
    if event.operation_name == INITIATE:
        return _initiate_or_policy("initiate", properties, vm_ids)
    if event.operation_name in POLICY_OPERATIONS:
        return _initiate_or_policy("policy", properties, vm_ids)
    if event.operation_name in RULE_OPERATIONS:
        return _rule(event.resource_id, properties, vm_ids)
    return None
