"""Drift detection at scale: the rules of an NSG that many VMs share are read once, not once per VM."""
from __future__ import annotations

import pytest
from django.utils import timezone

from policies import drift, shapes
from policies.models import DriftFinding, VirtualMachine, VmState
from tests.policies.factories import make_many_vms

SHARED_NSG = ("/subscriptions/c0a1b2c3-0000-4000-8000-000000000001/resourcegroups/rg-bulk/providers/"
              "microsoft.network/networksecuritygroups/nsg-shared")


class CountingPattern:
    """``drift.JIT_RULE`` with its matches counted."""

    def __init__(self, pattern) -> None:
        self.pattern, self.calls = pattern, 0

    def match(self, text: str):
        self.calls += 1
        return self.pattern.match(text)


def rule(name: str, access: str = "Deny", priority: int = 1000) -> shapes.RuleInfo:
    return shapes.RuleInfo(name=name, access=access, direction="Inbound", protocol="*", sources=["*"], ports=["22"],
                           destinations=[], priority=priority)


@pytest.mark.django_db
def test_a_shared_nsgs_rules_are_matched_once_whatever_the_vms_behind_it(monkeypatch):
    vms = make_many_vms(600)  # 200 configured, each with port 22
    VirtualMachine.objects.update(nsg_ids=[SHARED_NSG])
    configured = [vm for vm in vms if vm.state == VmState.CONFIGURED]
    missing = configured[0]
    rules = [rule(f"SecurityCenter-JITRule_1a2b3c_{vm.name}_22") for vm in configured if vm != missing]
    rules.append(rule("Allow-SSH-Anywhere", access="Allow", priority=100))
    counting = CountingPattern(drift.JIT_RULE)
    monkeypatch.setattr(drift, "JIT_RULE", counting)

    open_findings = drift.detect(missing.subscription, [], {SHARED_NSG: rules}, timezone.now())

    assert counting.calls <= len(rules)  # it was VMs x rules (twice): 80,000 here
    assert open_findings == len(configured) + 1  # the allow rule at each VM, and the deny rule missing at one
    assert set(DriftFinding.objects.filter(vm=missing).values_list("kind", flat=True)) == {
        DriftFinding.Kind.DENY_RULE_MISSING, DriftFinding.Kind.ALLOW_WITHOUT_REQUEST}
    assert DriftFinding.objects.filter(kind=DriftFinding.Kind.DENY_RULE_MISSING).count() == 1
