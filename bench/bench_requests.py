"""Access request benchmarks: form submit → "open" against the emulator, as a ratio to one direct SDK
``initiate`` measured in the same run (at the emulator's own speed, and with each ``initiate`` slowed to an
Azure-like time), the portal's own time, and how many requests per second one worker sustains.

Runs in a child process with a scratch SQLite database (or the PostgreSQL one ``DATABASE_URL`` names), the demo
emulator, a private ``redis-server`` as the broker (the embedded filesystem broker when none is installed), one real
Celery worker and the notifications worker at ``nice 10`` (as the Procfile runs it); all are removed afterwards.
"""
from __future__ import annotations

import html
import itertools
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from bench.child import ROOT, run_child

SUBSCRIPTION = "c0a1b2c3-0000-4000-8000-000000000001"
TENANT = "8a0e7c31-4a8e-4d8b-9d2a-6f6a1b2c3d4e"
SAMPLES = 25
THROUGHPUT_REQUESTS = 60
# Azure's ``initiate`` crosses the internet to Resource Manager, which checks the caller's role and hands the call to
# Defender for Cloud, which writes the NSG: far slower than the emulator's few milliseconds on the same machine. The
# second measurement delays each emulator ``initiate`` by this much (its ``slow`` fault), a floor well under
# Azure's, so the ratio shows what the portal adds to a call that takes Azure-like time.
AZURE_LIKE_DELAY = 0.1
AZURE_LIKE_SAMPLES = 15


def run() -> list[tuple[str, float, str]]:
    """Run the measurements in a child process and return the figures: on a scratch SQLite database, or, when
    ``DATABASE_URL`` names PostgreSQL (as deployed), on a scratch database made on that server and dropped after."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return run_child("bench.bench_requests", "requests")
    import psycopg
    from psycopg import sql

    name = f"jitportal_bench_requests_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as server:
        server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        return run_child("bench.bench_requests", "requests",
                         {"DATABASE_URL": urlsplit(url)._replace(path=f"/{name}").geturl()})
    finally:
        with psycopg.connect(url, autocommit=True) as server:
            server.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- child process ----------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _schema() -> None:
    """Create the scratch database's tables."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _requester():
    from accounts import services as account_services
    from accounts.models import RoleMapping

    RoleMapping.objects.get_or_create(source_kind="app_role", source_value="JIT.Requester", tenant_id="",
                                      role="requester", scope=f"/subscriptions/{SUBSCRIPTION}")
    return account_services.user_sign_in_record(claims={
        "tid": TENANT, "oid": "8a0e7c31-0000-4000-8000-000000000001", "preferred_username": "alice@contoso.example",
        "name": "Alice Requester", "roles": ["JIT.Requester"], "groups": []})


class DirectInitiate:
    """One ``initiate`` at a time through the gateway's SDK client with a warm token (no portal: no database, no
    broker, no worker): the reference each portal sample is compared with."""

    def __init__(self, emu) -> None:
        from cloud.azure import AzureGateway
        from cloud.config import CloudEndpoint, CredentialSpec

        credential = CredentialSpec(tenant_id=TENANT, client_id="0d3b6a9e-5c1f-4e2a-9b7d-1a2b3c4d5e6f",
                                    client_secret="demo-portal-secret")
        self.gateway = AzureGateway(SUBSCRIPTION, credential,
                                    CloudEndpoint.for_url(emu.url, ca_bundle=str(emu.ca_pem)))
        self.vm = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-web-prod/providers/Microsoft.Compute/"
                   f"virtualMachines/web-01")
        self.calls = 0

    def __call__(self) -> float:
        """Seconds of one call."""
        from datetime import UTC, datetime, timedelta

        self.calls += 1
        ports = [{"number": 22, "endTimeUtc": datetime.now(UTC) + timedelta(hours=1),
                  "allowedSourceAddressPrefix": f"198.51.100.{self.calls % 250}/32"}]
        started = time.perf_counter()
        self.gateway.initiate_jit("rg-web-prod", "westeurope", "default", [{"id": self.vm, "ports": ports}],
                                  justification="bench")
        return time.perf_counter() - started

    def close(self) -> None:
        self.gateway.close()


def _wait_open(port_ids: list[int], timeout: float = 60.0) -> None:
    """Return as soon as every port has opened (what the request page would show on its next poll; a port a
    newer request on it has replaced since counts too): a small indexed read every 0.5 ms, so detection adds well
    under a millisecond."""
    from django.db import connection

    from policies.access.models import AccessRequestPort

    table = connection.ops.quote_name(AccessRequestPort._meta.db_table)
    marks = ", ".join(["%s"] * len(port_ids))
    sql = f"SELECT 1 FROM {table} WHERE id IN ({marks}) AND opened_at IS NULL LIMIT 1"  # noqa: S608 - our names
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while True:
            cursor.execute(sql, port_ids)
            if cursor.fetchone() is None:
                return
            if time.monotonic() > deadline:
                rows = AccessRequestPort.objects.filter(pk__in=port_ids, opened_at__isnull=True)
                raise RuntimeError(
                    f"requests did not open in time: {list(rows.values_list('state', 'last_error'))[:5]}")
            time.sleep(0.0005)


def _form_data(client, vm_pk: int, address: str) -> str:
    """The request form's fields for SSH from "my IP" for an hour, with the token of a fresh form page, encoded as
    a browser sends the form (``application/x-www-form-urlencoded``; see ``FORM``)."""
    page = client.get(f"/requests/new/?vm={vm_pk}", REMOTE_ADDR=address)
    token = re.search(r'name="token" value="([0-9a-f]+)"', page.content.decode()).group(1)
    return urlencode({"vm": vm_pk, "ports": f"{vm_pk}:22", "source_kind": "my_ip", "duration": 3600,
                      "justification": "bench", "token": token})


FORM = "application/x-www-form-urlencoded"  # the request form has no enctype


# Where a sample's time goes, from the times the rows record (the portal's clock, as each process read it).
STEPS = ("submit -> request row stored", "stored -> worker claims (ports, audit, commit, publish, broker)",
         "claim -> initiate answered (claim's writes, gateway, initiate)",
         "answered -> open seen (recorded, committed)")


def _steps(request_id: int, submitted: float, seen: float) -> tuple[float, ...]:
    """Seconds of each of ``STEPS`` for one request, from its rows' times: stored (``created_at``), claimed
    (``claimed_at``), answered (``opened_at``, taken as Azure's answer is recorded)."""
    from policies.access.models import AccessRequest, AccessRequestPort

    stored = AccessRequest.objects.get(pk=request_id).created_at.timestamp()
    claimed, answered = AccessRequestPort.objects.filter(request_id=request_id).values_list(
        "claimed_at", "opened_at")[0]
    marks = (submitted, stored, claimed.timestamp(), answered.timestamp(), seen)
    return tuple(later - earlier for earlier, later in itertools.pairwise(marks))


def _submit_to_open(client, vm_pk: int, direct: DirectInitiate, posts: list[float], steps: list[tuple],
                    samples: int = SAMPLES, first_address: int = 1) -> tuple[list[float], list[float]]:
    """Seconds from form submit to open, each sample after one direct ``initiate``: the two alternate, so both
    meet the same emulator (idle, the same policy size) and the same moment of a machine whose speed drifts."""
    from policies.access.models import AccessRequestPort

    times, references = [], []
    for address in range(first_address, first_address + samples + 2):
        time.sleep(0.05)  # the previous sample's tail (its notifications) is done: neither meets it
        references.append(direct())
        data = _form_data(client, vm_pk, f"203.0.113.{address}")
        time.sleep(0.02)
        submitted, started = time.time(), time.perf_counter()
        response = client.post("/requests/new/", data, FORM, REMOTE_ADDR=f"203.0.113.{address}")
        posts.append(time.perf_counter() - started)
        assert response.status_code == 302, response.content[:500]
        request_id = int(response["Location"].rstrip("/").split("/")[-1])
        _wait_open(list(AccessRequestPort.objects.filter(request_id=request_id).values_list("pk", flat=True)))
        times.append(time.perf_counter() - started)
        steps.append(_steps(request_id, submitted, submitted + times[-1]))
    del steps[:2]
    return times[2:], references[2:]  # the first ones warm the worker's gateway and the direct client's token


def _submit_to_page_open(client, vm_pk: int, samples: int = 10) -> list[float]:
    """Seconds from the POST until the request page, polling as a browser would (the redirect, then the status
    fragment at the interval it asks for), shows the request open."""
    trigger = re.compile(r'hx-get="([^"]+)" hx-trigger="every (\d+)(ms|s)"')
    times = []
    for i in range(samples):
        address = f"203.0.113.{100 + i}"
        data = _form_data(client, vm_pk, address)
        started = time.perf_counter()
        response = client.post("/requests/new/", data, FORM, REMOTE_ADDR=address, follow=True)
        text = response.content.decode()
        while 'class="request-status access-open"' not in text:
            found = trigger.search(text)
            if found is None or time.perf_counter() - started > 60:
                raise RuntimeError(f"the request page stopped polling before it showed open: {text[:500]}")
            time.sleep(int(found.group(2)) / (1000 if found.group(3) == "ms" else 1))
            text = client.get(html.unescape(found.group(1)), HTTP_HX_REQUEST="true").content.decode()
        times.append(time.perf_counter() - started)
    return times


def _throughput(requester, vm_names: list[str]) -> float:
    from datetime import timedelta

    from policies.access import services
    from policies.access.models import AccessRequestPort
    from policies.models import VirtualMachine

    vms = list(VirtualMachine.objects.filter(name__in=vm_names))
    started = time.perf_counter()
    ids = []
    for i in range(THROUGHPUT_REQUESTS):
        vm = vms[i % len(vms)]
        request, _ = services.request_create(
            actor=requester, selections=[services.Selection(vm, (22,))], source_prefix=f"198.51.100.{i % 250}/32",
            duration=timedelta(hours=1), justification="throughput", idempotency_key=uuid.uuid4().hex)
        ids.append(request.pk)
    _wait_open(list(AccessRequestPort.objects.filter(request_id__in=ids).values_list("pk", flat=True)), 300)
    return THROUGHPUT_REQUESTS / (time.perf_counter() - started)


def _start_broker(scratch: Path) -> tuple[str, subprocess.Popen | None]:
    """A private ``redis-server``, or the embedded filesystem broker when there is none (or when
    ``BENCH_BROKER=filesystem`` asks for it)."""
    if os.environ.get("BENCH_BROKER") == "filesystem" or not shutil.which("redis-server"):
        return "filesystem://", None
    port = _free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",  # noqa: S603,S607
                                "--appendonly", "no", "--dir", str(scratch)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return f"redis://127.0.0.1:{port}/0", process


def _worker(queue: str, env: dict, log: Path, nice: int = 0) -> subprocess.Popen:
    """One Celery worker (solo pool) consuming ``queue``, at ``nice`` priority."""
    command = [sys.executable, "-m", "celery", "-A", "jitportal", "worker", "--pool=solo", "--loglevel=INFO",
               "--without-mingle", "--without-gossip", "-Q", queue, "-n", f"{queue}@%h"]
    if nice:
        command = ["nice", "-n", str(nice), *command]
    return subprocess.Popen(command, cwd=ROOT, env=env,  # noqa: S603 - our own interpreter and arguments
                            stdout=subprocess.DEVNULL, stderr=log.open("w"))


def main() -> None:
    import django

    scratch = Path(os.environ["BENCH_SCRATCH"])
    broker_url, broker = _start_broker(scratch)
    os.environ["CELERY_BROKER_URL"] = broker_url
    os.environ["CELERY_FILESYSTEM_FOLDER"] = str(scratch / "broker")
    os.environ["CELERY_TASK_DEFAULT_QUEUE"] = "bench-requests"
    django.setup()
    from django.db import connection
    from django.test import Client

    from emulator.testing import run_emulator
    from jitportal.lib.health import ensure_broker_folders
    from policies import services as policy_services
    from policies.models import SyncRun, VirtualMachine

    _schema()
    from django.conf import settings

    ensure_broker_folders(settings.CELERY_BROKER_TRANSPORT_OPTIONS, settings.CELERY_RESULT_BACKEND)
    worker = notifier = None
    try:
        with run_emulator("demo", cert_dir=scratch / "certs") as emu:
            subscription = policy_services.subscription_register(
                actor=None, tenant_id=TENANT, subscription_id=SUBSCRIPTION, display_name="Contoso Production",
                arm_endpoint=emu.url, authority=emu.url, ca_bundle=str(emu.ca_pem), credential_ref="demo", sync=False)
            run = SyncRun.objects.create(subscription=subscription)
            policy_services.sync_run(run_id=run.pk)
            requester = _requester()
            direct = DirectInitiate(emu)
            worker_env = dict(os.environ)  # the same database and broker
            worker = _worker("bench-requests", worker_env, scratch / "worker.log")
            # As deployed (Procfile): e-mail and webhooks on their own worker, sharing the machine.
            notifier = _worker(settings.CELERY_NOTIFICATIONS_QUEUE, worker_env, scratch / "notifier.log", nice=10)
            time.sleep(3)
            client = Client(HTTP_HOST="127.0.0.1")
            client.force_login(requester)
            posts: list[float] = []
            steps: list[tuple] = []
            web_02 = VirtualMachine.objects.get(name="web-02").pk
            portal, references = _submit_to_open(client, web_02, direct, posts, steps)
            emu.add_fault("/initiate$", "slow", method="POST", delay=AZURE_LIKE_DELAY)
            slowed, slowed_references = _submit_to_open(client, web_02, direct, [], [], samples=AZURE_LIKE_SAMPLES,
                                                        first_address=40)
            emu.clear_faults()
            direct.close()
            sdk = statistics.median(references)
            on_page = _submit_to_page_open(client, web_02)
            rate = _throughput(requester, ["web-02", "web-04", "jump-02"])
    except Exception:
        if (scratch / "worker.log").exists():
            print((scratch / "worker.log").read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        for process in (worker, notifier):
            if process is not None:
                process.terminate()
        for process in (worker, notifier):
            if process is not None:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        if broker is not None:
            broker.kill()
            broker.wait()
    runs = [line for line in (scratch / "worker.log").read_text().splitlines(True) if "succeeded in" in line]
    print("".join(runs[-10:]), file=sys.stderr)  # the worker's own task times, for a reader of stderr
    median = statistics.median(portal)
    slowed_sdk, slowed_median = statistics.median(slowed_references), statistics.median(slowed)
    p95 = statistics.quantiles(portal, n=20)[18]
    print(json.dumps([
        ["direct SDK initiate, median (ms)", sdk * 1000, "reference"],
        ["form submit -> open, median (ms)", median * 1000, f"{connection.vendor}, broker {broker_url.split(':')[0]}"],
        ["form submit -> open, p95 (ms)", p95 * 1000, "-"],
        ["form POST answered (request stored, task sent), median (ms)", statistics.median(posts[2:]) * 1000, "-"],
        ["portal's own time: median submit -> open minus median initiate (ms)", (median - sdk) * 1000, "-"],
        *([f"  {step}, median (ms)", statistics.median(sample[n] for sample in steps) * 1000, "-"]
          for n, step in enumerate(STEPS)),
        ["submit -> the request page shows open (polling as a browser), median (ms)",
         statistics.median(on_page) * 1000, "-"],
        ["submit -> open median / direct SDK initiate (the emulator's own speed)", median / sdk, "-"],
        ["submit -> open p95 / direct SDK initiate (the emulator's own speed)", p95 / sdk, "-"],
        [f"direct SDK initiate, slowed by {AZURE_LIKE_DELAY * 1000:.0f} ms as Azure-like, median (ms)",
         slowed_sdk * 1000, "reference"],
        ["submit -> open median / direct SDK initiate, both Azure-like", slowed_median / slowed_sdk, "<= 1.5"],
        ["requests opened per second by one worker", rate, "> 5"],
    ]))


if __name__ == "__main__":
    main()
