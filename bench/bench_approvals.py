"""Approvals benchmark: the approver's queue (``/approvals/``, its first page) at 2,000 pending requests vs 20.

The pending requests are spread over VMs of three subscriptions; the approver decides in one subscription and one
resource group of a second, so part of them wait for someone else (another scope, a VM outside theirs, their own,
already decided by them). Both sizes are stored in one scratch database (SQLite, or ``DATABASE_URL`` when it names
PostgreSQL) and measured in turns; it is removed afterwards. No cloud is called: the page reads the database only.
"""
from __future__ import annotations

import gc
import json
import statistics
import time
from datetime import timedelta

from bench.child import run_child

SMALL, LARGE = 20, 2_000
REPEATS = 30
ROUNDS = 5  # REPEATS is split into rounds that alternate between the two sizes
TENANT = "8a0e7c31-4a8e-4d8b-9d2a-6f6a1b2c3d4e"
SUBSCRIPTIONS = ("c0a1b2c3-0000-4000-8000-0000000000a1", "c0a1b2c3-0000-4000-8000-0000000000a2",
                 "c0a1b2c3-0000-4000-8000-0000000000a3")
GROUPS = ("rg-app", "rg-data")
VMS_PER_GROUP = 4


def run() -> list[tuple[str, float, str]]:
    """Run the measurements in a child process and return the figures."""
    return run_child("bench.bench_approvals", "approvals")


# --- the data (also the profile's) --------------------------------------------------------------------------------
def approver(name: str = "approver"):
    """An approver in the first subscription and in ``rg-app`` of the second, signed in as the portal records it."""
    from accounts import services as account_services
    from accounts.models import RoleMapping

    for scope in (f"/subscriptions/{SUBSCRIPTIONS[0]}", f"/subscriptions/{SUBSCRIPTIONS[1]}/resourceGroups/rg-app"):
        RoleMapping.objects.get_or_create(source_kind="app_role", source_value="JIT.Approver", tenant_id="",
                                          role="approver", scope=scope)
    return account_services.user_sign_in_record(claims={
        "tid": TENANT, "oid": f"8a0e7c31-0000-4000-8000-{abs(hash(name)) % 10**12:012d}",
        "preferred_username": f"{name}@contoso.example", "name": name.title(), "roles": ["JIT.Approver"],
        "groups": []})


def _vms() -> list:
    """Three subscriptions of two resource groups of ``VMS_PER_GROUP`` VMs each (made once)."""
    from policies.models import Subscription, VirtualMachine, VmState

    made = []
    for subscription_id in SUBSCRIPTIONS:
        subscription, _ = Subscription.objects.get_or_create(
            subscription_id=subscription_id, defaults={"tenant_id": TENANT, "display_name": subscription_id[-2:],
                                                       "credential_ref": "demo"})
        for group in GROUPS:
            for n in range(VMS_PER_GROUP):
                arm_id = (f"/subscriptions/{subscription_id}/resourceGroups/{group}/providers/Microsoft.Compute/"
                          f"virtualMachines/{group[3:]}-{n:02d}")
                vm, _ = VirtualMachine.objects.get_or_create(resource_id=arm_id.lower(), defaults={
                    "arm_id": arm_id, "name": f"{group[3:]}-{n:02d}", "subscription": subscription,
                    "subscription_key": subscription_id, "resource_group": group, "resource_group_name": group,
                    "location": "westeurope", "os_type": "Linux", "state": VmState.CONFIGURED,
                    "connection_type": "nsg", "policy_name": "default", "policy_resource_group": group,
                    "policy_location": "westeurope"})
                made.append(vm)
    return made


def seed_pending(count: int, decider) -> None:
    """``count`` pending requests by ten requesters (and a few by ``decider``), each on one or two VMs with one or
    two ports, expiring in turn (some scheduled to start later). Of every ten, one is in the third subscription
    (not the approver's), one spans the approver's scope and another's, one is ``decider``'s own, one was already
    approved by ``decider`` (needing two approvals) and one has another approver's first approval of two."""
    from django.utils import timezone

    from accounts.models import User
    from policies.access.models import (
        AccessRequest,
        AccessRequestPort,
        AccessRequestVm,
        Approval,
        ApprovalState,
        PortState,
    )

    vms = _vms()
    mine = [vm for vm in vms if vm.subscription_key == SUBSCRIPTIONS[0]
            or (vm.subscription_key == SUBSCRIPTIONS[1] and vm.resource_group == "rg-app")]
    others = [vm for vm in vms if vm.subscription_key == SUBSCRIPTIONS[2]]
    people = [User.objects.get_or_create(username=f"requester{n}@contoso.example")[0] for n in range(10)]
    other_approver = User.objects.get_or_create(username="someone-else@contoso.example")[0]
    now, start = timezone.now(), AccessRequest.objects.count()
    plans = []
    for i in range(start, start + count):
        kind = i % 10
        chosen = [others[i % len(others)]] if kind == 1 else [mine[i % len(mine)]]
        if kind in (2, 5):
            chosen.append(others[(i + 1) % len(others)] if kind == 2 else mine[(i + 3) % len(mine)])
        owner = decider if kind == 3 else people[i % len(people)]
        expires = now + timedelta(minutes=30, seconds=(i * 7919) % 86_400)
        plans.append((kind, chosen, AccessRequest(
            requester=owner, requester_name=owner.username, justification=f"Ticket CHG-{i}: patch <b>{i}</b>",
            idempotency_key=f"bench-{i}", source_prefix=f"203.0.113.{i % 250}/32", state=PortState.PENDING,
            approval_state=ApprovalState.PENDING, approvals_required=2 if kind in (4, 6) else 1,
            approval_expires_at=expires, scheduled_start=expires + timedelta(hours=1) if kind == 7 else None,
            end_at=now + timedelta(hours=2))))
    requests = AccessRequest.objects.bulk_create([plan[2] for plan in plans], batch_size=500)
    rows = []
    for (_, chosen, _), request in zip(plans, requests, strict=True):
        rows += [AccessRequestVm(request=request, vm=vm, vm_arm_id=vm.arm_id, vm_name=vm.name,
                                 subscription_key=vm.subscription_key, resource_group=vm.resource_group,
                                 policy_key=vm.policy_id.lower(), policy_resource_group=vm.resource_group_name,
                                 policy_location="westeurope", policy_name="default") for vm in chosen]
    rows = AccessRequestVm.objects.bulk_create(rows, batch_size=500)
    AccessRequestPort.objects.bulk_create(
        [AccessRequestPort(request_id=row.request_id, request_vm=row, policy_key=row.policy_key, number=number,
                           source_prefix="203.0.113.9/32", duration_seconds=3600 * (1 + n), end_at=now,
                           state=PortState.PENDING)
         for row in rows for n, number in enumerate((22, 3389)[:1 + row.request_id % 2])], batch_size=500)
    Approval.objects.bulk_create(
        [Approval(request=request, approver=decider if kind == 4 else other_approver, level=1,
                  approver_name="bench", decision=Approval.Decision.APPROVE)
         for (kind, _, _), request in zip(plans, requests, strict=True) if kind in (4, 6)], batch_size=500)


# --- child process ----------------------------------------------------------------------------------------------
def _page(client) -> tuple[float, int, int]:
    """(seconds, queries, rows) of the queue's first page."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        response = client.get("/approvals/")
        elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.status_code
    return elapsed, len(queries), response.content.count(b"data-request=")


def _child() -> list[tuple[str, float, str]]:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from bench.bench_inventory import _drop, _snapshot, _use_database

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    call_command("migrate", verbosity=0)
    decider = approver()
    client = Client()
    client.force_login(decider)  # its session is in both databases
    seed_pending(SMALL, decider)
    small_db, large_db = _snapshot(), connection.settings_dict["NAME"]
    seed_pending(LARGE - SMALL, decider)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    times: list[list[float]] = [[], []]
    queries, rows = [0, 0], [0, 0]
    try:
        for _ in range(ROUNDS):
            for side, name in enumerate((small_db, large_db)):
                _use_database(name)
                gc.collect()
                _page(client)  # warm the connection and caches
                for _ in range(REPEATS // ROUNDS):
                    elapsed, queries[side], rows[side] = _page(client)
                    times[side].append(elapsed)
    finally:
        _use_database(large_db)
        _drop(small_db)
    small, large = (statistics.median(side) for side in times)
    return [
        (f"approvals page render time, {LARGE} pending / {SMALL} pending", large / small, "<= 1.5"),
        (f"approvals page render time at {LARGE} pending (ms, median; {rows[1]} rows shown)", large * 1000,
         f"(informative; {small * 1000:.1f} ms at {SMALL}, {rows[0]} rows shown)"),
        (f"queries per approvals page at {LARGE} pending", queries[1], f"<= {queries[0]} (as at {SMALL})"),
    ]


if __name__ == "__main__":
    print(json.dumps(_child()))
