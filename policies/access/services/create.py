"""Create and extend requests: what the VMs' policies and the access rules allow, the rows and their audit, and
the open task sent after commit (a form submitted twice gives the first request)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from policies.models import VirtualMachine, VmState

from .. import signals, validation
from ..connection import address_for
from ..models import AccessRequest, AccessRequestPort, AccessRequestVm, ApprovalState, PortState
from ..source_order import source_sort_key
from .common import audit_place, enqueue_after_commit, may_request

MAX_JUSTIFICATION = 500


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


def _username(user) -> str:
    return user.get_username() if getattr(user, "pk", None) else "jitportal"


def _policy_key(vm: VirtualMachine) -> str:
    return vm.policy_id.lower()


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
                rule = validation.policy_port(vm.ports, number, vm.name)
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
    from .. import approvals

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
                    source_prefix=source_prefix, source_sort=source_sort_key(source_prefix), source_kind=source_kind,
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


def ensure_may_extend(actor, original: AccessRequest) -> None:
    """Refuse (``PermissionDenied``) anyone but the requester: checked before the form or body, so someone else who
    may read the request is told why whatever they sent."""
    if original.requester_id != actor.pk:  # a policy admin may close it, but not extend it
        raise PermissionDenied("Only the requester may extend their own request (Azure records them).")


def request_extend(*, actor, original: AccessRequest, duration: timedelta, idempotency_key: str,
                   justification: str = "", client_ip: str | None = None, idempotency_fingerprint: str = ""
                   ) -> tuple[AccessRequest, bool]:
    """Ask again for the same VMs, ports (those still open) and source, ending ``duration`` from now (within each
    port's maximum). Refused unless every port then ends later than now (``validation.validate_extension``): the
    extension replaces their access, so a port whose maximum was lowered below the time left on it is named."""
    vm_rows = list(original.vms.select_related("vm", "vm__subscription").prefetch_related("ports"))
    ensure_may_extend(actor, original)
    earlier = _replayed(idempotency_key, actor=actor, extends=original, fingerprint=idempotency_fingerprint)
    if earlier is not None:  # the same form again: its extension, even once it replaced the original
        return earlier, False
    original.refresh_from_db(fields=["state", "closed_at"])
    if original.state != PortState.OPEN or original.closed_at is not None:
        raise ValidationError("Only an open request can be extended.", code="not_open")
    now = timezone.now()
    # Only what is still open: a port Azure revoked meanwhile (a newer request took it) stays with its new holder,
    # and one past its end (expired in Azure, not yet marked so by the reconciler) is over.
    selections = [Selection(row.vm, numbers) for row in vm_rows
                  if (numbers := tuple(p.number for p in row.ports.all()
                                       if p.state == PortState.OPEN and p.end_at > now))]
    if not selections:
        raise ValidationError("Only an open request can be extended. Its access has ended: ask for access again.",
                              code="not_open")
    waiting = original.extensions.filter(state=PortState.PENDING).order_by("pk").first()
    if waiting is not None:  # a second would wait beside it, for the same ports: the approvers would see both
        raise ValidationError(f"Extension #{waiting.pk} of this request is still waiting for approval. Cancel it "
                              "before asking for another.", code="extension_waiting")
    validation.validate_extension(duration, ports=validation.open_ports(vm_rows, now), now=now)
    reason = justification.strip() or f"Extension of request #{original.pk}: {original.justification}"
    request, created = request_create(
        actor=actor, selections=selections, source_prefix=original.source_prefix, duration=duration,
        justification=reason[:MAX_JUSTIFICATION], idempotency_key=idempotency_key, source_kind=original.source_kind,
        source_warning=original.source_warning, client_ip=client_ip, extends=original,
        idempotency_fingerprint=idempotency_fingerprint,
        each_port_maximum=True)  # "ending later, within each port's maximum from now"
    return request, created
