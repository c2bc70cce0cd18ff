"""Factories for the policies tests and the authorization matrix: subscriptions, VMs and changes at a scope."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import F
from django.utils import timezone

from accounts.scopes import parse_scope
from policies import gateway, services
from policies.models import (
    HubTopology,
    JitPolicy,
    PolicyChange,
    PolicyPort,
    Subscription,
    SyncRun,
    VirtualMachine,
    VmState,
)

TENANT = "8a0e7c31-4a8e-4d8b-9d2a-6f6a1b2c3d4e"
PROD = "c0a1b2c3-0000-4000-8000-000000000001"
DEV = "c0a1b2c3-0000-4000-8000-000000000002"
CONNECTIVITY = "c0a1b2c3-0000-4000-8000-000000000003"  # a landing zone's hub subscription, registered nowhere
# A second app registration of the tenant, the credential reference "connectivity" (``connectivity_credential``).
CONNECTIVITY_CLIENT_ID = "3c2b1a09-0000-4000-8000-00000000c001"
CONNECTIVITY_SECRET = "connectivity-reader-secret"


def scoped_identities(*, portal: list[str], connectivity: list[str]) -> list[dict]:
    """The demo identities, the portal's app holding a role on the ``portal`` subscriptions only, and a second
    app (``CONNECTIVITY_CLIENT_ID``) holding one on the ``connectivity`` subscriptions."""
    from emulator.scenarios.identities import demo_identities

    identities = demo_identities()
    apps = identities[0]["apps"]
    apps[0]["subscriptions"] = list(portal)
    apps.append({"client_id": CONNECTIVITY_CLIENT_ID, "client_secret": CONNECTIVITY_SECRET,
                 "display_name": "JIT Portal (connectivity)", "service_principal_oid": CONNECTIVITY_CLIENT_ID,
                 "subscriptions": list(connectivity)})
    return identities


def connectivity_credential(settings) -> str:
    """Configure the credential reference ``connectivity`` (the second app of ``scoped_identities``) in
    pytest-django's ``settings``; returns it."""
    settings.PORTAL_CREDENTIALS = {**settings.PORTAL_CREDENTIALS, "connectivity": {
        "tenant_id": TENANT, "client_id": CONNECTIVITY_CLIENT_ID, "client_secret": CONNECTIVITY_SECRET}}
    return "connectivity"


def remote_hubs_scenario(vms_per_spoke: int = 2) -> dict:
    """Production's spoke VNets connected to secured hubs of other subscriptions: the connectivity subscription's
    (which also has a hub without a firewall) and Dev/Test's; and a Dev/Test spoke (``app-`` VMs) connected to
    the connectivity subscription's secured hub."""
    def connection(vnet: str, subscription: str = PROD, group: str = "rg-spokes") -> dict:
        return {"name": f"{vnet}-connection", "vnet": vnet, "vnet_group": group, "vnet_subscription": subscription}

    spokes = {"name": "rg-spokes", "vnets": [{"name": f"vnet-{s}", "address_space": f"10.{60 + i}.0.0/16"}
                                             for i, s in enumerate(("neu", "dev", "plain"))],
              "vms": [{"name": f"{s}-{i}", "os": "Linux", "vnet": f"vnet-{s}"}
                      for s in ("neu", "dev", "plain") for i in range(vms_per_spoke)]}
    hubs = {"name": "rg-connectivity", "location": "northeurope", "virtual_hubs": [
        {"name": "hub-neu", "address_prefix": "10.110.0.0/23", "firewall": {"name": "fw-hub-neu", "public_ip":
                                                                            "20.80.0.4"},
         "connections": [connection("vnet-neu"), connection("vnet-app", DEV, "rg-dev-spokes")]},
        {"name": "hub-plain", "address_prefix": "10.112.0.0/23", "connections": [connection("vnet-plain")]}]}
    dev_hub = {"name": "rg-dev-hub", "virtual_hubs": [
        {"name": "hub-dev", "address_prefix": "10.111.0.0/23", "firewall": {"name": "fw-hub-dev", "public_ip":
                                                                            "20.81.0.4"},
         "connections": [connection("vnet-dev")]}]}
    dev_spokes = {"name": "rg-dev-spokes", "vnets": [{"name": "vnet-app", "address_space": "10.70.0.0/16"}],
                  "vms": [{"name": f"app-{i}", "os": "Linux", "vnet": "vnet-app"} for i in range(vms_per_spoke)]}
    return {"name": "remote-hubs", "subscriptions": [
        {"id": PROD, "name": "Contoso Production", "plan": "P2", "resource_groups": [spokes]},
        {"id": CONNECTIVITY, "name": "Contoso Connectivity", "plan": "Free", "resource_groups": [hubs]},
        {"id": DEV, "name": "Contoso Dev/Test", "plan": "Free", "resource_groups": [dev_hub, dev_spokes]}]}


def dev_jit_scenario() -> dict:
    """The demo with Dev/Test on Defender P2 too, its ``default`` JIT policy in rg-dev covering dev-01's SSH: a
    request may span VMs of two subscriptions."""
    from emulator.scenarios.demo import LINUX_PORT, demo_scenario

    scenario = demo_scenario()
    dev = next(s for s in scenario["subscriptions"] if s["id"] == DEV)
    dev["plan"] = "P2"
    group = next(g for g in dev["resource_groups"] if g["name"] == "rg-dev")
    group["jit_policies"] = [{"name": "default", "created_hours_ago": 100,
                              "virtual_machines": [{"vm": "dev-01", "ports": [LINUX_PORT]}]}]
    return {**scenario, "name": "demo-dev-jit"}


def period_passes() -> None:
    """Age what the syncs share of the virtual hubs elsewhere (``policies.hub_topology``) by its period: the next
    sync reads them again."""
    HubTopology.objects.update(read_at=F("read_at") - timedelta(
        seconds=settings.INVENTORY_REMOTE_HUBS_MAX_AGE_SECONDS))


def gateways_built(monkeypatch) -> list:
    """The gateways the portal builds for registered subscriptions (``policies.gateway``) from now on."""
    built = []
    build = gateway.gateway_for_subscription

    def recorded(subscription: Subscription):
        built.append(build(subscription))
        return built[-1]

    monkeypatch.setattr(gateway, "gateway_for_subscription", recorded)
    return built


class Unexpected:
    """A real gateway whose ``method`` raises ``error``, an exception that is not the gateway's ``CloudError``, its
    first ``times`` calls: after the call reached Azure when ``after`` (as when Azure's answer has a shape the
    conversion did not expect), else without calling Azure. Everything else is the real gateway's, through the SDK
    against the emulator."""

    def __init__(self, real, method: str, error: Exception, *, after: bool = False, times: int = 1) -> None:
        self.gateway, self.method, self.error, self.after, self.times = real, method, error, after, times

    def __enter__(self):
        self.gateway.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self.gateway.__exit__(*exc_info)

    def __getattr__(self, name: str):
        real = getattr(self.gateway, name)
        if name != self.method:
            return real

        def call(*args, **kwargs):
            if self.times <= 0:
                return real(*args, **kwargs)
            self.times -= 1
            if self.after:
                real(*args, **kwargs)
            raise self.error

        return call


def unexpected_gateways(monkeypatch, method: str, error: Exception, **options) -> list[Unexpected]:
    """From now on the gateways the portal builds for registered subscriptions (``policies.gateway``) are
    ``Unexpected`` ones (``options``: ``after``, ``times``), each listed as it is built."""
    built: list[Unexpected] = []
    build = gateway.gateway_for_subscription

    def wrapped(subscription: Subscription):
        built.append(Unexpected(build(subscription), method, error, **options))
        return built[-1]

    monkeypatch.setattr(gateway, "gateway_for_subscription", wrapped)
    return built


def closed_after_use(built) -> bool:
    """Whether a gateway made its calls and then closed its SDK clients (and their HTTP sessions)."""
    return built.calls_made > 0 and not built._clients


def register(running_emulator, subscription_id: str, name: str = "", credential_ref: str = "demo") -> Subscription:
    """A subscription registered against ``running_emulator`` with the demo credential, or ``credential_ref`` (no
    sync queued)."""
    return services.subscription_register(
        actor=None, tenant_id=TENANT, subscription_id=subscription_id, display_name=name or subscription_id,
        arm_endpoint=running_emulator.url, authority=running_emulator.url, ca_bundle=str(running_emulator.ca_pem),
        credential_ref=credential_ref, sync=False)


def sync(subscription: Subscription) -> SyncRun:
    """Run one inventory sync in the test process (the task's service, synchronously)."""
    run = SyncRun.objects.create(subscription=subscription)
    outcome = services.sync_run(run_id=run.pk)
    run.refresh_from_db()
    assert outcome.state == SyncRun.State.SUCCEEDED, run.error
    return run



# What a sync stores, in the order the rows are written back (each row's foreign keys before it).
SYNCED_MODELS: tuple[type[models.Model], ...] = (JitPolicy, VirtualMachine, PolicyPort, HubTopology, SyncRun)
_synced_rows: dict[tuple, tuple] = {}
# A time in Azure's JSON (a policy's ``requests``): moved on with the rows' own times.
_JSON_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")


def register_and_sync(running_emulator, subscription_id: str, name: str) -> Subscription:
    """``register`` then ``sync`` against the freshly reset demo emulator (``fresh_emulator``).

    The first call in a test process for a key runs the real sync through the SDK and keeps the rows it stored;
    later calls write those rows again (their ids kept, the subscription's remapped, every time moved on by the
    time since, those in Azure's JSON too), since the same demo scenario answers a sync with the same inventory. A
    call with other rows stored (or another subscription registered), other settings, or an emulator changed since
    its reset (``kept_rows_key``) syncs for real and keeps nothing. Hundreds of tests start from this subscription;
    the sync itself is tested on its own.
    """
    subscription = register(running_emulator, subscription_id, name)
    key = kept_rows_key(running_emulator, subscription_id, name)
    alone = not (Subscription.objects.exclude(pk=subscription.pk).exists()
                 or any(model.objects.exists() for model in SYNCED_MODELS))
    if key is not None and alone and key in _synced_rows:
        _write_synced_rows(subscription, *_synced_rows[key])
        return subscription
    sync(subscription)
    if key is not None and alone:
        subscription.refresh_from_db()
        _synced_rows[key] = (timezone.now(), _field_values(subscription),
                             {model: [_field_values(row) for row in model.objects.order_by("pk")]
                              for model in SYNCED_MODELS})
    return subscription


def kept_rows_key(running_emulator, subscription_id: str, name: str) -> tuple | None:
    """What a real sync's rows are kept under: the emulator, the subscription, the database and the settings a sync
    reads. ``None`` when the emulator may no longer be the demo as ``fresh_emulator`` reset it, so that a sync of it
    stores something else: a control request sent since (another scenario, a fault, its page size or clock), or a
    write through Azure's API."""
    if getattr(running_emulator, "fresh_demo_changes", None) != running_emulator.changes:
        return None
    if any(call["method"] != "GET" and call["path"].lower().startswith("/subscriptions/")
           for call in running_emulator.calls()):
        return None
    return (running_emulator.url, subscription_id, name, connection.vendor, repr(settings.PORTAL_CREDENTIALS),
            settings.INVENTORY_REMOTE_HUBS_MAX_AGE_SECONDS, tuple(settings.CLOUD_ENDPOINT_HOSTS))


def _field_values(row: models.Model) -> dict:
    return {field.attname: getattr(row, field.attname) for field in row._meta.concrete_fields}


def _moved_json(value, shift: timedelta):
    """``value`` (a JSON field's) with each time in it moved on by ``shift``, written as before."""
    if isinstance(value, str) and _JSON_TIME.fullmatch(value):
        moved = (datetime.fromisoformat(value) + shift).isoformat()
        return moved.replace("+00:00", "Z") if value.endswith("Z") else moved
    if isinstance(value, list):
        return [_moved_json(item, shift) for item in value]
    if isinstance(value, dict):
        return {key: _moved_json(item, shift) for key, item in value.items()}
    return value


def _write_synced_rows(subscription: Subscription, taken_at, subscription_values: dict, rows: dict) -> None:
    shift = timezone.now() - taken_at

    def moved(model: type[models.Model], values: dict) -> dict:
        values = dict(values)
        for field in model._meta.concrete_fields:
            if isinstance(field, models.DateTimeField) and values[field.attname] is not None:
                values[field.attname] += shift
            elif isinstance(field, models.JSONField):
                values[field.attname] = _moved_json(values[field.attname], shift)
            elif field.is_relation and field.related_model is Subscription:
                values[field.attname] = subscription.pk
        return values

    updated = moved(Subscription, subscription_values)
    for attname in ("id", "created_at"):
        updated.pop(attname, None)
    with transaction.atomic():
        for model in SYNCED_MODELS:
            model.objects.bulk_create([model(**moved(model, values)) for values in rows[model]])
        Subscription.objects.filter(pk=subscription.pk).update(**updated)
    subscription.refresh_from_db()


def apply_all() -> list[str]:
    """Apply every queued policy change in the test process (the task's service, synchronously)."""
    states = []
    for pk in PolicyChange.objects.filter(state=PolicyChange.State.QUEUED).order_by("pk").values_list("pk", flat=True):
        states.append(services.policy_change_apply(change_id=pk).state)
    return states


def vm(name: str) -> VirtualMachine:
    return VirtualMachine.objects.select_related("subscription").get(name=name)


# --- objects at a scope, for the authorization matrix (``OBJECT_FACTORIES``) ---------------------------------
def make_subscription(scope: str) -> Subscription:
    parsed = parse_scope(scope)
    subscription, _ = Subscription.objects.get_or_create(
        subscription_id=parsed.subscription_id,
        defaults={"tenant_id": TENANT, "display_name": "matrix", "credential_ref": "demo"})
    return subscription


def make_vm(scope: str, name: str = "vm-matrix") -> VirtualMachine:
    """A configured VM ``name`` in the resource group of ``scope`` (``rg-matrix`` for a subscription's): the same row
    again for the same scope and name."""
    parsed = parse_scope(scope)
    subscription = make_subscription(scope)
    group = parsed.resource_group or "rg-matrix"
    arm_id = (f"/subscriptions/{parsed.subscription_id}/resourceGroups/{group}/providers/Microsoft.Compute/"
              f"virtualMachines/{name}")
    vm_row, _ = VirtualMachine.objects.get_or_create(
        resource_id=arm_id.lower(),
        defaults={"arm_id": arm_id, "name": name, "subscription": subscription,
                  "subscription_key": parsed.subscription_id, "resource_group": group.lower(),
                  "resource_group_name": group, "location": "westeurope", "os_type": "Linux",
                  "state": VmState.CONFIGURED, "connection_type": "nsg", "policy_name": "default",
                  "policy_resource_group": group, "policy_location": "westeurope",
                  "ports": [{"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*",
                             "maxRequestAccessDuration": "PT3H"}]})
    return vm_row


def make_policy_change(scope: str) -> PolicyChange:
    vm_row = make_vm(scope)
    with transaction.atomic():
        change = PolicyChange.objects.create(
            kind=PolicyChange.Kind.SAVE, subscription=vm_row.subscription, subscription_key=vm_row.subscription_key,
            resource_group=vm_row.resource_group, resource_group_name=vm_row.resource_group_name,
            location="westeurope", policy_id=vm_row.policy_id.lower(), desired={vm_row.arm_id: []},
            state=PolicyChange.State.APPLIED)
        change.vms.set([vm_row])
    return change


def make_many_vms(count: int, subscription_id: str = PROD, group: str = "rg-bulk") -> list[VirtualMachine]:
    """``count`` VMs spread over the three tabs (no emulator needed), created in bulk."""
    subscription = make_subscription(f"/subscriptions/{subscription_id}")
    states = [VmState.CONFIGURED, VmState.NOT_CONFIGURED, VmState.UNSUPPORTED]
    rows = []
    for i in range(count):
        arm_id = (f"/subscriptions/{subscription_id}/resourceGroups/{group}/providers/Microsoft.Compute/"
                  f"virtualMachines/vm-{i:05d}")
        state = states[i % 3]
        rows.append(VirtualMachine(
            resource_id=arm_id.lower(), arm_id=arm_id, name=f"vm-{i:05d}", subscription=subscription,
            subscription_key=subscription_id, resource_group=group, resource_group_name=group,
            location=("westeurope", "northeurope")[i % 2], os_type=("Linux", "Windows")[i % 2], state=state,
            unsupported_reason="no_nsg_or_firewall" if state == VmState.UNSUPPORTED else "",
            connection_type="none" if state == VmState.UNSUPPORTED else ("nsg", "firewall")[i % 2],
            nsg_ids=[f"/subscriptions/{subscription_id}/resourcegroups/{group}/providers/microsoft.network/"
                     f"networksecuritygroups/nsg-{i}"], private_ip=f"10.0.{i // 250}.{i % 250}",
            policy_name="default" if state == VmState.CONFIGURED else "", policy_resource_group=group,
            policy_location="westeurope",
            ports=[{"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*",
                    "maxRequestAccessDuration": "PT3H"}] if state == VmState.CONFIGURED else [],
            approved_requests_7d=i % 5, last_user="alice@contoso.example" if i % 2 else ""))
    return VirtualMachine.objects.bulk_create(rows, batch_size=1000)


# Access requests join the authorization matrix through this module (tests/<app>/factories.py).
from tests.policies.access.factories import MATRIX_FACTORIES  # noqa: E402, F401
