"""``register_and_sync`` writes again the rows of a real sync of Production only where a real sync would store the
same: against the demo emulator as ``fresh_emulator`` left it, with every time moved on, those in Azure's records
of requests too."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from policies.models import HubTopology, JitPolicy, Subscription, SyncRun, VirtualMachine
from tests.policies import factories
from tests.policies.azure_side import Azure
from tests.policies.factories import DEV, PROD, register, register_and_sync, remote_hubs_scenario, sync

pytestmark = pytest.mark.django_db
NAME = "Contoso Production"


def forget_production() -> None:
    """Production unregistered and what its sync stored gone: the next ``register_and_sync`` may write it again."""
    Subscription.objects.all().delete()
    HubTopology.objects.all().delete()


def request_times(policy: JitPolicy) -> list[datetime]:
    return [datetime.fromisoformat(time) for request in policy.requests
            for time in (request["startTimeUtc"], *(port["endTimeUtc"] for port in request["ports"]))]


def test_rows_written_again_later_have_every_time_moved_on_those_of_azures_requests_too(fresh_emulator,
                                                                                        monkeypatch):
    """The demo emulator's requests are as old as its last reset: synced two hours later, the requests Azure lists
    (the policies' ``requests``, JSON) start and end two hours later, like the VMs' last access times."""
    register_and_sync(fresh_emulator, PROD, NAME)
    before = {policy.resource_id: request_times(policy) for policy in JitPolicy.objects.all()}
    last_access = VirtualMachine.objects.get(name="web-01").last_access_at
    forget_production()
    key = factories.kept_rows_key(fresh_emulator, PROD, NAME)
    taken_at, subscription_values, rows = factories._synced_rows[key]
    monkeypatch.setitem(factories._synced_rows, key, (taken_at - timedelta(hours=2), subscription_values, rows))

    register_and_sync(fresh_emulator, PROD, NAME)
    moved = VirtualMachine.objects.get(name="web-01").last_access_at - last_access
    assert timedelta(hours=2) <= moved < timedelta(hours=2, minutes=1)
    after = {policy.resource_id: request_times(policy) for policy in JitPolicy.objects.all()}
    assert after.keys() == before.keys() and any(after.values())
    assert after == {policy: [time + moved for time in times] for policy, times in before.items()}


def test_an_emulator_changed_since_its_reset_is_synced_for_real(fresh_emulator):
    """A test that changes the emulator before Production is synced (another scenario, whatever its name; its page
    size) gets what a sync of that emulator stores, not the rows of the demo."""
    register_and_sync(fresh_emulator, PROD, NAME)
    calls_of_the_demo = SyncRun.objects.get().calls_made
    forget_production()
    fresh_emulator.load_scenario({**remote_hubs_scenario(), "name": "demo"})
    register_and_sync(fresh_emulator, PROD, NAME)
    assert sorted(VirtualMachine.objects.values_list("name", flat=True)) == [
        f"{spoke}-{n}" for spoke in ("dev", "neu", "plain") for n in range(2)]

    forget_production()
    fresh_emulator.load_scenario("demo")
    fresh_emulator.set_page_size(2)
    register_and_sync(fresh_emulator, PROD, NAME)
    assert VirtualMachine.objects.count() == 41
    assert SyncRun.objects.get().calls_made > calls_of_the_demo  # one request per page of two


def test_an_emulator_changed_through_azures_api_is_synced_for_real(fresh_emulator):
    """After the reset nothing but a request to Azure's API changed it: JIT removed from the operations resource
    group."""
    register_and_sync(fresh_emulator, PROD, NAME)
    assert VirtualMachine.objects.get(name="jump-01").jit_enabled
    forget_production()
    Azure(fresh_emulator).security.jit_network_access_policies.delete("rg-ops-prod", "westeurope", "default")
    register_and_sync(fresh_emulator, PROD, NAME)
    assert not VirtualMachine.objects.get(name="jump-01").jit_enabled


def test_a_sync_with_other_rows_stored_keeps_nothing_to_write_again(fresh_emulator):
    """Production synced while Dev/Test's rows are stored is a real sync, and what it keeps (if anything) is
    Production's alone: written again later, no Dev/Test VM becomes one of Production's."""
    sync(register(fresh_emulator, DEV, "Contoso Dev/Test"))
    register_and_sync(fresh_emulator, PROD, NAME)
    assert VirtualMachine.objects.filter(subscription__subscription_id=PROD).count() == 41
    forget_production()
    register_and_sync(fresh_emulator, PROD, NAME)
    assert VirtualMachine.objects.count() == 41 and not VirtualMachine.objects.filter(name="dev-01").exists()
