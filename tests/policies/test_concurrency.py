"""Inventory syncs and policy changes racing each other on PostgreSQL (see ``tests.policies.races``)."""
from __future__ import annotations

import pytest
from django.db import transaction

from policies import rules, services
from policies.models import PolicyChange, SyncRun
from tests.plugins.personas import IN_SCOPE
from tests.policies.factories import make_subscription, make_vm
from tests.policies.races import POSTGRESQL_ONLY, Other, wait_until_blocked

pytestmark = [pytest.mark.django_db(transaction=True), POSTGRESQL_ONLY]
SCOPE = "/subscriptions/00000000-0000-0000-0000-0000000000c2"


def test_two_sync_requests_at_once_queue_one_sync(db):
    subscription = make_subscription(SCOPE)
    with transaction.atomic():  # an admin's "Sync now", not yet committed, while the beat's sync_all asks too
        mine = services.sync_request(actor=None, subscription=subscription)
        beat = Other(services.sync_request, actor=None, subscription=subscription)
        beat.start()
        wait_until_blocked(beat)
    beat.join(20)
    assert beat.error is None and beat.result.pk == mine.pk
    assert SyncRun.objects.filter(subscription=subscription).count() == 1


def test_the_same_policy_change_sent_twice_at_once_is_queued_once(persona_mappings, policy_admin):
    vm = make_vm(f"{IN_SCOPE}/resourceGroups/rg-race")
    ports = [rules.PortRule(22, "*", ("10.0.0.0/24",), "PT1H")]
    with transaction.atomic():  # the first PUT, not yet committed, while the client's retry arrives
        mine = services.policy_save(actor=policy_admin, vm=vm, ports=ports)
        retry = Other(services.policy_save, actor=policy_admin, vm=vm, ports=ports)
        retry.start()
        wait_until_blocked(retry)
    retry.join(20)
    assert retry.error is None and retry.result.pk == mine.pk
    assert PolicyChange.objects.count() == 1


def test_an_edit_of_a_vm_while_a_change_of_its_policy_is_mirrored_does_not_deadlock(prod, policy_admin):
    from policies.models import VirtualMachine
    from tests.policies.factories import vm

    first = services.policy_save(actor=policy_admin, vm=vm("web-01"),
                                 ports=[rules.PortRule(22, "TCP", ("10.0.0.0/8",), "PT1H")])
    web_02 = vm("web-02")  # in the same policy: the worker mirrors Azure's answer onto it too
    with transaction.atomic():  # an admin's edit of web-02 has locked its row as the worker applies the first edit
        list(VirtualMachine.objects.select_for_update(no_key=True).filter(pk=web_02.pk).values_list("pk", flat=True))
        worker = Other(services.policy_change_apply, change_id=first.pk)
        worker.start()
        wait_until_blocked(worker, seconds=30)
        second = services.policy_save(actor=policy_admin, vm=web_02,
                                      ports=[rules.PortRule(2222, "*", ("*",), "PT4H")])
    worker.join(30)
    assert worker.error is None and worker.result.state == PolicyChange.State.APPLIED
    assert PolicyChange.objects.get(pk=second.pk).state == PolicyChange.State.QUEUED


def test_an_enable_over_two_resource_groups_while_an_admin_asks_for_a_sync_does_not_deadlock(prod, policy_admin):
    from tests.policies.factories import vm

    with transaction.atomic():  # one enable, two policies: the first change is stored (and audited) ...
        services.policy_enable(actor=policy_admin, vms=[vm("web-05")])
        sync_now = Other(services.sync_request, actor=policy_admin, subscription=prod)  # ... as "Sync now" is sent
        sync_now.start()
        wait_until_blocked(sync_now)
        services.policy_enable(actor=policy_admin, vms=[vm("ana-01")])  # ... then the second
    sync_now.join(20)
    assert sync_now.error is None and sync_now.result.state == SyncRun.State.QUEUED
    assert PolicyChange.objects.count() == 2


def test_two_admins_enabling_overlapping_vms_in_either_order_queue_the_shared_vm_once(prod, policy_admin):
    from django.core.exceptions import ValidationError

    from tests.policies.factories import vm

    web_05, web_06, web_win_02 = vm("web-05"), vm("web-06"), vm("web-win-02")
    with transaction.atomic():  # the first admin's enable, its VMs locked and its change not yet committed ...
        mine = services.policy_enable(actor=policy_admin, vms=[web_06, web_05])
        theirs = Other(services.policy_enable, actor=policy_admin, vms=[web_win_02, web_05],  # ... the other's
                       ports=[rules.PortRule(22, "*", ("*",), "PT1H")])
        theirs.start()
        wait_until_blocked(theirs)
    theirs.join(20)
    assert isinstance(theirs.error, ValidationError) and theirs.error.messages == [
        "JIT is already being enabled on web-05 (saved, not applied in Azure yet); to change the ports it gets, "
        "edit its JIT settings (Enable JIT with custom settings… on its page)."]
    assert list(PolicyChange.objects.values_list("pk", flat=True)) == [mine[0].pk]


def test_a_request_for_two_vms_while_an_admin_edits_the_second_does_not_deadlock(prod, policy_admin, requester):
    from tests.policies.access.factories import ask
    from tests.policies.factories import vm

    with transaction.atomic():  # one request for web-01 and web-02: web-01's rows and audit row are stored ...
        ask(requester, {"web-01": [22]})
        edit = Other(services.policy_save, actor=policy_admin, vm=vm("web-02"),  # ... as an admin edits web-02 ...
                     ports=[rules.PortRule(22, "*", ("*",), "PT4H")])
        edit.start()
        wait_until_blocked(edit)
        ask(requester, {"web-02": [22]})  # ... then web-02's rows, naming its VM
    edit.join(20)
    assert edit.error is None and edit.result.state == PolicyChange.State.QUEUED
