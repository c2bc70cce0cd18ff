"""Reads of access requests, already restricted to what the user may see.

A user sees their own requests; a policy admin and an auditor also see every request touching a VM in their scope
(an auditor reads them only: nothing they may do to them).
"""
from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Value,
    When,
    prefetch_related_objects,
)
from django.db.models.lookups import IContains
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts import authz
from accounts.roles import AUDIT_READ, JIT_INITIATE, JIT_POLICY_WRITE, REQUEST_APPROVE, VM_READ
from accounts.scopes import scope_contains
from audit.redaction import text_redactor
from jitportal.lib.days import day_start
from policies.models import JitPolicy, VirtualMachine, VmState
from policies.rules import MAX_DURATION
from policies.selectors import DEFENDER_OFF, Matching, defender_off, vm_get, vm_list, vms_matching

from . import validation
from .client_ip import request_source_note
from .connection import ConnectionDetails, details_for, login_name
from .ends import port_end, unknown_end_text
from .models import (
    ACTIVE,
    FINAL,
    WAITING,
    AccessRequest,
    AccessRequestPort,
    AccessRequestVm,
    AccessRule,
    Approval,
    ApprovalState,
    PortState,
    portal_request_in,
)
from .removals import POLICY_GONE, person_label, removals_of, revoked_for_removal


def _vm_rows_in_scope(user, action: str, *also: str) -> QuerySet[AccessRequestVm] | None:
    """VM rows in the scopes where ``user`` may perform ``action`` or one of ``also`` (``None``: nowhere)."""
    if not authz.permitted_scopes(user, action, *also):
        return None
    return authz.restrict(AccessRequestVm.objects.all(), user, action, *also, subscription_field="subscription_key",
                          resource_group_field="resource_group", resource_id_field="vm_arm_id")


class _EachRowExists(Exists):
    """``EXISTS`` that PostgreSQL evaluates per row (an index lookup) rather than hashing every row of the subquery
    first: ``OFFSET 0`` keeps it from turning the test into a hashed ``= ANY``, which reads all of a subscription's
    request VM rows even for a page of 50 (40 ms at 100,000). SQLite ignores it."""

    template = "EXISTS(%(subquery)s OFFSET 0)"


def _own_or_in_scope(user, *actions: str) -> QuerySet[AccessRequest]:
    """The user's own requests, and those with a VM where they may perform one of ``actions`` (none: only theirs)."""
    queryset = AccessRequest.objects.select_related("requester")
    mine = Q(requester_id=user.pk)
    rows = _vm_rows_in_scope(user, *actions) if actions else None
    if rows is None:
        return queryset.filter(mine)
    return queryset.filter(mine | _EachRowExists(rows.filter(request_id=OuterRef("pk"))))


def request_list(user, *, everyone: bool = True) -> QuerySet[AccessRequest]:
    """The "Requests" list: the user's own, and (``everyone``) all those in their policy-admin, audit or approver
    scope (an auditor's job is to search every opening; an approver finds there the requests they decided, whose
    pages they may open)."""
    return _own_or_in_scope(user, *LIST_EVERYONES) if everyone else _own_or_in_scope(user)


LIST_EVERYONES = (JIT_POLICY_WRITE, AUDIT_READ, REQUEST_APPROVE)


def sees_everyones(user) -> bool:
    """Whether the Requests list shows ``user`` other people's requests too (``request_list``): a policy admin, an
    auditor or an approver somewhere; the list then offers "Only mine"."""
    return bool(authz.permitted_scopes(user, *LIST_EVERYONES))


def request_visible(user) -> QuerySet[AccessRequest]:
    """Requests whose page ``user`` may open: their own, and those on VMs where they may request access
    themselves (Azure shows a policy's requests to whoever may read it), administer JIT, or audit (read only)."""
    if authz.holds_anywhere(user, JIT_POLICY_WRITE) and not authz.holds_anywhere(user, JIT_INITIATE):
        return _own_or_in_scope(user, JIT_POLICY_WRITE, AUDIT_READ)
    return _own_or_in_scope(user, JIT_INITIATE, AUDIT_READ)


def _request_detail_queryset(queryset: QuerySet[AccessRequest]) -> QuerySet[AccessRequest]:
    return queryset.prefetch_related(
        Prefetch("vms", queryset=AccessRequestVm.objects.select_related("vm").prefetch_related("ports")),
        Prefetch("approvals", queryset=Approval.objects.order_by("created_at", "id")))


def _approval_overdue(now) -> Q:
    """Pending past the approval deadline: no longer decidable, though ``approvals.expire_pending`` (the beat's
    reconcile) has not marked it expired yet."""
    return Q(approval_state=ApprovalState.PENDING, approval_expires_at__lte=now)


def _access_ended(now) -> tuple[Q, Q]:
    """Open with no port open past ``now``: its access ended, though ``expire_due`` (the beat's reconcile) has not
    marked it yet (``show_as_ended``); as (shown closed: one of its ports was closed, as by a newer request; shown
    expired: the others)."""
    still_open = AccessRequestPort.objects.filter(request_id=OuterRef("pk"), state=PortState.OPEN, end_at__gt=now)
    closed = AccessRequestPort.objects.filter(request_id=OuterRef("pk"), state=PortState.CLOSED)
    ended = Q(state=PortState.OPEN) & ~Q(Exists(still_open))
    return ended & Q(Exists(closed)), ended & ~Q(Exists(closed))


def in_shown_state(queryset: QuerySet[AccessRequest], state: str) -> QuerySet[AccessRequest]:
    """The requests of ``queryset`` in ``state`` as the pages show and count them (``state_counts``), before the
    reconcile marks them: one past its approval deadline is expired, no longer pending; one open past its end,
    expired (closed when a port of it was), no longer open."""
    now = timezone.now()
    overdue = _approval_overdue(now)
    ended_closed, ended_expired = _access_ended(now)
    if state == PortState.PENDING:
        return queryset.filter(state=state).exclude(overdue)
    if state == PortState.OPEN:
        return queryset.filter(state=state).exclude(ended_closed | ended_expired)
    if state == PortState.EXPIRED:
        return queryset.filter(Q(state=state) | overdue | ended_expired)
    if state == PortState.CLOSED:
        return queryset.filter(Q(state=state) | ended_closed)
    return queryset.filter(state=state)


def approval_queue(user) -> QuerySet[AccessRequest]:
    """Requests waiting for ``user``'s decision: pending and still within their approval deadline, not their own,
    every VM in their approver scope, not yet decided by them; oldest first (the first to expire)."""
    rows = _vm_rows_in_scope(user, REQUEST_APPROVE)
    if rows is None:
        return AccessRequest.objects.none()
    # The VM rows of each pending request are looked up in the scope, one by one: ``pk NOT IN (rows in scope)``
    # listed, and a plain ``EXISTS`` hashed (PostgreSQL), every request VM row of the approver's scope (all of a
    # subscription's: 100,000 in a year) for every queue and count, though only the pending requests' matter.
    outside = AccessRequestVm.objects.filter(request_id=OuterRef("pk")).exclude(
        _EachRowExists(rows.filter(pk=OuterRef("pk"))))
    decided = Approval.objects.filter(request_id=OuterRef("pk"), approver_id=user.pk)
    return (AccessRequest.objects.select_related("requester")
            .filter(approval_state=ApprovalState.PENDING, closed_at__isnull=True)
            .exclude(_approval_overdue(timezone.now())).exclude(requester_id=user.pk)
            .filter(_EachRowExists(rows.filter(request_id=OuterRef("pk"))))
            .exclude(Exists(outside)).exclude(Exists(decided))
            .order_by("approval_expires_at", "id"))


def requester_history(requester_ids: list[int], days: int = 30) -> dict[int, dict[str, int]]:
    """Per requester: their requests in the last ``days`` by outcome (for the approvers' queue). Grouped by requester
    alone, so whether a request opened is looked up once per request (grouped by it too, SQLite looked it up twice)."""
    since = timezone.now() - timedelta(days=days)
    history: dict[int, dict[str, int]] = {pk: {"total": 0, "denied": 0, "opened": 0} for pk in requester_ids}
    opened = AccessRequestPort.objects.filter(request_id=OuterRef("pk"), opened_at__isnull=False)
    rows = (AccessRequest.objects.filter(requester_id__in=requester_ids, created_at__gte=since).order_by()
            .values("requester_id").annotate(total=Count("*"), denied=Count(
                "pk", filter=Q(approval_state=ApprovalState.DENIED)), opened=Count("pk", filter=Exists(opened)))
            .values_list("requester_id", "total", "denied", "opened"))
    for requester_id, total, denied, was_opened in rows:
        history[requester_id] = {"total": total, "denied": denied, "opened": was_opened}
    return history


def reviewable(user) -> QuerySet[AccessRequest]:
    """Requests an approver may review: those with a VM in their approver scope (deciding needs every VM)."""
    rows = _vm_rows_in_scope(user, REQUEST_APPROVE)
    if rows is None:
        return AccessRequest.objects.none()
    return AccessRequest.objects.select_related("requester").filter(Exists(rows.filter(request_id=OuterRef("pk"))))


def review_get(user, pk: int) -> AccessRequest:
    """A request an approver may review (``reviewable``)."""
    try:
        return _request_detail_queryset(reviewable(user)).get(pk=pk)
    except (AccessRequest.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("No such object.") from exc


def request_readable(user, pk: int, **match) -> bool:
    """Whether request ``pk`` (with the fields of ``match``) is one ``user`` may open the page of
    (``request_or_review_get``: one they may see, or review as an approver); two queries at most."""
    return any(queryset.filter(pk=pk, **match).exists() for queryset in (request_visible(user), reviewable(user)))


def readable_by_correlation(user, correlations: Iterable[str]) -> dict[str, int]:
    """The requests whose correlation ids ``correlations`` name (as the portal trail's rows about a request carry
    them; text that is no request id names none) and whose page ``user`` may open (``request_readable``), as {that
    text: request number}; two queries at most, none when no text is a request id."""
    wanted: dict[uuid.UUID, str] = {}
    for text in correlations:
        try:
            wanted.setdefault(uuid.UUID(str(text)), str(text))
        except ValueError:
            continue
    found: dict[str, int] = {}
    for queryset in (request_visible(user), reviewable(user)):
        missing = [key for key, text in wanted.items() if text not in found]
        if not missing:
            break
        found.update({wanted[correlation]: pk for pk, correlation in queryset.filter(
            correlation_id__in=missing).values_list("pk", "correlation_id")})
    return found


def request_or_review_get(user, pk: int) -> tuple[AccessRequest, bool]:
    """A request ``user`` may read, and whether only as its reviewer: one they may see (``request_get``), else one
    they may review as an approver (``review_get``; its connection details are the requester's)."""
    try:
        return request_get(user, pk), False
    except Http404:
        return review_get(user, pk), True


def rule_list(user) -> list[AccessRule]:
    """Access rules at scopes where ``user`` administers JIT."""
    return [rule for rule in AccessRule.objects.select_related("created_by")
            if authz.has_permission(user, JIT_POLICY_WRITE, rule.scope)]


def rules_above(user) -> list[AccessRule]:
    """Access rules at broader scopes than ``user`` administers JIT at, which apply to VMs of theirs: shown to them,
    not theirs to change (a resource group's admin sees the subscription's rules)."""
    scopes = authz.permitted_scopes(user, JIT_POLICY_WRITE)
    if authz.EVERYWHERE in scopes:
        return []
    return [rule for rule in AccessRule.objects.select_related("created_by")
            if any(scope_contains(rule.scope, scope) for scope in scopes)
            and not authz.has_permission(user, JIT_POLICY_WRITE, rule.scope)]


def rule_get(user, pk: int) -> AccessRule:
    rule = AccessRule.objects.filter(pk=pk).first() if str(pk).isdigit() else None
    if rule is None or not authz.has_permission(user, JIT_POLICY_WRITE, rule.scope):
        raise Http404("No such object.")
    return rule


def request_get(user, pk: int) -> AccessRequest:
    """One request ``user`` may see, with its VMs and ports, else ``Http404``."""
    try:
        return _request_detail_queryset(request_visible(user)).get(pk=pk)
    except (AccessRequest.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("No such object.") from exc


def requestable_vms(user) -> QuerySet[VirtualMachine]:
    """Configured VMs ``user`` may request access to."""
    return vm_list(user, JIT_INITIATE).filter(state=VmState.CONFIGURED).exclude(policy_name="")


def requestable_matching(user, data, *, cap: int) -> Matching:
    """All Configured VMs the inventory's filter in ``data`` matches that ``user`` may request access to now (as
    the rows the Configured tab lets one select): requester at the VM, JIT enabled, Defender for Servers Plan 2 on
    its subscription; the others are left out, said why (``policies.selectors.vms_matching``: past ``cap``, counted
    and not read)."""
    return vms_matching(user, data, state=VmState.CONFIGURED, action=JIT_INITIATE,
                        refused="your role does not allow requests there.", cap=cap, unusable=[
                            (Q(policy_name=""), "JIT is not enabled there any more."),
                            (DEFENDER_OFF & ~Q(policy_name=""), defender_off)])


def requestable_vm(user, pk: int) -> VirtualMachine:
    return vm_get(user, pk, JIT_INITIATE)


def my_open_ports(user, limit: int = 20) -> list[AccessRequestPort]:
    """The user's ports open now (and those still opening), soonest end first, with time left; a port whose end
    passed is not, though the reconcile has not marked it expired yet (``show_as_ended``)."""
    now = timezone.now()
    ports = list(AccessRequestPort.objects.filter(request__requester_id=user.pk,
                                                  state__in=[PortState.OPEN, PortState.OPENING, PortState.QUEUED,
                                                             PortState.PENDING, PortState.SCHEDULED])
                 .exclude(state=PortState.OPEN, end_at__lte=now)
                 .select_related("request", "request_vm").order_by("end_at", "pk")[:limit])
    for port in ports:
        port.time_left = max(port.end_at - now, timedelta(0))
    return ports


DASHBOARD_MOVING_POLL = "2s"
DASHBOARD_POLL = "30s"


def open_access_poll(ports: list[AccessRequestPort], now=None) -> str:
    """How soon the dashboard's "My open access" (``my_open_ports``) asks again (htmx ``every``): every 2 s while a
    port is queued or opening (it opens within seconds), else every 30 s, so time left counts down (it is shown to
    the minute), and no later than the first open port's end, so access that ended leaves the list then, as the
    request page does."""
    moving = any(port.state in (PortState.QUEUED, PortState.OPENING) for port in ports)
    if moving:
        return DASHBOARD_MOVING_POLL
    return until_next_end(DASHBOARD_POLL, [port.end_at for port in ports if port.state == PortState.OPEN],
                          now or timezone.now())


def until_next_end(every: str, ends: list, now) -> str:
    """The htmx ``every`` given (``"30s"``, ``"250ms"``), or sooner so that it fires at the first of ``ends`` still
    to come: a poll from then on shows the access ended (``show_as_ended``)."""
    coming = [end for end in ends if end > now]
    seconds = float(every[:-2]) / 1000 if every.endswith("ms") else float(every[:-1])
    if coming and min(coming) - now < timedelta(seconds=seconds):
        return f"{max(math.ceil((min(coming) - now).total_seconds() * 1000), 250)}ms"
    return every


def recent_requests(user, limit: int = 10) -> list[AccessRequest]:
    """The user's latest requests, each shown as the next reconcile will mark it (``show_list_as_reconciled``)."""
    recent = list(request_list(user, everyone=False).prefetch_related("ports").order_by("-created_at", "-id")[:limit])
    return show_list_as_reconciled(recent, timezone.now())


FINISHED_COUNTED_DAYS = 30


def state_counts(user) -> dict[str, int] | None:
    """Requests per state in the user's policy-admin or audit scope, as the Requests list shows them
    (``request_list``; ``None`` for whoever sees only their own): every one waiting or open, and the finished ones
    asked for in the last ``FINISHED_COUNTED_DAYS`` days, so the figures stay current and cheap however long the
    history. One past its approval deadline, or open past its end, counts as the next reconcile marks it
    (``in_shown_state``)."""
    if not sees_everyones(user):
        return None
    counts = {state.value: 0 for state in PortState}
    now = timezone.now()
    ended_closed, ended_expired = _access_ended(now)
    shown = Case(When(_approval_overdue(now), then=Value(PortState.EXPIRED.value)),
                 When(ended_closed, then=Value(PortState.CLOSED.value)),
                 When(ended_expired, then=Value(PortState.EXPIRED.value)), default=F("state"))
    counted = Q(state__in=ACTIVE) | Q(created_at__gte=day_start(finished_counted_from()))
    for state, n in (request_list(user).filter(counted).order_by().annotate(shown=shown).values_list("shown")
                     .annotate(n=Count("*"))):
        counts[state] = n
    return counts


def finished_counted_from() -> date:
    """The first day whose finished requests ``state_counts`` counts (the Requests list's "Requested from")."""
    return timezone.localdate() - timedelta(days=FINISHED_COUNTED_DAYS)


def state_count_rows(user) -> list[dict] | None:
    """``state_counts`` for the dashboard: each state's label, count and the Requests list showing those requests."""
    counts = state_counts(user)
    if counts is None:
        return None
    since = {"created_after": finished_counted_from().isoformat()}
    return [{"state": state.value, "label": state.label, "n": counts[state.value],
             "url": f"{reverse('policies:requests')}?"
                    f"{urlencode({'state': state.value, **({} if state in ACTIVE else since)})}"}
            for state in PortState]


def port_connection(port: AccessRequestPort) -> ConnectionDetails | None:
    vm_row = port.request_vm
    return details_for(address=vm_row.address, address_kind=vm_row.address_kind, number=port.number,
                       mapped_port=port.mapped_port)


def vm_rows_readable(user) -> QuerySet[AccessRequestVm]:
    """Request VM rows on VMs ``user`` may read (whoever asked for them): those ``vm_rows_shown`` names."""
    rows = _vm_rows_in_scope(user, VM_READ)
    return AccessRequestVm.objects.none() if rows is None else rows


def text_shown_whole(user) -> Q:
    """Requests whose justification ``user`` reads whole, as a filter: their own, and anyone else's that names no VM
    of it they may not read (``vm_rows_shown``), which ``request_redactor`` leaves unchanged: it withholds only text
    naming such a VM, by its name or its id (which ends with the name). A search matches the justification of these
    only, so a request is never found by words its page withholds. Per request, its VM rows (by request) and of those
    named in its text, whether each is in the user's scope (by primary key), as ``approval_queue``."""
    if authz.EVERYWHERE in authz.permitted_scopes(user, VM_READ):
        return Q()
    hidden = AccessRequestVm.objects.filter(IContains(OuterRef("justification"), F("vm_name")),
                                            request_id=OuterRef("pk"))
    rows = _vm_rows_in_scope(user, VM_READ)
    if rows is not None:
        hidden = hidden.exclude(_EachRowExists(rows.filter(pk=OuterRef("pk"))))
    return Q(requester_id=getattr(user, "pk", None)) | ~_EachRowExists(hidden)


def vm_rows_shown(request: AccessRequest, user) -> tuple[list[AccessRequestVm], int]:
    """The request's VMs ``user`` may see, and how many others it has: its requester sees all; anyone else (an
    approver, a policy admin, another requester on one of its VMs) only those they may read, so a request spanning
    scopes never shows the names and addresses of VMs outside theirs (as the API answers)."""
    rows = list(request.vms.all())
    if request.requester_id == user.pk:
        return rows, 0
    shown = [row for row in rows if authz.has_permission(user, VM_READ, row.vm_arm_id)]
    return shown, len(rows) - len(shown)


WITHHELD = "[withheld: outside your scope]"


def request_redactor(request: AccessRequest, user, shown: list[AccessRequestVm] | None = None
                     ) -> Callable[[str], str]:
    """The request's free text (its justification, Azure's messages on its ports, its approvers' comments) as
    ``user`` may read it: the VMs they do not see of it (``vm_rows_shown``, or the rows ``shown``) withheld as the
    audit pages withhold the VMs outside an auditor's scope (``audit.redaction.text_redactor``), so a request spanning
    scopes names none of them in words either. Unchanged for its requester, and for whoever sees all of its VMs."""
    if shown is None:
        shown, _ = vm_rows_shown(request, user)
    seen = {row.pk for row in shown}
    return text_redactor([row.vm_arm_id for row in shown],
                         [row.vm_arm_id for row in request.vms.all() if row.pk not in seen], marker=WITHHELD)


def policy_requests_shown(records: list[dict], user) -> list[dict]:
    """Azure's records of requests (a JIT policy's ``requests``, as a VM's page lists them) with the justification as
    ``user`` may read it: naming none of the VMs they may not read among the record's (its ports') and the portal
    request's it ends by naming (``portal_request_in``; its requester reads it whole, as on its page:
    ``request_redactor``). One query, for the portal requests named; none when no VM is left out."""
    named = {found[:2] for record in records if (found := portal_request_in(record.get("justification")))}
    portal: dict[tuple[int, str], AccessRequest] = {}
    if named:
        which = Q()
        for pk, correlation in named:
            which |= Q(pk=pk, correlation_id=correlation)
        portal = {(access.pk, str(access.correlation_id)): access
                  for access in AccessRequest.objects.filter(which).prefetch_related("vms").only(
                      "id", "correlation_id", "requester_id")}
    shown = []
    for record in records:
        found = portal_request_in(record.get("justification"))
        access = portal.get(found[:2]) if found else None
        if access is not None and access.requester_id == getattr(user, "pk", None):
            shown.append(record)
            continue
        vms = [str(port.get("vm") or "") for port in record.get("ports") or []]
        vms += [row.vm_arm_id for row in access.vms.all()] if access is not None else []
        inside = [vm for vm in vms if vm and authz.has_permission(user, VM_READ, vm)]
        redact = text_redactor(inside, [vm for vm in vms if vm and vm not in inside], marker=WITHHELD)
        text = record.get("justification")
        shown.append({**record, "justification": redact(text)} if isinstance(text, str) else record)
    return shown


def request_view(request: AccessRequest, user, *, review: bool = False) -> dict:
    """What the request page shows: per VM (those ``vm_rows_shown``), per port, state, its end once known
    (``ends.port_end``, else the window's length and when it starts), time left, connection lines; and what may be
    done. The connection details (the requester's login name, address and port, a firewall's DNAT port) are shown
    to the requester only (``connection_hidden`` for anyone else, and on an approver's ``review``). A request past
    its approval deadline, or open past its end, shows as the next reconcile will mark it (``show_as_timed_out``,
    ``show_as_ended``). Its justification, Azure's messages and the approvers' comments name no VM the viewer does
    not see (``request_redactor``). What may be done is the requester's, a policy admin's at every VM or an
    approver's: an auditor reads it only."""
    now = timezone.now()
    show_as_timed_out(request, now)
    show_as_ended(request, now)
    hidden_details = review or request.requester_id != user.pk
    vms = []
    login = login_name(request.requester_name)
    shown, hidden = vm_rows_shown(request, user)
    redact = request_redactor(request, user, shown)
    removals = removals_of(port for vm_row in shown for port in vm_row.ports.all()
                           if revoked_for_removal(request, port))
    for vm_row in shown:
        ports = []
        for port in vm_row.ports.all():
            details = port_connection(port) if port.state == PortState.OPEN and not hidden_details else None
            closed_early = port.closed_early
            # its JIT policy is gone from Azure (JIT removed from its last VM): revoked with it
            policy_gone = port.state == PortState.CLOSED and port.azure_status_reason == POLICY_GONE
            end = port_end(request, port)
            ports.append({"port": port, "details": details,
                          "lines": details.lines(os_type=vm_row.os_type, user=login) if details else [],
                          "time_left": max(port.end_at - now, timedelta(0)) if port.state == PortState.OPEN else None,
                          # Until it is known (the stored planned end of a port awaiting approval or opening is
                          # not), the window's length and when it starts.
                          "end": end, "unknown_end": unknown_end_text(port.state, port.window) if end is None else "",
                          "never_opened": port.state in FINAL and port.opened_at is None,
                          "error": redact(port.last_error),  # Azure's message may name the call's other VMs
                          "closed_early": closed_early, "left_open": port.left_open,
                          "removal": removals.get(port.pk),  # JIT or the port removed from the VM while open
                          "policy_gone": policy_gone,
                          # behind a firewall, Close now is the portal's own newer request (closing.py)
                          "closed_by_replacement": closed_early and not port.left_open
                          and request.closed_at is not None and vm_row.connection_type == "firewall"
                          and not policy_gone})
        vms.append({"row": vm_row, "ports": ports})
    from .approvals import approvers_for, may_decide, progress
    from .services import may_manage

    decisions = list(request.approvals.all())
    for decision in decisions:
        decision.shown_comment = redact(decision.comment)
    counts = progress(request) if request.approval_state != ApprovalState.NOT_REQUIRED else None
    eligible, short = None, False
    if request.is_pending:
        decided = {d.approver_id for d in decisions}
        eligible = [u for u in approvers_for(request) if u.pk not in decided]
        missing = counts["first_needed"] - counts["first"] + counts["second_needed"] - counts["second"]
        short = len(eligible) < missing
    every = [port for vm_row in request.vms.all() for port in vm_row.ports.all()]
    cancellable = (request.state in (PortState.PENDING, PortState.SCHEDULED, PortState.QUEUED)
                   and not any(port.opened_at for port in every))  # one policy open, another retrying: "Close now"
    return {"vms": vms, "vms_hidden": hidden, "connection_hidden": hidden_details,
            "justification": redact(request.justification),
            "source_note": request_source_note(request.source_prefix) if request.source_warning else "",
            "may_manage": request.is_active and may_manage(user, request, list(request.vms.all())),
            "cancellable": cancellable,
            # Close now pressed, the close task not done yet: "Closing…" in place of the button
            "closing": request.state == PortState.OPEN and request.closed_at is not None,
            # an extension not open yet: cancelling it leaves the access it was to extend open until its own end
            "original_open": original_open(request) if cancellable else None,
            "ended_note": _ended_note(request, every),
            # denied or failed: why, under its state (the ports' table, where each port's reason is, scrolls on a
            # phone)
            "why": list(dict.fromkeys(item["error"] for vm in vms for item in vm["ports"] if item["error"]))
            if request.state in (PortState.DENIED, PortState.FAILED) else [],
            "closed_by_other": _closed_by_other(request),
            "removals": list(dict.fromkeys(removals.values())),
            "closed_by_replacement": any(item["closed_by_replacement"] for vm in vms for item in vm["ports"]),
            # closed with their rule left in place: a newer request holds it (each port's reason names it)
            "left_open": any(item["left_open"] for vm in vms for item in vm["ports"]),
            "closed_by_rule_removal": any(item["closed_early"] and not item["left_open"]
                                          and not item["closed_by_replacement"]
                                          and not item["policy_gone"] for vm in vms for item in vm["ports"]),
            # the VMs whose JIT policy was gone from Azure when a port of theirs was closed
            "policy_gone": [vm["row"].vm_name for vm in vms if any(item["policy_gone"] for item in vm["ports"])],
            "may_extend": (request.requester_id == user.pk and request.state == PortState.OPEN
                           and request.closed_at is None  # not while closing: extending would be refused
                           and all(authz.has_permission(user, JIT_INITIATE, row.vm_arm_id)
                                   for row in request.vms.all())),  # nor once their role there is gone
            "may_decide": may_decide(user, request), "decisions": decisions, "eligible_approvers": eligible,
            "progress": counts, "approvers_short": short,
            "polling": request.state in (PortState.QUEUED, PortState.OPENING, PortState.OPEN),
            "waiting": request.state in WAITING,
            "poll_every": poll_interval(request, now, [port.end_at for port in every if port.state == PortState.OPEN])}


def original_open(request: AccessRequest) -> AccessRequest | None:
    """The request ``request`` extends while that one is open and not closing (its access lasts until its own end,
    whatever becomes of the extension), or ``None``."""
    if request.extends_id is None:
        return None
    return (AccessRequest.objects.filter(pk=request.extends_id, state=PortState.OPEN, closed_at__isnull=True)
            .only("id", "end_at").first())


def _past_end(port: AccessRequestPort, now) -> bool:
    return port.state == PortState.OPEN and port.end_at <= now


def show_as_ended(request: AccessRequest, now) -> bool:
    """Whether a port of ``request`` is open past its end; if so, marks it in memory only (a GET writes nothing) as
    ``expire_due`` (the beat's reconcile) will: expired at its end (Azure: Revoked, Expired), and the request's
    state from its ports. Its prefetched VMs and ports (through its VMs and directly) are changed, so the pages and
    the API show neither time left, connection details nor Close now for access that ended (as
    ``show_as_timed_out`` does for a request past its approval deadline)."""
    from .services.state import aggregate_state

    if request.state not in ACTIVE:
        return False
    prefetch_related_objects([request], "ports")  # prefetched by the lists; one query on a request's page
    if not any(_past_end(port, now) for port in request.ports.all()):
        return False
    prefetch_related_objects([request], "vms__ports")  # what the page reads, kept in memory
    for port in [port for vm_row in request.vms.all() for port in vm_row.ports.all()] + list(request.ports.all()):
        if _past_end(port, now):
            port.state, port.finished_at = PortState.EXPIRED, port.end_at
            port.azure_status, port.azure_status_reason = "Revoked", "Expired"
    request.state = aggregate_state([port.state for port in request.ports.all()])
    return True


def show_list_as_reconciled(requests: list[AccessRequest], now) -> list[AccessRequest]:
    """``requests`` (a page of a list) each shown as the next reconcile will mark it (``show_as_timed_out``,
    ``show_as_ended``), the VMs' ports those change loaded for all of them at once: one query however many rows (none
    when their ports are prefetched and none is past a deadline or an end)."""
    from .approvals import overdue

    prefetch_related_objects(requests, "ports")
    changing = [request for request in requests if overdue(request, now) or (
        request.state in ACTIVE and any(_past_end(port, now) for port in request.ports.all()))]
    prefetch_related_objects(changing, "vms__ports")
    for request in changing:
        show_as_timed_out(request, now)
        show_as_ended(request, now)
    return requests


def show_as_timed_out(request: AccessRequest, now) -> bool:
    """Whether ``request`` is pending past its approval deadline; if so, marks it in memory only (a GET writes
    nothing) as ``approvals.expire_pending`` will: not approved in time, its waiting ports expired with the reason.
    Its prefetched VMs and ports (through its VMs and directly) are changed, so the page and the API show neither a
    countdown nor a decision to make."""
    from .approvals import TIMED_OUT, overdue

    if not overdue(request, now):
        return False
    request.approval_state, request.state = ApprovalState.EXPIRED, PortState.EXPIRED
    prefetch_related_objects([request], "vms__ports", "ports")  # what the page or the API reads, kept in memory
    for port in [port for vm_row in request.vms.all() for port in vm_row.ports.all()] + list(request.ports.all()):
        if port.state == PortState.PENDING:
            port.state, port.last_error = PortState.EXPIRED, TIMED_OUT
    return True


def _closed_by_other(request: AccessRequest) -> str:
    """Who closed or cancelled ``request`` when it was not its requester (a policy admin): their name and user
    name, so the requester can tell why their access ended early; ``""`` otherwise."""
    if request.closed_at is None or request.closed_by_id in (None, request.requester_id):
        return ""
    return person_label(request.closed_by)


def _ended_note(request: AccessRequest, ports: list[AccessRequestPort]) -> str:
    """Why a request that is over ended early: ``closed`` (closed after it opened), ``cancelled`` (closed before
    anything opened), ``extended`` (its own extension opened and took its ports), ``replaced`` (Azure revoked every
    port for another newer request on it), ``revoked`` (Azure revoked it otherwise, e.g. JIT was removed from the
    VM), or ``""``."""
    if request.state not in (PortState.CLOSED, PortState.EXPIRED):
        return ""
    if request.closed_at is not None:
        return "closed" if any(p.opened_at for p in ports) else "cancelled"
    if request.state != PortState.CLOSED:
        return ""
    reasons = {p.azure_status_reason for p in ports if p.state == PortState.CLOSED}
    if reasons != {"NewerRequestInitiated"}:
        return "revoked"
    opened = AccessRequestPort.objects.filter(request__extends=request, opened_at__isnull=False)
    return "extended" if opened.exists() else "replaced"


FIRST_POLL_SECONDS = 1
FAST_POLL_SECONDS = 5
SOON_POLL_SECONDS = 30


def poll_interval(request: AccessRequest, now, ends: list | None = None) -> str:
    """How soon the request page asks again (htmx ``every``). Azure often answers within a second, so right
    after a change (submitted, claimed, close asked) the page asks every 100 ms for that second, then every
    250 ms, then every second, then every 2 s; an open request every 30 s (time left, and an end or a replacement
    shows without reloading), and at the first of its open ports' ``ends`` to come, so the page shows the access
    ended then; waiting for approvers every 5 s, for a scheduled start every 30 s."""
    moving = request.state in (PortState.QUEUED, PortState.OPENING) or (
        request.state == PortState.OPEN and request.closed_at is not None)
    if moving:
        changed = max(filter(None, (request.created_at, request.updated_at, request.closed_at)), default=now)
        age = (now - changed).total_seconds()
        if age < FIRST_POLL_SECONDS:
            return "100ms"
        return "250ms" if age < FAST_POLL_SECONDS else "1s" if age < SOON_POLL_SECONDS else "2s"
    if request.state == PortState.OPEN:
        return until_next_end("30s", ends or [], now)
    return "5s" if request.state == PortState.PENDING else "30s"


def duration_choices_for(vms: list[VirtualMachine]) -> list[tuple[int, str]]:
    """Duration steps up to the longest maximum among the VMs' ports (each port is checked on submit; one whose
    maximum the portal cannot read counts for none, and is refused then, saying why)."""
    longest = timedelta(0)
    for vm in vms:
        for port in vm.ports or []:
            longest = max(longest, validation.readable_maximum(validation.policy_port(vm.ports, port["number"]))
                          or timedelta(0))
    return validation.duration_choices(longest or timedelta(hours=1))


def extend_choices(request: AccessRequest, now=None) -> list[tuple[int, str]]:
    """Extend's time ranges: the steps up to the longest maximum of the request's VMs; with ``now``, only those
    that end each open port later than now (the form offers those; a step sent from a page shown earlier is refused
    by ``request_extend``, saying why)."""
    rows = list(request.vms.all())
    steps = duration_choices_for([row.vm for row in rows])
    if now is None:
        return steps
    ports = validation.open_ports(rows, now)
    return [(seconds, label) for seconds, label in steps
            if validation.ends_later(timedelta(seconds=seconds), ports=ports, now=now)]


def extend_refusal(request: AccessRequest, now) -> str:
    """Why Extend offers no time range now (``extend_choices`` gave none): why its longest one is refused, such as a
    port whose maximum was lowered below the time left on it."""
    rows = list(request.vms.all())
    steps = duration_choices_for([row.vm for row in rows])
    try:
        validation.validate_extension(timedelta(seconds=steps[-1][0]), ports=validation.open_ports(rows, now),
                                      now=now)
    except ValidationError as exc:
        return " ".join(exc.messages)
    return ""


def _opened_outside_portal(requests, now) -> Iterable[tuple[str, str, int]]:
    """(VM id in lower case, requestor, port) of each port a JIT policy's ``requests`` (as Azure listed them at the
    last sync) hold open now that the portal did not open: ``Initiated`` and not ended, without a portal request in
    its justification (the Azure portal, PowerShell, the REST API)."""
    for request in requests or []:
        if portal_request_in(request.get("justification")) is not None:
            continue  # the portal's own: its request names the person who asked
        for port in request.get("ports") or []:
            end = parse_datetime(str(port.get("endTimeUtc") or ""))
            if port.get("status") == "Initiated" and end is not None and end > now:
                yield (str(port.get("vm") or "").lower(), str(request.get("requestor") or ""),
                       int(port.get("number") or 0))


def open_access_by_vm(vms: list[VirtualMachine]) -> dict[int, list[tuple[str, list[int]]]]:
    """Who can reach each VM right now: ``{vm id: [(requester, [port numbers])]}``, from the portal's open requests
    and from the requests Azure listed as ``Initiated`` in the VMs' JIT policies at the last sync (access opened
    outside the portal: the Azure portal, PowerShell, the REST API) that have not ended (two queries)."""
    found: dict[int, dict[str, set[int]]] = {}
    rows = AccessRequestPort.objects.filter(request_vm__vm_id__in=[vm.pk for vm in vms],
                                            state=PortState.OPEN).values_list(
        "request_vm__vm_id", "request__requester_name", "number")
    for vm_id, requester, number in rows:
        found.setdefault(vm_id, {}).setdefault(requester, set()).add(number)
    by_policy: dict[str, dict[str, int]] = {}
    for vm in vms:
        if vm.policy_name:
            by_policy.setdefault(vm.policy_id.lower(), {})[vm.resource_id] = vm.pk
    now = timezone.now()
    for policy_id, requests in JitPolicy.objects.filter(resource_id__in=by_policy).values_list("resource_id",
                                                                                                 "requests"):
        members = by_policy[policy_id]
        for vm_id, requestor, number in _opened_outside_portal(requests, now):
            vm_pk = members.get(vm_id)
            if vm_pk is not None:
                found.setdefault(vm_pk, {}).setdefault(requestor or "someone outside the portal", set()).add(number)
    return {vm_id: sorted((name, sorted(numbers)) for name, numbers in people.items())
            for vm_id, people in found.items()}


def _azure_names(user) -> set[str]:
    """The names Azure may record ``user`` under as a JIT request's ``requestor`` (their user principal name),
    in lower case: their user name (without the ``#`` and object id the sign-in adds to one already taken) and
    their e-mail address."""
    username = user.username or ""
    taken = f"#{(user.entra_object_id or '')[:8]}"
    if user.entra_object_id and username.endswith(taken):
        username = username[:-len(taken)]
    return {name.lower() for name in (username, user.email or "") if "@" in name}


# How long before now a port Azure lists as open may have been opened: Azure's longest window, and an hour for clocks
# apart (the sync's ``last_access_at`` of a VM is its last request's start).
OPENED_WITHIN = MAX_DURATION + timedelta(hours=1)


def my_access_opened_in_azure(user) -> list[str]:
    """The names of the VMs ``user`` may read on which, at the last sync, Azure listed access opened for them outside
    the portal (the Azure portal, PowerShell, the REST API: a request under their user name, ``Initiated``, not
    ended): what the inventory's Open now shows of them beside the portal's own requests. Asked on every dashboard
    poll, it reads no policy but those of the VMs they may read accessed within ``OPENED_WITHIN`` (a port open now
    was opened since), and of those only the ones whose requests name the user: one query when no such VM was
    accessed, two otherwise; none per VM."""
    names = _azure_names(user)
    if not names:
        return []
    now = timezone.now()
    recent = list(vm_list(user).select_related(None).filter(
        state=VmState.CONFIGURED, last_access_at__gte=now - OPENED_WITHIN).exclude(policy_name="").order_by(
        "name", "id").only("id", "resource_id", "name", "subscription_key", "policy_resource_group",
                           "policy_location", "policy_name"))
    by_policy: dict[str, set[str]] = {}
    for vm in recent:
        by_policy.setdefault(vm.policy_id.lower(), set()).add(vm.resource_id)
    if not by_policy:
        return []
    named = Q()
    # A JSON column holds the name as written or, where the database keeps JSON as text, \u-escaped.
    for written in {form for name in names for form in (name, json.dumps(name)[1:-1])}:
        named |= Q(requests__icontains=written)
    found = {vm_id for policy_id, requests in JitPolicy.objects.filter(named, resource_id__in=by_policy).order_by()
             .values_list("resource_id", "requests")
             for vm_id, requestor, _number in _opened_outside_portal(requests, now)
             if requestor.lower() in names and vm_id in by_policy[policy_id]}
    return [vm.name for vm in recent if vm.resource_id in found]
