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


def detect(subscription: Subscription, policies: list, nsg_rules: dict[str, list[shapes.RuleInfo]],
           now: datetime, skip: set[int] = frozenset()) -> int:
    """Open, refresh and resolve the subscription's findings (those of the VMs ``skip`` names stay as they are);
    returns how many are open."""
    active: set[tuple[str, int]] = set()
    for policy in policies:
        active |= _active_ports(policy, now)
    current: dict[tuple[int, str, str], str] = {}
    nsgs = {nsg_id.lower(): _read_nsg(nsg_id, found) for nsg_id, found in nsg_rules.items()}
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
        ports = [int(p["number"]) for p in vm.ports]
        items = _rule_findings(vm, ports, nsgs, active) if ports else []
        finding = _policy_finding(vm)
        if finding:
            items.append(finding)
        for kind, key, detail in items:
            current[(vm.pk, kind, key)] = detail
    if adopt:
        VirtualMachine.objects.bulk_update(adopt, ["portal_ports"], batch_size=500)
    return record(subscription, current, now, skip)


def record(subscription: Subscription, current: dict[tuple[int, str, str], str], now: datetime,
           skip: set[int] = frozenset()) -> int:
    existing = {(f.vm_id, f.kind, f.key): f for f in DriftFinding.objects.filter(vm__subscription=subscription)
                if f.vm_id not in skip}
    create, update = [], []
    for (vm_pk, kind, key), detail in current.items():
        finding = existing.get((vm_pk, kind, key))
        if finding is None:
            create.append(DriftFinding(vm_id=vm_pk, kind=kind, key=key, detail=detail, first_seen=now, last_seen=now))
        else:
            if finding.resolved_at is not None:
                finding.first_seen = now
            finding.detail, finding.last_seen, finding.resolved_at = detail, now, None
            update.append(finding)
    DriftFinding.objects.bulk_create(create, batch_size=500)
    DriftFinding.objects.bulk_update(update, ["detail", "last_seen", "resolved_at", "first_seen"], batch_size=500)
    resolved = [f.pk for k, f in existing.items() if k not in current and f.resolved_at is None]
    DriftFinding.objects.filter(pk__in=resolved).update(resolved_at=now)
    refresh_counts(subscription)
    return len(current)


def refresh_counts(subscription: Subscription) -> None:
    """Denormalize each VM's open finding count (the inventory flags VMs with drift), writing only the counts that
    changed."""
    counts = dict(DriftFinding.objects.filter(vm__subscription=subscription, resolved_at__isnull=True)
                  .values_list("vm_id").annotate(n=Count("*")))
    stored = dict(VirtualMachine.objects.filter(subscription=subscription).exclude(drift_count=0).values_list(
        "pk", "drift_count"))
    if any(pk not in counts for pk in stored):
        VirtualMachine.objects.filter(subscription=subscription).exclude(pk__in=counts).exclude(drift_count=0).update(
            drift_count=0)
    changed = [VirtualMachine(pk=pk, drift_count=n) for pk, n in counts.items() if stored.get(pk) != n]
    VirtualMachine.objects.bulk_update(changed, ["drift_count"], batch_size=500)
