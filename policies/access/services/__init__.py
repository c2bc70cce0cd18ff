"""Writes of access requests: create, open (task), close, extend, expire and reconcile, each with its audit row.

Views and tasks call these and nothing else. A request is stored first (state ``queued``); after commit one
``open_ports`` task per JIT policy is enqueued (an ``initiate`` names one policy, so a request spanning several
is one ``initiate`` per policy). If the broker is down the rows stay ``queued`` and
the beat reconciler sends them later, so nothing the user submitted is lost.

"Close now": the 2020-01-01 JIT API has no revoke call. The portal closes a port by deleting the JIT *allow*
rule Azure wrote for this request from the VM's NSG(s) (matched by Defender's ``SecurityCenter-JITRule`` name
prefix, Inbound, Allow, the port and the request's source prefix), which really stops new connections; the
deny rule stays. For VMs behind an Azure Firewall (whose DNAT rule the gateway cannot edit) it initiates a
replacement request for the shortest window (5 minutes) from a non-routable documentation address
(``ACCESS_CLOSE_PLACEHOLDER_SOURCE``), so Azure itself revokes the original (``NewerRequestInitiated``) and
rewrites the DNAT rule to that unreachable source. Azure's own record of the original request stays
``Initiated`` until its end time when only the NSG rule was removed; the page says so. Connections already
established are not cut (neither by Azure's expiry nor by this). A port whose record Azure no longer lists keeps
its rule when a newer portal request, still open, holds the same VM port for the same source (the rule is that
one's): it is closed saying so.

The package: ``create`` (create and extend), ``state`` (a request's state from its ports'), ``opening`` (the open
task), ``closing`` ("Close now", and ports Azure revoked), ``expiry`` (the beat) and ``common`` (what they share).
"""
from __future__ import annotations

from ..models import FINAL
from .closing import JIT_RULE_PREFIX, request_close, request_close_apply, request_mark_closed
from .common import (
    Outcome,
    audit_place,
    enqueue_after_commit,
    enqueue_close,
    enqueue_open,
    gateway_for,
    may_manage,
    may_request,
)
from .create import (
    MAX_JUSTIFICATION,
    IdempotencyConflict,
    Selection,
    ensure_may_extend,
    request_create,
    request_extend,
)
from .expiry import BROKER_ERRORS, expire_due, reconcile, request_mark_expired, revoked_in_azure
from .opening import REPLACE_MARGIN, Claim, request_mark_failed, request_mark_open, request_open, vm_usage_record_open
from .state import aggregate_state, refresh_state

__all__ = ["BROKER_ERRORS", "FINAL", "JIT_RULE_PREFIX", "MAX_JUSTIFICATION", "REPLACE_MARGIN", "Claim",
           "IdempotencyConflict", "Outcome", "Selection", "aggregate_state", "audit_place", "enqueue_after_commit",
           "enqueue_close", "enqueue_open", "ensure_may_extend", "expire_due", "gateway_for", "may_manage",
           "may_request", "reconcile",
           "refresh_state", "request_close", "request_close_apply", "request_create", "request_extend",
           "request_mark_closed", "request_mark_expired", "request_mark_failed", "request_mark_open", "request_open",
           "revoked_in_azure", "vm_usage_record_open"]
