"""Audit benchmarks on PostgreSQL: ingestion vs a plain bulk insert, search and CSV export at 10k vs 1M events.

The figures need PostgreSQL: ``DATABASE_URL`` when it names one, otherwise a scratch database created (and
dropped afterwards) on the local server at 127.0.0.1:5432 as user ``postgres``. The measurements run in a child
process so Django is configured for that database and memory is measured apart from the other suites.
"""
from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCAL_SERVER = "postgres://postgres@127.0.0.1:5432"
SMALL, LARGE = 10_000, 1_000_000
INGEST_ROWS = 20_000
PAGE = 200  # rows per Activity Log page, as Azure returns them
VMS = 2_000
CALLERS = [f"user{n:03d}@contoso.example" for n in range(200)]
OPERATIONS = [
    "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action",
    "Microsoft.Security/locations/jitNetworkAccessPolicies/write",
    "Microsoft.Network/networkSecurityGroups/securityRules/write",
    "Microsoft.Network/networkSecurityGroups/securityRules/delete",
]
SUBSCRIPTION = "c0a1b2c3-0000-4000-8000-000000000001"


def run() -> list[tuple[str, float, str]]:
    """Run the measurements in a child process against PostgreSQL and return the figures."""
    url = os.environ.get("DATABASE_URL", "")
    scratch = None
    if not url.startswith(("postgres://", "postgresql://")):
        scratch = f"jitportal_bench_{uuid.uuid4().hex[:8]}"
        _admin_sql(f'CREATE DATABASE "{scratch}"')
        url = f"{LOCAL_SERVER}/{scratch}"
    try:
        env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "jitportal.settings.test"}
        result = subprocess.run(
            [sys.executable, "-m", "bench.bench_audit"], cwd=ROOT, env=env, capture_output=True, text=True,
            check=False, timeout=1800,
        )
        if result.returncode != 0:
            raise RuntimeError(f"audit benchmark failed:\n{result.stdout}\n{result.stderr}")
        figures = json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        if scratch:
            _admin_sql(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    return [(label, float(value), goal) for label, value, goal in figures]


def _admin_sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{LOCAL_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(statement)


# --- child process ----------------------------------------------------------------------------------------------

def _vm(n: int) -> str:
    return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-{n * 40 // VMS:02d}/providers/Microsoft.Compute/"
            f"virtualMachines/vm-{n:05d}")


def _events(count: int, newest: datetime, offset: int = 0):
    """``count`` gateway-shaped events, one every 5 seconds back from ``newest``."""
    from cloud.types import ActivityEvent

    for i in range(offset, offset + count):
        vm_number = (i * 7919) % VMS
        vm = _vm(vm_number)
        rg = f"rg-{vm_number * 40 // VMS:02d}"
        policy = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}/providers/Microsoft.Security/locations/"
                  f"westeurope/jitNetworkAccessPolicies/default")
        when = newest - timedelta(seconds=5 * i)
        properties = {"virtualMachines": vm, "ports": "22", "justification": f"ticket INC-{i % 9000}"}
        event_id = f"00000000-0000-4000-b000-{i:012x}"
        yield ActivityEvent(
            event_data_id=event_id, correlation_id=f"00000000-0000-4000-a000-{i:012x}", event_timestamp=when,
            submission_timestamp=when + timedelta(seconds=12), caller=CALLERS[i % len(CALLERS)],
            operation_name=OPERATIONS[i % len(OPERATIONS)], status="Succeeded" if i % 2 else "Started",
            sub_status="OK", level="Informational", category="Administrative", resource_id=policy, resource_group=rg,
            resource_provider="Microsoft.Security",
            resource_type="Microsoft.Security/locations/jitNetworkAccessPolicies",
            subscription_id=SUBSCRIPTION, properties=properties,
            raw={"eventDataId": event_id, "properties": properties},
        )


def _pages(iterable, size: int = PAGE):
    page = []
    for item in iterable:
        page.append(item)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def _truncate() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE audit_activitylogevent, audit_activitylogeventvm RESTART IDENTITY")


def _measure_ingestion() -> float:
    """Events/s through ``store_events`` (page by page) divided by a plain ``bulk_create`` of the same rows."""
    from audit.ingestion import row_from_event, store_events
    from audit.models import ActivityLogEvent

    newest = datetime.now(UTC)
    pages = list(_pages(_events(INGEST_ROWS, newest)))
    _truncate()
    started = time.perf_counter()
    for page in pages:
        store_events(page)
    ours = INGEST_ROWS / (time.perf_counter() - started)
    _truncate()
    started = time.perf_counter()
    for page in pages:
        ActivityLogEvent.objects.bulk_create([row_from_event(e) for e in page], batch_size=PAGE)
    plain = INGEST_ROWS / (time.perf_counter() - started)
    _truncate()
    return ours / plain


_GENERATE = """
INSERT INTO audit_activitylogevent (event_data_id, correlation_id, occurred_at, submitted_at, subscription_id,
    resource_group, resource_id, resource_provider, resource_type, caller, operation_name, status, sub_status, level,
    category, vm_ids, search_text, properties, raw, ingested_at)
SELECT '00000000-0000-4000-b000-' || lpad(to_hex(i), 12, '0'),
       '00000000-0000-4000-a000-' || lpad(to_hex(i), 12, '0'),
       %(newest)s - i * interval '5 seconds',
       %(newest)s - i * interval '5 seconds' + interval '12 seconds',
       %(sub)s, rg,
       lower('/subscriptions/' || %(sub)s || '/resourceGroups/' || rg
             || '/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default'),
       'Microsoft.Security', 'Microsoft.Security/locations/jitNetworkAccessPolicies',
       caller, (%(operations)s::text[])[i %% 4 + 1], status, 'OK', 'Informational', 'Administrative',
       ' ' || vm || ' ',
       caller || ' ' || lower(split_part((%(operations)s::text[])[i %% 4 + 1], '/', -2)) || '/'
           || lower(split_part((%(operations)s::text[])[i %% 4 + 1], '/', -1)) || ' ' || lower(status)
           || ' default ok ' || vm_name || ' 22 ticket inc-' || (i %% 9000),
       jsonb_build_object('virtualMachines', vm, 'ports', '22', 'justification', 'ticket INC-' || (i %% 9000)),
       jsonb_build_object('eventDataId', '00000000-0000-4000-b000-' || lpad(to_hex(i), 12, '0')),
       now()
FROM (
    SELECT i, 'rg-' || lpad((((i * 7919) %% %(vms)s) * 40 / %(vms)s)::text, 2, '0') AS rg,
           'user' || lpad((i %% 200)::text, 3, '0') || '@contoso.example' AS caller,
           CASE WHEN i %% 2 = 1 THEN 'Succeeded' ELSE 'Started' END AS status,
           'vm-' || lpad(((i * 7919) %% %(vms)s)::text, 5, '0') AS vm_name,
           lower('/subscriptions/' || %(sub)s || '/resourceGroups/rg-'
                 || lpad((((i * 7919) %% %(vms)s) * 40 / %(vms)s)::text, 2, '0')
                 || '/providers/Microsoft.Compute/virtualMachines/vm-'
                 || lpad(((i * 7919) %% %(vms)s)::text, 5, '0')) AS vm
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i
) AS g
"""


def _generate_rows(count: int, offset: int, newest: datetime) -> None:
    """Fill the tables in the database itself (the bench's data, not what it measures): the same shape as
    ``_events`` through ingestion, secondary indexes dropped while loading and rebuilt after."""
    from django.db import connection

    tables = ("audit_activitylogevent", "audit_activitylogeventvm")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint)", [list(tables)])
        indexes = cursor.fetchall()
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute(_GENERATE, {"newest": newest, "sub": SUBSCRIPTION, "operations": OPERATIONS, "vms": VMS,
                                   "first": offset, "last": offset + count - 1})
        cursor.execute(
            "INSERT INTO audit_activitylogeventvm (event_data_id, vm_id, occurred_at) "
            "SELECT event_data_id, trim(vm_ids), occurred_at FROM audit_activitylogevent WHERE id > %s", [offset])
        cursor.execute("SET maintenance_work_mem = '256MB'")
        for _name, definition in indexes:
            cursor.execute(definition)
        for table in tables:
            cursor.execute(f"VACUUM ANALYZE {table}")


SEARCHES = [
    {},
    {"vm": _vm(1234)},
    {"caller": CALLERS[17]},
    {"q": "inc-4242"},
    {"range": "7d", "status": "Failed"},
    {"operation": OPERATIONS[0], "resource_group": "rg-07"},
]


def _search_seconds(client) -> float:
    """Median time of each search page, summed over the searches (a page of 50 newest rows each)."""
    total = 0.0
    for params in SEARCHES:
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            response = client.get("/audit/", params)
            timings.append(time.perf_counter() - started)
            assert response.status_code == 200, response.status_code
        total += statistics.median(timings)
    return total


def _export() -> dict:
    """One full CSV export through the view, in this fresh process: rows, seconds and the process's peak RSS."""
    import resource

    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    from accounts.models import User

    settings.ALLOWED_HOSTS = ["*"]
    client = Client()
    client.force_login(User.objects.get(username="bench"))
    client.get("/audit/")  # import and warm everything a request touches before the high-water mark resets
    _reset_peak_rss()
    started = time.perf_counter()
    response = client.get("/audit/export.csv")
    lines = 0
    for chunk in response.streaming_content:
        lines += chunk.count(b"\n")
    seconds = time.perf_counter() - started
    peak_kb = _peak_rss_kb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rows": lines - 1, "seconds": seconds, "peak_kb": peak_kb}


def _reset_peak_rss() -> None:
    """Linux: restart the process's RSS high-water mark, so the peak is the export's, not start-up's."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_kb() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _export_in_child() -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "bench.bench_audit", "export"], cwd=ROOT, env=dict(os.environ), capture_output=True,
        text=True, check=True, timeout=900,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _phase(name: str, started: list[float]) -> None:
    """Progress on stderr (the parent shows it only when the run fails)."""
    now = time.perf_counter()
    print(f"{name}: {now - started[0]:.1f}s", file=sys.stderr, flush=True)
    started[0] = now


def child() -> list[tuple[str, float, str]]:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    from accounts.models import User

    clock = [time.perf_counter()]
    ingest_ratio = _measure_ingestion()
    _phase("ingestion", clock)
    admin = User.objects.create_superuser("bench", "bench@example.invalid", "bench-password-1")
    client = Client()
    client.force_login(admin)
    newest = datetime.now(UTC)
    _generate_rows(SMALL, 0, newest)
    _search_seconds(client)  # warm up
    small_search = _search_seconds(client)
    small = _export_in_child()
    assert small["rows"] == SMALL, small
    _phase("10k rows", clock)
    _generate_rows(LARGE - SMALL, SMALL, newest)
    _phase("1M rows loaded", clock)
    _search_seconds(client)
    large_search = _search_seconds(client)
    _phase("1M searches", clock)
    large = _export_in_child()
    assert large["rows"] == LARGE, large
    _phase("1M export", clock)
    _truncate()
    return [
        ("audit: ingestion events/s vs plain bulk insert (ratio)", ingest_ratio, ">= 0.5"),
        ("audit: search time at 1,000,000 / at 10,000 events", large_search / small_search, "<= 2"),
        ("audit: search time at 1,000,000 events (s, 6 searches)", large_search, "info"),
        ("audit: CSV export rows/s at 1,000,000 rows", large["rows"] / large["seconds"], "info"),
        ("audit: CSV export peak RSS (MB) at 10,000 rows", small["peak_kb"] / 1024, "info"),
        ("audit: CSV export peak RSS (MB) at 1,000,000 rows", large["peak_kb"] / 1024, "info"),
        ("audit: CSV export peak RSS 1,000,000 / 10,000 rows", large["peak_kb"] / small["peak_kb"], "<= 1.2"),
    ]


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(json.dumps(_export() if sys.argv[1:] == ["export"] else child()))
