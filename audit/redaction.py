"""What an auditor sees of an event that names VMs outside their audit scope.

An auditor scoped to one VM (or one resource group) sees the Activity Log events that name their VM, but such an
event may list other VMs too: a JIT policy write lists every VM of the policy with its ports, an initiate every VM of
the call, and NSG rule names and Azure's messages name VMs. Those entries are withheld from what is shown (pages,
API, CSV): VM entries of lists, VM ids and names in text, and a port list that cannot be told apart by VM. The
events keep a count of what was withheld (``withheld``). The viewer's scopes are worked out once (``AuditScope``);
nothing here queries the database. An access request's text (its justification, Azure's messages, its approvers'
comments) is withheld the same way from whoever does not see all of its VMs (``text_redactor``).
"""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from accounts import authz
from accounts.scopes import scope_contains
from policies.change_notes import ERROR_CODE

from .ingestion import is_vm_id, vm_ids_in
from .jit_events import JIT_RULE, MAX_BODY, RULE_PREFIX, vm_name

WITHHELD = "[withheld: outside your audit scope]"
# Around a VM's name, what would make it part of a longer name (a name does not end with a period: "web-02." is it)
_BEFORE = r"(?<![A-Za-z0-9.\-])"
_AFTER = r"(?![A-Za-z0-9\-]|\.[A-Za-z0-9])"
# A name of letters alone ("web", "test") reads as a word in text: it is that VM only where text names a VM with it,
# as a segment of a path (".../virtualMachines/web"), in quotes, after "VM" or "virtual machine", or as a whole item of
# a comma-separated list; an underscore joins it to a longer name there ("unit_test").
_WORD_NAME = re.compile(r"[A-Za-z]+")
_WORD_AFTER = r"(?![A-Za-z0-9_\-]|\.[A-Za-z0-9])"
# (The separator's spaces: ``(?:\s*[:=#])?\s*``, not ``\s*[:=#]?\s*``, whose two runs split a long run of spaces in
# every way before failing, quadratic in its length.)
_VM_NOUN = r"(?P<noun>\b(?:virtual[\s_-]*machines?|vms?)(?:\s*[:=#])?\s*)"
_PORT_KEYS = frozenset({"ports"})


@dataclass(frozen=True)
class AuditScope:
    """The scopes at which a user may perform an audit action, worked out once per request."""

    scopes: tuple[str, ...]

    @classmethod
    def of(cls, user, action: str) -> AuditScope:
        return cls(tuple(authz.permitted_scopes(user, action)))

    def covers(self, resource_id: str) -> bool:
        return any(scope_contains(scope, resource_id) for scope in self.scopes)

    def split(self, vm_ids: Iterable[str]) -> tuple[list[str], list[str]]:
        """(the VMs of ``vm_ids`` in scope, those outside it), without repeats."""
        inside: list[str] = []
        outside: list[str] = []
        for vm in dict.fromkeys(vm.lower().rstrip("/") for vm in vm_ids if vm):
            (inside if authz.EVERYWHERE in self.scopes or self.covers(vm) else outside).append(vm)
        return inside, outside


class _Redactor:
    """Withholds the VMs ``outside`` from JSON values and text (each withheld part reads ``marker``); the names of
    ``inside`` VMs stay."""

    def __init__(self, inside: list[str], outside: list[str], resource_id: str = "", *,
                 marker: str = WITHHELD) -> None:
        self.marker = marker
        self.outside = set(outside)
        kept_names = {vm_name(vm).lower() for vm in inside}
        self.names = {vm_name(vm).lower() for vm in outside} - kept_names
        words = sorted(self.outside | {n for n in self.names if not _WORD_NAME.fullmatch(n)}, key=len, reverse=True)
        plain = sorted(self.names - set(words), key=len, reverse=True)
        contexts = [rf"{_BEFORE}(?:{'|'.join(map(re.escape, words))}){_AFTER}"] if words else []
        if plain:
            alternatives = "|".join(map(re.escape, plain))
            contexts += [rf"(?<=/)(?:{alternatives}){_WORD_AFTER}",
                         rf"(?<=['\"`\u2018\u201c])(?:{alternatives})(?=['\"`\u2019\u201d])",
                         rf"(?:^|(?<=,))\s*(?:{alternatives})\s*(?=,|$)",
                         rf"{_VM_NOUN}(?:{alternatives}){_WORD_AFTER}"]
        self.pattern = re.compile("|".join(contexts) or r"(?!)", re.I)
        names = "|".join(map(re.escape, sorted(self.names, key=len, reverse=True)))
        # The NSG rule Defender wrote for JIT names its VM and port (``jit_events.JIT_RULE``): both are withheld.
        self.rules = re.compile(rf"({RULE_PREFIX}_[^_\s/\"',]+_)(?:{names})_\d{{1,5}}(?:_allow)?{_AFTER}",
                                re.I) if names else None
        rule = JIT_RULE.match(vm_name(resource_id)) if resource_id else None
        self.rule_out = bool(rule and rule["vm"].lower() in self.names)  # the event is that rule: its ports too

    def _is_out(self, item: Any) -> bool:
        if isinstance(item, dict):
            item = next((v for k, v in item.items() if str(k).lower() in ("id", "resourceid")), None)
        if not isinstance(item, str):
            return False
        key = item.strip().lower().rstrip("/")
        return key in self.outside or (not is_vm_id(key) and key in self.names)

    def text(self, value: str) -> tuple[str, bool]:
        """``value`` without the VMs outside: an entry of a comma-separated list of VMs left out, a JSON text
        redacted inside, any other mention replaced. The flag says a list of VMs lost entries."""
        stripped = value.strip()
        if stripped[:1] in ("{", "[") and len(value) <= MAX_BODY:
            try:
                parsed = json.loads(stripped)
            except ValueError:
                parsed = None
            if isinstance(parsed, (dict, list)):
                redacted, _cut = self.value(parsed)
                return (value, False) if redacted == parsed else (json.dumps(redacted), False)
        parts = value.split(",")
        if len(parts) > 1 and all(is_vm_id(part.strip()) for part in parts):
            kept = [part for part in parts if not self._is_out(part)]
            return ",".join(kept), len(kept) < len(parts)
        if self.rules is not None:
            value = self.rules.sub(lambda m: m[1] + self.marker, value)
        if not self.pattern.search(value):
            return value, False
        # A sentence (Azure's message) naming such a VM may give its ports too: all of it is withheld; in an id (an
        # NSG rule's, say) only the VM is.
        if not any(c.isspace() for c in value):
            return self.pattern.sub(lambda found: (found.groupdict().get("noun") or "") + self.marker, value), False
        code = ERROR_CODE.match(value)  # "Code: message" (``cloud.errors.CloudError``): the code stays
        return (code[0] if code else "") + self.marker, False

    def value(self, value: Any) -> tuple[Any, bool]:
        if isinstance(value, str):
            if self._is_out(value):
                return self.marker, True
            return self.text(value)
        if isinstance(value, list):
            kept = [item for item in value if not self._is_out(item)]
            cut = len(kept) < len(value) and not all(isinstance(item, dict) for item in value)
            return [self.value(item)[0] for item in kept], cut
        if isinstance(value, dict):
            redacted, cut = {}, False
            for key, item in value.items():
                if self.rule_out and "port" in str(key).lower() and not isinstance(item, dict):
                    redacted[key], lost = self.marker, False
                else:
                    redacted[key], lost = self.value(item)
                cut = cut or lost
            if cut:  # a list of VMs lost entries: a port list beside it cannot be told apart by VM
                for key in redacted:
                    if str(key).lower() in _PORT_KEYS and not isinstance(redacted[key], dict):
                        redacted[key] = self.marker
            return redacted, False
        return value, False


def activity_shown(event, scope: AuditScope):
    """``event`` (an ``ActivityLogEvent``) as someone with ``scope`` may see it, with ``withheld``: how many VMs
    outside their scope it named. Unchanged (the same object) when it names none."""
    event.withheld = 0
    if authz.EVERYWHERE in scope.scopes:
        return event
    named = [*event.vm_id_list, *vm_ids_in(event.resource_id, [event.properties, event.raw])]
    inside, outside = scope.split(named)
    if not outside:
        return event
    redactor = _Redactor(inside, outside, event.resource_id)
    shown = copy.copy(event)
    shown.properties = redactor.value(event.properties)[0]
    shown.raw = redactor.value(event.raw)[0]
    shown.resource_id = redactor.text(event.resource_id)[0] if event.resource_id else ""
    shown.vm_ids = f" {' '.join(inside)} " if inside else ""
    shown.withheld = len(outside)
    return shown


def trail_shown(event, scope: AuditScope):
    """``event`` (the portal's ``AuditEvent``) as someone with ``scope`` may see it: a row belongs to one VM, but an
    error Azure gave for the whole call may name others (``withheld`` counts them)."""
    event.withheld = 0
    if authz.EVERYWHERE in scope.scopes:
        return event
    inside, outside = scope.split([event.resource_id, *vm_ids_in("", [event.before, event.after])])
    if not outside:
        return event
    redactor = _Redactor(inside, outside)
    shown = copy.copy(event)
    shown.before = redactor.value(event.before)[0]
    shown.after = redactor.value(event.after)[0]
    shown.withheld = len(outside)
    return shown


def resource_shown(resource_id: str, vm_ids: str, scope: AuditScope) -> str:
    """An Activity Log row's ``resource_id`` as someone with ``scope`` may see it, from the row's ``vm_ids`` (the CSV
    export: an NSG rule a JIT call wrote is named after its VM)."""
    if not resource_id or authz.EVERYWHERE in scope.scopes:
        return resource_id
    inside, outside = scope.split([*vm_ids.split(), *vm_ids_in(resource_id, {})])
    return _Redactor(inside, outside).text(resource_id)[0] if outside else resource_id


def text_redactor(inside: Iterable[str], outside: Iterable[str], *, marker: str = WITHHELD) -> Callable[[str], str]:
    """Free text about a set of VMs (an access request's justification, Azure's message on one of its ports, an
    approver's comment) as someone who may see the VMs ``inside`` and not those ``outside`` (ARM ids) may read it,
    as the audit pages show an event's text (``_Redactor.text``): a VM outside named in a sentence withholds all of it
    (it may give that VM's ports) but an error code that opens it; in an id or a list of VM ids, only that VM. The
    text is unchanged when no VM is outside."""
    kept = {vm.lower().rstrip("/") for vm in inside if vm}
    withheld = [vm for vm in dict.fromkeys(vm.lower().rstrip("/") for vm in outside if vm) if vm not in kept]
    if not withheld:
        return lambda value: value
    redactor = _Redactor(sorted(kept), withheld, marker=marker)
    return lambda value: redactor.text(value)[0] if value else value
