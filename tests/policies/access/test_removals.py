"""Who removed JIT (``policies.access.removals``) from data that is not as the portal writes it."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from policies.access.models import AccessRequestPort
from policies.access.removals import removals_of
from tests.plugins.personas import IN_SCOPE
from tests.policies.access.factories import make_access_request

pytestmark = pytest.mark.django_db
AT = f"{IN_SCOPE}/resourceGroups/rg-removals"


def ports_of(request) -> list[AccessRequestPort]:
    return list(request.ports.select_related("request_vm__vm"))


def test_a_port_without_an_opening_time_is_left_out_not_an_error():
    """``expire_due`` asks about every open port of a deleted policy: one never stamped opened (older rows) raised a
    TypeError, which stopped the expiry of every port in the batch."""
    stamped, unstamped = make_access_request(AT), make_access_request(AT)
    stamped.ports.update(opened_at=timezone.now() - timedelta(hours=1))
    assert removals_of(ports_of(unstamped)) == {}
    assert removals_of([*ports_of(stamped), *ports_of(unstamped)]) == {}


@pytest.mark.parametrize("after", [["ports"], "ports", {"ports": "22"}, {"ports": [{"number": "x"}, 22]}])
def test_an_audit_row_of_another_shape_is_read_as_naming_no_port(after):
    """Rows of the trail are read back as stored: one whose ``after`` is not a dict of port dicts raised
    (AttributeError, ValueError) on the request's page and in the reconcile."""
    request = make_access_request(AT)
    opened = timezone.now() - timedelta(hours=1)
    request.ports.update(opened_at=opened)
    row = request.vms.get()
    AuditEvent.objects.create(action="policy.save_applied", target_type="vm", target_id=str(row.vm_id),
                              resource_id=row.vm_arm_id.lower(), after=after,
                              occurred_at=opened + timedelta(minutes=5))
    [removal] = set(removals_of(ports_of(request)).values())
    assert removal.vm == row.vm_name and removal.numbers == (22,)


@pytest.mark.parametrize("removed", [
    {"vm": "web-01", "ports": ["x", 22], "whole": False, "at": "yesterday"},
    {"vm": "web-01", "ports": 22, "at": 5},
    {"vm": "web-01", "ports": [22], "at": "2026-11-27T10:00:00"}])
def test_a_notifications_removal_not_as_the_portal_wrote_it_still_reads_as_a_sentence(removed):
    """A notification's ``detail.removed`` is read back from JSON: a port or a time of another shape raised
    (ValueError, TypeError) while its e-mail or card was written."""
    from notifications.payloads import reason_text

    text = reason_text({"reason": "revoked", "removed": [removed]})
    assert text.startswith("closed when ") and "web-01" in text
