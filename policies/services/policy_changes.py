"""JIT policy changes: enable, edit and remove JIT on VMs (queued as changes, one per policy), apply a change to
Azure (a read-modify-write of the whole policy, under its lock), send again the changes no worker has, and accept
Azure's policy as the baseline (drift)."""
from __future__ import annotations

import logging
import uuid

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts import authz
from accounts.roles import JIT_POLICY_WRITE, VM_WRITE
from audit.services import audit_record, audit_record_many
from jitportal.lib.basis import stale

from .. import drift, inventory, rules
from ..change_notes import RETRYING, kept_note
from ..models import (
    DriftFinding,
    JitPolicy,
    PolicyChange,
    PolicyLock,
    Subscription,
    UnsupportedReason,
    VirtualMachine,
    VmState,
)
from ..selectors import (
    enable_blocked,
    enable_blocked_message,
    jit_unavailable_reason,
    policy_places,
    ports_to_be,
    vm_pending_change,
)
from .task_runs import BROKER_ERRORS, CHANGE_RETRY_LOST, CHANGE_UNSENT, STALE_RUNNING, Outcome, _retry_after

log = logging.getLogger(__name__)
CHANGE_MAX_ATTEMPTS = 13  # the task's first try and its retries
PENDING_CHANGE = (PolicyChange.State.QUEUED, PolicyChange.State.RUNNING)  # not applied yet


def _place(vm: VirtualMachine) -> dict:
    return {"subscription_id": vm.subscription_key, "resource_group": vm.resource_group, "resource_id": vm.resource_id}


def _require_policy_admin(actor, vm: VirtualMachine) -> None:
    if not (authz.has_permission(actor, JIT_POLICY_WRITE, vm.resource_id)
            and authz.has_permission(actor, VM_WRITE, vm.resource_id)):
        raise PermissionDenied(f"Only JIT policy admins at the scope of {vm.name} may change its JIT settings.")


def _require_supported(vm: VirtualMachine) -> None:
    if reason := jit_unavailable_reason(vm):
        raise ValidationError(reason, code="defender" if vm.subscription.defender_missing else "unsupported")


def _policy_for(vm: VirtualMachine, name: str | None = None) -> tuple[str, str, str]:
    """``policy_places`` of one VM."""
    return policy_places([vm], name)[vm.pk]


def _policy_arm_id(subscription_key: str, group: str, location: str, name: str) -> str:
    return (f"/subscriptions/{subscription_key}/resourceGroups/{group}/providers/Microsoft.Security/locations/"
            f"{location}/jitNetworkAccessPolicies/{name}").lower()


def _lock_vms(vms: list[VirtualMachine]) -> None:
    """Lock the VMs' rows (in one order) for the rest of the transaction: their changes are queued one at a time.
    FOR NO KEY UPDATE, as an UPDATE of the rows takes: rows naming the VMs (an access request's) may be stored
    meanwhile, which FOR UPDATE would stop (deadlocking with a request for several VMs, audited VM by VM)."""
    list(VirtualMachine.objects.select_for_update(no_key=True).filter(pk__in=[vm.pk for vm in vms]).order_by("pk")
         .values_list("pk", flat=True))


def _create_change(*, actor, kind: str, vms: list[VirtualMachine], desired: dict, group: str, location: str,
                   name: str, client_ip: str | None = None) -> PolicyChange:
    """Queue the change, or return the same one still pending (the same form or API call sent again queues
    nothing more; the caller holds the VMs' rows, ``_lock_vms``, so two sent at once queue one)."""
    policy_id = _policy_arm_id(vms[0].subscription_key, group, location, name)
    pending = _pending_same(kind=kind, vms=vms, desired=desired, policy_id=policy_id)
    if pending is not None:
        return pending
    return _queue_changes(actor=actor, kind=kind, asks=[(vms, desired, group, location, name)],
                          client_ip=client_ip)[0]


def _queue_changes(*, actor, kind: str, asks: list[tuple[list[VirtualMachine], dict, str, str, str]],
                   client_ip: str | None = None) -> list[PolicyChange]:
    """Store one change per ask (its VMs, what it asks for them, the policy's group, location and name; none of
    them already pending: ``_create_change``) and enqueue their tasks on commit. The changes' VM links and their
    audit rows (one per VM, change after change) are inserted in bulk, the audit chain's head moved once: a
    statement per change and per batch of rows, not per VM."""
    changes = []
    for vms, desired, group, location, name in asks:
        first = vms[0]
        changes.append(PolicyChange.objects.create(
            kind=kind, subscription=first.subscription, subscription_key=first.subscription_key,
            resource_group=group.lower(), resource_group_name=group, location=location, policy_name=name,
            policy_id=_policy_arm_id(first.subscription_key, group, location, name), desired=desired,
            created_by=actor if getattr(actor, "pk", None) else None, client_ip=client_ip or None))
    link = PolicyChange.vms.through
    link.objects.bulk_create([link(policychange_id=change.pk, virtualmachine_id=pk)
                              for change, (vms, *_rest) in zip(changes, asks, strict=True)
                              for pk in dict.fromkeys(vm.pk for vm in vms)])
    audit_record_many([{"actor": actor, "action": f"policy.{kind}_requested", "target_type": "vm",
                        "target_id": vm.pk, "target_label": vm.name, "before": {"ports": vm.ports},
                        "after": {"ports": desired[vm.arm_id]}, "client_ip": client_ip,
                        "correlation_id": str(change.pk), **_place(vm)}
                       for change, (vms, desired, *_rest) in zip(changes, asks, strict=True) for vm in vms])
    for change in changes:
        transaction.on_commit(lambda pk=change.pk: _enqueue_change(pk))
    return changes


def _pending_same(*, kind: str, vms: list[VirtualMachine], desired: dict, policy_id: str) -> PolicyChange | None:
    """The newest change of ``vms``, when it is still pending and asks for exactly ``desired`` in that policy (ports
    compared in any order). After a newer change of one of them the same ask is queued again: it must be applied
    last, and a change applied after a newer one leaves that VM alone (``_not_superseded``)."""
    latest = PolicyChange.objects.filter(vms__in=vms).order_by("-pk").first()
    if latest is None or latest.state not in PENDING_CHANGE or (latest.kind, latest.policy_id) != (kind, policy_id):
        return None
    canonical = [{vm_id: None if ports is None else rules.normalized(ports) for vm_id, ports in asked.items()}
                 for asked in (latest.desired, desired)]
    return latest if canonical[0] == canonical[1] else None


def _send_change(change_id: int) -> None:
    from ..tasks import apply_policy_change

    apply_policy_change.delay(change_id)


def _enqueue_change(change_id: int) -> None:
    """Send the change's task; when the broker is unreachable the row stays queued for ``policy_changes_resend``."""
    try:
        _send_change(change_id)
    except BROKER_ERRORS as exc:
        log.warning("policies: could not enqueue policy change %s (%s); the beat sends it later", change_id, exc)


def policy_changes_resend(*, enqueue=None) -> dict[str, int]:
    """Beat: send again the changes no worker has: queued ones never claimed ``CHANGE_UNSENT`` after they were
    stored or last sent (the broker was down) or waiting on a retry past ``CHANGE_RETRY_LOST``, and running ones
    whose worker was lost (past ``STALE_RUNNING``, queued again); fail with the reason those that used up
    ``CHANGE_MAX_ATTEMPTS``. Returns counts."""
    send = enqueue or _send_change
    now = timezone.now()
    stuck = PolicyChange.objects.filter(
        Q(state=PolicyChange.State.QUEUED, attempts=0, updated_at__lt=now - CHANGE_UNSENT)
        | Q(state=PolicyChange.State.QUEUED, updated_at__lt=now - CHANGE_RETRY_LOST)
        | Q(state=PolicyChange.State.RUNNING, updated_at__lt=now - STALE_RUNNING))
    exhausted = list(stuck.filter(attempts__gte=CHANGE_MAX_ATTEMPTS).values_list("pk", flat=True))
    for pk in exhausted:
        policy_change_fail(change_id=pk, message=f"Gave up after {CHANGE_MAX_ATTEMPTS} attempts: the worker "
                                                 "applying it stopped each time.")
    resent = 0
    for pk in list(stuck.filter(attempts__lt=CHANGE_MAX_ATTEMPTS).order_by("pk").values_list("pk", flat=True)):
        try:
            send(pk)
        except BROKER_ERRORS as exc:  # still down: the next beat tries again
            log.warning("policies: could not enqueue policy change %s (%s)", pk, exc)
            break
        PolicyChange.objects.filter(pk=pk, state__in=PENDING_CHANGE,
                                    updated_at__lt=now - CHANGE_UNSENT).update(state=PolicyChange.State.QUEUED,
                                                                               updated_at=timezone.now())
        resent += 1
    return {"failed": len(exhausted), "resent": resent}


def policy_enable(*, actor, vms: list[VirtualMachine], ports: list[rules.PortRule] | None = None,
                  os_default: bool = False, policy_name: str | None = None,
                  replace_pending: bool = False, client_ip: str | None = None) -> list[PolicyChange]:
    """Enable JIT on Not configured VMs: ``ports`` (default: the recommended ones, or the OS default), in the
    policy ``policy_name`` of their resource group and location (default: the one there, or ``default``).

    One change per policy; refused whole when any VM may not be enabled. A VM whose enable or removal is still
    pending (``selectors.BLOCKS_ENABLE``) is refused (``code="pending"``, naming it), unless the very same ask is
    sent again (its pending change answers it) or ``replace_pending`` (a set of the VM's ports, as the API's
    ``PUT`` and ``jit_policy set``, which like the Edit page queue a newer change applied last). ``client_ip`` (the
    caller's address) goes on the change and on its audit rows.

    Its cost grows with the policies, not the VMs (up to ``views.BULK_ENABLE_MAX`` in one transaction): the
    policies are looked up once for all VMs, the ports validated once per port list, and in the transaction the
    pending changes are read once per policy and the links and audit rows inserted in bulk.
    """
    if not vms:
        raise ValidationError("Select at least one VM.", code="required")
    if policy_name is not None:
        policy_name = rules.validate_policy_name(policy_name)
    _load_subscriptions(vms)
    places = policy_places(vms, policy_name)
    groups: dict[tuple[str, str, str, str], list[VirtualMachine]] = {}  # one per policy: subscription too
    plans: dict[str, list[dict]] = {}
    validated: dict[object, list[dict]] = {}  # the ports, validated once per port list (not per VM)
    for vm in vms:
        _require_policy_admin(actor, vm)
        _require_supported(vm)
        if vm.state == VmState.CONFIGURED:
            raise ValidationError(f"{vm.name} already has JIT; edit it instead.", code="configured")
        group, location, name = places[vm.pk]
        rules.validate_name_length(name, vm.name, group=group, location=location)
        which = "given" if ports is not None else ("os", (vm.os_type or "").lower()) if os_default else "recommended"
        if which not in validated:
            chosen = ports if ports is not None else (rules.default_ports(vm.os_type) if os_default
                                                      else rules.recommended_ports())
            validated[which] = [p.to_azure() for p in rules.validate_ports(list(chosen))]
        plans[vm.arm_id] = validated[which]
        groups.setdefault((vm.subscription_key, group, location, name), []).append(vm)
    with transaction.atomic():
        _lock_vms(vms)
        asks = [(members, {vm.arm_id: plans[vm.arm_id] for vm in members}, group, location, name)
                for (_subscription, group, location, name), members in groups.items()]
        # The change already pending for each ask (the same form or API call sent again), read once per policy.
        pending = [_pending_same(kind=PolicyChange.Kind.ENABLE, vms=members, desired=desired,
                                 policy_id=_policy_arm_id(members[0].subscription_key, group, location, name))
                   for members, desired, group, location, name in asks]
        if not replace_pending:
            _refuse_pending_enable(asks, pending)
        created = iter(_queue_changes(actor=actor, kind=PolicyChange.Kind.ENABLE, client_ip=client_ip,
                                      asks=[ask for ask, same in zip(asks, pending, strict=True) if same is None]))
        return [same if same is not None else next(created) for same in pending]


def _load_subscriptions(vms: list[VirtualMachine]) -> None:
    """Load the subscription of each VM that does not hold it yet, in one query (not one per VM)."""
    missing = [vm for vm in vms if not VirtualMachine.subscription.is_cached(vm)]
    if missing:
        found = Subscription.objects.in_bulk({vm.subscription_id for vm in missing})
        for vm in missing:
            vm.subscription = found[vm.subscription_id]


def _refuse_pending_enable(asks: list[tuple[list[VirtualMachine], dict, str, str, str]],
                           pending: list[PolicyChange | None]) -> None:
    """Refuse the enable when a VM of it is still being enabled or having JIT removed (the caller holds the VMs'
    rows), unless its group's ask is the very change pending (``pending``, per ask: the form or API call sent
    again, that one answers). The pending changes of all the VMs are read in one query."""
    checked = [members for (members, *_rest), same in zip(asks, pending, strict=True) if same is None]
    blocked = enable_blocked([vm for members in checked for vm in members]) if checked else {}
    refusals = [ValidationError(enable_blocked_message(vm.name, blocked[vm.pk]), code="pending")
                for members in checked for vm in members if vm.pk in blocked]
    if refusals:
        raise ValidationError(refusals)


def policy_save(*, actor, vm: VirtualMachine, ports: list[rules.PortRule], client_ip: str | None = None,
                shown: str | None = None) -> PolicyChange:
    """Replace ``vm``'s JIT ports (protocol, allowed sources, maximum time per port). With ``shown``, the
    ``rules.ports_basis`` of the ports the edit form was shown with ("" when it carried none): when they changed
    since (another admin's save still pending, or a sync) and ``ports`` would replace them with something else,
    ``ValidationError`` (code ``ports_changed``) and nothing is saved; checked under the VM's row lock."""
    _require_policy_admin(actor, vm)
    _require_supported(vm)
    group, location, name = _policy_for(vm)
    rules.validate_name_length(name, vm.name, group=group, location=location)
    cleaned = [p.to_azure() for p in rules.validate_ports(list(ports))]
    kind = PolicyChange.Kind.SAVE if vm.state == VmState.CONFIGURED else PolicyChange.Kind.ENABLE
    with transaction.atomic():
        _lock_vms([vm])
        if shown is not None:
            now = ports_to_be(vm, vm_pending_change(vm),  # a removal pending: none
                              VirtualMachine.objects.values_list("ports", flat=True).get(pk=vm.pk))
            if stale(shown, rules.ports_basis(now), sets_current=rules.ports_basis(cleaned) == rules.ports_basis(now)):
                raise ValidationError(f"The JIT settings of {vm.name} changed while you saved them (another admin "
                                      "saved them, or they were changed in Azure). Check the ports and Save again.",
                                      code="ports_changed")
        return _create_change(actor=actor, kind=kind, vms=[vm], desired={vm.arm_id: cleaned}, group=group,
                              location=location, name=name, client_ip=client_ip)


def policy_remove(*, actor, vm: VirtualMachine, client_ip: str | None = None) -> PolicyChange:
    """Remove JIT from ``vm`` (its entry leaves the policy; the policy goes when it has no VM left)."""
    _require_policy_admin(actor, vm)
    if not vm.policy_name:
        raise ValidationError(f"{vm.name} has no JIT policy to remove.", code="not_configured")
    group, location, name = _policy_for(vm)
    with transaction.atomic():
        _lock_vms([vm])
        return _create_change(actor=actor, kind=PolicyChange.Kind.REMOVE, vms=[vm], desired={vm.arm_id: None},
                              group=group, location=location, name=name, client_ip=client_ip)


def _claim_change(change_id: int) -> bool:
    now = timezone.now()
    return bool(PolicyChange.objects.filter(pk=change_id).filter(
        Q(state=PolicyChange.State.QUEUED) | Q(state=PolicyChange.State.RUNNING, updated_at__lt=now - STALE_RUNNING)
    ).update(state=PolicyChange.State.RUNNING, attempts=F("attempts") + 1, updated_at=now))


def _lock_policy(key: str, holder: str) -> None:
    """Take the policy's row lock for the rest of the transaction (a write, so SQLite serializes too)."""
    try:
        with transaction.atomic():
            PolicyLock.objects.get_or_create(key=key)
    except IntegrityError:
        pass
    list(PolicyLock.objects.select_for_update().filter(key=key))
    PolicyLock.objects.filter(key=key).update(holder=holder, locked_at=timezone.now())


def merge_policy(current_vms: list, desired: dict) -> list[dict]:
    """The policy's VM list after applying ``desired`` (VM id → ports, or None to remove) to Azure's current one.
    A VM keeps what Azure set beside its ports (``publicIpAddress``: the firewall's, for DNAT)."""
    from .. import shapes

    merged: dict[str, dict] = {}
    for entry in current_vms:
        vm_id, ports, firewall_ip = shapes.policy_vm_entry(entry)
        merged[vm_id.lower()] = {"id": vm_id, "ports": ports, **({"publicIpAddress": firewall_ip} if firewall_ip
                                                                 else {})}
    for vm_id, ports in desired.items():
        if ports is None:
            merged.pop(vm_id.lower(), None)
        else:
            merged[vm_id.lower()] = {**merged.get(vm_id.lower(), {}), "id": vm_id, "ports": ports}
    return list(merged.values())


def policy_change_apply(*, change_id: int, gateway=None) -> Outcome:
    """Apply one change: lock the policy, re-read it from Azure, write the whole policy, mirror the result.

    Throttling and transient errors put the row back in the queue (``Outcome.retry_after``); other errors
    fail it with Azure's message, and an exception that is not the gateway's with ``Unexpected error: …``. PUT is
    idempotent and the desired state is on the row, so a retry sends the same body.
    """
    from cloud.errors import CloudError, NotFound, Unreadable

    from .. import cloudcalls, shapes
    from ..gateway import gateway_in_use

    if not _claim_change(change_id):
        return Outcome("skipped")
    change = PolicyChange.objects.select_related("subscription", "created_by").get(pk=change_id)
    try:
        with gateway_in_use(change.subscription, gateway) as gateway, transaction.atomic():
            _lock_policy(change.policy_id, holder=str(uuid.uuid4()))
            desired, kept = _not_superseded(change)
            if not desired:  # newer changes already set every VM of this one: writing would undo them
                PolicyChange.objects.filter(pk=change.pk).update(
                    state=PolicyChange.State.APPLIED, last_error=kept, finished_at=timezone.now())
                return Outcome(PolicyChange.State.APPLIED)
            try:
                current = gateway.get_jit_policy(change.resource_group_name, change.location, change.policy_name)
            except NotFound:
                current = None
            vms = merge_policy(shapes.policy_vms(current) if current is not None else [], desired)
            if vms:
                result = cloudcalls.put_policy(gateway, change, vms)
            else:
                cloudcalls.delete_policy(gateway, change)
                result = None
            _mirror_change(change, result, desired)
            PolicyChange.objects.filter(pk=change.pk).update(
                state=PolicyChange.State.APPLIED, last_error=kept, finished_at=timezone.now(),
                azure_request_id=cloudcalls.request_id(result, gateway)[:128])
            for vm in change.vms.filter(resource_id__in=[vm_id.lower() for vm_id in desired]):
                audit_record(actor=change.created_by, action=f"policy.{change.kind}_applied", target_type="vm",
                             target_id=vm.pk, target_label=vm.name, after={"ports": vm.ports},
                             client_ip=change.client_ip, correlation_id=str(change.pk), **_place(vm))
    except CloudError as exc:  # an answer the gateway could not read too (``Unreadable``): the change fails saying why
        message = str(exc) or type(exc).__name__
        if isinstance(exc, Unreadable):
            log.warning("policy change %s: %s", change.pk, message, exc_info=exc)
        if getattr(exc, "retryable", False):
            PolicyChange.objects.filter(pk=change.pk).update(state=PolicyChange.State.QUEUED,
                                                             last_error=f"{RETRYING}{message}"[:4000])
            return Outcome(PolicyChange.State.QUEUED, _retry_after(exc), message)
        policy_change_fail(change_id=change.pk, message=message)
        return Outcome(PolicyChange.State.FAILED, None, message)
    return Outcome(PolicyChange.State.APPLIED)


def _not_superseded(change: PolicyChange) -> tuple[dict, str]:
    """(the part of ``change.desired`` still to write, a note naming what was left out): a VM that a newer change
    has already been applied to keeps that newer change's ports. An older change applied last (its task retried
    after throttling, or was sent again) must not undo a later edit or removal."""
    newer: dict[str, tuple[int, str]] = {}
    rows = PolicyChange.vms.through.objects.filter(
        virtualmachine__changes=change, policychange_id__gt=change.pk,
        policychange__state=PolicyChange.State.APPLIED).values_list(
        "virtualmachine__resource_id", "policychange_id", "virtualmachine__name")
    for vm_id, pk, name in rows:
        if pk > newer.get(vm_id, (0, ""))[0]:
            newer[vm_id] = (pk, name)
    desired = {vm_id: ports for vm_id, ports in change.desired.items() if vm_id.lower() not in newer}
    note = "; ".join(kept_note(name, pk) for pk, name in sorted(newer.values()))
    return desired, note


def policy_change_fail(*, change_id: int, message: str) -> None:
    """Record that a change failed, with Azure's message, on the row and in the audit trail."""
    with transaction.atomic():
        change = PolicyChange.objects.select_related("created_by").get(pk=change_id)
        PolicyChange.objects.filter(pk=change_id).update(state=PolicyChange.State.FAILED, last_error=message[:4000],
                                                         finished_at=timezone.now())
        for vm in change.vms.all():
            audit_record(actor=change.created_by, action=f"policy.{change.kind}_failed", target_type="vm",
                         target_id=vm.pk, target_label=vm.name, after={"error": message[:1000]},
                         client_ip=change.client_ip, correlation_id=str(change.pk), **_place(vm))


def _mirror_change(change: PolicyChange, result, desired: dict) -> None:
    """Update the mirror and the VMs of the policy from Azure's answer to the write of ``desired``. The
    subscription's row is locked first: a sync storing a snapshot read before this write finishes first, and
    ``inventory.store`` then keeps what this writes. The lock is PostgreSQL's FOR NO KEY UPDATE (as the sync's
    UPDATE of the row takes): FOR UPDATE would also stop the inserts that name the subscription (a policy change an
    admin queues while holding its VMs' rows, which this then updates), and the two would deadlock."""
    list(Subscription.objects.select_for_update(no_key=True).filter(pk=change.subscription_id).values_list(
        "pk", flat=True))
    now = timezone.now()
    view = inventory.policy_view(result) if result is not None else None
    vms = list(VirtualMachine.objects.filter(subscription=change.subscription, resource_group=change.resource_group,
                                             location=change.location.lower()))
    by_id = {vm.resource_id: vm for vm in vms}
    desired_ids = {vm_id.lower() for vm_id in desired}
    changed = []
    for vm in vms:
        ports = view.vm_ports.get(vm.resource_id) if view else None
        if ports is None and not ((vm.policy_name and vm.policy_name.lower() == change.policy_name.lower())
                                  or vm.resource_id in desired_ids):
            continue
        vm.ports = ports or []
        if ports:
            vm.state, vm.unsupported_reason = VmState.CONFIGURED, UnsupportedReason.NONE
            vm.policy_resource_group, vm.policy_location = change.resource_group_name, change.location.lower()
            vm.policy_name = change.policy_name
            vm.firewall_public_ip = view.vm_firewall_ip.get(vm.resource_id) or vm.firewall_public_ip
        elif vm.state == VmState.CONFIGURED:
            vm.state = VmState.NOT_CONFIGURED
            vm.policy_resource_group = vm.policy_location = vm.policy_name = ""
        if vm.resource_id in desired_ids:
            vm.portal_ports = vm.ports
        changed.append(vm)
    VirtualMachine.objects.bulk_update(changed, ["ports", "state", "unsupported_reason", "policy_resource_group",
                                                 "policy_location", "policy_name", "firewall_public_ip",
                                                 "portal_ports"])
    if view is not None:
        inventory.mirror_policies_one(change.subscription, view, {k: v.pk for k, v in by_id.items()}, now)
    else:
        JitPolicy.objects.filter(resource_id=change.policy_id).delete()
    DriftFinding.objects.filter(vm__resource_id__in=desired_ids, kind=DriftFinding.Kind.POLICY_CHANGED,
                                resolved_at__isnull=True).update(resolved_at=now)
    drift.refresh_counts(change.subscription)


def drift_accept(*, actor, vm: VirtualMachine, client_ip: str | None = None, shown: str | None = None) -> None:
    """Accept Azure's policy for ``vm`` as the portal's baseline (closes "changed outside the portal"). With
    ``shown``, the ``rules.ports_basis`` of Azure's ports as the page showed them, only those are accepted: when a
    sync has brought other ports since (or ``shown`` is no such digest), ``ValidationError`` (code
    ``drift_changed``) and nothing is accepted."""
    _require_policy_admin(actor, vm)
    with transaction.atomic():
        stored = VirtualMachine.objects.select_for_update(no_key=True).filter(pk=vm.pk).values(
            "ports", "portal_ports").first()
        if stored is None:
            raise PermissionDenied(f"{vm.name} is no longer in the inventory.")
        if shown is not None and rules.ports_basis(stored["ports"]) != shown:
            raise ValidationError(f"Azure's JIT settings of {vm.name} changed since they were shown.",
                                  code="drift_changed")
        before, ports = stored["portal_ports"], stored["ports"]
        VirtualMachine.objects.filter(pk=vm.pk).update(portal_ports=ports)
        DriftFinding.objects.filter(vm=vm, kind=DriftFinding.Kind.POLICY_CHANGED, resolved_at__isnull=True).update(
            resolved_at=timezone.now())
        drift.refresh_counts(vm.subscription)
        audit_record(actor=actor, action="policy.drift_accepted", target_type="vm", target_id=vm.pk,
                     target_label=vm.name, before={"ports": before}, after={"ports": ports}, client_ip=client_ip,
                     **_place(vm))
