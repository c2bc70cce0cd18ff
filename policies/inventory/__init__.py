"""Sync one subscription's inventory from Azure: list calls (paged) once each, classify, upsert in bulk.

The number of cloud calls grows with pages of results, never with VMs: VMs, classic VMs, NICs, NSGs (with
their rules), public IPs, firewalls, virtual hubs, JIT policies and security policies are each listed once, and
the spoke connections of each secured virtual hub (one whose Azure Firewall Azure Firewall Manager deployed in
it) once per such hub. A spoke may be connected to a hub in another subscription: the subscriptions the portal's
identity can read are listed once, and each other one's virtual hubs once (its firewalls and hub connections
only when it has hubs; a subscription registered in the portal with a credential of its own read with that one),
by the first sync of a period; the identity's other syncs within it share what it read
(``policies.hub_topology``).

The sync reads a ``snapshot`` of the subscription (every list call, once each; the hubs of other subscriptions), makes
the VMs' ``rows`` of it (each VM's network guards, state and usage) and ends ``storing`` them with the policies'
mirrors; ``sync_subscription`` runs the three.
"""
from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from .. import shapes
from ..models import Subscription, SyncRun
from .rows import Network, build_rows, classify, portal_requesters, usage
from .snapshot import (
    PolicyView,
    Progress,
    Snapshot,
    policy_view,
    read_hub_connections,
    read_hub_topology,
    read_other_hubs,
    read_pricing,
    read_remote_hubs,
    read_security_policies,
    read_snapshot,
)
from .storing import (
    BATCH,
    CHANGE_MARGIN,
    CHUNK,
    POLICY_FIELDS,
    VM_FIELDS,
    changed_meanwhile,
    keep_changed,
    mirror_policies_one,
    remove_gone,
    store,
)

__all__ = ["BATCH", "CHANGE_MARGIN", "CHUNK", "POLICY_FIELDS", "VM_FIELDS", "Network", "PolicyView", "Progress",
           "Snapshot", "build_rows", "changed_meanwhile", "classify", "keep_changed", "mirror_policies_one",
           "policy_view", "portal_requesters", "read_hub_connections", "read_hub_topology", "read_other_hubs",
           "read_pricing", "read_remote_hubs", "read_security_policies", "read_snapshot", "remove_gone", "store",
           "sync_subscription", "usage"]


# Here rather than in a module of its own: it looks ``read_snapshot`` and ``store`` up on the package, where a
# test replaces them (``monkeypatch.setattr(inventory, "store", ...)``).
def sync_subscription(subscription: Subscription, gateway, progress: Progress, now: datetime | None = None
                      ) -> tuple[int, int]:
    """Read, classify and store one subscription. Returns (VMs seen, open drift findings)."""
    now = now or timezone.now()
    snap = read_snapshot(gateway, progress, subscription, now)
    progress(SyncRun.STORING, 0)
    policies = [policy_view(p) for p in snap.policies]
    rows = build_rows(subscription, snap, policies, now, portal_requesters(policies))
    nsg_rules = {info.id: info.rules for info in (shapes.nsg_info(n) for n in snap.nsgs)}
    findings = store(subscription, snap, rows, policies, nsg_rules, now)
    return len(rows), findings
