"""Close now (see the package's doc): the request first, then a task removes what still lets traffic in; and the
close of ports Azure revoked."""
from __future__ import annotations

import ipaddress
import logging
from collections import defaultdict

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from audit.services import audit_record
from jitportal.lib.times import zoned_text

from .. import signals, validation
from ..models import ACTIVE, FINAL, LEFT_OPEN, WAITING, AccessRequest, AccessRequestPort, ApprovalState, PortState
from ..removals import POLICY_GONE, removals_of, revoked_for_removal
from .common import (
    Outcome,
    _after_commit,
    _azure_port,
    _find_in_azure,
    _retry_after,
    _stale,
    audit_place,
    enqueue_close,
    gateway_for,
    may_manage,
)
from .state import refresh_state

JIT_RULE_PREFIX = "securitycenter-jitrule"
log = logging.getLogger(__name__)


# --- close ------------------------------------------------------------------------------------------------------
def request_close(*, actor, request: AccessRequest) -> AccessRequest:
    """Close the request early: queued ports are cancelled at once, open ones closed by a task (see the package's doc).
    Closing again (a double submit, Close now pressed again) records nothing more and sends no second close task
    while the first may still be on its way; one sent longer ago than ``ACCESS_STUCK_SECONDS`` is sent again, as the
    reconcile would at its next beat."""
    vm_rows = list(request.vms.all())
    if not may_manage(actor, request, vm_rows):
        raise PermissionDenied("Only the requester or a policy admin may close this request.")
    now = timezone.now()
    if request.closed_at is None and (not request.is_active or _ended(request, now)):
        raise ValidationError("This request is no longer open.", code="not_open")
    with transaction.atomic():
        if not AccessRequest.objects.filter(pk=request.pk, closed_at__isnull=True).update(closed_at=now,
                                                                                           closed_by=actor):
            request.refresh_from_db()  # closing already (a second submit): no second audit row nor task
            if request.state == PortState.OPEN and request.closed_at < _stale():
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


def _ended(request: AccessRequest, now) -> bool:
    """Whether ``request`` is open only on ports past their end: expired in Azure, as its page shows it, though the
    reconciler has not marked it so yet (nothing is left to close)."""
    return request.state == PortState.OPEN and not AccessRequestPort.objects.filter(
        request=request, state__in=ACTIVE).exclude(state=PortState.OPEN, end_at__lte=now).exists()


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


def _reaches(destinations: tuple[str, ...], address: str) -> bool:
    """Whether a rule with these destination prefixes lets traffic reach ``address`` (any destination does; an
    unknown address counts as reached, as the rule may be its VM's)."""
    if not address or not destinations or any(d.strip() in ("*", "Any", "") for d in destinations):
        return True
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return True
    for prefix in destinations:
        try:
            if ip in ipaddress.ip_network(prefix.strip(), strict=False):
                return True
        except ValueError:
            continue
    return False


def _jit_allow_rules(nsg, number: int, source: str, destination: str = "") -> list[str]:
    """Names of the JIT allow rules in ``nsg`` that open ``number`` for ``source`` to the VM at ``destination``
    (its private address). One NSG often guards several VMs (a subnet's): JIT writes each VM's rules with that VM's
    address as destination, so another VM's rule for the same port and source is left alone."""
    names = []
    for rule in nsg.security_rules:
        if not rule.name.lower().startswith(JIT_RULE_PREFIX) or rule.access.lower() != "allow":
            continue
        if rule.direction.lower() != "inbound" or str(number) not in rule.destination_port_ranges:
            continue
        if not _reaches(rule.destination_address_prefixes, destination):
            continue
        if any(_same_prefix(prefix, source) for prefix in rule.source_address_prefixes):
            names.append(rule.name)
    return names


def request_close_apply(*, request_id: int, gateway=None) -> Outcome:
    """The close task: for each open port, see Azure's status, then remove what still lets traffic in. A policy gone
    from Azure (NotFound) took its rules with it: its ports are closed with nothing to remove. A port past its end
    ended by itself: it is ended as the reconciler ends it (``expiry.end_past``: expired), not closed. Each policy is
    read, and its rules removed, through its own subscription's gateway (``gateway``, when given, serves them all).
    When every port still open is past its end, the close ended nothing: the request is recorded as expired
    (``_close_moot``).
    Any other exception than the gateway's (a bug) propagates, the ports still open saying why."""
    from cloud.errors import CloudError, NotFound, Unreadable, unexpected

    request = AccessRequest.objects.filter(pk=request_id, closed_at__isnull=False).first()
    if request is None:
        return Outcome("skipped")
    ports = list(AccessRequestPort.objects.filter(request=request, state=PortState.OPEN)
                 .select_related("request", "request_vm", "request_vm__vm", "request_vm__vm__subscription"))
    now = timezone.now()
    if past := [port for port in ports if port.end_at <= now]:
        # Their end passed (expired in Azure, not yet marked so by the reconciler): they ended by themselves, not by
        # this close, whose requester had other ports still open.
        from .expiry import end_past  # the expiry imports this module

        if len(past) == len(ports):
            _close_moot(request, now)
        end_past(past, gateway_factory=None if gateway is None else lambda _subscription: gateway)
        ports = [port for port in ports if port.end_at > now]
    if not ports:
        refresh_state(request_id)
        return Outcome("nothing-open")
    by_policy: dict[str, list[AccessRequestPort]] = defaultdict(list)
    for port in ports:
        by_policy[port.policy_key].append(port)
    gateways: dict[int, object] = {}  # one per subscription: a policy read through another's is NotFound there
    try:
        for group in by_policy.values():
            first = group[0].request_vm
            subscription = first.vm.subscription
            if subscription.pk not in gateways:
                gateways[subscription.pk] = gateway or gateway_for(subscription)
            azure_gateway = gateways[subscription.pk]
            try:
                policy = azure_gateway.get_jit_policy(first.policy_resource_group, first.policy_location,
                                                      first.policy_name)
            except NotFound as exc:
                if not exc.gone:
                    raise
                request_mark_closed(port_ids=[p.pk for p in group], removed=[], policy_gone=True)
                continue
            record = _find_in_azure(policy, str(request.correlation_id))
            status = {(vm.id.lower(), p.number): p for vm in (record.virtual_machines if record else ())
                      for p in vm.ports}
            removed: list[str] = []
            replaced: list[AccessRequestPort] = []
            held: dict[int, int] = {}
            for port in group:
                azure = status.get((port.request_vm.vm_arm_id.lower(), port.number))
                if azure is not None and (azure.status or "").lower() == "revoked":
                    continue  # Azure already closed it (expired or replaced): nothing to remove
                if azure is None and (holder := _newer_holder(port, policy, now)) is not None:
                    held[port.pk] = holder  # the rule of this port and source is the newer request's
                    continue
                for nsg_id in port.request_vm.vm.nsg_ids or []:
                    group_name, nsg_name = _nsg_place(nsg_id)
                    nsg = azure_gateway.get_network_security_group(group_name, nsg_name)
                    for rule_name in _jit_allow_rules(nsg, port.number, port.source_prefix,
                                                      port.request_vm.vm.private_ip):
                        azure_gateway.delete_security_rule(group_name, nsg_name, rule_name)
                        removed.append(f"{nsg_name}/{rule_name}")
                if port.request_vm.connection_type == "firewall":
                    replaced.append(port)
            if replaced:
                _replace_with_placeholder(azure_gateway, request, replaced)
            request_mark_closed(port_ids=[p.pk for p in group], removed=removed, record=record,
                                replaced=[p.pk for p in replaced], held=held)
    except CloudError as exc:  # an answer the gateway could not read too (``Unreadable``): the ports stay open (what
        # lets traffic in may still be there), saying why, and the reconciler sends the close again
        message = str(exc) or type(exc).__name__
        if isinstance(exc, Unreadable):  # what the answer held is for the log (its cause), never for a page
            log.warning("close request %s: %s", request_id, message, exc_info=exc)
        _closing_failed(request, message)
        if getattr(exc, "retryable", False):
            return Outcome("open", _retry_after(exc), message)
        return Outcome("open", None, message)
    except Exception as exc:  # kept on purpose, and re-raised: not Azure's failure (the gateway's CloudError above)
        # but a bug, the worker's time limit, the database; the ports still open say why (the reconciler sends the
        # close again), and the task fails with the stack (the worker's log)
        _closing_failed(request, unexpected(exc), best_effort=True)
        raise
    return Outcome(PortState.CLOSED)


def _close_moot(request: AccessRequest, now) -> bool:
    """Take Close now back when it ends nothing: every port still active is open past its end (expired in Azure) and
    none was cancelled or closed by it. The request then ends as the reconciler's expiry ends it, not as closed early
    by whoever clicked (their click stays in the trail, ``access.close_requested``). Whether it was taken back."""
    by_close = AccessRequestPort.objects.filter(request=OuterRef("pk"), state=PortState.CLOSED,
                                                finished_at__gte=OuterRef("closed_at"))
    left = AccessRequestPort.objects.filter(request=OuterRef("pk"), state__in=ACTIVE).exclude(
        state=PortState.OPEN, end_at__lte=now)
    return bool(AccessRequest.objects.filter(pk=request.pk, closed_at=request.closed_at, state=PortState.OPEN)
                .exclude(Exists(by_close)).exclude(Exists(left)).update(closed_at=None, closed_by=None))


def _newer_holder(port: AccessRequestPort, policy, now) -> int | None:
    """When Azure's record of ``port``'s request is not found: the id of another portal request, still open, that
    holds the same VM port for the same source and is the newer (Azure's record of it says ``Initiated``; with no
    record of it either, it opened after ``port``), or ``None``. Azure keeps one request per VM port and a newer one
    rewrites the same allow rule (and DNAT rule) for its source, so removing the rule of this port and source, or
    replacing it behind a firewall, would end that request's access."""
    others = AccessRequestPort.objects.filter(
        state=PortState.OPEN, end_at__gt=now, number=port.number, request_vm__vm_id=port.request_vm.vm_id,
    ).exclude(request_id=port.request_id).select_related("request", "request_vm").order_by("-opened_at", "-pk")
    for other in others:
        if not _same_prefix(other.source_prefix, port.source_prefix):
            continue  # its rule has its own source: the rule of this port's source is not its
        azure = _azure_port(policy, other)
        if azure is not None:
            if (azure.status or "").lower() != "revoked":
                return other.request_id
        elif other.opened_at and port.opened_at and other.opened_at > port.opened_at:
            return other.request_id
    return None


def _closing_failed(request: AccessRequest, message: str, *, best_effort: bool = False) -> None:
    """Say on the ports still open why closing them failed (the request's page shows it); ``best_effort``: while
    another error is raised, one from the database here is only logged."""
    try:
        AccessRequestPort.objects.filter(request=request, state=PortState.OPEN).update(
            last_error=f"Closing failed: {message}"[:4000])
    except DatabaseError:
        if not best_effort:
            raise
        log.warning("close request %s: could not record the reason %r", request.pk, message)


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


def request_mark_closed(*, port_ids: list[int], removed: list[str], record=None, replaced: list[int] = (),
                        policy_gone: bool = False, held: dict[int, int] | None = None) -> None:
    """Record the close of the ports still open (locked first: one the expiry finished meanwhile is not closed
    again, audited or notified twice); ``policy_gone``: their JIT policy no longer exists in Azure, so Azure had
    already revoked them (``POLICY_GONE``) and nothing was removed; ``held``: port id → the newer request whose
    access the port's rule now is, left in place (``_newer_holder``), which the port's reason names."""
    held = held or {}
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
            port.last_error = (f"{LEFT_OPEN}{held[port.pk]} (the same port and source): the portal left Azure's "
                               f"rule in place for it." if port.pk in held else "")
            if policy_gone:
                port.azure_status, port.azure_status_reason = "Revoked", POLICY_GONE
            elif port.pk in replaced:
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
                                "removed_rules": removed, "firewall_replaced": bool(replaced),
                                **({"policy_gone": True} if policy_gone else {}),
                                **({"left_open_for": left} if (left := {
                                    str(p.number): held[p.pk] for p in ports
                                    if p.request_vm_id == vm_row.pk and p.pk in held}) else {})},
                         correlation_id=str(request.correlation_id), **audit_place(vm_row))
        signals.emit("closed", request, actor=request.closed_by, reason="closed")


def _mark_revoked(found: list[tuple[AccessRequestPort, str, str]]) -> int:
    """Close one request's ports Azure revoked (each with Azure's status and reason); how many were still open."""
    request = found[0][0].request
    now = timezone.now()
    with transaction.atomic():
        closed = [(port, status, reason) for port, status, reason in found
                  if AccessRequestPort.objects.filter(pk=port.pk, state=PortState.OPEN).update(
                      state=PortState.CLOSED, azure_status=status, azure_status_reason=reason[:64],
                      finished_at=now)]
        if not closed:
            return 0
        for port, status, reason in closed:  # as stored, for ``removals_of``
            port.state, port.azure_status, port.azure_status_reason, port.finished_at = (
                PortState.CLOSED, status, reason[:64], now)
        state = refresh_state(request.pk)
        for vm_row in {port.request_vm_id: port.request_vm for port, _s, _r in closed}.values():
            audit_record(actor=None, action="access.revoked_in_azure", target_type="vm", target_id=vm_row.vm_id,
                         target_label=vm_row.vm_name,
                         after={"ports": sorted(p.number for p, _s, _r in closed if p.request_vm_id == vm_row.pk),
                                "status": closed[0][1], "reason": closed[0][2]},
                         correlation_id=str(request.correlation_id), **audit_place(vm_row))
        if state == PortState.CLOSED:  # told once the request is over, as for a close or an expiry
            # who removed JIT or the port from the VM, when the portal did (or the sync found it done in Azure)
            removals = removals_of(port for port, _s, _r in closed if revoked_for_removal(request, port))
            removed = [removal.as_detail() for removal in dict.fromkeys(removals.values())]
            signals.emit("closed", request, actor=None, reason="revoked", azure_reason=closed[0][2],
                         **({"removed": removed} if removed else {}))
    return len(closed)
