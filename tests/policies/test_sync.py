"""Inventory sync against the emulator: grouping, unsupported reasons, Defender, paging, out-of-band changes.

Syncs run in the test process: ``sync`` calls the service the sync task wraps, synchronously.
"""
from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from audit.models import AuditEvent
from policies import services
from policies.models import (
    DriftFinding,
    HubTopology,
    JitPolicy,
    PolicyChange,
    PolicyPort,
    Subscription,
    SyncRun,
    UnsupportedReason,
    VirtualMachine,
    VmState,
)
from tests.policies.azure_side import Azure, vm_id
from tests.policies.factories import (
    CONNECTIVITY,
    CONNECTIVITY_CLIENT_ID,
    DEV,
    PROD,
    closed_after_use,
    connectivity_credential,
    gateways_built,
    period_passes,
    register,
    remote_hubs_scenario,
    scoped_identities,
    sync,
    vm,
)


@pytest.fixture
def prod(db, fresh_emulator):
    """Production synced for real (not the rows kept by ``register_and_sync``): these tests compare a sync with the
    one before it."""
    subscription = register(fresh_emulator, PROD, "Contoso Production")
    sync(subscription)
    return subscription


@pytest.fixture
def azure(fresh_emulator):
    return Azure(fresh_emulator)


def open_findings(name: str) -> set[str]:
    return set(DriftFinding.objects.filter(vm__name=name, resolved_at__isnull=True).values_list("kind", flat=True))


@pytest.mark.django_db
def test_it_groups_the_demo_vms_and_shows_what_configured_vms_need(prod):
    states = dict(VirtualMachine.objects.values_list("name", "state"))
    assert states["web-01"] == states["app-01"] == states["jump-02"] == VmState.CONFIGURED
    assert states["web-05"] == states["ana-01"] == states["db-03"] == VmState.NOT_CONFIGURED
    web01 = vm("web-01")
    assert web01.approved_requests_7d > 0 and web01.last_user.endswith("@contoso.example")
    assert web01.last_access_at is not None
    assert web01.ports == [{"number": 22, "protocol": "*", "maxRequestAccessDuration": "PT3H",
                            "allowedSourceAddressPrefix": "*"}]
    assert vm("web-03").ports[0]["allowedSourceAddressPrefixes"] == ["203.0.113.0/24", "198.51.100.0/24"]
    assert JitPolicy.objects.filter(subscription=prod).count() == 3
    assert not DriftFinding.objects.exists()  # the demo's NSGs match its policies


@pytest.mark.django_db
def test_connection_details_show_the_firewall_when_a_vm_has_both(prod):
    both = vm("app-01")  # subnet NSG and a firewall in its VNet
    assert both.nsg_ids and both.firewall_id
    assert both.connection_type == "firewall" and both.firewall_public_ip == "20.50.10.4"
    assert vm("db-01").connection_type == "firewall" and not vm("db-01").nsg_ids
    assert vm("jump-01").connection_type == "nsg" and vm("jump-01").public_ip == "51.105.20.1"


@pytest.mark.django_db
def test_a_vm_in_a_spoke_of_a_secured_virtual_hub_is_guarded_by_the_hub_firewall(prod):
    spoke = vm("spoke-01")  # no NSG; its VNet is connected to a hub whose Azure Firewall Firewall Manager deployed
    assert (spoke.state, spoke.unsupported_reason) == (VmState.NOT_CONFIGURED, UnsupportedReason.NONE)
    assert spoke.connection_type == "firewall" and not spoke.nsg_ids
    assert spoke.firewall_id.endswith("/rg-hub-prod/providers/microsoft.network/azurefirewalls/fw-hub-weu")
    assert spoke.firewall_public_ip == "20.61.30.4"
    both = vm("spoke-win-01")  # a NIC NSG as well: the firewall wins
    assert both.nsg_ids and both.connection_type == "firewall" and both.firewall_public_ip == "20.61.30.4"


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "reason"), [
    ("build-01", UnsupportedReason.NO_NSG_OR_FIREWALL),
    ("classic-web-01", UnsupportedReason.CLASSIC_VM),
    ("legacy-01", UnsupportedReason.JIT_DISABLED),
])
def test_each_unsupported_reason_is_shown_and_enabling_is_refused(prod, policy_admin, name, reason):
    target = vm(name)
    assert target.state == VmState.UNSUPPORTED
    assert target.unsupported_reason == reason
    assert target.unsupported_message == reason.label
    with pytest.raises(ValidationError, match="does not support JIT"):
        services.policy_enable(actor=policy_admin, vms=[target])


@pytest.mark.django_db
def test_a_subscription_without_defender_plan_2_says_what_to_enable(fresh_emulator, breakglass_admin):
    dev = register(fresh_emulator, DEV, "Contoso Dev/Test")
    sync(dev)
    dev.refresh_from_db()
    assert dev.defender_p2 is False and dev.defender_missing
    target = vm("dev-01")
    assert target.state == VmState.UNSUPPORTED and target.unsupported_reason == UnsupportedReason.DEFENDER_MISSING
    assert "enable Microsoft Defender for Servers Plan 2 on subscription Contoso Dev/Test" in target.unsupported_message
    with pytest.raises(ValidationError, match="Plan 2"):
        services.policy_enable(actor=breakglass_admin, vms=[target])


@pytest.mark.django_db
def test_sync_calls_grow_with_pages_not_with_vms(db, fresh_emulator):
    fresh_emulator.set_page_size(10)
    counts = {}
    for size in (60, 120):
        fresh_emulator.load_scenario("large", large_vms=size, large_events=0)
        VirtualMachine.objects.all().delete()
        subscription = register(fresh_emulator, PROD, "Contoso Production") if size == 60 else prod_subscription()
        period_passes()  # each sync reads the hubs of the other subscriptions, as the first of a period does
        fresh_emulator.clear_calls()
        run = sync(subscription)
        arm_calls = [c for c in fresh_emulator.calls() if c["path"].startswith("/subscriptions")]
        counts[size] = len(arm_calls)
        assert run.calls_made == len(arm_calls)
        assert VirtualMachine.objects.filter(name__startswith="vm-").count() == size
    extra = counts[120] - counts[60]
    # 60 more VMs are 6 more pages of VMs and 6 of NICs (page size 10), plus a page or two of NSGs/policies.
    assert 12 <= extra <= 16, counts
    assert counts[120] < 120


def hubs_scenario(hubs: int, vms_per_spoke: int) -> dict:
    """``hubs`` secured virtual hubs, each with one spoke VNet of ``vms_per_spoke`` VMs, and a hub without a
    firewall (which guards nothing) with its own spoke."""
    spokes = [{"name": f"vnet-spoke-{h}", "address_space": f"10.{50 + h}.0.0/16"} for h in range(hubs + 1)]
    virtual_hubs = [{"name": f"hub-{h}", "address_prefix": f"10.{150 + h}.0.0/23",
                     "firewall": {"name": f"fw-hub-{h}", "public_ip": f"20.70.{h}.4"},
                     "connections": [{"name": f"spoke-{h}", "vnet": f"vnet-spoke-{h}"}]} for h in range(hubs)]
    virtual_hubs.append({"name": "hub-plain", "connections": [{"name": "spoke-plain", "vnet": f"vnet-spoke-{hubs}"}]})
    vms = [{"name": f"vm-{h}-{i}", "os": "Linux", "vnet": f"vnet-spoke-{h}"}
           for h in range(hubs + 1) for i in range(vms_per_spoke)]
    return {"name": "hubs", "subscriptions": [{"id": PROD, "name": "Contoso Production", "plan": "P2",
                                               "resource_groups": [{"name": "rg-hubs", "vnets": spokes,
                                                                    "virtual_hubs": virtual_hubs, "vms": vms}]}]}


@pytest.mark.django_db
def test_sync_calls_grow_with_secured_hubs_not_with_their_spoke_vms(db, fresh_emulator):
    fresh_emulator.set_page_size(100)
    counts = {}
    subscription = None
    for hubs, per_spoke in ((1, 2), (3, 2), (3, 20)):
        fresh_emulator.load_scenario(hubs_scenario(hubs, per_spoke))
        VirtualMachine.objects.all().delete()
        subscription = subscription or register(fresh_emulator, PROD, "Contoso Production")
        period_passes()
        fresh_emulator.clear_calls()
        run = sync(subscription)
        paths = [c["path"] for c in fresh_emulator.calls() if c["path"].startswith("/subscriptions")]
        counts[(hubs, per_spoke)] = len(paths)
        assert run.calls_made == len(paths)
        assert not any("/virtualHubs/hub-plain/" in p for p in paths)  # a hub without a firewall guards nothing
        for h in range(hubs):
            guarded = VirtualMachine.objects.filter(name__startswith=f"vm-{h}-")
            assert {(v.connection_type, v.firewall_public_ip, v.state) for v in guarded} == {
                ("firewall", f"20.70.{h}.4", VmState.NOT_CONFIGURED)}
        assert set(VirtualMachine.objects.filter(name__startswith=f"vm-{hubs}-").values_list(
            "unsupported_reason", flat=True)) == {UnsupportedReason.NO_NSG_OR_FIREWALL}
    assert counts[(3, 2)] - counts[(1, 2)] == 2, counts  # one list of connections per more secured hub
    assert counts[(3, 20)] == counts[(3, 2)], counts  # 18 more VMs per spoke (72 in all): the same pages


def guarded_by(prefix: str) -> set[tuple[str, str, str]]:
    return {(v.connection_type, v.firewall_id, v.firewall_public_ip)
            for v in VirtualMachine.objects.filter(name__startswith=prefix)}


@pytest.mark.django_db
def test_a_spoke_vm_of_a_secured_hub_in_another_subscription_is_guarded_by_that_hubs_firewall(fresh_emulator):
    fresh_emulator.load_scenario(remote_hubs_scenario())
    register(fresh_emulator, DEV, "Contoso Dev/Test")  # registered too; the connectivity subscription is not
    sync(register(fresh_emulator, PROD, "Contoso Production"))
    hub_firewall = f"/subscriptions/{CONNECTIVITY}/resourcegroups/rg-connectivity/providers/microsoft.network/" \
                   f"azurefirewalls/fw-hub-neu"
    assert guarded_by("neu-") == {("firewall", hub_firewall, "20.80.0.4")}
    assert guarded_by("dev-") == {("firewall", f"/subscriptions/{DEV}/resourcegroups/rg-dev-hub/providers/"
                                               f"microsoft.network/azurefirewalls/fw-hub-dev", "20.81.0.4")}
    assert set(VirtualMachine.objects.filter(name__startswith="neu-").values_list("state", flat=True)) == {
        VmState.NOT_CONFIGURED}
    assert set(VirtualMachine.objects.filter(name__startswith="plain-").values_list(  # its hub has no firewall
        "unsupported_reason", flat=True)) == {UnsupportedReason.NO_NSG_OR_FIREWALL}


def sync_paths(emulator, subscription: Subscription) -> list[str]:
    """The ARM paths one sync of ``subscription`` called (all of them counted in its run)."""
    emulator.clear_calls()
    run = sync(subscription)
    paths = [c["path"] for c in emulator.calls() if c["path"].startswith("/subscriptions")]
    assert run.calls_made == len(paths)  # the other subscriptions' calls count in the run
    return paths


def elsewhere(paths: list[str], subscription_id: str) -> list[str]:
    """The calls listing what the identity can read outside ``subscription_id``: the subscriptions, and theirs."""
    return [p for p in paths if not p.startswith(f"/subscriptions/{subscription_id}/")]


def hub_lists(subscription_id: str, group: str = "", hub: str = "") -> list[str]:
    """The calls listing one subscription's virtual hubs and, with ``hub`` (a secured one), its firewalls and the
    hub's connections."""
    network = "providers/Microsoft.Network"
    paths = [f"/subscriptions/{subscription_id}/{network}/virtualHubs"]
    if hub:
        paths += [f"/subscriptions/{subscription_id}/{network}/azureFirewalls",
                  f"/subscriptions/{subscription_id}/resourceGroups/{group}/{network}/virtualHubs/{hub}/"
                  f"hubVirtualNetworkConnections"]
    return paths


FW_HUB_NEU = ("firewall", f"/subscriptions/{CONNECTIVITY}/resourcegroups/rg-connectivity/providers/microsoft.network/"
                          f"azurefirewalls/fw-hub-neu", "20.80.0.4")


@pytest.mark.django_db
def test_syncs_of_subscriptions_sharing_a_credential_list_the_hubs_elsewhere_once_a_period(fresh_emulator):
    fresh_emulator.load_scenario(remote_hubs_scenario())
    prod, dev = register(fresh_emulator, PROD, "Contoso Production"), register(fresh_emulator, DEV, "Contoso Dev/Test")
    connectivity = hub_lists(CONNECTIVITY, "rg-connectivity", "hub-neu")

    prod_paths = sync_paths(fresh_emulator, prod)  # the first of the period reads every subscription's hubs
    assert sorted(elsewhere(prod_paths, PROD)) == sorted(
        ["/subscriptions", *connectivity, *hub_lists(DEV, "rg-dev-hub", "hub-dev")])
    dev_paths = sync_paths(fresh_emulator, dev)  # the next one shares them
    assert elsewhere(dev_paths, DEV) == []
    assert set(hub_lists(DEV, "rg-dev-hub", "hub-dev")) <= set(dev_paths)  # its own hubs: read on its own sync
    assert guarded_by("app-") == guarded_by("neu-") == {FW_HUB_NEU}

    period_passes()
    assert sorted(elsewhere(sync_paths(fresh_emulator, dev), DEV)) == sorted(
        ["/subscriptions", *connectivity, *hub_lists(PROD)])
    assert elsewhere(sync_paths(fresh_emulator, prod), PROD) == []
    assert guarded_by("app-") == guarded_by("neu-") == {FW_HUB_NEU}


@pytest.mark.django_db
def test_a_hub_added_in_another_subscription_guards_its_spokes_once_the_period_has_passed(fresh_emulator):
    scenario = remote_hubs_scenario()
    fresh_emulator.load_scenario(scenario)
    prod = register(fresh_emulator, PROD, "Contoso Production")
    sync(prod)
    assert guarded_by("plain-") == {("none", "", "")}
    connectivity = scenario["subscriptions"][1]["resource_groups"][0]
    connectivity["virtual_hubs"][1]["connections"] = []  # vnet-plain moves from hub-plain to a new secured hub
    connectivity["virtual_hubs"].append({
        "name": "hub-new", "address_prefix": "10.113.0.0/23",
        "firewall": {"name": "fw-hub-new", "public_ip": "20.82.0.4"},
        "connections": [{"name": "vnet-plain-connection", "vnet": "vnet-plain", "vnet_group": "rg-spokes",
                         "vnet_subscription": PROD}]})
    fresh_emulator.load_scenario(scenario)

    assert elsewhere(sync_paths(fresh_emulator, prod), PROD) == []  # within the period: the hubs it read
    assert guarded_by("plain-") == {("none", "", "")}
    period_passes()
    assert "/subscriptions" in sync_paths(fresh_emulator, prod)
    assert guarded_by("plain-") == {("firewall", f"/subscriptions/{CONNECTIVITY}/resourcegroups/rg-connectivity/"
                                                 f"providers/microsoft.network/azurefirewalls/fw-hub-new", "20.82.0.4")}
    assert guarded_by("neu-") == {FW_HUB_NEU}


@pytest.mark.django_db
def test_a_stored_reading_deletes_the_stale_readings_of_other_identities(fresh_emulator):
    from django.utils import timezone

    fresh_emulator.load_scenario(remote_hubs_scenario())
    prod = register(fresh_emulator, PROD, "Contoso Production")
    sync(prod)
    retired = HubTopology.objects.create(tenant_id=prod.tenant_id, credential_ref="retired",
                                         arm_endpoint="https://management.azure.com", hubs={}, read_at=timezone.now())
    period_passes()  # prod's reading and the retired identity's are now past the period
    current = HubTopology.objects.create(tenant_id=prod.tenant_id, credential_ref="current",
                                         arm_endpoint="https://management.azure.com", hubs={}, read_at=timezone.now())
    sync(prod)
    assert set(HubTopology.objects.values_list("credential_ref", flat=True)) == {prod.credential_ref, "current"}
    assert HubTopology.objects.filter(pk=current.pk).exists() and not HubTopology.objects.filter(pk=retired.pk).exists()
    assert guarded_by("neu-") == {FW_HUB_NEU}


@pytest.mark.django_db
def test_a_round_of_syncs_lists_the_hubs_elsewhere_once_and_its_calls_do_not_grow_with_vms(fresh_emulator):
    fresh_emulator.set_page_size(100)
    prod = dev = None
    counts = {}
    for per_spoke in (2, 20):
        fresh_emulator.load_scenario(remote_hubs_scenario(per_spoke))
        prod = prod or register(fresh_emulator, PROD, "Contoso Production")
        dev = dev or register(fresh_emulator, DEV, "Contoso Dev/Test")
        period_passes()  # a new round
        prod_paths, dev_paths = sync_paths(fresh_emulator, prod), sync_paths(fresh_emulator, dev)
        counts[per_spoke] = (len(prod_paths), len(dev_paths))
        assert prod_paths.count("/subscriptions") == 1
        assert sorted(p.split("/providers/Microsoft.Network/")[1] for p in elsewhere(prod_paths, PROD)
                      if p != "/subscriptions") == [
            "azureFirewalls", "azureFirewalls", "virtualHubs", "virtualHubs", "virtualHubs/hub-dev/"
            "hubVirtualNetworkConnections", "virtualHubs/hub-neu/hubVirtualNetworkConnections"]
        assert elsewhere(dev_paths, DEV) == []  # the round's second sync lists nothing elsewhere
        assert {v[2] for v in guarded_by("neu-")} == {v[2] for v in guarded_by("app-")} == {"20.80.0.4"}
        assert VirtualMachine.objects.filter(name__startswith="app-").count() == per_spoke
    assert counts[20] == counts[2], counts  # 18 more VMs in each of four spokes: the same pages


@pytest.mark.django_db
def test_a_hub_only_another_registered_credential_may_read_is_read_with_that_credential(fresh_emulator, settings):
    fresh_emulator.load_scenario({**remote_hubs_scenario(), "identities": scoped_identities(
        portal=[PROD, DEV], connectivity=[CONNECTIVITY])})  # "demo" is refused on the connectivity subscription
    prod = register(fresh_emulator, PROD, "Contoso Production")
    register(fresh_emulator, CONNECTIVITY, "Contoso Connectivity", credential_ref=connectivity_credential(settings))

    paths = sync_paths(fresh_emulator, prod)
    assert guarded_by("neu-") == {FW_HUB_NEU}  # its firewall and public IP, as connection details show them
    assert {v[2] for v in guarded_by("dev-")} == {"20.81.0.4"}  # Dev/Test's hub, read with "demo" as before
    callers = {(c["path"], c["caller"]) for c in fresh_emulator.calls()}
    assert {(p, CONNECTIVITY_CLIENT_ID) for p in hub_lists(CONNECTIVITY, "rg-connectivity", "hub-neu")} <= callers
    assert not [c for c in fresh_emulator.calls() if c["status"] == 403]  # "demo" never tried where it may not
    assert paths.count(hub_lists(CONNECTIVITY)[0]) == 1


@pytest.mark.django_db
def test_a_hub_the_registered_credential_may_not_read_is_read_with_the_syncing_one(fresh_emulator, settings):
    fresh_emulator.load_scenario({**remote_hubs_scenario(), "identities": scoped_identities(
        portal=[PROD, DEV, CONNECTIVITY], connectivity=[])})  # the connectivity credential lost its role
    prod = register(fresh_emulator, PROD, "Contoso Production")
    register(fresh_emulator, CONNECTIVITY, "Contoso Connectivity", credential_ref=connectivity_credential(settings))
    sync(prod)
    assert guarded_by("neu-") == {FW_HUB_NEU}


def subscriptions_listed(emulator) -> int:
    """How many times the identity's subscriptions were listed: once per reading of the hubs elsewhere."""
    return [c["path"] for c in emulator.calls()].count("/subscriptions")


@pytest.mark.django_db(transaction=True)
def test_two_syncs_starting_together_read_the_hubs_elsewhere_once(fresh_emulator):
    from tests.policies.races import Other

    fresh_emulator.load_scenario(remote_hubs_scenario())
    prod, dev = register(fresh_emulator, PROD, "Contoso Production"), register(fresh_emulator, DEV, "Contoso Dev/Test")
    fresh_emulator.add_fault("^/subscriptions$", "slow", delay=3)  # the first reading is still under way ...
    fresh_emulator.clear_calls()
    syncs = [Other(sync, prod), Other(sync, dev)]
    for other in syncs:
        other.start()
    for other in syncs:
        other.join(60)
    assert [other.error for other in syncs] == [None, None]
    assert subscriptions_listed(fresh_emulator) == 1  # ... when the second sync needs it: it waits for it
    assert [c["path"] for c in fresh_emulator.calls()].count(hub_lists(CONNECTIVITY)[0]) == 1
    assert guarded_by("app-") == guarded_by("neu-") == {FW_HUB_NEU}
    assert HubTopology.objects.get().reader == ""


@pytest.mark.django_db
def test_a_reader_that_fell_silent_is_taken_over_at_once(fresh_emulator):
    from datetime import timedelta

    from django.utils import timezone

    from policies import hub_topology

    fresh_emulator.load_scenario(remote_hubs_scenario())
    prod = register(fresh_emulator, PROD, "Contoso Production")
    HubTopology.objects.create(  # a worker killed while it read them
        tenant_id=prod.tenant_id, credential_ref=prod.credential_ref, arm_endpoint=prod.arm_endpoint.lower(),
        hubs={}, read_at=None, reader="killed",
        reader_seen_at=timezone.now() - timedelta(seconds=hub_topology.SILENT_SECONDS + 1))
    fresh_emulator.clear_calls()
    sync(prod)
    assert subscriptions_listed(fresh_emulator) == 1
    assert guarded_by("neu-") == {FW_HUB_NEU}
    reading = HubTopology.objects.get()
    assert reading.reader == "" and reading.read_at is not None


@pytest.mark.django_db
def test_a_sync_waits_for_a_live_reader_only_so_long_then_reads_for_itself(fresh_emulator, monkeypatch):
    import time

    from django.utils import timezone

    from policies import hub_topology

    monkeypatch.setattr(hub_topology, "WAIT_SECONDS", 0.5)
    fresh_emulator.load_scenario(remote_hubs_scenario())
    prod = register(fresh_emulator, PROD, "Contoso Production")
    HubTopology.objects.create(tenant_id=prod.tenant_id, credential_ref=prod.credential_ref,
                               arm_endpoint=prod.arm_endpoint.lower(), hubs={}, read_at=None, reader="slow",
                               reader_seen_at=timezone.now())
    fresh_emulator.clear_calls()
    started = time.monotonic()
    sync(prod)
    assert time.monotonic() - started >= 0.5  # it waited
    assert subscriptions_listed(fresh_emulator) == 1 and guarded_by("neu-") == {FW_HUB_NEU}
    assert HubTopology.objects.get().reader == "slow"  # its claim stays its own


@pytest.mark.django_db
def test_a_reader_that_fails_gives_its_claim_back(fresh_emulator):
    fresh_emulator.load_scenario(remote_hubs_scenario())
    prod = register(fresh_emulator, PROD, "Contoso Production")
    fresh_emulator.add_fault("^/subscriptions$", "403", count=1)
    run = SyncRun.objects.create(subscription=prod)
    assert services.sync_run(run_id=run.pk).state == SyncRun.State.FAILED
    assert HubTopology.objects.get().reader == ""
    fresh_emulator.clear_calls()
    sync(prod)  # at once: nobody holds the reading
    assert subscriptions_listed(fresh_emulator) == 1 and guarded_by("neu-") == {FW_HUB_NEU}


@pytest.mark.django_db
def test_a_subscription_whose_hubs_the_portal_may_not_read_is_skipped(fresh_emulator):
    fresh_emulator.load_scenario(remote_hubs_scenario())
    fresh_emulator.add_fault(f"/subscriptions/{CONNECTIVITY}/providers/Microsoft.Network/virtualHubs$", "403")
    sync(register(fresh_emulator, PROD, "Contoso Production"))
    assert set(VirtualMachine.objects.filter(name__startswith="neu-").values_list(
        "unsupported_reason", flat=True)) == {UnsupportedReason.NO_NSG_OR_FIREWALL}
    assert {v[2] for v in guarded_by("dev-")} == {"20.81.0.4"}  # the subscriptions after it are still read


def prod_subscription():
    from policies.models import Subscription

    return Subscription.objects.get(subscription_id=PROD)


@pytest.mark.django_db
def test_a_policy_changed_outside_the_portal_is_picked_up_and_flagged(prod, azure, policy_admin):
    policies = azure.security.jit_network_access_policies
    policy = policies.get("rg-web-prod", "westeurope", "default")
    for entry in policy.virtual_machines:
        if entry.id.lower().endswith("/web-02"):
            entry.ports[0].max_request_access_duration = "PT1H"
    policies.create_or_update("rg-web-prod", "westeurope", "default", body=policy)
    sync(prod)
    assert vm("web-02").ports[0]["maxRequestAccessDuration"] == "PT1H"  # Azure is the source of truth
    assert open_findings("web-02") == {DriftFinding.Kind.POLICY_CHANGED}
    assert vm("web-02").drift_count == 1
    services.drift_accept(actor=policy_admin, vm=vm("web-02"))
    assert open_findings("web-02") == set()
    sync(prod)
    assert open_findings("web-02") == set()


def _set_max_duration_in_azure(azure, name: str, duration: str) -> None:
    policies = azure.security.jit_network_access_policies
    policy = policies.get("rg-web-prod", "westeurope", "default")
    for entry in policy.virtual_machines:
        if entry.id.lower().endswith(f"/{name}"):
            entry.ports[0].max_request_access_duration = duration
    policies.create_or_update("rg-web-prod", "westeurope", "default", body=policy)


@pytest.mark.django_db
@pytest.mark.parametrize("sent", ["as shown", "none"])
def test_accepting_azures_settings_changed_since_the_page_accepts_nothing_and_shows_them(
        prod, azure, policy_admin, client, sent):
    _set_max_duration_in_azure(azure, "web-02", "PT1H")
    sync(prod)
    client.force_login(policy_admin)
    url = reverse("policies:vm_detail", args=[vm("web-02").pk])
    page = client.get(url).content.decode()
    shown = re.search(r'name="basis" value="([0-9a-f]+)"', page).group(1)
    _set_max_duration_in_azure(azure, "web-02", "PT2H")  # changed again in Azure, brought by a sync meanwhile
    sync(prod)
    baseline = vm("web-02").portal_ports
    accept = reverse("policies:drift_accept", args=[vm("web-02").pk])
    stale = client.post(accept, {"basis": shown} if sent == "as shown" else {})
    text = stale.content.decode()
    assert stale.status_code == 400 and 'id="drift-changed"' in text and "nothing was accepted" in text
    assert ("changed since the page was shown" if sent == "as shown" else "did not say") in text
    assert "Azure now has 22 (Any, up to 2 h, from Any)" in text  # the settings as they are now
    assert vm("web-02").portal_ports == baseline and open_findings("web-02") == {DriftFinding.Kind.POLICY_CHANGED}
    assert not AuditEvent.objects.filter(action="policy.drift_accepted").exists()
    again = client.post(accept, {"basis": re.search(r'name="basis" value="([0-9a-f]+)"', text).group(1)})
    assert again.status_code == 302  # accepted as now shown
    assert vm("web-02").portal_ports[0]["maxRequestAccessDuration"] == "PT2H" and open_findings("web-02") == set()


@pytest.mark.django_db
def test_jit_enabled_outside_the_portal_is_picked_up(prod, azure):
    from azure.mgmt.security.v2020_01_01.models import JitNetworkAccessPolicyVirtualMachine, JitNetworkAccessPortRule

    policies = azure.security.jit_network_access_policies
    policies.create_or_update("rg-analytics-prod", "northeurope", "default", body={
        "kind": "Basic", "virtual_machines": [JitNetworkAccessPolicyVirtualMachine(
            id=vm_id("rg-analytics-prod", "ana-01"), ports=[JitNetworkAccessPortRule(
                number=22, protocol="TCP", allowed_source_address_prefix="*", max_request_access_duration="PT2H")])]})
    sync(prod)
    assert vm("ana-01").state == VmState.CONFIGURED
    assert vm("ana-01").ports[0]["maxRequestAccessDuration"] == "PT2H"


@pytest.mark.django_db
def test_a_jit_deny_rule_removed_by_hand_is_flagged(prod, azure, fresh_emulator):
    target = vm_id("rg-web-prod", "web-04")
    rule = next(name.split("|")[1] for name in azure.jit_rules(target, "Deny") if "web-04-nsg" in name)
    azure.network.security_rules.begin_delete("rg-web-prod", "web-04-nsg", rule).result()
    sync(prod)
    assert open_findings("web-04") == {DriftFinding.Kind.DENY_RULE_MISSING}
    assert "web-04-nsg" in DriftFinding.objects.get(vm__name="web-04").detail


@pytest.mark.django_db
def test_a_jit_deny_rule_edited_by_hand_is_flagged(prod, azure):
    target = vm_id("rg-web-prod", "web-02")
    key, props = next((k, p) for k, p in azure.jit_rules(target, "Deny").items())
    azure.network.security_rules.begin_create_or_update("rg-web-prod", "nsg-web-frontend", key.split("|")[1], {
        "properties": {**{k: v for k, v in props.items() if k in (
            "protocol", "sourcePortRange", "destinationPortRange", "destinationAddressPrefix", "priority",
            "direction")}, "access": "Allow", "sourceAddressPrefix": "*"}}).result()
    sync(prod)
    assert DriftFinding.Kind.DENY_RULE_EDITED in open_findings("web-02")


@pytest.mark.django_db
def test_an_allow_rule_open_with_no_request_is_flagged_and_resolved_when_removed(prod, azure):
    rules = azure.network.security_rules
    rules.begin_create_or_update("rg-ops-prod", "jump-02-nsg", "Allow-SSH-Anywhere", {"properties": {
        "protocol": "Tcp", "sourceAddressPrefix": "*", "sourcePortRange": "*", "destinationAddressPrefix": "*",
        "destinationPortRange": "22", "access": "Allow", "priority": 150, "direction": "Inbound"}}).result()
    sync(prod)
    assert open_findings("jump-02") == {DriftFinding.Kind.ALLOW_WITHOUT_REQUEST}
    assert "Allow-SSH-Anywhere" in DriftFinding.objects.get(vm__name="jump-02").detail
    assert open_findings("web-01") == set()  # its allow rule belongs to an open request
    rules.begin_delete("rg-ops-prod", "jump-02-nsg", "Allow-SSH-Anywhere").result()
    sync(prod)
    assert open_findings("jump-02") == set()
    assert DriftFinding.objects.get(vm__name="jump-02").resolved_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize(("subscription_id", "credential_ref", "reason"), [
    ("c0a1b2c3-0000-4000-8000-0000000000ff", "demo", "could not be found"),  # Azure refuses it
    (PROD, "retired", "No credential 'retired' is configured"),  # the portal cannot sign in for it
])
def test_a_sync_that_cannot_run_records_the_reason(db, fresh_emulator, subscription_id, credential_ref, reason):
    subscription = register(fresh_emulator, subscription_id, "Subscription")
    Subscription.objects.filter(pk=subscription.pk).update(credential_ref=credential_ref)
    run = SyncRun.objects.create(subscription=subscription)
    outcome = services.sync_run(run_id=run.pk)
    run.refresh_from_db()
    subscription.refresh_from_db()
    assert outcome.state == run.state == SyncRun.State.FAILED
    assert reason in run.error
    assert subscription.last_sync_status == "failed" and reason in subscription.last_sync_error


def missing_ca(tmp_path) -> str:
    return str(tmp_path / "missing.pem")


def not_pem_ca(tmp_path) -> str:
    path = tmp_path / "not-pem.pem"
    path.write_text("no certificate here\n")
    return str(path)


def other_ca(tmp_path) -> str:
    """A CA that did not sign the emulator's certificate."""
    import trustme

    path = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


@pytest.mark.django_db
@pytest.mark.parametrize(("ca_bundle", "reason"), [
    (missing_ca, "the CA bundle file cannot be read"),
    (not_pem_ca, "the CA bundle holds no certificate the portal can read"),
    (other_ca, "the endpoint's certificate does not verify against the CA bundle in use"),
])
def test_a_sync_with_an_unusable_ca_bundle_fails_as_a_tls_configuration_problem_not_forbidden(
        db, fresh_emulator, tmp_path, ca_bundle, reason):
    subscription = register(fresh_emulator, PROD, "Subscription")
    Subscription.objects.filter(pk=subscription.pk).update(ca_bundle=ca_bundle(tmp_path))
    run = SyncRun.objects.create(subscription=subscription)
    outcome = services.sync_run(run_id=run.pk)  # not retried: a setting must change
    run.refresh_from_db()
    subscription.refresh_from_db()
    assert outcome.state == run.state == SyncRun.State.FAILED
    assert run.error.startswith("Cannot connect (TLS configuration): ") and reason in run.error, run.error
    assert "Forbidden" not in run.error and subscription.last_sync_error == run.error


@pytest.mark.django_db
def test_a_sync_closes_the_gateway_it_built_whether_it_succeeds_or_fails(fresh_emulator, monkeypatch):
    from policies.gateway import gateway_for_subscription

    built = gateways_built(monkeypatch)
    prod = register(fresh_emulator, PROD, "Contoso Production")
    sync(prod)
    unknown = register(fresh_emulator, "c0a1b2c3-0000-4000-8000-0000000000ff", "Unknown to Azure")
    assert services.sync_run(run_id=SyncRun.objects.create(subscription=unknown).pk).state == SyncRun.State.FAILED
    assert len(built) == 2 and all(closed_after_use(gateway) for gateway in built)

    with gateway_for_subscription(prod) as callers:  # a gateway passed in is the caller's to close
        run = SyncRun.objects.create(subscription=prod)
        assert services.sync_run(run_id=run.pk, gateway=callers).state == SyncRun.State.SUCCEEDED
        assert not closed_after_use(callers)


@pytest.mark.django_db
def test_beat_queues_one_sync_per_enabled_subscription_and_skips_running_ones(
        fresh_emulator, django_capture_on_commit_callbacks):
    prod_ = register(fresh_emulator, PROD, "Production")
    register(fresh_emulator, DEV, "Dev/Test")
    with django_capture_on_commit_callbacks(execute=False) as first:
        assert services.sync_all() == 2
    with django_capture_on_commit_callbacks(execute=False) as second:
        assert services.sync_all() == 0  # both still queued: nothing new is enqueued
    assert len(first) == 2 and len(second) == 0
    assert SyncRun.objects.filter(subscription=prod_).count() == 1


@pytest.mark.django_db
def test_a_policy_change_with_a_credential_reference_no_longer_configured_fails_with_the_reason(prod, policy_admin):
    target = vm("web-05")
    change = services.policy_enable(actor=policy_admin, vms=[target], os_default=True)[0]
    Subscription.objects.filter(pk=prod.pk).update(credential_ref="retired")
    assert services.policy_change_apply(change_id=change.pk).state == PolicyChange.State.FAILED
    change.refresh_from_db()
    assert change.state == PolicyChange.State.FAILED and "No credential 'retired' is configured" in change.last_error


def _request_for(target: VirtualMachine):
    """A closed access request on ``target`` (history the portal keeps)."""
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import User
    from policies.access.models import AccessRequest, AccessRequestVm

    owner = User.objects.create(username="alice@contoso.example")
    request = AccessRequest.objects.create(
        requester=owner, requester_name=owner.username, justification="Patch", idempotency_key="k-gone",
        source_prefix="203.0.113.50/32", end_at=timezone.now() - timedelta(hours=1), state="closed",
        closed_at=timezone.now() - timedelta(hours=1))
    AccessRequestVm.objects.create(
        request=request, vm=target, vm_arm_id=target.arm_id, vm_name=target.name,
        subscription_key=target.subscription_key, resource_group=target.resource_group,
        policy_key=target.policy_id.lower(), policy_resource_group=target.resource_group_name,
        policy_location=target.location, policy_name="default")
    return request


def _demo_without(*names: str) -> dict:
    from emulator.scenarios.demo import demo_scenario

    scenario = demo_scenario()
    for subscription in scenario["subscriptions"]:
        for group in subscription["resource_groups"]:
            group["vms"] = [v for v in group.get("vms", []) if v["name"] not in names]
            for policy in group.get("jit_policies", []):  # Azure drops a deleted VM from its JIT policy
                policy["virtual_machines"] = [v for v in policy["virtual_machines"] if v["vm"] not in names]
                for key in ("history", "open_requests"):
                    policy[key] = [r for r in policy.get(key, []) if r["vm"] not in names]
    return scenario


@pytest.mark.django_db
def test_a_vm_deleted_in_azure_leaves_the_inventory_even_with_access_requests(prod, fresh_emulator):
    request = _request_for(vm("web-02"))  # a configured VM: it has JIT ports in the portal's mirror
    assert PolicyPort.objects.filter(vm__name="web-02").exists()
    fresh_emulator.load_scenario(_demo_without("web-02", "web-03"))
    sync(prod)
    gone = VirtualMachine.objects.get(name="web-02")  # kept: the request's history names it
    assert gone.state == VmState.UNSUPPORTED and gone.unsupported_reason == UnsupportedReason.NOT_IN_AZURE
    assert not gone.ports and not PolicyPort.objects.filter(vm=gone).exists()  # no JIT left to show or use
    assert request.vms.get().vm_id == gone.pk
    assert not VirtualMachine.objects.filter(name="web-03").exists()  # gone, and nothing names it: deleted
    assert VirtualMachine.objects.filter(name="web-04").exists()


@pytest.mark.django_db
def test_beat_fails_a_run_whose_worker_was_lost_and_queues_a_new_one(
        fresh_emulator, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    subscription = register(fresh_emulator, PROD, "Production")
    lost = SyncRun.objects.create(subscription=subscription)
    long_ago = timezone.now() - services.STALE_RUNNING - timedelta(minutes=1)  # its worker died mid-run
    SyncRun.objects.filter(pk=lost.pk).update(state=SyncRun.State.RUNNING, created_at=long_ago, started_at=long_ago)
    Subscription.objects.filter(pk=subscription.pk).update(last_sync_status=Subscription.SyncStatus.RUNNING)
    with django_capture_on_commit_callbacks(execute=False):
        assert services.sync_all() == 1
    lost.refresh_from_db()
    subscription.refresh_from_db()
    assert lost.state == SyncRun.State.FAILED and "stopped before it finished" in lost.error
    assert subscription.last_sync_status == "failed" and "stopped before it finished" in subscription.last_sync_error


@pytest.mark.django_db
def test_a_run_that_waited_long_for_a_worker_is_not_overlapped_by_the_next_beat(
        fresh_emulator, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    subscription = register(fresh_emulator, PROD, "Production")
    waited = SyncRun.objects.create(subscription=subscription)
    long_ago = timezone.now() - services.STALE_RUNNING - timedelta(minutes=5)  # queued behind a busy worker
    SyncRun.objects.filter(pk=waited.pk).update(created_at=long_ago)
    with django_capture_on_commit_callbacks(execute=False):
        assert services.sync_all() == 0  # still queued: no second run
    SyncRun.objects.filter(pk=waited.pk).update(state=SyncRun.State.RUNNING, started_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=False):
        assert services.sync_all() == 0  # now running (started just now): still no second run
    assert SyncRun.objects.filter(subscription=subscription).count() == 1


@pytest.mark.django_db
def test_a_queued_run_no_worker_took_for_an_hour_fails_visibly_and_a_new_one_is_queued(
        fresh_emulator, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    subscription = register(fresh_emulator, PROD, "Production")
    lost = SyncRun.objects.create(subscription=subscription)
    SyncRun.objects.filter(pk=lost.pk).update(created_at=timezone.now() - services.LOST_QUEUED - timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert services.sync_all() == 1
    lost.refresh_from_db()
    assert lost.state == SyncRun.State.FAILED and "No worker took this sync up" in lost.error
    assert len(sent) == 1 and SyncRun.objects.filter(subscription=subscription, state="queued").count() == 1


@pytest.mark.django_db
def test_a_list_that_fails_is_the_phase_the_run_names(fresh_emulator):
    subscription = register(fresh_emulator, PROD, "Production")
    fresh_emulator.add_fault(path="/networkSecurityGroups$", kind="429", method="GET", retry_after=0)
    run = SyncRun.objects.create(subscription=subscription)
    outcome = services.sync_run(run_id=run.pk)
    run.refresh_from_db()
    assert outcome.state == run.state == SyncRun.State.QUEUED  # throttled: the task retries
    assert run.phase == "network security groups", run.phase


@pytest.mark.django_db
def test_a_sync_the_sign_in_endpoint_throttles_is_retried_and_says_throttled(fresh_emulator):
    subscription = register(fresh_emulator, PROD, "Production")
    fresh_emulator.add_fault(path=r"/oauth2/v2\.0/token$", kind="429", retry_after=30)
    run = SyncRun.objects.create(subscription=subscription)
    outcome = services.sync_run(run_id=run.pk)
    run.refresh_from_db()
    subscription.refresh_from_db()
    assert outcome.state == run.state == SyncRun.State.QUEUED  # the task retries, after Entra's Retry-After
    assert outcome.retry_after == 30
    assert run.error.startswith("Throttled: ") and "throttling the portal" in subscription.last_sync_error
    assert "Could not sign in" not in run.error


def test_a_change_applied_while_a_sync_reads_azure_is_not_undone_nor_taken_for_drift(prod, policy_admin, monkeypatch):
    from policies import inventory, rules
    from tests.policies.factories import apply_all

    ports = [rules.PortRule(22), rules.PortRule(2222, max_duration="PT1H")]
    read = inventory.read_snapshot

    def read_then_change(*args):  # the admin's edit is applied after the sync read the policies
        snapshot = read(*args)
        services.policy_save(actor=policy_admin, vm=vm("web-01"), ports=ports)
        services.policy_enable(actor=policy_admin, vms=[vm("web-05")])
        assert apply_all() == ["applied", "applied"]
        return snapshot

    monkeypatch.setattr(inventory, "read_snapshot", read_then_change)
    sync(prod)
    edited, enabled = vm("web-01"), vm("web-05")
    assert [p["number"] for p in edited.ports] == [22, 2222]
    assert (enabled.state, enabled.policy_name) == (VmState.CONFIGURED, "default")
    assert PolicyPort.objects.filter(vm=edited, number=2222).exists()
    assert not DriftFinding.objects.filter(vm__in=[edited, enabled], resolved_at__isnull=True).exists()
    monkeypatch.setattr(inventory, "read_snapshot", read)
    sync(prod)  # the next sync reads what the changes wrote
    assert [p["number"] for p in vm("web-01").ports] == [22, 2222]
    assert not DriftFinding.objects.filter(vm__in=[edited, enabled], resolved_at__isnull=True).exists()


def _writes(queries) -> list[str]:
    """The statements among ``queries`` that write the inventory's VM rows or policy mirrors."""
    return [q["sql"] for q in queries if q["sql"].split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE")
            and any(table in q["sql"] for table in ("policies_virtualmachine", "policies_jitpolicy",
                                                    "policies_policyport"))]


def _inventory_rows() -> tuple[list, list, list]:
    vms = list(VirtualMachine.objects.order_by("pk").values())
    for row in vms:
        row.pop("synced_at")  # when a sync last changed the row
    return (vms, list(JitPolicy.objects.order_by("pk").values("pk", "resource_id", "requests", "provisioning_state")),
            list(PolicyPort.objects.order_by("vm_id", "number").values_list(
                "policy_id", "vm_id", "number", "protocol", "allowed_source_prefixes", "max_request_duration")))


@pytest.mark.django_db
def test_a_sync_of_an_unchanged_subscription_writes_no_vm_row_nor_policy_mirror(prod):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    before = _inventory_rows()
    with CaptureQueriesContext(connection) as queries:
        run = sync(prod)
    assert [sql[:120] for sql in _writes(queries)] == []  # the write transaction holds no lock for them
    assert _inventory_rows() == before
    assert run.vms_seen == VirtualMachine.objects.filter(subscription=prod).count()


@pytest.mark.django_db
def test_a_sync_writes_the_vm_and_policy_azure_changed_and_only_those(prod, azure):
    policies = azure.security.jit_network_access_policies
    policy = policies.get("rg-web-prod", "westeurope", "default")
    for entry in policy.virtual_machines:
        if entry.id.lower().endswith("/web-02"):
            entry.ports[0].max_request_access_duration = "PT1H"
    policies.create_or_update("rg-web-prod", "westeurope", "default", body=policy)
    synced = dict(VirtualMachine.objects.values_list("name", "synced_at"))
    mirrors = dict(JitPolicy.objects.values_list("resource_id", "synced_at"))
    sync(prod)
    assert {name for name, at in VirtualMachine.objects.values_list("name", "synced_at")
            if at != synced[name]} == {"web-02"}
    assert [rid for rid, at in JitPolicy.objects.values_list("resource_id", "synced_at")
            if at != mirrors[rid]] == [policy.id.lower()]
    assert PolicyPort.objects.get(vm__name="web-02").max_request_duration == "PT1H"
    assert vm("web-02").ports[0]["maxRequestAccessDuration"] == "PT1H"
    assert open_findings("web-02") == {DriftFinding.Kind.POLICY_CHANGED}


@pytest.mark.django_db
def test_a_change_applied_after_the_sync_read_its_stored_rows_is_not_undone(prod, policy_admin, monkeypatch):
    from policies import rules
    from policies.inventory import storing
    from tests.policies.factories import apply_all

    read = storing.Stored.read

    def read_then_change(subscription):  # the admin's edit is applied between the read and the storing
        stored = read(subscription)
        services.policy_save(actor=policy_admin, vm=vm("web-01"), ports=[rules.PortRule(22), rules.PortRule(2222)])
        services.policy_enable(actor=policy_admin, vms=[vm("web-05")])
        assert apply_all() == ["applied", "applied"]
        return stored

    monkeypatch.setattr(storing.Stored, "read", read_then_change)
    sync(prod)
    edited, enabled = vm("web-01"), vm("web-05")
    assert [p["number"] for p in edited.ports] == [22, 2222]
    assert (enabled.state, enabled.policy_name) == (VmState.CONFIGURED, "default")
    assert set(PolicyPort.objects.filter(vm=edited).values_list("number", flat=True)) == {22, 2222}
    assert PolicyPort.objects.filter(vm=enabled).exists()
    assert not DriftFinding.objects.filter(vm__in=[edited, enabled], resolved_at__isnull=True).exists()


def _drift_outside_the_portal(azure) -> None:
    """An allow rule opened by hand, a JIT deny rule deleted by hand, a policy's ports edited outside the portal."""
    azure.network.security_rules.begin_create_or_update("rg-ops-prod", "jump-02-nsg", "Allow-SSH-Anywhere", {
        "properties": {"protocol": "Tcp", "sourceAddressPrefix": "*", "sourcePortRange": "*",
                       "destinationAddressPrefix": "*", "destinationPortRange": "22", "access": "Allow",
                       "priority": 150, "direction": "Inbound"}}).result()
    key = next(iter(azure.jit_rules(vm_id("rg-web-prod", "web-04"), "Deny")))
    nsg_id, rule = key.split("|")
    azure.network.security_rules.begin_delete("rg-web-prod", nsg_id.rsplit("/", 1)[1], rule).result()
    policies = azure.security.jit_network_access_policies
    policy = policies.get("rg-web-prod", "westeurope", "default")
    for entry in policy.virtual_machines:
        if entry.id.lower().endswith("/web-02"):
            entry.ports[0].max_request_access_duration = "PT1H"
    policies.create_or_update("rg-web-prod", "westeurope", "default", body=policy)


def _inventory_whole() -> int:
    """From a connection of its own (a reader, as a page is): check that every VM stored is whole — its drift count
    is its open findings, a configured VM's port rows are its ports, in the policy its row names — and write
    something, as a request would, timing how long that waits. Returns how many VMs are stored."""
    import time

    from django.db.models import Count, Q

    from policies.models import PolicyLock
    from tests.policies.races import Other

    def check() -> tuple[int, float]:
        vms = list(VirtualMachine.objects.annotate(open=Count("drift", filter=Q(drift__resolved_at__isnull=True))))
        for row in vms:
            assert row.drift_count == row.open, row.name
            ports = {(p.number, p.policy.resource_id) for p in PolicyPort.objects.filter(vm=row).select_related(
                "policy")}
            assert ports == {(int(p["number"]), row.policy_id.lower()) for p in row.ports}, row.name
        started = time.monotonic()
        PolicyLock.objects.create(key=f"a write between two chunks #{PolicyLock.objects.count()}")
        return len(vms), time.monotonic() - started

    reader = Other(check)
    reader.start()
    reader.join(30)
    if reader.error is not None:
        raise reader.error
    stored, waited = reader.result
    assert waited < 1  # the sync holds no lock between two chunks
    return stored


@pytest.mark.django_db(transaction=True)
def test_a_sync_stores_in_short_transactions_each_leaving_the_inventory_whole(fresh_emulator, azure, monkeypatch):
    """A sync commits a chunk of VMs at a time (with their policies and findings), so a writer waits for one chunk,
    not for the whole store; between two commits a reader finds every VM stored whole. Drift is worked out before
    the transactions: what they store is what detection over the stored rows finds."""
    from django.db import connections

    from policies import drift, inventory
    from policies.inventory import storing

    monkeypatch.setattr(storing, "CHUNK", 8, raising=False)
    prod = register(fresh_emulator, PROD, "Contoso Production")
    connection = connections["default"]
    store, commit = inventory.store, type(connection).commit
    seen: list[int] = []  # VMs stored at each commit of the storing step
    inputs: list[tuple] = []

    def storing_step(*args):
        inputs[:] = [args]
        seen.clear()
        monkeypatch.setattr(type(connection), "commit", committed)
        try:
            return store(*args)
        finally:
            monkeypatch.setattr(type(connection), "commit", commit)

    def committed(self):
        commit(self)
        if self is connection:  # not the reader's
            seen.append(_inventory_whole())

    monkeypatch.setattr(inventory, "store", storing_step)
    sync(prod)
    total = VirtualMachine.objects.count()
    assert total == 41 and seen[-1] == total
    assert len(set(seen)) >= 5  # the VMs were stored over several commits (41 VMs, 8 at a time) ...
    assert all(later - earlier <= 16 for earlier, later in zip([0, *seen], seen, strict=False))  # ... a few at a time

    _drift_outside_the_portal(azure)
    run = sync(prod)
    assert len(seen) >= 3  # findings, counts, the changed VM and its policy: stored in chunks too
    assert open_findings("jump-02") == {DriftFinding.Kind.ALLOW_WITHOUT_REQUEST}
    assert DriftFinding.Kind.DENY_RULE_MISSING in open_findings("web-04")
    assert open_findings("web-02") == {DriftFinding.Kind.POLICY_CHANGED}
    stored = list(DriftFinding.objects.order_by("pk").values())
    counts = dict(VirtualMachine.objects.values_list("pk", "drift_count"))
    subscription, _snap, _rows, policies, nsg_rules, now = inputs[0]
    assert drift.detect(subscription, policies, nsg_rules, now) == run.findings  # over the rows as stored
    assert list(DriftFinding.objects.order_by("pk").values()) == stored  # found the same: nothing to write
    assert dict(VirtualMachine.objects.values_list("pk", "drift_count")) == counts


@pytest.mark.django_db
def test_a_baseline_accepted_after_the_sync_read_its_stored_rows_is_not_flagged_again(prod, azure, policy_admin,
                                                                                      monkeypatch):
    """The sync works its findings out before it writes; a VM whose baseline the admin accepted meanwhile has its
    findings worked out again as it is stored."""
    from policies.inventory import storing

    policies = azure.security.jit_network_access_policies
    policy = policies.get("rg-web-prod", "westeurope", "default")
    for entry in policy.virtual_machines:
        if entry.id.lower().endswith("/web-02"):
            entry.ports[0].max_request_access_duration = "PT1H"
    policies.create_or_update("rg-web-prod", "westeurope", "default", body=policy)
    sync(prod)
    assert open_findings("web-02") == {DriftFinding.Kind.POLICY_CHANGED}
    read = storing.Stored.read

    def read_then_accept(subscription):
        stored = read(subscription)
        services.drift_accept(actor=policy_admin, vm=vm("web-02"))
        return stored

    monkeypatch.setattr(storing.Stored, "read", read_then_accept)
    sync(prod)
    assert open_findings("web-02") == set()
    assert vm("web-02").drift_count == 0


PARTLY_REFRESHED = "the inventory may be partly refreshed until the next sync"


def _status_seen_by(client, user) -> str:
    from django.urls import reverse

    client.force_login(user)
    return client.get(reverse("policies:inventory")).content.decode()


@pytest.mark.django_db
def test_a_sync_azure_fails_midway_through_its_reading_stores_nothing_and_says_why(prod, fresh_emulator, client,
                                                                                   policy_admin):
    """Azure is read whole before anything is stored: a list failing after the VMs were read leaves the inventory as
    the last sync left it (the VMs deleted in Azure meanwhile still listed), and the run failed with the reason."""
    from policies import tasks

    before = _inventory_rows()
    fresh_emulator.load_scenario(_demo_without("web-03", "web-04"))
    fresh_emulator.add_fault(path="/jitNetworkAccessPolicies$", kind="403", method="GET")  # the last list
    run = SyncRun.objects.create(subscription=prod)
    assert tasks.sync_subscription.apply(args=[run.pk]).get() == SyncRun.State.FAILED
    run.refresh_from_db()
    assert run.phase == "JIT policies" and run.error and not run.partly_stored
    assert _inventory_rows() == before
    page = _status_seen_by(client, policy_admin)
    assert f"Contoso Production: {SyncRun.State.FAILED.label}" in page and run.error in page
    assert PARTLY_REFRESHED not in page


@pytest.mark.django_db
def test_a_sync_that_fails_while_storing_fails_with_the_reason_and_says_the_inventory_may_be_partly_refreshed(
        fresh_emulator, client, policy_admin, monkeypatch):
    """The chunks stored before the failure stay (each is committed on its own): the page says so until the next
    sync, which stores the rest."""
    from django.db import OperationalError

    from policies import tasks
    from policies.inventory import storing

    monkeypatch.setattr(storing, "CHUNK", 8)
    store_chunk = storing.store_chunk
    stored_chunks: list[int] = []

    def locked_out_at_the_second_chunk(*args):
        if stored_chunks:
            raise OperationalError("database is locked")
        stored_chunks.append(store_chunk(*args))
        return stored_chunks[-1]

    monkeypatch.setattr(storing, "store_chunk", locked_out_at_the_second_chunk)
    prod = register(fresh_emulator, PROD, "Contoso Production")
    run = SyncRun.objects.create(subscription=prod)
    assert tasks.sync_subscription.apply(args=[run.pk]).failed()
    run.refresh_from_db()
    prod.refresh_from_db()
    assert run.state == SyncRun.State.FAILED and run.error == "OperationalError: database is locked"
    assert prod.last_sync_status == "failed" and prod.last_sync_error == run.error
    assert run.partly_stored and 0 < VirtualMachine.objects.count() < 41  # the first chunk's VMs only
    page = _status_seen_by(client, policy_admin)
    assert f"Contoso Production: {SyncRun.State.FAILED.label}" in page and run.error in page
    assert PARTLY_REFRESHED in page

    monkeypatch.setattr(storing, "store_chunk", store_chunk)
    run = sync(prod)
    assert VirtualMachine.objects.count() == run.vms_seen == 41
    assert PARTLY_REFRESHED not in _status_seen_by(client, policy_admin)
