"""Drift and tampering: compare what Azure shows with what JIT and the portal expect.

- a JIT deny rule removed or edited by hand in an NSG of a configured VM;
- an allow rule open on a JIT port with no matching active request (a leftover JIT allow rule, or a hand-made
  allow rule that takes precedence over the JIT deny rule);
- a policy whose ports for a VM differ from what the portal last applied (changed outside the portal).

JIT names its NSG rules ``SecurityCenter-JITRule_<policy hash>_<vm>_<port>`` (``_Allow`` for the rules a
request opens); rules are matched by that name.
"""
from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q

from . import rules, shapes
from .models import DriftFinding, Subscription, VirtualMachine

JIT_RULE = re.compile(r"^SecurityCenter-JITRule_[^_]+_(?P<vm>.+)_(?P<port>\d+)(?P<allow>_Allow)?$", re.IGNORECASE)


def _covers(rule: shapes.RuleInfo, port: int) -> bool:
    for text in rule.ports or ["*"]:
        if text == "*":
            return True
        low, _, high = text.partition("-")
        try:
            if int(low) <= port <= int(high or low):
                return True
        except ValueError:
            continue
    return False


def _active_ports(policy, now: datetime) -> set[tuple[str, int]]:
    return {(p.vm_id, p.number) for r in policy.requests for p in r.ports
            if p.status.lower() == "initiated" and (p.end is None or p.end > now)}


@dataclass
class _NsgRules:
    """One NSG's rules read once for every VM behind it: its JIT rules by VM (lower-case name) and (port, allow),
    and its other inbound allow rules, in the NSG's order. Matching each VM against every rule name of a shared NSG
    cost VMs x rules (quadratic in the VMs of one NSG, inside the sync's storing transaction)."""

    name: str
    jit: dict[str, dict[tuple[int, bool], shapes.RuleInfo]]
    allows: list[shapes.RuleInfo]


def _read_nsg(nsg_id: str, nsg_rules: list[shapes.RuleInfo]) -> _NsgRules:
    jit: dict[str, dict[tuple[int, bool], shapes.RuleInfo]] = {}
    allows = []
    for rule in nsg_rules:
        match = JIT_RULE.match(rule.name)
        if match:
            jit.setdefault(match["vm"].lower(), {})[(int(match["port"]), bool(match["allow"]))] = rule
        elif rule.access.lower() == "allow" and rule.direction.lower() == "inbound":
            allows.append(rule)
    return _NsgRules(shapes.last_segment(nsg_id), jit, allows)


def _rule_findings(vm: VirtualMachine, ports: list[int], nsgs: dict[str, _NsgRules],
                   active: set[tuple[str, int]]) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for nsg_id in vm.nsg_ids:
        nsg = nsgs.get(nsg_id.lower())
        if nsg is None:
            continue
        nsg_name = nsg.name
        mine = nsg.jit.get(vm.name.lower(), {})
        for port in ports:
            deny = mine.get((port, False))
            key = f"{nsg_id.lower()}|{port}"
            if deny is None:
                found.append((DriftFinding.Kind.DENY_RULE_MISSING, key,
                              f"The JIT deny rule for port {port} is missing from NSG {nsg_name}."))
            elif deny.access.lower() != "deny" or not _covers(deny, port) or deny.sources not in ([], ["*"]) \
                    or deny.direction.lower() != "inbound":
                found.append((DriftFinding.Kind.DENY_RULE_EDITED, key,
                              f"The JIT deny rule {deny.name} in NSG {nsg_name} was changed: access {deny.access}, "
                              f"ports {','.join(deny.ports)}, sources {','.join(deny.sources) or '*'}."))
            allow = mine.get((port, True))
            if allow is not None and allow.access.lower() == "allow" and (vm.resource_id, port) not in active:
                found.append((DriftFinding.Kind.ALLOW_WITHOUT_REQUEST, f"{nsg_id.lower()}|{allow.name}",
                              f"Allow rule {allow.name} in NSG {nsg_name} opens port {port} with no active request."))
            deny_priority = deny.priority if deny is not None else 4096
            for rule in nsg.allows:
                if _covers(rule, port) and (not rule.priority or rule.priority < deny_priority) and \
                        (vm.private_ip in rule.destinations or not rule.destinations
                         or any(d in ("*", "VirtualNetwork", "Any") for d in rule.destinations)):
                    found.append((DriftFinding.Kind.ALLOW_WITHOUT_REQUEST, f"{nsg_id.lower()}|{rule.name}",
                                  f"Allow rule {rule.name} in NSG {nsg_name} opens JIT port {port} "
                                  f"(sources {','.join(rule.sources) or '*'}) with no request."))
    return found


def _policy_finding(vm: VirtualMachine) -> tuple[str, str, str] | None:
    if vm.portal_ports is None:
        return None
    azure = rules.normalized(vm.ports)
    portal = rules.normalized(vm.portal_ports)
    if azure == portal:
        return None

    def describe(items: list[dict]) -> str:
        return "; ".join(f"{p['number']}/{rules.PROTOCOL_LABELS.get(p['protocol'], p['protocol'])} from "
                         f"{','.join(p['sources'])} max {p['max']}" for p in items) or "no JIT"

    return (DriftFinding.Kind.POLICY_CHANGED, "policy",
            f"Azure now has: {describe(azure)}. The portal last applied: {describe(portal)}.")


@dataclass
class Rules:
    """What a VM's findings are worked out against: each NSG's rules (read once for every VM behind it) and the
    ports an active request opens (from the policies' requests)."""

    nsgs: dict[str, _NsgRules]
    active: set[tuple[str, int]]

    @classmethod
    def read(cls, policies: list, nsg_rules: dict[str, list[shapes.RuleInfo]], now: datetime) -> Rules:
        active: set[tuple[str, int]] = set()
        for policy in policies:
            active |= _active_ports(policy, now)
        return cls({nsg_id.lower(): _read_nsg(nsg_id, found) for nsg_id, found in nsg_rules.items()}, active)


def watched(is_classic: bool, state: str, portal_ports: list | None) -> bool:
    """Whether drift is looked for on a VM: one with JIT, or one the portal set ports on (an ARM VM)."""
    return not is_classic and (state == "configured" or bool(portal_ports))


def vm_findings(vm, rules: Rules) -> list[tuple[str, str, str]]:
    """(kind, key, detail) of one VM's findings. ``vm`` has a model row's ``resource_id``, ``name``, ``nsg_ids``,
    ``private_ip``, ``ports`` and ``portal_ports`` (a stored row, or one a sync is about to store)."""
    ports = [int(p["number"]) for p in vm.ports]
    items = _rule_findings(vm, ports, rules.nsgs, rules.active) if ports else []
    finding = _policy_finding(vm)
    if finding:
        items.append(finding)
    return items


def detect(subscription: Subscription, policies: list, nsg_rules: dict[str, list[shapes.RuleInfo]],
           now: datetime, skip: set[int] = frozenset()) -> int:
    """Open, refresh and resolve the findings of the subscription's stored VMs (those of the VMs ``skip`` names stay
    as they are); returns how many are open. (A sync works its findings out before it stores: ``inventory.store``.)
    """
    rules = Rules.read(policies, nsg_rules, now)
    current: dict[tuple[int, str, str], str] = {}
    candidates = VirtualMachine.objects.filter(subscription=subscription, is_classic=False).filter(
        Q(state="configured") | Q(portal_ports__isnull=False) & ~Q(portal_ports=[])).only(
        "pk", "resource_id", "name", "nsg_ids", "private_ip", "ports", "portal_ports", "state")
    adopt = []
    for vm in candidates.iterator(chunk_size=1000):
        if vm.pk in skip:
            continue
        if vm.portal_ports is None:  # first sight of this VM: Azure's state is the baseline
            vm.portal_ports = vm.ports
            adopt.append(vm)
        for kind, key, detail in vm_findings(vm, rules):
            current[(vm.pk, kind, key)] = detail
    if adopt:
        VirtualMachine.objects.bulk_update(adopt, ["portal_ports"], batch_size=500)
    return record(subscription, current, now, skip)


def record(subscription: Subscription, current: dict[tuple[int, str, str], str], now: datetime,
           skip: set[int] = frozenset(), vms: Collection[int] | None = None) -> int:
    """Store ``current`` as the open findings of the subscription's VMs (or of the VMs ``vms`` names), the VMs
    ``skip`` names left as they are, and their counts; returns how many are open. A finding seen again has only its
    ``last_seen`` written (one statement for many), unless its detail changed or it reopens."""
    found = (DriftFinding.objects.filter(vm__subscription=subscription) if vms is None
             else DriftFinding.objects.filter(vm_id__in=list(vms)))
    existing = {(f.vm_id, f.kind, f.key): f for f in found.only(
        "pk", "vm_id", "kind", "key", "detail", "resolved_at", "first_seen") if f.vm_id not in skip}
    create, update, seen = [], [], []
    for (vm_pk, kind, key), detail in current.items():
        finding = existing.get((vm_pk, kind, key))
        if finding is None:
            create.append(DriftFinding(vm_id=vm_pk, kind=kind, key=key, detail=detail, first_seen=now, last_seen=now))
        elif finding.resolved_at is None and finding.detail == detail:
            seen.append(finding.pk)
        else:
            if finding.resolved_at is not None:
                finding.first_seen = now
            finding.detail, finding.last_seen, finding.resolved_at = detail, now, None
            update.append(finding)
    DriftFinding.objects.bulk_create(create, batch_size=500)
    DriftFinding.objects.bulk_update(update, ["detail", "last_seen", "resolved_at", "first_seen"], batch_size=500)
    _update_in_batches(DriftFinding, seen, last_seen=now)
    _update_in_batches(DriftFinding, [f.pk for k, f in existing.items() if k not in current and f.resolved_at is None],
                       resolved_at=now)
    refresh_counts(subscription, vms)
    return len(current)


def refresh_counts(subscription: Subscription, vms: Collection[int] | None = None) -> None:
    """Denormalize each VM's open finding count (the inventory flags VMs with drift): of the subscription's VMs, or
    of the VMs ``vms`` names. Only the counts that changed are written, one statement per count."""
    open_findings = DriftFinding.objects.filter(resolved_at__isnull=True)
    stored_vms = VirtualMachine.objects.all()
    if vms is None:
        open_findings, stored_vms = open_findings.filter(vm__subscription=subscription), stored_vms.filter(
            subscription=subscription)
    else:
        open_findings, stored_vms = open_findings.filter(vm_id__in=list(vms)), stored_vms.filter(pk__in=list(vms))
    counts = dict(open_findings.values_list("vm_id").annotate(n=Count("*")))
    stored = dict(stored_vms.exclude(drift_count=0).values_list("pk", "drift_count"))
    by_count: dict[int, list[int]] = {}
    for pk, n in [*counts.items(), *((pk, 0) for pk in stored if pk not in counts)]:
        if stored.get(pk, 0) != n:
            by_count.setdefault(n, []).append(pk)
    for n, pks in by_count.items():
        _update_in_batches(VirtualMachine, pks, drift_count=n)


def _update_in_batches(model, pks: list[int], **values) -> None:
    """``UPDATE … SET values WHERE pk IN (…)``, 500 pks at a time: much cheaper than ``bulk_update``'s CASE per row
    when every row takes the same values."""
    for start in range(0, len(pks), 500):
        model.objects.filter(pk__in=pks[start:start + 500]).update(**values)
