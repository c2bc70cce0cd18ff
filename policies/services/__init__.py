"""Writes of the policies app: subscriptions, syncs and JIT policy changes, each with its audit row.

Views, forms, admin actions and tasks call these and nothing else. Cloud work happens in tasks, enqueued
with ``transaction.on_commit`` after the intent row is stored.

One module per kind of write: ``subscriptions`` (register, update), ``sync`` (queue, run and fail inventory
syncs), ``policy_changes`` (enable, edit and remove JIT, apply the queued changes, accept drift); ``task_runs`` holds
what the syncs and the changes share about their task runs. Callers import them from here.
"""
from .policy_changes import (
    CHANGE_MAX_ATTEMPTS,
    PENDING_CHANGE,
    drift_accept,
    merge_policy,
    policy_change_apply,
    policy_change_fail,
    policy_changes_resend,
    policy_enable,
    policy_remove,
    policy_save,
)
from .subscriptions import (
    SUBSCRIPTION_FIELDS,
    SubscriptionChanged,
    subscription_basis,
    subscription_register,
    subscription_update,
    subscription_values,
)
from .sync import SubscriptionDisabled, sync_all, sync_fail, sync_fail_abandoned, sync_request, sync_run
from .task_runs import BROKER_ERRORS, CHANGE_RETRY_LOST, CHANGE_UNSENT, LOST_QUEUED, STALE_RUNNING, Outcome

__all__ = ["BROKER_ERRORS", "CHANGE_MAX_ATTEMPTS", "CHANGE_RETRY_LOST", "CHANGE_UNSENT", "LOST_QUEUED",
           "PENDING_CHANGE", "STALE_RUNNING", "SUBSCRIPTION_FIELDS", "Outcome", "SubscriptionChanged",
           "SubscriptionDisabled", "drift_accept", "merge_policy", "policy_change_apply", "policy_change_fail",
           "policy_changes_resend", "policy_enable", "policy_remove", "policy_save", "subscription_basis",
           "subscription_register", "subscription_update", "subscription_values", "sync_all", "sync_fail",
           "sync_fail_abandoned", "sync_request", "sync_run"]
