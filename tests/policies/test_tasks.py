"""The Celery tasks' own rules: bounded backoff, retries on throttling, giving up visibly.

These tests run the tasks with Celery's eager ``apply`` (in the test process; retries run at once).
"""
from __future__ import annotations

import pytest

from policies import services, tasks
from policies.models import PolicyChange, SyncRun, VirtualMachine
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
def test_the_sync_task_syncs_one_subscription(prod, fresh_emulator):
    run = SyncRun.objects.create(subscription=prod)
    assert tasks.sync_subscription.apply(args=[run.pk]).get() == SyncRun.State.SUCCEEDED
    run.refresh_from_db()
    assert run.state == SyncRun.State.SUCCEEDED and run.calls_made > 0
    assert run.vms_seen == VirtualMachine.objects.filter(subscription=prod).count() == 39  # incl. 3 classic VMs


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
