"""A deterministic large tenant: N VMs in groups of 100 and M Activity Log events generated on demand."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from emulator.scenarios.demo import LINUX_PORT, RDP_PORT, demo_scenario
from emulator.scenarios.identities import CONTOSO, PROD_SUBSCRIPTION
from emulator.timeutil import iso

PER_GROUP = 100
LOCATIONS = ("westeurope", "northeurope")
CALLERS = ["alice@contoso.example", "dave@contoso.example", "erin@contoso.example", "bob@contoso.example"]


def large_scenario(vms: int = 10_000, events: int = 1_000) -> dict:
    """The demo plus ``vms`` VMs (``vm-00000`` …) in ``rg-large-000`` …; every other group has JIT on all VMs."""
    scenario = demo_scenario()
    scenario["name"] = "large"
    groups = []
    group_names = []
    for g in range((vms + PER_GROUP - 1) // PER_GROUP):
        name = f"rg-large-{g:03d}"
        group_names.append(name)
        location = LOCATIONS[g % 2]
        members = []
        for j in range(g * PER_GROUP, min(vms, (g + 1) * PER_GROUP)):
            members.append({"name": f"vm-{j:05d}", "os": "Windows" if j % 3 == 0 else "Linux"})
        group = {"name": name, "location": location,
                 "vnets": [{"name": f"vnet-{g:03d}", "address_space": f"10.{100 + g // 250}.{g % 250}.0/24",
                            "subnets": [{"name": "default", "nsg": f"nsg-{g:03d}"}]}],
                 "vms": members}
        if g % 2 == 0:
            group["jit_policies"] = [{"name": "default", "virtual_machines": [
                {"vm": m["name"], "ports": [RDP_PORT if m["os"] == "Windows" else LINUX_PORT]} for m in members]}]
        groups.append(group)
    scenario["subscriptions"][0]["resource_groups"].extend(groups)
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    if not group_names or events <= 0:
        return scenario
    scenario["generated_activity"] = {
        "count": events, "newest": iso(newest), "step_seconds": max(1.0, 85 * 86400 / max(events, 1)),
        "subscription": PROD_SUBSCRIPTION, "tenant_id": CONTOSO, "resource_groups": group_names,
        "vm_count": max(vms, 1), "vms_per_group": PER_GROUP,
        "location_of_group": [LOCATIONS[g % 2] for g in range(len(group_names))], "callers": CALLERS,
    }
    return scenario
