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
established are not cut (neither by Azure's expiry nor by this).
"""
from __future__ import annotations

import ipaddress
import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Greatest
from django.utils import timezone
from kombu.exceptions import OperationalError

from accounts import authz
from accounts.roles import JIT_INITIATE, JIT_POLICY_WRITE
from audit.services import audit_record
from jitportal.lib.times import zoned_text
from policies.models import VirtualMachine, VmState

from . import signals, validation
from .connection import address_for
from .models import (
    FINAL,
    TRANSITIONAL,
    WAITING,
    AccessRequest,
    AccessRequestPort,
    AccessRequestVm,
    ApprovalState,
    PortState,
)

log = logging.getLogger(__name__)
MAX_JUSTIFICATION = 500
JIT_RULE_PREFIX = "securitycenter-jitrule"
BROKER_ERRORS = (OperationalError, OSError)


class IdempotencyConflict(ValidationError):
    """An idempotency key already used for another operation (another request, or extending another one)."""


def _operation(kind: str, extends_id: int | None) -> str:
    return f"extending request #{extends_id}" if kind == AccessRequest.Kind.EXTEND else "a new request"


def _replayed(idempotency_key: str, *, actor, extends: AccessRequest | None, fingerprint: str = ""
              ) -> AccessRequest | None:
    """The request made earlier with ``idempotency_key`` for this same operation (a new request, or extending
    ``extends``); ``None`` when the key is new. Someone else's key, one used for another operation, or (when both
    carry a ``fingerprint`` of what was sent) one sent before with another body is refused."""
    existing = AccessRequest.objects.filter(idempotency_key=idempotency_key).first()
    if existing is None:
        return None
    if existing.requester_id != actor.pk:
        raise PermissionDenied("This form was submitted by someone else.")
    wanted = AccessRequest.Kind.EXTEND if extends else AccessRequest.Kind.NEW
    if (existing.kind, existing.extends_id) != (wanted, extends.pk if extends else None):
        raise IdempotencyConflict(
            f"This idempotency key was already used for {_operation(existing.kind, existing.extends_id)} "
            f"(request #{existing.pk}), not for {_operation(wanted, extends.pk if extends else None)}; "
            f"use a new key.", code="idempotency_conflict")
    if fingerprint and existing.idempotency_fingerprint and fingerprint != existing.idempotency_fingerprint:
        raise IdempotencyConflict(
            f"This idempotency key was already used with another body (request #{existing.pk}); a retry must send "
            f"the same body. To ask for something else, use a new key.", code="idempotency_conflict")
    return existing


@dataclass(frozen=True)
class Selection:
    """One VM and the port numbers asked for on it."""

    vm: VirtualMachine
    ports: tuple[int, ...]


@dataclass
class Outcome:
    """What a task run did: ``state``, and ``retry_after`` seconds when it should run again."""

    state: str
    retry_after: float | None = None
    message: str = ""


def _username(user) -> str:
    return user.get_username() if getattr(user, "pk", None) else "jitportal"


def audit_place(vm_row: AccessRequestVm) -> dict:
    """Where an audit row of ``vm_row`` belongs (subscription, resource group, VM)."""
    return {"subscription_id": vm_row.subscription_key, "resource_group": vm_row.resource_group,
            "resource_id": vm_row.vm_arm_id.lower()}


def _policy_key(vm: VirtualMachine) -> str:
    return vm.policy_id.lower()


# --- authorization ---------------------------------------------------------------------------------------------
def may_request(user, vm: VirtualMachine) -> bool:
    return authz.has_permission(user, JIT_INITIATE, vm.resource_id)


def may_manage(user, request: AccessRequest, vm_rows: list[AccessRequestVm] | None = None) -> bool:
    """The requester themselves, or a policy admin at the scope of every VM of the request."""
    if getattr(user, "pk", None) is not None and request.requester_id == user.pk:
        return True
    rows = vm_rows if vm_rows is not None else list(request.vms.all())
    return bool(rows) and all(authz.has_permission(user, JIT_POLICY_WRITE, row.vm_arm_id) for row in rows)


# --- create ------------------------------------------------------------------------------------------------------
def _port_maximum(vm: VirtualMachine, number: int) -> timedelta | None:
    """The port's maximum request time, or ``None`` when it is not in the policy (``_validate`` says so)."""
    try:
        return validation.port_maximum(validation.policy_port(vm.ports, number))
    except ValidationError:
        return None


def _window(vm: VirtualMachine, number: int, duration: timedelta, each_port_maximum: bool) -> timedelta:
    """The window of one port: ``duration``, or with ``each_port_maximum`` at most the port's own maximum."""
    maximum = _port_maximum(vm, number) if each_port_maximum else None
    return min(duration, maximum) if maximum is not None else duration


def _validate(actor, selections: list[Selection], source_prefix: str, duration: timedelta,
              each_port_maximum: bool = False) -> list[ValidationError]:
    """What the VMs' policies refuse of the request, each with its ``code`` (the form shows it at its field)."""
    problems: list[ValidationError] = []
    if not selections:
        problems.append(ValidationError("Select at least one VM and port.", code="no_ports"))
    if each_port_maximum:
        maxima = [m for s in selections for n in s.ports if (m := _port_maximum(s.vm, n)) is not None]
        if maxima and duration > max(maxima):
            each_port_maximum = False  # longer than every port allows: each port says so, nothing is trimmed
    for selection in selections:
        vm = selection.vm
        if not may_request(actor, vm):
            raise PermissionDenied(f"You may not request access to {vm.name}.")
        if vm.state != VmState.CONFIGURED or not vm.policy_name:
            problems.append(ValidationError(f"JIT is not enabled on {vm.name}.", code="not_enabled"))
            continue
        if vm.subscription.defender_missing:  # Azure refuses every initiate there: say so before anyone approves
            problems.append(ValidationError(f"{vm.name}: {vm.subscription.defender_missing_message}",
                                            code="defender"))
            continue
        if not selection.ports:
            problems.append(ValidationError(f"Select at least one port of {vm.name}.", code="no_ports"))
        for number in selection.ports:
            try:
                rule = validation.policy_port(vm.ports, number)
            except ValidationError as exc:
                problems.extend(exc.error_list)
                continue
            window = _window(vm, number, duration, each_port_maximum)
            problems.extend(_refusals(validation.validate_window, window, rule, vm.name))
            problems.extend(_refusals(validation.validate_source, source_prefix, rule, vm.name))
    return list(dict.fromkeys(problems))


def _refusals(check, *args) -> list[ValidationError]:
    """What ``check(*args)`` refuses (nothing when it passes): a port's window and source are checked apart, so
    the requester hears of both at once."""
    try:
        check(*args)
    except ValidationError as exc:
        return exc.error_list
    return []


def _validate_start(start_at: datetime | None, now: datetime) -> list[ValidationError]:
    if start_at is None:
        return []
    if start_at <= now + validation.SCHEDULE_MIN_LEAD:
        return [ValidationError("A scheduled start must be more than a minute ahead (leave it empty to start now).",
                                code="start_too_soon")]
    if start_at > now + timedelta(days=settings.ACCESS_SCHEDULE_MAX_DAYS):
        return [ValidationError(f"Schedule at most {settings.ACCESS_SCHEDULE_MAX_DAYS} days ahead.",
                                code="start_too_late")]
    return []


def request_create(*, actor, selections: list[Selection], source_prefix: str, duration: timedelta,
                   justification: str, idempotency_key: str, source_kind: str = "", source_warning: str = "",
                   client_ip: str | None = None, extends: AccessRequest | None = None,
                   start_at: datetime | None = None, each_port_maximum: bool = False,
                   idempotency_fingerprint: str = "") -> tuple[AccessRequest, bool]:
    """Store a request and, after commit, ask Azure to open it: ``(request, created)``.

    Every port is asked for ``duration``; with ``each_port_maximum`` (the Connect page: "the time range
    configured for that VM") a port whose maximum is shorter gets its maximum instead.

    The access rules decide first (``approvals.evaluate``): a deny raises ``ValidationError``; a request that
    needs approval waits ``pending``; one with a future ``start_at`` waits ``scheduled``; the rest are
    ``queued`` and sent to the open task at once. A second submit of the same form (same
    ``idempotency_key``) returns the first request, unchanged; the key of another operation, or (API) the key
    replayed with a body of another ``idempotency_fingerprint``, raises ``IdempotencyConflict``.
    """
    from . import approvals

    existing = _replayed(idempotency_key, actor=actor, extends=extends, fingerprint=idempotency_fingerprint)
    if existing is not None:
        return existing, False
    justification = (justification or "").strip()
    problems = _validate(actor, selections, source_prefix, duration, each_port_maximum)
    if not justification:
        problems.append(ValidationError("Say why you need access.", code="justification"))
    elif len(justification) > MAX_JUSTIFICATION:
        problems.append(ValidationError(f"Keep the justification under {MAX_JUSTIFICATION} characters.",
                                        code="justification"))
    now = timezone.now()
    problems.extend(_validate_start(start_at, now))
    if problems:
        raise ValidationError(problems)
    windows = {(selection.vm.pk, number): _window(selection.vm, number, duration, each_port_maximum)
               for selection in selections for number in set(selection.ports)}
    longest = max(windows.values())
    verdict = approvals.evaluate(selections, source=source_prefix, duration=longest, start=start_at or now,
                                 justification=justification)
    end = (start_at or now) + longest
    if verdict.needs_approval:
        port_state, approval_state = PortState.PENDING, ApprovalState.PENDING
    else:
        port_state = PortState.SCHEDULED if start_at else PortState.QUEUED
        approval_state = ApprovalState.NOT_REQUIRED
    with transaction.atomic():
        try:
            with transaction.atomic():
                request = AccessRequest.objects.create(
                    requester=actor, requester_name=_username(actor), justification=justification,
                    kind=AccessRequest.Kind.EXTEND if extends else AccessRequest.Kind.NEW, extends=extends,
                    idempotency_key=idempotency_key, idempotency_fingerprint=idempotency_fingerprint,
                    source_prefix=source_prefix, source_kind=source_kind,
                    source_warning=source_warning[:255], client_ip=client_ip or None, scheduled_start=start_at,
                    end_at=end, state=port_state, approval_state=approval_state,
                    approvals_required=verdict.approvals, second_level_approvals=verdict.second_level,
                    approval_expires_at=(approvals.pending_until(verdict, now=now, start=start_at)
                                         if verdict.needs_approval else None),
                    rule=verdict.rule, rule_name=verdict.rule.name if verdict.rule else "")
        except IntegrityError:  # the same key sent twice at once: the other submit stored first
            existing = _replayed(idempotency_key, actor=actor, extends=extends, fingerprint=idempotency_fingerprint)
            if existing is None:
                raise
            return existing, False
        policies: set[str] = set()
        for selection in selections:
            vm = selection.vm
            address, kind = address_for(connection_type=vm.connection_type, public_ip=vm.public_ip,
                                        private_ip=vm.private_ip, firewall_public_ip=vm.firewall_public_ip)
            vm_row = AccessRequestVm.objects.create(
                request=request, vm=vm, vm_arm_id=vm.arm_id, vm_name=vm.name, subscription_key=vm.subscription_key,
                resource_group=vm.resource_group, policy_key=_policy_key(vm),
                policy_resource_group=vm.policy_resource_group or vm.resource_group_name,
                policy_location=vm.policy_location, policy_name=vm.policy_name, connection_type=vm.connection_type,
                address=address, address_kind=kind, os_type=vm.os_type)
            AccessRequestPort.objects.bulk_create([
                AccessRequestPort(request=request, request_vm=vm_row, policy_key=vm_row.policy_key, number=number,
                                  protocol=validation.policy_port(vm.ports, number).protocol,
                                  source_prefix=source_prefix,
                                  duration_seconds=int(windows[vm.pk, number].total_seconds()),
                                  end_at=(start_at or now) + windows[vm.pk, number], state=port_state)
                for number in sorted(set(selection.ports))])
            policies.add(vm_row.policy_key)
            audit_record(actor=actor, action="access.extend_requested" if extends else "access.requested",
                         target_type="vm", target_id=vm.pk, target_label=vm.name,
                         after={"ports": sorted(set(selection.ports)), "source": source_prefix,
                                "end": end.isoformat(), "justification": justification,
                                "approval": approval_state, **({"rule": verdict.rule.name} if verdict.rule else {}),
                                **({"start": start_at.isoformat()} if start_at else {}),
                                **({"extends": extends.pk} if extends else {})},
                         client_ip=client_ip, correlation_id=str(request.correlation_id), **audit_place(vm_row))
        if port_state == PortState.QUEUED:
            for policy_key in sorted(policies):
                enqueue_after_commit(request.pk, policy_key)
        signals.emit("submitted", request, actor=actor)
        if verdict.needs_approval:
            signals.emit("needs_approval", request, actor=actor, reasons=verdict.reasons)
    return request, True


def _after_commit(func, *args) -> None:
    """Run ``func(*args)`` after commit; a failure (the broker is down) is logged, the rows stay for the reconciler."""
    def send() -> None:
        func(*args)

    send.__qualname__ = func.__qualname__
    transaction.on_commit(send, robust=True)


def enqueue_after_commit(request_id: int, policy_key: str) -> None:
    """Send the open task of one policy's ports once the current transaction commits."""
    _after_commit(enqueue_open, request_id, policy_key)


def enqueue_open(request_id: int, policy_key: str) -> None:
    """Send one ``open_ports`` task (raises when the broker is unreachable; the reconciler sends it later)."""
    from .tasks import open_ports

    open_ports.delay(request_id, policy_key)


def enqueue_close(request_id: int) -> None:
    from .tasks import close_ports

    close_ports.delay(request_id)


def request_extend(*, actor, original: AccessRequest, duration: timedelta, idempotency_key: str,
                   justification: str = "", client_ip: str | None = None, idempotency_fingerprint: str = ""
                   ) -> tuple[AccessRequest, bool]:
    """Ask again for the same VMs, ports (those still open) and source, ending ``duration`` from now (within each
    port's maximum)."""
    vm_rows = list(original.vms.select_related("vm", "vm__subscription").prefetch_related("ports"))
    if not may_manage(actor, original, vm_rows):
        raise PermissionDenied("Only the requester or a policy admin may extend this request.")
    if original.requester_id != actor.pk:
        raise PermissionDenied("Only the requester may extend their own request (Azure records them).")
    earlier = _replayed(idempotency_key, actor=actor, extends=original, fingerprint=idempotency_fingerprint)
    if earlier is not None:  # the same form again: its extension, even once it replaced the original
        return earlier, False
    original.refresh_from_db(fields=["state", "closed_at"])
    if original.state != PortState.OPEN or original.closed_at is not None:
        raise ValidationError("Only an open request can be extended.", code="not_open")
    # Only what is still open: a port Azure revoked meanwhile (a newer request took it) stays with its new holder.
    selections = [Selection(row.vm, numbers) for row in vm_rows
                  if (numbers := tuple(p.number for p in row.ports.all() if p.state == PortState.OPEN))]
    validation.validate_extension(duration, open_until=validation.open_until(vm_rows), now=timezone.now())
    reason = justification.strip() or f"Extension of request #{original.pk}: {original.justification}"
    request, created = request_create(
        actor=actor, selections=selections, source_prefix=original.source_prefix, duration=duration,
        justification=reason[:MAX_JUSTIFICATION], idempotency_key=idempotency_key, source_kind=original.source_kind,
        source_warning=original.source_warning, client_ip=client_ip, extends=original,
        idempotency_fingerprint=idempotency_fingerprint,
        each_port_maximum=True)  # "ending later, within each port's maximum from now"
    return request, created


# --- aggregate state -------------------------------------------------------------------------------------------
def aggregate_state(states: list[str]) -> str:
    """One state for a request from its ports' states (what is still moving wins, then what is open)."""
    present = set(states)
    for state in (PortState.OPENING, PortState.QUEUED, PortState.OPEN, PortState.PENDING, PortState.SCHEDULED):
        if state in present:
            return state
    if present and present <= {PortState.FAILED}:
        return PortState.FAILED
    for state in (PortState.DENIED, PortState.CLOSED, PortState.EXPIRED, PortState.FAILED):
        if state in present:
            return state
    return PortState.QUEUED


def refresh_state(request_id: int) -> str:
    """Recompute the request's state from its ports. The request's row is locked first, so two recomputations
    (two policies' tasks, the reconciler) run one after the other, the second reading what the first wrote.
    Inside a caller's transaction it joins it (no savepoint)."""
    with transaction.atomic(savepoint=False):
        _lock_request(request_id)
        states = list(AccessRequestPort.objects.filter(request_id=request_id).values_list("state", flat=True))
        state = aggregate_state(states)
        AccessRequest.objects.filter(pk=request_id).exclude(state=state).update(state=state,
                                                                                updated_at=timezone.now())
    return state


def _lock_request(request_id: int) -> None:
    """Hold the request's row until the transaction ends (a no-op on SQLite, whose writers run one at a time)."""
    list(AccessRequest.objects.select_for_update().filter(pk=request_id).values_list("pk", flat=True))


# --- open (task) -----------------------------------------------------------------------------------------------
def _stale() -> datetime:
    return timezone.now() - timedelta(seconds=settings.ACCESS_STUCK_SECONDS)


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


def _find_in_azure(policy, correlation: str):
    """Azure's record of this portal request in the policy's ``requests`` (by the id in the justification)."""
    for record in getattr(policy, "requests", ()) or ():
        if correlation in (record.justification or ""):
            return record
    return None


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
    portal's request id looked up in their justifications, so a 5xx after Azure acted never opens twice.
    """
    from cloud.errors import CloudError
    from policies.models import Subscription

    claim = _claim(request_id, policy_key)
    ports = claim.ports
    if not ports:
        return Outcome("skipped")
    ids = [port.pk for port in ports]
    request = ports[0].request
    first = ports[0].request_vm
    correlation = str(request.correlation_id)
    try:
        gateway = gateway or gateway_for(Subscription.objects.get(vms=first.vm_id))
        record, initiated = None, False
        if max(p.attempts for p in ports) > 1:
            policy = gateway.get_jit_policy(first.policy_resource_group, first.policy_location, first.policy_name)
            record = _find_in_azure(policy, correlation)
        if record is None:
            # Each port's end is "now + its duration" at the moment we ask (a queued request keeps its window);
            # it is stored with the open state, from Azure's answer when it has one.
            now = timezone.now()
            for port in ports:
                port.end_at = now + timedelta(seconds=port.duration_seconds)
            record = gateway.initiate_jit(first.policy_resource_group, first.policy_location, first.policy_name,
                                          _initiate_body(ports), justification=request.azure_justification)
            initiated = True
    except CloudError as exc:
        message = str(exc) or type(exc).__name__
        if getattr(exc, "retryable", False) and max(p.attempts for p in ports) < settings.ACCESS_MAX_ATTEMPTS:
            AccessRequestPort.objects.filter(pk__in=ids, state=PortState.OPENING, claimed_at=claim.at).update(
                state=PortState.QUEUED, last_error=f"Retrying: {message}"[:4000], updated_at=timezone.now(),
                azure_request_id=(getattr(exc, "request_id", "") or "")[:128])
            refresh_state(request_id)
            return Outcome(PortState.QUEUED, _retry_after(exc), message)
        request_mark_failed(port_ids=ids, message=message, request_id=getattr(exc, "request_id", ""))
        return Outcome(PortState.FAILED, None, message)
    request_mark_open(claim, record=record, request_id=getattr(gateway, "last_request_id", "") or "",
                      initiated=initiated)
    return Outcome(PortState.OPEN)


def _retry_after(exc) -> float:
    value = getattr(exc, "retry_after", None)
    try:
        return max(1.0, float(value)) if value is not None else 2.0
    except (TypeError, ValueError):
        return 2.0


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


# --- close ------------------------------------------------------------------------------------------------------
def request_close(*, actor, request: AccessRequest) -> AccessRequest:
    """Close the request early: queued ports are cancelled at once, open ones closed by a task (see module doc).
    Closing again (a double submit) records nothing more; it only sends the close task again."""
    vm_rows = list(request.vms.all())
    if not may_manage(actor, request, vm_rows):
        raise PermissionDenied("Only the requester or a policy admin may close this request.")
    if not request.is_active and request.closed_at is None:
        raise ValidationError("This request is no longer open.", code="not_open")
    now = timezone.now()
    with transaction.atomic():
        if not AccessRequest.objects.filter(pk=request.pk, closed_at__isnull=True).update(closed_at=now,
                                                                                           closed_by=actor):
            request.refresh_from_db()  # closing already (a second submit): no second audit row, the task again
            if request.state == PortState.OPEN:
                _after_commit(enqueue_close, request.pk)
            return request
        AccessRequest.objects.filter(pk=request.pk, approval_state=ApprovalState.PENDING).update(
            approval_state=ApprovalState.CANCELLED)
        cancelled = AccessRequestPort.objects.filter(request=request, state__in=(PortState.QUEUED, *WAITING)).update(
            state=PortState.CLOSED, finished_at=now, last_error="Cancelled before it opened.")
        state = refresh_state(request.pk)
        if state in FINAL:
            signals.emit("closed", request, actor=actor, reason="cancelled")
        for vm_row in vm_rows:
            audit_record(actor=actor, action="access.close_requested", target_type="vm", target_id=vm_row.vm_id,
                         target_label=vm_row.vm_name, after={"request": request.pk, "cancelled": cancelled},
                         correlation_id=str(request.correlation_id), **audit_place(vm_row))
        _after_commit(enqueue_close, request.pk)
    request.refresh_from_db()
    return request


def _nsg_place(nsg_id: str) -> tuple[str, str]:
    parts = nsg_id.strip("/").split("/")
    lower = [p.lower() for p in parts]
    return parts[lower.index("resourcegroups") + 1], parts[lower.index("networksecuritygroups") + 1]


def _same_prefix(a: str, b: str) -> bool:
    if a.strip() == b.strip():
        return True
    try:
        return ipaddress.ip_network(a.strip(), strict=False) == ipaddress.ip_network(b.strip(), strict=False)
    except ValueError:
        return False


def _jit_allow_rules(nsg, number: int, source: str) -> list[str]:
    """Names of the JIT allow rules in ``nsg`` that open ``number`` for ``source``."""
    names = []
    for rule in nsg.security_rules:
        if not rule.name.lower().startswith(JIT_RULE_PREFIX) or rule.access.lower() != "allow":
            continue
        if rule.direction.lower() != "inbound" or str(number) not in rule.destination_port_ranges:
            continue
        if any(_same_prefix(prefix, source) for prefix in rule.source_address_prefixes):
            names.append(rule.name)
    return names


def request_close_apply(*, request_id: int, gateway=None) -> Outcome:
    """The close task: for each open port, see Azure's status, then remove what still lets traffic in."""
    from cloud.errors import CloudError

    request = AccessRequest.objects.filter(pk=request_id, closed_at__isnull=False).first()
    if request is None:
        return Outcome("skipped")
    ports = list(AccessRequestPort.objects.filter(request=request, state=PortState.OPEN)
                 .select_related("request_vm", "request_vm__vm", "request_vm__vm__subscription"))
    if not ports:
        refresh_state(request_id)
        return Outcome("nothing-open")
    by_policy: dict[str, list[AccessRequestPort]] = defaultdict(list)
    for port in ports:
        by_policy[port.policy_key].append(port)
    try:
        for group in by_policy.values():
            first = group[0].request_vm
            gateway = gateway or gateway_for(first.vm.subscription)
            policy = gateway.get_jit_policy(first.policy_resource_group, first.policy_location, first.policy_name)
            record = _find_in_azure(policy, str(request.correlation_id))
            status = {(vm.id.lower(), p.number): p for vm in (record.virtual_machines if record else ())
                      for p in vm.ports}
            removed: list[str] = []
            replaced: list[AccessRequestPort] = []
            for port in group:
                azure = status.get((port.request_vm.vm_arm_id.lower(), port.number))
                if azure is not None and (azure.status or "").lower() == "revoked":
                    continue  # Azure already closed it (expired or replaced): nothing to remove
                for nsg_id in port.request_vm.vm.nsg_ids or []:
                    group_name, nsg_name = _nsg_place(nsg_id)
                    nsg = gateway.get_network_security_group(group_name, nsg_name)
                    for rule_name in _jit_allow_rules(nsg, port.number, port.source_prefix):
                        gateway.delete_security_rule(group_name, nsg_name, rule_name)
                        removed.append(f"{nsg_name}/{rule_name}")
                if port.request_vm.connection_type == "firewall":
                    replaced.append(port)
            if replaced:
                _replace_with_placeholder(gateway, request, replaced)
            request_mark_closed(port_ids=[p.pk for p in group], removed=removed, record=record,
                                replaced=[p.pk for p in replaced])
    except CloudError as exc:
        message = str(exc) or type(exc).__name__
        AccessRequestPort.objects.filter(request=request, state=PortState.OPEN).update(
            last_error=f"Closing failed: {message}"[:4000])
        if getattr(exc, "retryable", False):
            return Outcome("open", _retry_after(exc), message)
        return Outcome("open", None, message)
    return Outcome(PortState.CLOSED)


def _placeholder_source(port: AccessRequestPort) -> str:
    """A source for the replacement request that the port's policy allows and no host uses: the configured
    placeholder when allowed, else the network address of an allowed range (never a host's, so closing opens the
    port for nobody). Raises ``CloudError`` (not retryable) when the policy allows single addresses only."""
    from cloud.errors import CloudError

    rule = validation.policy_port(port.request_vm.vm.ports or [], port.number)
    placeholder = settings.ACCESS_CLOSE_PLACEHOLDER_SOURCE
    if any(validation.source_allowed(allowed, placeholder) for allowed in rule.sources):
        return placeholder
    for allowed in rule.sources:
        try:
            network = ipaddress.ip_network(allowed.strip(), strict=False)
        except ValueError:
            continue
        if network.num_addresses > 2:  # not a /31 or /32 (or /127, /128), whose every address is a host's
            return f"{network.network_address}/{network.max_prefixlen}"
    raise CloudError(f"Port {port.number} of {port.request_vm.vm_name} allows single addresses only "
                     f"({', '.join(rule.sources)}): behind its Azure Firewall the portal cannot end this access "
                     f"early without opening the port for one of them; it ends at {zoned_text(port.end_at)}.")


def _replace_with_placeholder(gateway, request: AccessRequest, ports: list[AccessRequestPort]) -> None:
    """Behind a firewall: a 5-minute request from a source nobody uses (``_placeholder_source``) makes Azure
    revoke the original."""
    first = ports[0].request_vm
    end = timezone.now() + validation.MIN_WINDOW
    body: dict[str, dict] = {}
    for port in ports:
        entry = body.setdefault(port.request_vm.vm_arm_id, {"id": port.request_vm.vm_arm_id, "ports": []})
        entry["ports"].append({"number": port.number, "end_time_utc": end,
                               "allowed_source_address_prefix": _placeholder_source(port)})
    gateway.initiate_jit(first.policy_resource_group, first.policy_location, first.policy_name, list(body.values()),
                         justification=f"{request.requester_name}: close portal request #{request.pk} early "
                                       f"({request.correlation_id})")


def request_mark_closed(*, port_ids: list[int], removed: list[str], record=None, replaced: list[int] = ()) -> None:
    """Record the close of the ports still open (locked first: one the expiry finished meanwhile is not closed
    again, audited or notified twice)."""
    now = timezone.now()
    with transaction.atomic():
        ports = list(AccessRequestPort.objects.select_for_update(of=("self",))
                     .filter(pk__in=port_ids, state=PortState.OPEN)
                     .select_related("request", "request_vm", "request__closed_by"))
        status = {(vm.id.lower(), p.number): p for vm in (record.virtual_machines if record else ()) for p in vm.ports}
        for port in ports:
            azure = status.get((port.request_vm.vm_arm_id.lower(), port.number))
            port.state = PortState.CLOSED
            port.finished_at = now
            port.last_error = ""
            if port.pk in replaced:
                port.azure_status, port.azure_status_reason = "Revoked", "NewerRequestInitiated"
            elif azure is not None:
                port.azure_status, port.azure_status_reason = azure.status or "", azure.status_reason or ""
        AccessRequestPort.objects.bulk_update(ports, ["state", "finished_at", "last_error", "azure_status",
                                                      "azure_status_reason"])
        if not ports:
            return
        request = ports[0].request
        refresh_state(request.pk)
        for vm_row in {p.request_vm_id: p.request_vm for p in ports}.values():
            audit_record(actor=request.closed_by, action="access.closed", target_type="vm", target_id=vm_row.vm_id,
                         target_label=vm_row.vm_name,
                         after={"ports": sorted(p.number for p in ports if p.request_vm_id == vm_row.pk),
                                "removed_rules": removed, "firewall_replaced": bool(replaced)},
                         correlation_id=str(request.correlation_id), **audit_place(vm_row))
        signals.emit("closed", request, actor=request.closed_by, reason="closed")


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
               ) -> Iterator[tuple[list[AccessRequestPort], object | None]]:
    """``ports`` grouped by JIT policy, each group with its policy as Azure has it now (one read per policy;
    ``None``, logged, when it could not be read)."""
    from cloud.errors import CloudError

    groups: dict[str, list[AccessRequestPort]] = defaultdict(list)
    for port in ports:
        groups[port.policy_key].append(port)
    for group in groups.values():
        first = group[0].request_vm
        try:
            gateway = (gateway_factory or gateway_for)(first.vm.subscription)
            policy = gateway.get_jit_policy(first.policy_resource_group, first.policy_location, first.policy_name)
        except CloudError as exc:
            log.warning("%s: could not read %s: %s", purpose, first.policy_key, exc)
            policy = None
        yield group, policy


def _azure_port(policy, port: AccessRequestPort):
    """Azure's record of ``port`` in ``policy``'s requests (found by the portal request's id), or ``None``."""
    record = _find_in_azure(policy, str(port.request.correlation_id)) if policy is not None else None
    return next((p for vm in (record.virtual_machines if record else ())
                 if vm.id.lower() == port.request_vm.vm_arm_id.lower() for p in vm.ports if p.number == port.number),
                None)


def expire_due(*, gateway_factory=None) -> int:
    """Ports still ``open`` past their end: read Azure's status per policy, then mark them expired."""
    due = list(AccessRequestPort.objects.filter(state=PortState.OPEN, end_at__lte=timezone.now())
               .select_related("request", "request_vm", "request_vm__vm__subscription")[:500])
    expired = 0
    for group, policy in _by_policy(due, gateway_factory, "expiry"):
        reasons: dict[int, tuple[str, str]] = {}
        for port in group:
            azure = _azure_port(policy, port)
            if azure is not None and azure.status:
                reasons[port.pk] = (azure.status, azure.status_reason or "")
        expired += request_mark_expired(port_ids=[p.pk for p in group], reasons=reasons)
    return expired


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
    for group, policy in _by_policy(ports, gateway_factory, "revocations"):
        for port in group:
            azure = _azure_port(policy, port)
            if azure is not None and (azure.status or "").lower() == "revoked" and azure.status_reason != "Expired":
                revoked[port.request_id].append((port, azure.status, azure.status_reason or ""))
    return sum(_mark_revoked(found) for _request_id, found in sorted(revoked.items()))


def _mark_revoked(found: list[tuple[AccessRequestPort, str, str]]) -> int:
    """Close one request's ports Azure revoked (each with Azure's status and reason); how many were still open."""
    request = found[0][0].request
    with transaction.atomic():
        closed = [(port, status, reason) for port, status, reason in found
                  if AccessRequestPort.objects.filter(pk=port.pk, state=PortState.OPEN).update(
                      state=PortState.CLOSED, azure_status=status, azure_status_reason=reason[:64],
                      finished_at=timezone.now())]
        if not closed:
            return 0
        state = refresh_state(request.pk)
        for vm_row in {port.request_vm_id: port.request_vm for port, _s, _r in closed}.values():
            audit_record(actor=None, action="access.revoked_in_azure", target_type="vm", target_id=vm_row.vm_id,
                         target_label=vm_row.vm_name,
                         after={"ports": sorted(p.number for p, _s, _r in closed if p.request_vm_id == vm_row.pk),
                                "status": closed[0][1], "reason": closed[0][2]},
                         correlation_id=str(request.correlation_id), **audit_place(vm_row))
        if state == PortState.CLOSED:  # told once the request is over, as for a close or an expiry
            signals.emit("closed", request, actor=None, reason="revoked", azure_reason=closed[0][2])
    return len(closed)


def _give_up(port_ids: list[int]) -> None:
    """Fail ports that used up their attempts, except those whose last run's ``initiate`` reached Azure (a slow
    answer the run could not record once its claim went stale): Azure's record of the portal request, found in
    the policy by its id as a retry looks for it, opens them instead, so the portal never says "failed" about a
    port Azure opened."""
    from cloud.errors import CloudError

    message = f"Gave up after {settings.ACCESS_MAX_ATTEMPTS} attempts."
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
        record = _find_in_azure(policy, str(ports[0].request.correlation_id))
        if record is not None:
            request_mark_open(Claim(sorted(ports, key=lambda p: (p.request_vm_id, p.number)), at=claimed_at,
                                    shared=True), record=record)
            found.update(port.pk for port in ports)
    rest = [pk for pk in port_ids if pk not in found]
    if rest:
        request_mark_failed(port_ids=rest, message=message)


def reconcile(*, enqueue=None) -> dict[str, int]:
    """Beat: re-send stuck requests (queued or opening past ``ACCESS_STUCK_SECONDS``), fail those that used up
    their attempts, expire what passed its end, close what Azure revoked, expire undecided approvals and release
    scheduled windows whose start came. Returns counts."""
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
    from . import approvals

    return {"failed": len(exhausted), "resent": resent, "expired": expire_due(), "revoked": revoked_in_azure(),
            "approval_expired": approvals.expire_pending(), "released": approvals.release_scheduled()}


# --- gateways ---------------------------------------------------------------------------------------------------
def gateway_for(subscription):
    """The gateway of ``subscription`` from this process's factory (credentials and token caches shared)."""
    from .gateways import gateway_for_subscription

    return gateway_for_subscription(subscription)


__all__ = ["FINAL", "Outcome", "Selection", "aggregate_state", "reconcile", "request_close", "request_create",
           "request_extend", "request_mark_expired", "request_mark_failed", "request_mark_open", "request_open"]
