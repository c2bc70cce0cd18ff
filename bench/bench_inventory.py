"""Inventory benchmarks: page render time at 10,000 VMs vs 100, queries per page, cloud calls per sync.

The render time of a size is the sum of five pages' medians (three tabs, a sorted page, a filtered one), each
page rendered 15 times.

The measurements run in a child process with a scratch SQLite database (or ``DATABASE_URL`` when it names
PostgreSQL) and an emulator started with the ``large`` scenario; both are removed afterwards.
"""
from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import tempfile
import time

from bench.child import policy_admin, run_child

LARGE_EXTRA = 10_000  # VMs added to the demo's 40 by the emulator's large scenario
SMALL_EXTRA = 60  # 40 + 60 = 100 VMs
REPEATS = 15
ROUNDS = 5  # REPEATS is split into rounds that alternate between the two sizes
SUBSCRIPTION = "c0a1b2c3-0000-4000-8000-000000000001"
TENANT = "8a0e7c31-4a8e-4d8b-9d2a-6f6a1b2c3d4e"


def run() -> list[tuple[str, float, str]]:
    """Run the measurements in a child process and return the figures."""
    return run_child("bench.bench_inventory", "inventory", {"CELERY_TASK_ALWAYS_EAGER": "false",
                      # both syncs read the hubs elsewhere: calls compare alike
                      "INVENTORY_REMOTE_HUBS_MAX_AGE_SECONDS": "0"})


# --- child process ----------------------------------------------------------------------------------------------



def _page(client, params: dict) -> tuple[float, int]:
    """(seconds, queries) of one inventory page."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        response = client.get("/inventory/", params)
        elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.status_code
    return elapsed, len(queries)


PAGES = [{"tab": "configured"}, {"tab": "not_configured"}, {"tab": "unsupported"},
         {"tab": "configured", "sort": "-last_access_at"}, {"tab": "not_configured", "os": "Windows", "q": "vm-"}]


def _measure(client, databases: list[str]) -> tuple[list[list[float]], list[int]]:
    """Each page's median render time in each database (the three tabs, a sorted page and a filtered one), and
    the most queries of any page. The databases take turns in short rounds, so each meets the same moments of a
    machine whose speed drifts over the seconds a run takes."""
    per_page = [[[] for _ in PAGES] for _ in databases]
    queries = [0 for _ in databases]
    for _ in range(ROUNDS):
        for side, name in enumerate(databases):
            _use_database(name)
            gc.collect()  # measure the page, not the garbage the other side left behind
            for params in PAGES:
                _page(client, params)  # warm the connection and caches
            for _ in range(REPEATS // ROUNDS):
                for index, params in enumerate(PAGES):
                    elapsed, count = _page(client, params)
                    per_page[side][index].append(elapsed)
                    queries[side] = max(queries[side], count)
    medians = [[statistics.median(times) for times in pages] for pages in per_page]
    if os.environ.get("BENCH_VERBOSE"):
        for name, pages in zip(databases, medians, strict=True):
            for params, median in zip(PAGES, pages, strict=True):
                print(name, params, round(median * 1000, 1), "ms", file=sys.stderr)
    return medians, queries


def _use_database(name: str) -> None:
    """Point the default connection at database ``name`` (reconnecting on the next query)."""
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = name


def _snapshot() -> str:
    """A copy of the current database as it is now (a file beside it for SQLite, a database made from it as a
    template for PostgreSQL); its name."""
    import shutil

    from django.db import connection

    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything written is in the file itself
    connection.close()  # PostgreSQL copies a database only while no session is connected to it
    if connection.vendor == "sqlite":
        copy = f"{name}.small"
        shutil.copyfile(name, copy)
        return copy
    copy = f"{name}_small"
    with connection._nodb_cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{copy}"')
        cursor.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{name}"')
    return copy


def _drop(name: str) -> None:
    from django.db import connection

    if connection.vendor == "sqlite":
        os.remove(name)
        return
    connection.close()
    with connection._nodb_cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _label(params: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in params.items())


def _sync(subscription, emulator) -> tuple[int, int]:
    """(ARM calls the emulator saw, VMs stored) for one sync."""
    from django.db import connection

    from policies import services
    from policies.models import SyncRun, VirtualMachine

    emulator.clear_calls()
    run = SyncRun.objects.create(subscription=subscription)
    outcome = services.sync_run(run_id=run.pk)
    run.refresh_from_db()
    if outcome.state != SyncRun.State.SUCCEEDED:
        raise RuntimeError(run.error)
    calls = [c for c in emulator.calls() if c["path"].startswith("/subscriptions")]
    if connection.vendor == "postgresql":
        # What autovacuum does within a minute of a large write: fresh planner statistics, and a visibility map
        # that lets the tab counts read the index alone.
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(VirtualMachine._meta.db_table)}")
    return len(calls), VirtualMachine.objects.count()


def _child() -> list[tuple[str, float, str]]:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from emulator.testing import run_emulator
    from policies import services

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    call_command("migrate", verbosity=0)
    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as certs, run_emulator(
            "large", cert_dir=certs, extra_args=("--large-vms", str(SMALL_EXTRA), "--large-events", "0")) as emu:
        subscription = services.subscription_register(
            actor=None, tenant_id=TENANT, subscription_id=SUBSCRIPTION, display_name="Contoso Production",
            arm_endpoint=emu.url, authority=emu.url, ca_bundle=str(emu.ca_pem), credential_ref="demo", sync=False)
        client = Client()
        client.force_login(policy_admin(SUBSCRIPTION, TENANT))
        # 100 VMs first, kept as a copy; the large tenant then adds VMs to the same ones (its first 60 are the
        # same names), and the pages are measured in both databases in turn.
        small_calls, small_vms = _sync(subscription, emu)
        small_db, large_db = _snapshot(), connection.settings_dict["NAME"]
        emu.load_scenario("large", large_vms=LARGE_EXTRA, large_events=0)
        started = time.perf_counter()
        large_calls, large_vms = _sync(subscription, emu)
        sync_seconds = time.perf_counter() - started
    try:
        (small_time, large_time), (small_queries, large_queries) = _measure(client, [small_db, large_db])
    finally:
        _use_database(large_db)
        _drop(small_db)
    # The five pages' medians summed (the time to show each once): a median pooled over pages that differ by
    # half their time jumps between them from run to run.
    growth = [large / small for large, small in zip(large_time, small_time, strict=True)]
    worst = max(range(len(PAGES)), key=growth.__getitem__)
    return [
        (f"inventory page render time, {large_vms} VMs / {small_vms} VMs", sum(large_time) / sum(small_time),
         "<= 1.5"),
        (f"inventory page render time at {large_vms} VMs (ms, mean of the pages' medians)",
         sum(large_time) / len(PAGES) * 1000, "(informative)"),
        (f"  the page that grows most: {_label(PAGES[worst])}, {large_vms} VMs / {small_vms} VMs", growth[worst],
         "(informative)"),
        (f"queries per inventory page at {large_vms} VMs", large_queries, f"<= {small_queries} (as at {small_vms})"),
        (f"cloud calls per sync of {large_vms} VMs", large_calls,
         f"grows with pages: {small_calls} at {small_vms} VMs; never ~{large_vms}"),
        (f"sync time of {large_vms} VMs (s)", sync_seconds, "(informative)"),
    ]


if __name__ == "__main__":
    print(json.dumps(_child()))
