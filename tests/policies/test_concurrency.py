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
