"""The open task: claim a policy's ports, ``initiate`` once, record Azure's answer (or the failure)."""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from audit.services import audit_record
from policies.models import VirtualMachine

from .. import signals
from ..models import FINAL, TRANSITIONAL, AccessRequest, AccessRequestPort, PortState
from .closing import _mark_revoked
from .common import (
    Outcome,
    _after_commit,
    _find_in_azure,
    _retry_after,
    _stale,
    audit_place,
    enqueue_close,
    gateway_for,
)
from .state import _lock_request, aggregate_state, refresh_state

log = logging.getLogger(__name__)


# --- open (task) -----------------------------------------------------------------------------------------------
@dataclass
class Claim:
    """The ports one run of the open task claimed (model order), when it claimed them (``at``: the run's writes
    apply only while the claim is still its own), and whether the request also has ports of other JIT policies
    (whose states then count for the request's state)."""

    ports: list[AccessRequestPort]
    at: datetime | None = None
    shared: bool = False


def _claim(request_id: int, policy_key: str) -> Claim:
    """One conditional UPDATE claims whatever of the group is claimable right now (so two runs never share a
    port); one read then gives the claimed rows (by their claim time) with what ``initiate`` and recording the
    answer need, and tells whether the request spans other policies."""
    now = timezone.now()
    claimed = AccessRequestPort.objects.filter(request_id=request_id, policy_key=policy_key).filter(
        Q(state=PortState.QUEUED) | Q(state=PortState.OPENING, claimed_at__lt=_stale())).update(
        state=PortState.OPENING, claimed_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return Claim([])
    # A port of the request is now opening, and opening wins the aggregate (``aggregate_state``).
    AccessRequest.objects.filter(pk=request_id).exclude(state=PortState.OPENING).update(
        state=PortState.OPENING, updated_at=now)
    rows = AccessRequestPort.objects.filter(request_id=request_id).select_related(
        "request", "request__requester", "request_vm")
    # Sorted here rather than in SQL: compiling that ORDER BY across the joins was a visible share of the task's
    # own time (py-spy).
    mine = sorted((port for port in rows if port.policy_key == policy_key and port.state == PortState.OPENING
                   and port.claimed_at == now), key=lambda port: (port.request_vm_id, port.number))
    return Claim(mine, at=now, shared=any(port.policy_key != policy_key for port in rows))


def _initiate_body(ports: list[AccessRequestPort]) -> list[dict]:
    by_vm: dict[str, dict] = {}
    for port in ports:
        vm_row = port.request_vm
        entry = by_vm.setdefault(vm_row.vm_arm_id, {"id": vm_row.vm_arm_id, "ports": []})
        entry["ports"].append({"number": port.number, "end_time_utc": port.end_at,
                               "allowed_source_address_prefix": port.source_prefix})
    return list(by_vm.values())


def request_open(*, request_id: int, policy_key: str, gateway=None) -> Outcome:
    """Open the request's ports of one policy: claim them, call ``initiate`` once, record Azure's answer.

    On a retry (a previous attempt may have reached Azure) the policy's requests are read first and the
    portal's request id looked up in their justifications, so a 5xx after Azure acted never opens twice. Any other
    exception (a bug) propagates, the ports left claimed saying why (``_say_unexpected``).
    """
    claim = _claim(request_id, policy_key)
    if not claim.ports:
        return Outcome("skipped")
    try:
        return _open_claimed(request_id, policy_key, claim, gateway)
    except Exception as exc:  # kept on purpose, and re-raised: not Azure's failure (an unreadable answer is the
        # gateway's CloudError, handled below) but a bug, the worker's time limit, the database; the ports say why
        # while the claim stays for the reconciler, and the task fails with the stack (the worker's log)
        _say_unexpected(claim, exc)
        raise


def _say_unexpected(claim: Claim, exc: BaseException) -> None:
    """Say on the claimed ports, still under this run's claim, why the run stopped (``Unexpected error: …``),
    leaving them ``opening`` with their claim and attempts: the reconciler sends them again once the claim is stale,
    and that attempt looks in Azure before any ``initiate``. After the last attempt no retry follows: the
    reconciler fails them with this reason."""
    from cloud.errors import unexpected

    last = max(port.attempts for port in claim.ports) >= settings.ACCESS_MAX_ATTEMPTS
    message = unexpected(exc) if last else f"Retrying: {unexpected(exc)}"
    try:
        AccessRequestPort.objects.filter(pk__in=[port.pk for port in claim.ports], state=PortState.OPENING,
                                         claimed_at=claim.at).update(last_error=message[:4000],
                                                                     updated_at=timezone.now())
    except DatabaseError:  # the database itself failed (the error being raised may be that): the log says why
        log.warning("open request %s: could not record the reason %r", claim.ports[0].request_id, message)


def _open_claimed(request_id: int, policy_key: str, claim: Claim, gateway) -> Outcome:
    """``request_open`` once its ports are claimed."""
    from cloud.errors import CloudError, Throttled, Unreadable
    from policies.models import Subscription

    ports = claim.ports
    ids = [port.pk for port in ports]
    request = ports[0].request
    first = ports[0].request_vm
    correlation = str(request.correlation_id)
    first_attempt, looked = max(p.attempts for p in ports) == 1, False
    last_attempt = max(p.attempts for p in ports) >= settings.ACCESS_MAX_ATTEMPTS
    sent = False  # whether ``initiate`` was called: from then on Azure may have opened the ports
    try:
        gateway = gateway or gateway_for(Subscription.objects.get(vms=first.vm_id))
        record, initiated = None, False
        if not first_attempt:
            policy = gateway.get_jit_policy(first.policy_resource_group, first.policy_location, first.policy_name)
            record, looked = _find_in_azure(policy, correlation), True
        if record is None and request.closed_at is not None and _cancel_if_closed(request_id, ids, claim):
            return Outcome(PortState.CLOSED)  # Close now came, and Azure holds nothing of it: never sent again
        if record is None:
            # Each port's end is "now + its duration" at the moment we ask (a queued request keeps its window);
            # it is stored with the open state, from Azure's answer when it has one.
            now = timezone.now()
            for port in ports:
                port.end_at = now + timedelta(seconds=port.duration_seconds)
            sent = True
            record = gateway.initiate_jit(first.policy_resource_group, first.policy_location, first.policy_name,
                                          _initiate_body(ports), justification=request.azure_justification)
            initiated = True
    except CloudError as exc:
        message = str(exc) or type(exc).__name__
        # An answer the gateway could not read came after Azure acted: sent now or by an earlier attempt, Azure may
        # have opened the ports, so the retry looks its record up first (as after a 5xx).
        unread = isinstance(exc, Unreadable) and (sent or not first_attempt)
        if (getattr(exc, "retryable", False) or unread) and not last_attempt:
            # Throttled: Azure refused this initiate (sent once) unread; with no earlier attempt, or none found in
            # Azure just now, it holds nothing of the request. Any other failure (a 5xx, a timeout) may come after
            # Azure acted: the ports are queued again, and the retry looks before sending anything.
            if unread:
                log.warning("open request %s (%s): %s", request_id, policy_key, message, exc_info=exc)
            return _retry_later(request_id, ids, claim, message, _retry_after(exc),
                                cancel=isinstance(exc, Throttled) and (first_attempt or looked),
                                azure_request_id=getattr(exc, "request_id", "") or "")
        request_mark_failed(port_ids=ids, message=message, request_id=getattr(exc, "request_id", ""))
        return Outcome(PortState.FAILED, None, message)
    request_mark_open(claim, record=record, request_id=getattr(gateway, "last_request_id", "") or "",
                      initiated=initiated)
    return Outcome(PortState.OPEN)


def _retry_later(request_id: int, port_ids: list[int], claim: Claim, message: str, retry_after: float, *,
                 cancel: bool = False, azure_request_id: str = "") -> Outcome:
    """Put the claimed ports back in the queue for the task's retry, the reason kept in ``last_error``; with
    ``cancel`` (Azure holds nothing of the request), cancel them instead when Close now came meanwhile
    (``_cancel_if_closed``)."""
    if cancel and _cancel_if_closed(request_id, port_ids, claim):
        return Outcome(PortState.CLOSED, None, message)
    AccessRequestPort.objects.filter(pk__in=port_ids, state=PortState.OPENING, claimed_at=claim.at).update(
        state=PortState.QUEUED, last_error=f"Retrying: {message}"[:4000], updated_at=timezone.now(),
        azure_request_id=azure_request_id[:128])
    refresh_state(request_id)
    return Outcome(PortState.QUEUED, retry_after, message)


def _cancel_if_closed(request_id: int, port_ids: list[int], claim: Claim) -> bool:
    """When Close now came before Azure opened anything of the request (an ``initiate`` throttled, or a retry that
    found nothing in Azure), its claimed ports are cancelled as Close now cancels queued ones, so no retry or re-send
    opens them later. The request's row is locked first: a Close now racing this waits, then finds the ports queued
    and cancels them."""
    with transaction.atomic():
        _lock_request(request_id)
        request = AccessRequest.objects.filter(pk=request_id, closed_at__isnull=False).select_related(
            "closed_by").first()
        if request is None:
            return False
        AccessRequestPort.objects.filter(pk__in=port_ids, state=PortState.OPENING, claimed_at=claim.at).update(
            state=PortState.CLOSED, finished_at=timezone.now(), last_error="Cancelled before it opened.")
        if refresh_state(request_id) in FINAL:
            signals.emit("closed", request, actor=request.closed_by, reason="cancelled")
    return True


def request_mark_open(claim: Claim, *, record, request_id: str = "", initiated: bool = False) -> None:
    """Record Azure's answer for the claimed ports: each open with Azure's status (and mapped port behind a
    firewall) and end (Azure's ``endTimeUtc`` when the answer has it, else the one asked for).

    Written from the rows the claim read, without reading them again: the UPDATEs are conditional (a port opens
    only while still ``opening`` under this run's claim, not after the reconciler failed it or a later run took
    it over; a request closed meanwhile is sent to the close task at once). When this run ``initiated`` (rather
    than found an earlier attempt's record in Azure, which a newer request may have replaced since), other portal
    requests' older access to these ports is then closed, in transactions of their own (``_replace_older``).
    """
    answered = {(vm.id.lower(), p.number): p for vm in record.virtual_machines for p in vm.ports}
    now = timezone.now()
    ports = claim.ports
    for port in ports:
        answer = answered.get((port.request_vm.vm_arm_id.lower(), port.number))
        port.state = PortState.OPEN
        port.opened_at = now
        port.last_error = ""
        port.azure_request_id = (request_id or port.azure_request_id)[:128]
        if answer is not None:
            port.azure_status = answer.status or "Initiated"
            port.azure_status_reason = answer.status_reason or ""
            port.mapped_port = answer.mapped_port
            port.end_at = answer.end_time_utc or port.end_at
    request = ports[0].request
    with transaction.atomic():
        opened = _update_alike(ports, ["state", "opened_at", "last_error", "azure_request_id", "azure_status",
                                       "azure_status_reason", "mapped_port", "end_at"],
                               state=PortState.OPENING, claimed_at=claim.at)
        if opened < len(ports):  # some were failed or taken over meanwhile: record only those this run opened
            ours = set(AccessRequestPort.objects.filter(pk__in=[p.pk for p in ports], state=PortState.OPEN,
                                                        opened_at=now).values_list("pk", flat=True))
            ports = [port for port in ports if port.pk in ours]
            if not ports:
                return
        # The request's state and end in one UPDATE (what ``refresh_state`` would give, without reading back the
        # ports just written); its condition waits for, then sees, a close that raced this run. Where other ports
        # count (other policies, or ports another run changed), the request's row is locked before reading them,
        # so the last of two concurrent writers reads what the first wrote.
        states = [port.state for port in ports]
        if claim.shared or len(ports) < len(claim.ports):
            _lock_request(request.pk)
            states += AccessRequestPort.objects.filter(request_id=request.pk).exclude(
                pk__in=[p.pk for p in ports]).values_list("state", flat=True)
        end = max(port.end_at for port in ports)
        fields = {"state": aggregate_state(states), "updated_at": now,
                  "end_at": end if request.kind == AccessRequest.Kind.NEW else Greatest(F("end_at"), Value(end))}
        if not AccessRequest.objects.filter(pk=request.pk, closed_at__isnull=True).update(**fields):
            AccessRequest.objects.filter(pk=request.pk).update(**fields)  # closed while opening: close it now
            _after_commit(enqueue_close, request.pk)
        if request.extends_id:  # before the audit rows: the chain's lock is the last one a transaction takes
            _supersede(request, ports)
        vm_rows = sorted({port.request_vm_id: port.request_vm for port in ports}.values(), key=lambda row: row.vm_id)
        for vm_row in vm_rows:  # the VMs' rows too (in one order), as a policy change takes them before its audit
            vm_usage_record_open(vm_id=vm_row.vm_id, user=request.requester_name, at=now)
        for vm_row in vm_rows:
            numbers = sorted(port.number for port in ports if port.request_vm_id == vm_row.pk)
            audit_record(actor=request.requester, action="access.opened", target_type="vm",
                         target_id=vm_row.vm_id, target_label=vm_row.vm_name,
                         after={"ports": numbers, "source": request.source_prefix, "azure_request_id": request_id},
                         correlation_id=str(request.correlation_id), **audit_place(vm_row))
        signals.emit("opened", request, ports=sorted({port.number for port in ports}))
    # After the open is committed (the requester sees it without waiting for this): if the worker stops here, the
    # reconciler's ``revoked_in_azure`` closes the older access from Azure's statuses instead.
    if initiated:
        _replace_older(request, ports, before=claim.at - REPLACE_MARGIN)


def _update_alike(ports: list[AccessRequestPort], fields: list[str], **still) -> int:
    """Write ``fields`` of those ``ports`` whose row still matches ``still``: one plain UPDATE per set of equal
    values (usually one for the whole group), much cheaper to build than ``bulk_update``'s CASE per field and
    row. Returns how many rows it wrote."""
    alike: dict[tuple, list[int]] = defaultdict(list)
    for port in ports:
        alike[tuple(getattr(port, name) for name in fields)].append(port.pk)
    return sum(AccessRequestPort.objects.filter(pk__in=ids, **still).update(**dict(zip(fields, values,
                                                                                          strict=True)))
               for values, ids in alike.items())


def _supersede(extension: AccessRequest, ports: list[AccessRequestPort]) -> None:
    """An extension replaces its original's access on the ports it just opened (Azure: ``NewerRequestInitiated``):
    mirror that at once (the original was open before the extension was asked for, so the order is certain).
    Other requests Azure revoked are found by the reconciler from Azure's own statuses (``revoked_in_azure``)."""
    keys = {(port.request_vm.vm_id, port.number) for port in ports}
    replaced = [port.pk for port in AccessRequestPort.objects.filter(
        request_id=extension.extends_id, state=PortState.OPEN).select_related("request_vm")
        if (port.request_vm.vm_id, port.number) in keys]
    if replaced:
        AccessRequestPort.objects.filter(pk__in=replaced, state=PortState.OPEN).update(
            state=PortState.CLOSED, azure_status="Revoked", azure_status_reason="NewerRequestInitiated",
            finished_at=timezone.now())
        refresh_state(extension.extends_id)


# How much earlier than a run's claim another port must have opened for that run to close it as certainly older:
# workers on several hosts read their own clocks.
REPLACE_MARGIN = timedelta(seconds=5)


def _replace_older(opened: AccessRequest, ports: list[AccessRequestPort], *, before) -> None:
    """Azure keeps one request per VM port: the ports this run just initiated replaced other portal requests'
    access on them (Azure: ``Revoked``, ``NewerRequestInitiated``). Mirrored at once for ports that opened before
    ``before`` (so certainly older in Azure); any later one is left to ``revoked_in_azure``, which reads Azure's
    own statuses."""
    keys = {(port.request_vm.vm_id, port.number) for port in ports}
    older = [port for port in AccessRequestPort.objects.filter(
        state=PortState.OPEN, opened_at__lt=before, number__in={number for _vm, number in keys},
        request_vm__vm_id__in={vm for vm, _number in keys}).exclude(request_id=opened.pk).select_related(
        "request", "request__requester", "request_vm") if (port.request_vm.vm_id, port.number) in keys]
    by_request: dict[int, list[tuple[AccessRequestPort, str, str]]] = defaultdict(list)
    for port in older:
        by_request[port.request_id].append((port, "Revoked", "NewerRequestInitiated"))
    for _request_id, found in sorted(by_request.items()):
        _mark_revoked(found)


def vm_usage_record_open(*, vm_id: int, user: str, at) -> None:
    """Keep the inventory's "approved requests in the last 7 days", "last access" and "last user" current."""
    VirtualMachine.objects.filter(pk=vm_id).update(approved_requests_7d=F("approved_requests_7d") + 1,
                                                   last_access_at=at, last_user=user[:255])


def request_mark_failed(*, port_ids: list[int], message: str, request_id: str = "") -> None:
    """Fail ports visibly with Azure's (or the portal's) reason. The ports are locked first: one another run opened or
    finished meanwhile is left as it is, without a failure's audit row or notification."""
    with transaction.atomic():
        ports = list(AccessRequestPort.objects.select_for_update(of=("self",))
                     .filter(pk__in=port_ids, state__in=TRANSITIONAL).select_related("request", "request_vm"))
        AccessRequestPort.objects.filter(pk__in=[p.pk for p in ports]).update(
            state=PortState.FAILED, last_error=message[:4000], finished_at=timezone.now(),
            azure_request_id=(request_id or "")[:128])
        if not ports:
            return
        request = ports[0].request
        refresh_state(request.pk)
        for vm_row in {p.request_vm_id: p.request_vm for p in ports}.values():
            audit_record(actor=request.requester, action="access.failed", target_type="vm", target_id=vm_row.vm_id,
                         target_label=vm_row.vm_name, after={"error": message[:1000]},
                         correlation_id=str(request.correlation_id), **audit_place(vm_row))
        signals.emit("failed", request, error=message[:1000])
