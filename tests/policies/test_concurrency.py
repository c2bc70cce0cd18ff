"""Inventory syncs and policy changes racing each other on PostgreSQL (see ``tests.policies.races``)."""
from __future__ import annotations

import pytest
from django.db import transaction

from policies import services
from policies.models import SyncRun
from tests.policies.factories import make_subscription
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
