"""Access request writes racing each other on PostgreSQL (row locks are no-ops on SQLite, whose writers run one at
a time): a second thread runs a service while this one holds a transaction at the point where the race bites."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from notifications.models import PendingEvent
from policies.access import services
from policies.access.models import AccessRequestPort, PortState
from tests.policies.access.factories import make_access_request
from tests.policies.races import POSTGRESQL_ONLY, Other, wait_until_blocked

pytestmark = [pytest.mark.django_db(transaction=True), POSTGRESQL_ONLY]
SCOPE = "/subscriptions/00000000-0000-0000-0000-0000000000c1/resourceGroups/rg-race"


def open_past_end():
    request = make_access_request(SCOPE)
    request.ports.update(end_at=timezone.now() - timedelta(seconds=1), opened_at=timezone.now() - timedelta(hours=1))
    return request, request.ports.get()


def test_a_port_closed_while_the_expiry_runs_is_finished_once(db):
    request, port = open_past_end()
    with transaction.atomic():  # the close task records its close; the beat's expiry reads the port meanwhile
        services.request_mark_closed(port_ids=[port.pk], removed=["nsg/rule"])
        expiry = Other(services.request_mark_expired, port_ids=[port.pk], reasons={})
        expiry.start()
        wait_until_blocked(expiry)
    expiry.join(20)
    assert expiry.error is None and expiry.result == 0
    port.refresh_from_db()
    assert port.state == PortState.CLOSED
    assert list(AuditEvent.objects.filter(action__in=["access.closed", "access.expired"]).values_list(
        "action", flat=True)) == ["access.closed"]
    assert PendingEvent.objects.filter(request_id=request.pk, event="closed").count() == 1


def test_a_port_expired_while_the_close_task_runs_is_finished_once(db):
    request, port = open_past_end()
    with transaction.atomic():
        services.request_mark_expired(port_ids=[port.pk], reasons={})
        close = Other(services.request_mark_closed, port_ids=[port.pk], removed=["nsg/rule"])
        close.start()
        wait_until_blocked(close)
    close.join(20)
    assert close.error is None
    port.refresh_from_db()
    assert port.state == PortState.EXPIRED
    assert list(AuditEvent.objects.filter(action__in=["access.closed", "access.expired"]).values_list(
        "action", flat=True)) == ["access.expired"]
    assert PendingEvent.objects.filter(request_id=request.pk, event="closed").count() == 1


def test_the_reconciler_failing_a_port_as_it_opens_records_no_failure(db):
    request = make_access_request(SCOPE)
    request.ports.update(state=PortState.OPENING)
    port = request.ports.get()
    with transaction.atomic():  # the open task records Azure's answer; the reconciler gives up on the port meanwhile
        AccessRequestPort.objects.filter(pk=port.pk).update(state=PortState.OPEN)
        reconciler = Other(services.request_mark_failed, port_ids=[port.pk], message="Gave up after 8 attempts.")
        reconciler.start()
        wait_until_blocked(reconciler)
    reconciler.join(20)
    assert reconciler.error is None
    assert request.ports.get().state == PortState.OPEN
    assert not AuditEvent.objects.filter(action="access.failed").exists()
    assert not PendingEvent.objects.filter(request_id=request.pk, event="failed").exists()


def test_the_expiry_of_several_requests_does_not_deadlock_with_a_close(db, django_user_model):
    from audit.services import audit_record

    _first, first_port = open_past_end()
    second, second_port = open_past_end()
    user = django_user_model.objects.create(username="closer")
    with transaction.atomic():  # request_close of the second: its row first, then its audit row
        second.__class__.objects.filter(pk=second.pk).update(closed_at=timezone.now(), closed_by=user)
        expiry = Other(services.request_mark_expired, port_ids=[first_port.pk, second_port.pk], reasons={})
        expiry.start()
        wait_until_blocked(expiry)
        audit_record(actor=user, action="access.close_requested", target_type="vm", target_id=second_port.pk)
    expiry.join(20)
    assert expiry.error is None and expiry.result == 2
    assert set(AccessRequestPort.objects.values_list("state", flat=True)) == {PortState.EXPIRED}


def test_a_port_opening_while_an_admin_changes_its_vm_does_not_deadlock(db, django_user_model):
    from types import SimpleNamespace

    from audit.services import audit_record
    from policies.models import VirtualMachine

    request = make_access_request(SCOPE)
    request.ports.update(state=PortState.OPENING, claimed_at=timezone.now())
    port = AccessRequestPort.objects.select_related("request", "request__requester", "request_vm").get()
    claim = services.Claim([port], at=port.claimed_at)
    admin = django_user_model.objects.create(username="admin")
    with transaction.atomic():  # an admin's policy change: the VM's row locked first, then its audit row
        list(VirtualMachine.objects.select_for_update(no_key=True).filter(pk=port.request_vm.vm_id).values_list(
            "pk", flat=True))
        opener = Other(services.request_mark_open, claim, record=SimpleNamespace(virtual_machines=[]))
        opener.start()  # the open task records Azure's answer, with the VM's "last access"
        wait_until_blocked(opener)
        audit_record(actor=admin, action="policy.save_requested", target_type="vm", target_id=port.request_vm.vm_id)
    opener.join(20)
    assert opener.error is None
    assert request.ports.get().state == PortState.OPEN
    assert VirtualMachine.objects.get(pk=port.request_vm.vm_id).last_user == request.requester_name
