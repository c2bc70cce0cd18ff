"""Sign-in records racing other writes on PostgreSQL (see ``tests.policies.races``)."""
from __future__ import annotations

import pytest
from django.db import transaction

from accounts.services import user_sign_in_record
from audit.models import AuditEvent
from audit.services import audit_record
from policies.access import signals
from tests.policies.races import POSTGRESQL_ONLY, Other, wait_until_blocked

pytestmark = [pytest.mark.django_db(transaction=True), POSTGRESQL_ONLY]
CLAIMS = {"tid": "72f988bf-86f1-41af-91ab-2d7cd011db47", "oid": "5a1c0de0-0000-4000-8000-000000000001",
          "preferred_username": "ada@contoso.example", "name": "Ada", "roles": []}


def test_a_sign_in_while_a_change_the_user_made_is_recorded_does_not_deadlock(db):
    import tests.policies.factories  # noqa: F401 - first: it and the access factories import each other
    from tests.policies.access.factories import make_access_request

    user = user_sign_in_record(claims=CLAIMS)
    request = make_access_request("/subscriptions/00000000-0000-0000-0000-0000000000c3/resourceGroups/rg-race")
    with transaction.atomic():  # the close task records the user's close: its audit row first ...
        audit_record(actor=user, action="access.closed", target_type="vm", target_id="1")
        sign_in = Other(user_sign_in_record, claims=CLAIMS)  # ... as the user signs in again (their row locked)
        sign_in.start()
        wait_until_blocked(sign_in)
        signals.emit("closed", request, actor=user, reason="closed")  # ... then the event naming them
    sign_in.join(20)
    assert sign_in.error is None and sign_in.result.pk == user.pk
    assert AuditEvent.objects.filter(action="user.sign_in", actor=user).count() == 2
