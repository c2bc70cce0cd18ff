"""Request list benchmarks: the Requests page and the API's list at 100,000 requests vs 1,000, as ratios measured
in one run, for a policy admin (every request in their scope).

Each size's time is the sum of its pages' medians: the first page, a page in the middle of the list (newest
first, and sorted by state, where most requests tie), a filtered page; in the API the first page and one in the
middle. The rows are made with ``bulk_create`` in a scratch SQLite database (or ``DATABASE_URL`` when it names
PostgreSQL), the 1,000 copied aside before the rest are added; both are removed afterwards.
"""
from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

from bench.bench_inventory import _drop, _snapshot, _use_database
from bench.child import policy_admin, run_child

SMALL, LARGE = 1_000, 100_000
REPEATS = 15
ROUNDS = 5  # REPEATS split into rounds alternating between the two sizes
SUBSCRIPTION = "c0a1b2c3-0000-4000-8000-000000000001"
TENANT = "8a0e7c31-4a8e-4d8b-9d2a-6f6a1b2c3d4e"


def run() -> list[tuple[str, float, str]]:
    """Run the measurements in a child process and return the figures."""
    return run_child("bench.bench_request_list", "request list")


# --- child process ----------------------------------------------------------------------------------------------


def _vm():
    from policies.models import Subscription, VirtualMachine, VmState

    subscription = Subscription.objects.create(subscription_id=SUBSCRIPTION, tenant_id=TENANT,
                                               display_name="Contoso Production", credential_ref="demo")
    arm_id = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-web-prod/providers/Microsoft.Compute/"
              "virtualMachines/web-01")
    return VirtualMachine.objects.create(
        resource_id=arm_id.lower(), arm_id=arm_id, name="web-01", subscription=subscription,
        subscription_key=SUBSCRIPTION, resource_group="rg-web-prod", resource_group_name="rg-web-prod",
        location="westeurope", os_type="Linux", state=VmState.CONFIGURED, connection_type="nsg",
        policy_name="default", policy_resource_group="rg-web-prod", policy_location="westeurope",
        ports=[{"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}])


def _insert(model, template, rows: list[dict]) -> None:
    """Insert ``rows`` of ``model`` in one ``executemany``: each column as in ``template`` (an unsaved instance, its
    values prepared once as Django would), but for the columns a row gives, already prepared for the database.
    ``bulk_create`` prepares every field of every row again: 40 s for 100,000 requests with their VMs and ports."""
    from django.db import connection

    fields = model._meta.concrete_fields
    base = {f.column: f.get_db_prep_save(f.pre_save(template, add=True), connection) for f in fields}
    columns = list(base)
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({quoted}) VALUES ({marks})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.executemany(sql, [tuple({**base, **row}[c] for c in columns) for row in rows])


def _add(vm, requester, start: int, stop: int) -> None:
    """Requests ``start`` to ``stop`` (each on ``vm``, port 22; ids ``start + 1``…), newest the lowest number, two
    in each second (ties the id breaks), mostly expired as a long history is."""
    import uuid

    from django.db import connection, transaction
    from django.utils import timezone

    from policies.access.models import AccessRequest, AccessRequestPort, AccessRequestVm, PortState
    from policies.access.source_order import source_sort_key

    at = connection.ops.adapt_datetimefield_value
    uuid_field = AccessRequest._meta.get_field("correlation_id")
    now = timezone.now()
    states = [PortState.EXPIRED] * 8 + [PortState.CLOSED, PortState.FAILED]
    request = AccessRequest(requester=requester, requester_name="", justification="", idempotency_key="",
                            source_prefix="", end_at=now, created_at=now)
    row = AccessRequestVm(request=request, vm=vm, vm_arm_id=vm.arm_id, vm_name=vm.name,
                          subscription_key=SUBSCRIPTION, resource_group="rg-web-prod",
                          policy_key=vm.policy_id.lower(), policy_resource_group="rg-web-prod",
                          policy_location="westeurope", policy_name="default")
    port = AccessRequestPort(request=request, request_vm=row, policy_key=row.policy_key, number=22,
                             source_prefix="", duration_seconds=3600, end_at=now)
    requests, vms, ports = [], [], []
    for n in range(start, stop):
        pk, moment = n + 1, now - timedelta(seconds=n // 2)
        source, state, end = f"198.51.{n % 250}.{n % 199}/32", states[n % len(states)], at(moment + timedelta(hours=1))
        requests.append({"id": pk, "requester_name": f"user{n % 97}@contoso.example", "justification": f"bench {n}",
                         "idempotency_key": f"bench-{n}", "correlation_id": uuid_field.get_db_prep_save(
                             uuid.uuid4(), connection), "source_prefix": source,
                         "source_sort": source_sort_key(source), "state": state, "end_at": end,
                         "created_at": at(moment), "updated_at": at(moment)})
        vms.append({"id": pk, "request_id": pk})
        ports.append({"id": pk, "request_id": pk, "request_vm_id": pk, "source_prefix": source, "state": state,
                      "end_at": end})
    with transaction.atomic():
        _insert(AccessRequest, request, requests)
        _insert(AccessRequestVm, row, vms)
        _insert(AccessRequestPort, port, ports)
    _analyze()


def _analyze() -> None:
    """Fresh planner statistics, as after a history grows (autovacuum on PostgreSQL)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _middle(key: str, descending: bool) -> str:
    """The cursor of the row halfway down the admin's list sorted by ``key`` (found once, not measured)."""
    from jitportal.lib.keyset import encode_cursor
    from policies.access.models import AccessRequest

    total = AccessRequest.objects.count()
    order = [f"-{key}", "-pk"] if descending else [key, "pk"]
    row = AccessRequest.objects.order_by(*order).values_list(key, "pk")[total // 2]
    return encode_cursor(key, *row)


def _pages() -> list[tuple[str, str, dict]]:
    """The pages measured in the current database (label, URL, query)."""
    return [("page: first", "/requests/", {}),
            ("page: middle", "/requests/", {"after": _middle("created_at", True)}),
            ("page: middle, sorted by state", "/requests/", {"sort": "state", "after": _middle("state", False)}),
            ("page: closed ones", "/requests/", {"state": "closed"}),
            ("api: first", "/api/v1/requests/", {"all": "1"}),
            ("api: middle", "/api/v1/requests/", {"all": "1", "after": _middle("created_at", True)})]


def _get(client, url: str, params: dict, headers: dict) -> float:
    started = time.perf_counter()
    response = client.get(url, params, **headers)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, (url, params, response.status_code, response.content[:300])
    return elapsed


def _measure(client, token: str, databases: list[str]) -> list[list[float]]:
    """Each page's median time in each database; the databases take turns in short rounds, so each meets the same
    moments of a machine whose speed drifts."""
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    pages = {}
    for name in databases:
        _use_database(name)
        pages[name] = _pages()
    times = {name: [[] for _ in pages[name]] for name in databases}
    for _ in range(ROUNDS):
        for name in databases:
            _use_database(name)
            gc.collect()
            for _label, url, params in pages[name]:  # warm the connection and caches
                _get(client, url, params, headers if url.startswith("/api/") else {})
            for _ in range(REPEATS // ROUNDS):
                for index, (_label, url, params) in enumerate(pages[name]):
                    times[name][index].append(_get(client, url, params, headers if url.startswith("/api/") else {}))
    medians = [[statistics.median(each) for each in times[name]] for name in databases]
    if os.environ.get("BENCH_VERBOSE"):
        for name, pages_of in zip(databases, medians, strict=True):
            for (label, _url, _params), median in zip(pages[name], pages_of, strict=True):
                print(Path(name).name, label, round(median * 1000, 1), "ms", file=sys.stderr)
    return medians


def _child() -> list[tuple[str, float, str]]:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from api import services as api_services

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.API_THROTTLE_USER = "1000000/min"
    call_command("migrate", verbosity=0)
    admin, vm = policy_admin(SUBSCRIPTION, TENANT), _vm()
    token = api_services.token_create(actor=admin, name="bench").secret
    client = Client()
    client.force_login(admin)  # its session is in both databases
    started = time.perf_counter()
    _add(vm, admin, 0, SMALL)
    small_db, large_db = _snapshot(), connection.settings_dict["NAME"]
    _use_database(large_db)
    _add(vm, admin, SMALL, LARGE)
    build_seconds = time.perf_counter() - started
    try:
        small, large = _measure(client, token, [small_db, large_db])
    finally:
        _use_database(large_db)
        _drop(small_db)
    labels = [label for label, _, _ in _pages()]
    ui = [i for i, label in enumerate(labels) if label.startswith("page")]
    api = [i for i, label in enumerate(labels) if label.startswith("api")]
    growth = [big / little for big, little in zip(large, small, strict=True)]
    worst = max(range(len(labels)), key=growth.__getitem__)
    return [
        (f"requests page time, {LARGE} requests / {SMALL}", sum(large[i] for i in ui) / sum(small[i] for i in ui),
         "<= 1.5"),
        (f"API request list time (all=1), {LARGE} requests / {SMALL}",
         sum(large[i] for i in api) / sum(small[i] for i in api), "<= 1.5"),
        (f"requests page time at {LARGE} requests (ms, mean of the pages' medians)",
         sum(large[i] for i in ui) / len(ui) * 1000, "(informative)"),
        (f"API request list time at {LARGE} requests (ms, mean of the pages' medians)",
         sum(large[i] for i in api) / len(api) * 1000, "(informative)"),
        (f"  the page that grows most: {labels[worst]}, {LARGE} / {SMALL}", growth[worst], "(informative)"),
        (f"building {LARGE} requests (s)", build_seconds, "(informative)"),
    ]


if __name__ == "__main__":
    print(json.dumps(_child()))
