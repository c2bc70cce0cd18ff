"""The beat (``reconcile``): re-send or give up stuck requests, expire what passed its end, close what Azure
revoked, and let the access rules expire undecided approvals and release scheduled starts."""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from kombu.exceptions import OperationalError

from audit.services import audit_record

from .. import signals
from ..models import TRANSITIONAL, AccessRequest, AccessRequestPort, PortState
from ..removals import POLICY_GONE, removals_of
from .closing import _mark_revoked
from .common import _azure_port, _find_in_azure, _stale, audit_place, enqueue_close, enqueue_open, gateway_for
from .opening import Claim, request_mark_failed, request_mark_open
from .state import refresh_state

log = logging.getLogger(__name__)
BROKER_ERRORS = (OperationalError, OSError)


# --- expiry and reconciliation (beat) --------------------------------------------------------------------------
def request_mark_expired(*, port_ids: list[int], reasons: dict[int, tuple[str, str]]) -> int:
    """Mark open ports whose end passed as expired, with Azure's status/reason when it gave one (locked first: one a
    close finished meanwhile stays closed). One transaction per request, as every other write of a request: holding
    the audit chain of one request while waiting for the next one's row would deadlock with a close of that one."""
    by_request: dict[int, list[int]] = defaultdict(list)
    for request_id, pk in AccessRequestPort.objects.filter(pk__in=port_ids).values_list("request_id", "pk"):
        by_request[request_id].append(pk)
    return sum(_expire_ports(ids, reasons) for _request_id, ids in sorted(by_request.items()))


def _expire_ports(port_ids: list[int], reasons: dict[int, tuple[str, str]]) -> int:
    """``request_mark_expired`` for the ports of one request."""
    now = timezone.now()
    with transaction.atomic():
        ports = list(AccessRequestPort.objects.select_for_update(of=("self",))
                     .filter(pk__in=port_ids, state=PortState.OPEN).select_related("request", "request_vm"))
        if not ports:
            return 0
        for port in ports:
            port.state = PortState.EXPIRED
            port.finished_at = now
            port.azure_status, port.azure_status_reason = reasons.get(port.pk, ("Revoked", "Expired"))
        AccessRequestPort.objects.bulk_update(ports, ["state", "finished_at", "azure_status", "azure_status_reason"])
        request = ports[0].request
        refresh_state(request.pk)
        for vm_row in {p.request_vm_id: p.request_vm for p in ports}.values():  # each VM's row at its own place
            audit_record(actor=None, action="access.expired", target_type="vm", target_id=vm_row.vm_id,
                         target_label=vm_row.vm_name,
                         after={"request": request.pk,
                                "ports": sorted(p.number for p in ports if p.request_vm_id == vm_row.pk)},
                         correlation_id=str(request.correlation_id), **audit_place(vm_row))
        signals.emit("closed", request, reason="expired")
    return len(ports)


def _by_policy(ports: list[AccessRequestPort], gateway_factory, purpose: str
               ) -> Iterator[tuple[list[AccessRequestPort], object | None, bool]]:
    """``ports`` grouped by JIT policy, each group with its policy as Azure has it now (one read per policy;
    ``None``, logged, when it could not be read) and whether the policy is gone: Azure answered NotFound, as after
    JIT was removed from its last VM (only then: a transient error, a refusal or a 404 without ARM's own code says
    nothing about the access)."""
    from cloud.errors import CloudError, NotFound

    groups: dict[str, list[AccessRequestPort]] = defaultdict(list)
    for port in ports:
        groups[port.policy_key].append(port)
    for group in groups.values():
        first = group[0].request_vm
        gone = False
        try:
            gateway = (gateway_factory or gateway_for)(first.vm.subscription)
            policy = gateway.get_jit_policy(first.policy_resource_group, first.policy_location, first.policy_name)
        except NotFound as exc:
            if exc.gone:
                log.info("%s: %s is gone from Azure: %s", purpose, first.policy_key, exc)
            else:
                log.warning("%s: could not read %s: %s", purpose, first.policy_key, exc)
            policy, gone = None, exc.gone
        except CloudError as exc:
            log.warning("%s: could not read %s: %s", purpose, first.policy_key, exc)
            policy = None
        except Exception:  # the beat's guard, kept on purpose: an unreadable answer is the gateway's CloudError
            # above; this is a bug met reading one policy, logged with its stack, which must not stop the beat for
            # every other policy (no port failed, re-sent, expired or closed for anyone)
            log.exception("%s: could not read %s", purpose, first.policy_key)
            policy = None
        yield group, policy, gone


class Ended(NamedTuple):
    """How many ports past their end ``expire_due`` ended, and how: expired, or closed as revoked."""

    expired: int
    revoked: int


def expire_due(*, gateway_factory=None) -> Ended:
    """Ports still ``open`` past their end, ended by ``end_past``. Returns how many ports it ended each way."""
    due = list(AccessRequestPort.objects.filter(state=PortState.OPEN, end_at__lte=timezone.now())
               .select_related("request", "request_vm", "request_vm__vm__subscription")[:500])
    return end_past(due, gateway_factory=gateway_factory)


def end_past(due: list[AccessRequestPort], *, gateway_factory=None) -> Ended:
    """End ports ``open`` past their end (the reconciler's, and a close's): read Azure's status per policy, then mark
    them expired. Those whose policy is gone from Azure and which the portal's own removal of JIT (or of the port)
    ended before their end are closed as revoked instead (``_mark_revoked``), as ``revoked_in_azure`` would have if
    it had run in between. Returns how many ports it ended each way."""
    expired = revoked_count = 0
    for group, policy, gone in _by_policy(due, gateway_factory, "expiry"):
        if gone:
            removals = removals_of(group)
            revoked: dict[int, list[tuple[AccessRequestPort, str, str]]] = defaultdict(list)
            for port in group:
                if port.pk in removals and removals[port.pk].at is not None:  # the portal's, before the end
                    revoked[port.request_id].append((port, "Revoked", POLICY_GONE))
            revoked_count += sum(_mark_revoked(found) for _request_id, found in sorted(revoked.items()))
            done = {port.pk for found in revoked.values() for port, _s, _r in found}
            group = [port for port in group if port.pk not in done]
        reasons: dict[int, tuple[str, str]] = {}
        for port in group:
            azure = _azure_port(policy, port)
            if azure is not None and azure.status:
                reasons[port.pk] = (azure.status, azure.status_reason or "")
        expired += request_mark_expired(port_ids=[p.pk for p in group], reasons=reasons)
    return Ended(expired, revoked_count)


def revoked_in_azure(*, gateway_factory=None) -> int:
    """Open ports Azure revoked meanwhile (Azure keeps one request per VM port: a newer one, made in the portal
    or in Azure, replaced the allow rule): closed with Azure's reason, audited, and their requesters told once
    the request is over. One policy read per policy with open access, every policy each time. Skipped: ports
    whose end passed (``expire_due``) and requests whose own extension is being opened."""
    extending = AccessRequest.objects.filter(extends_id=OuterRef("request_id"),
                                             state__in=(PortState.QUEUED, PortState.OPENING))
    ports = list(AccessRequestPort.objects.filter(state=PortState.OPEN, end_at__gt=timezone.now(),
                                                  request__closed_at__isnull=True)
                 .exclude(Exists(extending))
                 .select_related("request", "request__requester", "request_vm", "request_vm__vm__subscription")
                 .order_by("policy_key", "pk"))
    revoked: dict[int, list[tuple[AccessRequestPort, str, str]]] = defaultdict(list)
    for group, policy, gone in _by_policy(ports, gateway_factory, "revocations"):
        for port in group:
            if gone:  # no policy, no JIT rule: every open port in it was revoked with it
                revoked[port.request_id].append((port, "Revoked", POLICY_GONE))
                continue
            azure = _azure_port(policy, port)
            if azure is not None and (azure.status or "").lower() == "revoked" and azure.status_reason != "Expired":
                revoked[port.request_id].append((port, azure.status, azure.status_reason or ""))
    return sum(_mark_revoked(found) for _request_id, found in sorted(revoked.items()))


def _give_up(port_ids: list[int]) -> None:
    """Fail ports that used up their attempts, except those whose last run's ``initiate`` reached Azure (a slow
    answer the run could not record once its claim went stale): Azure's record of the portal request, found in
    the policy by its id as a retry looks for it, opens them instead, so the portal never says "failed" about a
    port Azure opened."""
    from cloud.errors import CloudError
    opening = list(AccessRequestPort.objects.filter(pk__in=port_ids, state=PortState.OPENING).select_related(
        "request", "request__requester", "request_vm", "request_vm__vm__subscription"))
    found: set[int] = set()
    groups: dict[tuple[int, str, object], list[AccessRequestPort]] = defaultdict(list)
    for port in opening:
        groups[port.request_id, port.policy_key, port.claimed_at].append(port)
    for (_request_id, _policy_key, claimed_at), ports in groups.items():
        first = ports[0].request_vm
        try:
            gateway = gateway_for(first.vm.subscription)
            policy = gateway.get_jit_policy(first.policy_resource_group, first.policy_location, first.policy_name)
        except CloudError as exc:  # Azure cannot say whether it opened them: they fail, as before
            log.warning("reconcile: could not read %s to check request %s: %s", first.policy_name,
                        ports[0].request_id, exc)
            continue
        except Exception:  # the beat's guard, kept on purpose: an unreadable answer is the gateway's CloudError
            # above; a bug met here is logged with its stack and these ports fail as before, the beat goes on
            log.exception("reconcile: could not read %s to check request %s", first.policy_name, ports[0].request_id)
            continue
        record = _find_in_azure(policy, str(ports[0].request.correlation_id))
        if record is not None:
            request_mark_open(Claim(sorted(ports, key=lambda p: (p.request_vm_id, p.number)), at=claimed_at,
                                    shared=True), record=record)
            found.update(port.pk for port in ports)
    # Each with the reason its last attempt gave, when it gave one (a retry's, a worker's lost since).
    reasons: dict[str, list[int]] = defaultdict(list)
    last_errors = dict(AccessRequestPort.objects.filter(pk__in=port_ids).values_list("pk", "last_error"))
    for pk in port_ids:
        if pk not in found:
            reasons[last_errors.get(pk, "").removeprefix("Retrying: ")].append(pk)
    for reason, ids in sorted(reasons.items()):
        message = f"Gave up after {settings.ACCESS_MAX_ATTEMPTS} attempts."
        request_mark_failed(port_ids=ids, message=f"{message} Last error: {reason}" if reason else message)


def reconcile(*, enqueue=None) -> dict[str, int]:
    """Beat: re-send stuck requests (queued or opening past ``ACCESS_STUCK_SECONDS``), fail those that used up
    their attempts, expire what passed its end, close what Azure revoked, expire undecided approvals and release
    scheduled windows whose start came. Returns counts: ``expired`` ports ended at their end, ``revoked`` ports
    closed because Azure revoked them or their policy is gone (before or after their end)."""
    send = enqueue or enqueue_open
    stale = _stale()
    stuck = AccessRequestPort.objects.filter(state__in=TRANSITIONAL).filter(
        Q(state=PortState.QUEUED, updated_at__lt=stale) | Q(state=PortState.OPENING, claimed_at__lt=stale))
    exhausted = list(stuck.filter(attempts__gte=settings.ACCESS_MAX_ATTEMPTS).values_list("pk", flat=True))
    if exhausted:
        _give_up(exhausted)
    groups = set(stuck.filter(attempts__lt=settings.ACCESS_MAX_ATTEMPTS).values_list("request_id", "policy_key"))
    resent = 0
    for request_id, policy_key in sorted(groups):
        try:
            send(request_id, policy_key)
        except BROKER_ERRORS as exc:  # the broker is down: try again at the next beat
            log.warning("reconcile: could not enqueue request %s (%s): %s", request_id, policy_key, exc)
            break
        AccessRequestPort.objects.filter(request_id=request_id, policy_key=policy_key, state=PortState.QUEUED
                                         ).update(updated_at=timezone.now())
        resent += 1
    closing = AccessRequestPort.objects.filter(state=PortState.OPEN, request__closed_at__lt=stale).values_list(
        "request_id", flat=True).distinct()
    for request_id in list(closing):
        try:
            enqueue_close(request_id)
        except BROKER_ERRORS as exc:  # the broker is down: try again at the next beat
            log.warning("reconcile: could not enqueue close of request %s: %s", request_id, exc)
            break
    from .. import approvals

    ended = expire_due()
    return {"failed": len(exhausted), "resent": resent, "expired": ended.expired,
            "revoked": ended.revoked + revoked_in_azure(), "approval_expired": approvals.expire_pending(),
            "released": approvals.release_scheduled()}
