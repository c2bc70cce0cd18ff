"""The emulator's whole state: identities, subscriptions, resources, JIT grants, activity, calls, faults, clock."""
from __future__ import annotations

import json
import os
import random
import tempfile
import threading
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from emulator.activity import ActivityLog
from emulator.faults import Fault
from emulator.store import ResourceStore

DEFAULT_PAGE_SIZE = 200
MAX_CALLS = 20_000


def _tenant_from_json(data: dict):
    from emulator.entra.models import EntraApp, EntraGroup, EntraTenant, EntraUser

    return EntraTenant(
        tenant_id=data["tenant_id"], display_name=data["display_name"], domain=data["domain"],
        users=[EntraUser(**u) for u in data.get("users", [])],
        groups=[EntraGroup(**g) for g in data.get("groups", [])],
        apps=[EntraApp(**a) for a in data.get("apps", [])],
    )


class EmulatorState:
    """Thread-safe (``lock`` is an RLock held by every request) in-memory state, saved to JSON on demand."""

    def __init__(self, cert_dir: Path | str = "var/emulator", state_file: Path | str | None = None) -> None:
        self.lock = threading.RLock()
        self.cert_dir = Path(cert_dir)
        self.state_file = Path(state_file) if state_file else None
        self.rng = random.Random(7)
        self.calls: list[dict] = []
        self.call_seq = 0
        self.calls_epoch = 0  # bumped when the log is cleared (``clear_calls``)
        self.faults: dict[str, Fault] = {}
        self.page_size = DEFAULT_PAGE_SIZE
        self.reset()

    def reset(self) -> None:
        """Forget every cloud object (identities, resources, activity); keep faults, calls and the clock."""
        with self.lock:
            self.tenants: dict = {}
            self.subscriptions: dict[str, dict] = {}
            self.resource_groups: dict[str, dict[str, dict]] = {}
            self.resources = ResourceStore()
            self.pricings: dict[str, dict[str, dict]] = {}
            self.security_policies: dict[str, dict] = {}
            self.role_definitions: dict[str, dict] = {}
            self.activity = ActivityLog()
            self.grants: dict[str, dict] = {}
            self.clock_offset = 0.0
            self.scenario_name = ""

    # --- the virtual clock -------------------------------------------------------------------------------
    def now(self) -> datetime:
        """The emulator's current time (UTC, aware): real time plus what the control API advanced."""
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset)

    def advance(self, seconds: float) -> datetime:
        with self.lock:
            self.clock_offset += float(seconds)
            return self.now()

    # --- lookups -----------------------------------------------------------------------------------------
    def subscription(self, subscription_id: str) -> dict | None:
        return self.subscriptions.get(subscription_id.lower())

    def tenant_of(self, subscription_id: str) -> str:
        sub = self.subscription(subscription_id)
        return sub["tenantId"] if sub else ""

    def resource_group(self, subscription_id: str, name: str) -> dict | None:
        return self.resource_groups.get(subscription_id.lower(), {}).get(name.lower())

    def jit_enabled_by_security_policy(self, subscription_id: str, resource_group: str) -> bool:
        policy = self.security_policies.get(subscription_id.lower(), {})
        groups = {k.lower(): v for k, v in policy.get("resourceGroups", {}).items()}
        setting = groups.get(resource_group.lower(), policy.get("jit", "On"))
        return setting == "On"

    def has_servers_plan_2(self, subscription_id: str) -> bool:
        pricing = self.pricings.get(f"subscriptions/{subscription_id.lower()}", {}).get("virtualmachines")
        props = (pricing or {}).get("properties", {})
        return props.get("pricingTier") == "Standard" and props.get("subPlan", "P2") == "P2"

    # --- calls log ----------------------------------------------------------------------------------------
    def log_call(self, method: str, path: str, query: str, status: int, caller: str | None,
                 epoch: int | None = None) -> None:
        """Log one answered call, unless it arrived before the log was last cleared (``epoch``): a slow answer to
        an earlier caller (a timed-out test's) does not land in a log cleared since."""
        with self.lock:
            if epoch is not None and epoch != self.calls_epoch:
                return
            self.call_seq += 1
            self.calls.append({"seq": self.call_seq, "method": method, "path": path, "query": query,
                               "status": status, "caller": caller, "time": datetime.now(UTC).isoformat()})
            if len(self.calls) > MAX_CALLS:
                del self.calls[: len(self.calls) - MAX_CALLS]

    def clear_calls(self) -> None:
        with self.lock:
            self.calls.clear()
            self.calls_epoch += 1

    # --- persistence ----------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        with self.lock:
            return {
                "version": 1,
                "scenario_name": self.scenario_name,
                "clock_offset": self.clock_offset,
                "page_size": self.page_size,
                "tenants": [asdict(t) for t in self.tenants.values()],
                "subscriptions": list(self.subscriptions.values()),
                "resource_groups": self.resource_groups,
                "resources": self.resources.values(),
                "pricings": self.pricings,
                "security_policies": self.security_policies,
                "role_definitions": self.role_definitions,
                "activity": self.activity.to_json(),
                "grants": self.grants,
                "faults": [f.to_dict() for f in self.faults.values()],
            }

    def load_json(self, data: dict) -> None:
        with self.lock:
            self.reset()
            self.scenario_name = data.get("scenario_name", "")
            self.clock_offset = float(data.get("clock_offset", 0.0))
            self.page_size = int(data.get("page_size", DEFAULT_PAGE_SIZE))
            for tenant in data.get("tenants", []):
                t = _tenant_from_json(tenant)
                self.tenants[t.tenant_id] = t
            self.subscriptions = {s["subscriptionId"].lower(): s for s in data.get("subscriptions", [])}
            self.resource_groups = data.get("resource_groups", {})
            for resource in data.get("resources", []):
                self.resources.put(resource)
            self.pricings = data.get("pricings", {})
            self.security_policies = data.get("security_policies", {})
            self.role_definitions = data.get("role_definitions", {})
            self.activity = ActivityLog.from_json(data.get("activity", {}))
            self.grants = data.get("grants", {})
            self.faults = {f["id"]: Fault(**f) for f in data.get("faults", [])}

    def save(self, path: Path | None = None) -> Path | None:
        """Write the state file atomically (no-op without a state file)."""
        target = path or self.state_file
        if target is None:
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        data = self.to_json()
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".state-", suffix=".json")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
        os.replace(tmp, target)
        return target

    def load(self, path: Path | None = None) -> bool:
        """Load the state file if it exists; True when it did."""
        source = path or self.state_file
        if source is None or not source.exists():
            return False
        self.load_json(json.loads(source.read_text()))
        return True
