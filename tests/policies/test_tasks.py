"""The Celery tasks' own rules: bounded backoff, retries on throttling, giving up visibly.

These tests run the tasks with Celery's eager ``apply`` (in the test process; retries run at once).
"""
from __future__ import annotations

import pytest

from policies import services, tasks
from policies.models import PolicyChange, SyncRun, VirtualMachine
from tests.notifications.conftest import broker_down  # noqa: F401 - a fixture, used by name
from tests.policies.factories import vm

POLICY_PATH = r"/resourceGroups/rg-web-prod/providers/Microsoft\.Security/locations/westeurope/jitNetwork"


@pytest.mark.parametrize("retries", [0, 1, 5, 11, 30])
def test_every_countdown_stays_below_an_hour(retries):
    assert 1 <= tasks.backoff(retries, None) < 3600
    assert tasks.backoff(retries, 7200) < 3600


def test_a_retry_waits_at_least_what_azure_asked():
    assert tasks.backoff(0, 30) == 30


@pytest.mark.django_db
def test_the_apply_task_retries_a_throttled_write_until_it_is_applied(prod, policy_admin, fresh_emulator):
    change = services.policy_enable(actor=policy_admin, vms=[vm("web-05")])[0]
    fresh_emulator.add_fault(path=POLICY_PATH, kind="429", count=8, retry_after=0)
    fresh_emulator.clear_calls()
    result = tasks.apply_policy_change.apply(args=[change.pk])
    change.refresh_from_db()
    assert change.state == PolicyChange.State.APPLIED, change.last_error
    assert change.attempts >= 2 and result.successful()
    puts = [c for c in fresh_emulator.calls() if c["method"] == "PUT" and c["status"] < 300]
    assert len(puts) == 1


@pytest.mark.django_db
def test_the_apply_task_gives_up_after_its_retries_and_says_why(prod, policy_admin, fresh_emulator, monkeypatch):
    change = services.policy_enable(actor=policy_admin, vms=[vm("web-05")])[0]
    fresh_emulator.add_fault(path=POLICY_PATH, kind="429", retry_after=0)
    monkeypatch.setattr(tasks.apply_policy_change, "max_retries", 1)
    tasks.apply_policy_change.apply(args=[change.pk])
    change.refresh_from_db()
    assert change.state == PolicyChange.State.FAILED
    assert "Gave up after 1 retries" in change.last_error


@pytest.mark.django_db
def test_an_unreadable_answer_applying_a_change_fails_it_with_the_reason_instead_of_leaving_it_running(
        client, prod, policy_admin, fresh_emulator):
    """Azure took the write but its answer could not be read (a null where a VM belongs): the change fails with the
    reason on its row, its audit row and its status, instead of staying "running" until the beat gives up saying
    only that a worker stopped."""
    from django.urls import reverse

    from audit.models import AuditEvent

    change = services.policy_enable(actor=policy_admin, vms=[vm("web-05")])[0]
    fresh_emulator.add_fault(path=POLICY_PATH, kind="nulls", method="PUT")
    assert tasks.apply_policy_change.apply(args=[change.pk]).get() == PolicyChange.State.FAILED
    change.refresh_from_db()
    message = ("UnreadableAnswer: Azure's answer could not be read: AttributeError: 'NoneType' object has no "
               "attribute 'id'")
    assert (change.state, change.last_error, change.attempts) == (PolicyChange.State.FAILED, message, 1)
    assert change.finished_at is not None
    assert AuditEvent.objects.get(action="policy.enable_failed", correlation_id=str(change.pk)).after == {
        "error": message}
    assert services.policy_changes_resend(enqueue=lambda pk: None) == {"failed": 0, "resent": 0}
    client.force_login(policy_admin)
    page = client.get(reverse("policies:change_status", kwargs={"pk": change.pk})).content.decode()
    assert "Failed" in page and "AttributeError: &#x27;NoneType&#x27; object has no attribute &#x27;id&#x27;" in page


@pytest.mark.django_db
def test_a_bug_applying_a_change_fails_the_task_and_the_change_with_the_reason(prod, policy_admin, fresh_emulator,
                                                                               monkeypatch):
    """An exception that is not the gateway's (here: raised by it, as a bug would) is not Azure's failure: the
    service lets it go, and the task fails the change with the reason before failing itself (its stack logged)."""
    from tests.policies.factories import unexpected_gateways

    change = services.policy_enable(actor=policy_admin, vms=[vm("web-05")])[0]
    unexpected_gateways(monkeypatch, "put_jit_policy", KeyError("properties"))
    with pytest.raises(KeyError):
        services.policy_change_apply(change_id=change.pk)
    PolicyChange.objects.filter(pk=change.pk).update(state=PolicyChange.State.QUEUED)
    assert tasks.apply_policy_change.apply(args=[change.pk]).failed()
    change.refresh_from_db()
    assert (change.state, change.last_error) == (PolicyChange.State.FAILED, "Unexpected error: KeyError: 'properties'")
    assert change.finished_at is not None


@pytest.mark.django_db
def test_the_sync_task_syncs_one_subscription(prod, fresh_emulator):
    run = SyncRun.objects.create(subscription=prod)
    assert tasks.sync_subscription.apply(args=[run.pk]).get() == SyncRun.State.SUCCEEDED
    run.refresh_from_db()
    assert run.state == SyncRun.State.SUCCEEDED and run.calls_made > 0
    assert run.vms_seen == VirtualMachine.objects.filter(subscription=prod).count() == 41  # incl. 3 classic VMs


@pytest.mark.django_db
def test_a_sync_cut_short_by_the_worker_fails_with_the_reason_instead_of_staying_running(
        prod, fresh_emulator, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    from policies import inventory

    def past_the_time_limit(*args, **kwargs):
        raise SoftTimeLimitExceeded("SoftTimeLimitExceeded(120,)")

    monkeypatch.setattr(inventory, "store", past_the_time_limit)  # the worker's soft limit fires while storing
    run = SyncRun.objects.create(subscription=prod)
    assert tasks.sync_subscription.apply(args=[run.pk]).failed()
    run.refresh_from_db()
    prod.refresh_from_db()
    assert run.state == SyncRun.State.FAILED and run.finished_at is not None
    assert "SoftTimeLimitExceeded" in run.error
    assert prod.last_sync_status == "failed" and "SoftTimeLimitExceeded" in prod.last_sync_error


@pytest.mark.django_db
def test_a_sync_run_outside_the_task_fails_with_the_reason_of_an_unexpected_error(prod, fresh_emulator):
    """``jit_policy --refresh`` runs the sync's service itself: an exception that is not the gateway's (a bug; here
    raised by it; an unreadable answer is the gateway's ``Unreadable``) fails the run and the subscription's sync
    with the reason, instead of leaving them "running" until the beat says only that a worker stopped."""
    from policies.gateway import gateway_for_subscription
    from tests.policies.factories import Unexpected

    run = SyncRun.objects.create(subscription=prod)
    with gateway_for_subscription(prod) as real, pytest.raises(KeyError):
        services.sync_run(run_id=run.pk, gateway=Unexpected(real, "list_virtual_machines", KeyError("properties")))
    run.refresh_from_db()
    prod.refresh_from_db()
    message = "KeyError: 'properties'"
    assert (run.state, run.error) == (SyncRun.State.FAILED, message) and run.finished_at is not None
    assert (prod.last_sync_status, prod.last_sync_error) == ("failed", message)


@pytest.mark.django_db
def test_a_change_saved_while_the_broker_is_down_is_kept_and_the_beat_sends_it_later(
        client, prod, policy_admin, broker_down, django_capture_on_commit_callbacks):  # noqa: F811
    from datetime import timedelta

    from django.urls import reverse
    from django.utils import timezone

    client.force_login(policy_admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("policies:vm_enable", args=[vm("web-05").pk]))
    assert response.status_code == 302  # not a 500: the change is stored and waits for the broker
    change = PolicyChange.objects.get()
    assert change.state == PolicyChange.State.QUEUED
    assert services.policy_changes_resend() == {"failed": 0, "resent": 0}  # just stored: not stuck yet
    PolicyChange.objects.filter(pk=change.pk).update(updated_at=timezone.now() - timedelta(minutes=3))
    assert services.policy_changes_resend() == {"failed": 0, "resent": 0}  # the broker is still down
    sent: list[int] = []
    assert services.policy_changes_resend(enqueue=sent.append) == {"failed": 0, "resent": 1}
    assert services.policy_changes_resend(enqueue=sent.append)["resent"] == 0  # not again at the next beat
    assert sent == [change.pk]
    assert tasks.apply_policy_change.apply(args=[change.pk]).get() == PolicyChange.State.APPLIED


@pytest.mark.django_db
def test_a_change_whose_worker_was_lost_is_sent_again_and_failed_once_it_used_its_attempts(prod, policy_admin):
    from datetime import timedelta

    from django.utils import timezone

    lost, exhausted = (services.policy_enable(actor=policy_admin, vms=[vm(name)])[0] for name in ("web-05", "web-06"))
    long_ago = timezone.now() - timedelta(minutes=11)
    PolicyChange.objects.filter(pk=lost.pk).update(state=PolicyChange.State.RUNNING, attempts=1, updated_at=long_ago)
    PolicyChange.objects.filter(pk=exhausted.pk).update(state=PolicyChange.State.RUNNING, updated_at=long_ago,
                                                        attempts=services.CHANGE_MAX_ATTEMPTS)
    sent: list[int] = []
    assert services.policy_changes_resend(enqueue=sent.append) == {"failed": 1, "resent": 1}
    assert sent == [lost.pk]
    exhausted.refresh_from_db()
    assert exhausted.state == PolicyChange.State.FAILED and "Gave up after" in exhausted.last_error
    assert services.policy_change_apply(change_id=lost.pk).state == PolicyChange.State.APPLIED


@pytest.mark.django_db
def test_sync_now_while_the_broker_is_down_keeps_the_run_and_the_beat_sends_it_again(
        client, prod, policy_admin, broker_down, django_capture_on_commit_callbacks):  # noqa: F811
    from datetime import timedelta

    from django.urls import reverse
    from django.utils import timezone

    client.force_login(policy_admin)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(reverse("policies:sync_now")).status_code == 302  # not a 500
    run = SyncRun.objects.get(state=SyncRun.State.QUEUED)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert services.sync_all() == 0
    assert sent == []  # just queued: not sent again yet
    SyncRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - services.CHANGE_UNSENT - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert services.sync_all() == 0  # the same run, sent again: no second one
    assert len(sent) == 1 and SyncRun.objects.filter(state=SyncRun.State.QUEUED).count() == 1
    SyncRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - services.LOST_QUEUED - timedelta(minutes=1))
    assert services.sync_fail_abandoned() == 1  # an hour on, nobody took it: failed with the reason
    run.refresh_from_db()
    assert run.state == SyncRun.State.FAILED and "No worker took this sync up" in run.error


@pytest.mark.django_db
def test_a_sync_queued_before_its_subscription_was_disabled_calls_no_azure_and_says_why(
        client, fresh_emulator, breakglass_admin, django_capture_on_commit_callbacks):
    """The sync was queued, then the subscription disabled before a worker took it up: the task ran it all the same.
    Now it calls nothing in Azure and the run ends "Cancelled" with the reason, on the pages that show syncs."""
    from django.urls import reverse

    from policies.models import Subscription
    from tests.policies.factories import PROD, register

    subscription = register(fresh_emulator, PROD, "Production")
    with django_capture_on_commit_callbacks(execute=False):
        run = services.sync_request(actor=breakglass_admin, subscription=subscription)
    services.subscription_update(actor=breakglass_admin, subscription=subscription, enabled=False)
    fresh_emulator.clear_calls()
    result = tasks.sync_subscription.apply(args=[run.pk])
    run.refresh_from_db()
    subscription.refresh_from_db()
    assert result.successful() and result.result == SyncRun.State.CANCELLED
    assert fresh_emulator.calls() == []
    assert run.state == SyncRun.State.CANCELLED and run.done and run.finished_at is not None
    assert "disabled before this sync ran" in run.error
    assert subscription.last_sync_status == Subscription.SyncStatus.NEVER  # no sync happened
    client.force_login(breakglass_admin)
    for url in (reverse("policies:subscription_edit", args=[subscription.pk]), reverse("policies:inventory")):
        page = client.get(url).content.decode()
        assert "Production: Cancelled" in page and "disabled before this sync ran" in page, url
        assert 'hx-trigger="every 2s"' not in page, url  # over: the page stops asking
