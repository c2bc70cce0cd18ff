"""Approvals: which requests need them (access rules), who may give them, and recording each decision.

Rules are evaluated per VM in the order mature access tools use: deny, then auto-approve, then manual (see
``AccessRule``). A request spanning VMs takes the strictest outcome. Approvers hold the portal's approve
action at the scope of every VM of the request and are never the requester. The window of an approved
request starts when the last approval lands (or at its scheduled start, whichever is later): the open task
computes each port's end from the moment it asks Azure.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import authz
from accounts.roles import REQUEST_APPROVE
from accounts.scopes import scope_contains
from audit.services import audit_record
from jitportal.lib.basis import changed_fields, fields_digest, stale

from . import signals
from .models import AccessRequest, AccessRequestPort, AccessRequestVm, AccessRule, Approval, ApprovalState, PortState
from .services import audit_place
from .validation import ANY_WORDS, source_allowed

MAX_COMMENT = 1000
TIMED_OUT = "Not approved before the approval time ran out."


# --- evaluation ---------------------------------------------------------------------------------------------------
@dataclass
class Verdict:
    """The outcome of the rules for a whole request."""

    effect: str  # AccessRule.Effect value
    rule: AccessRule | None = None
    approvals: int = 0
    second_level: int = 0
    pending_minutes: int | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def needs_approval(self) -> bool:
        return self.effect == AccessRule.Effect.MANUAL


def _network(text: str):
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def _source_inside(source: str, allowed: list[str]) -> bool:
    """``source`` lies inside one of ``allowed`` (empty: anywhere)."""
    return not allowed or any(source_allowed(a, source) for a in allowed)


def _source_overlaps(source: str, listed: list[str]) -> bool:
    """``source`` overlaps one of ``listed`` (empty: every source). A request for ``*`` overlaps every range;
    a listed ``*`` stands for requests for ``*`` only."""
    if not listed or source == "*":
        return True
    inner = _network(source)
    for text in listed:
        if text.strip().lower() in ANY_WORDS:
            continue
        outer = _network(text)
        if inner is not None and outer is not None and outer.version == inner.version and outer.overlaps(inner):
            return True
    return False


def _ports_match(rule: AccessRule, ports: tuple[int, ...], *, all_of: bool) -> bool:
    wanted = {int(p) for p in rule.ports or []}
    if not wanted:
        return True
    return set(ports) <= wanted if all_of else bool(set(ports) & wanted)


def _in_hours(rule: AccessRule, start: datetime, duration: timedelta) -> bool:
    """The whole window lies within the rule's days and hours (in the portal's time zone)."""
    zone = ZoneInfo(settings.TIME_ZONE)
    first, last = start.astimezone(zone), (start + duration - timedelta(seconds=1)).astimezone(zone)
    if rule.weekdays_only and (first.weekday() >= 5 or last.weekday() >= 5):
        return False
    if rule.hours_start is None or rule.hours_end is None:
        return True
    if duration >= timedelta(days=1):
        return False

    def inside(moment: datetime) -> bool:
        clock = moment.time().replace(tzinfo=None)
        if rule.hours_start <= rule.hours_end:
            return rule.hours_start <= clock < rule.hours_end
        return clock >= rule.hours_start or clock < rule.hours_end  # a range across midnight

    def stretch(moment: datetime):
        """The day the stretch of hours holding ``moment`` began (the evening before, for the early hours of a
        range across midnight)."""
        early = rule.hours_start > rule.hours_end and moment.time().replace(tzinfo=None) < rule.hours_end
        return moment.date() - timedelta(days=1) if early else moment.date()

    return inside(first) and inside(last) and stretch(first) == stretch(last)


def _applies(rule: AccessRule, ports: tuple[int, ...], source: str, duration: timedelta, start: datetime) -> bool:
    """Deny and manual rules apply to any request they overlap (a port or a source in common), so asking for
    more never needs fewer approvals; auto-approve rules only to requests that fit them entirely."""
    if rule.effect != AccessRule.Effect.AUTO:
        return _ports_match(rule, ports, all_of=False) and _source_overlaps(source, rule.source_prefixes)
    if not _ports_match(rule, ports, all_of=True) or not _source_inside(source, rule.source_prefixes):
        return False
    if rule.max_duration_minutes and duration > timedelta(minutes=rule.max_duration_minutes):
        return False
    return _in_hours(rule, start, duration)


def rules_for(resource_id: str, rules: list[AccessRule] | None = None) -> list[AccessRule]:
    """The enabled rules whose scope contains ``resource_id``."""
    candidates = rules if rules is not None else list(AccessRule.objects.filter(enabled=True))
    return [rule for rule in candidates if rule.enabled and scope_contains(rule.scope, resource_id)]


def unchecked_patterns(rules: list[AccessRule]) -> list[AccessRule]:
    """The rules whose stored justification pattern is never run (``AccessRule.pattern_problem``): saved before the
    form refused such patterns, it could hold a web worker for seconds or years on a requester's text."""
    return [rule for rule in rules if rule.pattern_problem]


def check_justification(text: str, rules: list[AccessRule]) -> list[ValidationError]:
    """An error (code ``justification``) for each rule whose justification pattern ``text`` does not contain; a
    pattern ``unchecked_patterns`` names is not run (``evaluate`` asks for an approval instead)."""
    problems = []
    for rule in rules:
        if rule.pattern_problem:
            continue
        if rule.justification_pattern and not re.search(rule.justification_pattern, text or ""):
            problems.append(ValidationError(rule.justification_hint or
                                            f"The justification must contain a match of {rule.justification_pattern} "
                                            f"(rule “{rule.name}”).", code="justification"))
    return problems


def justification_rules(vms: list) -> list[AccessRule]:
    """The enabled rules over ``vms`` whose justification pattern is checked (the same rules ``evaluate`` runs),
    once each."""
    patterned = [rule for rule in AccessRule.objects.filter(enabled=True).exclude(justification_pattern="")
                 if not rule.pattern_problem]
    found: list[AccessRule] = []
    for vm in vms:
        found.extend(rule for rule in rules_for(vm.resource_id, patterned) if rule not in found)
    return found


def justification_hints(vms: list, rules: list[AccessRule] | None = None) -> list[str]:
    """What the rules over ``vms`` ask the justification to contain (each rule's hint, else its pattern), once each,
    so the request form says it before a refusal does (the same rules ``evaluate`` checks)."""
    hints: list[str] = []
    for rule in justification_rules(vms) if rules is None else rules:
        hint = rule.justification_hint or (f"The justification must contain a match of "
                                           f"{rule.justification_pattern} (rule “{rule.name}”).")
        if hint not in hints:
            hints.append(hint)
    return hints


def evaluate(selections: list, *, source: str, duration: timedelta, start: datetime, justification: str
             ) -> Verdict:
    """The verdict of the rules for ``selections`` (``Selection`` rows); raises ``ValidationError`` for a deny
    or a justification that does not match a rule's pattern."""
    everything = list(AccessRule.objects.filter(enabled=True))
    problems: list[ValidationError] = []
    verdicts: list[Verdict] = []
    for selection in selections:
        rules = rules_for(selection.vm.resource_id, everything)
        problems.extend(check_justification(justification, rules))
        matching = [r for r in rules if _applies(r, tuple(selection.ports), source, duration, start)]
        denied = [r for r in matching if r.effect == AccessRule.Effect.DENY]
        if denied:
            problems.extend(ValidationError(r.message or f"Refused by rule “{r.name}” on {selection.vm.name}.",
                                            code="refused_by_rule") for r in denied)
            continue
        auto = [r for r in matching if r.effect == AccessRule.Effect.AUTO]
        # An auto rule relaxes manual rules at its own scope or below, never a broader one (an admin of one
        # resource group cannot lift the approvals a subscription's admin requires).
        manual = [r for r in matching if r.effect == AccessRule.Effect.MANUAL
                  and not any(scope_contains(a.scope, r.scope) for a in auto)]
        unchecked = unchecked_patterns(rules)
        unread = [f"{selection.vm.name}: the justification pattern of rule “{r.name}” cannot be checked safely; an "
                  f"approver reads the justification" for r in unchecked]
        if unchecked and not manual:
            # Fail closed: a justification the rule's pattern could not check is read by an approver instead.
            verdicts.append(Verdict(AccessRule.Effect.MANUAL, unchecked[0], 1, 0, unchecked[0].pending_minutes,
                                    unread))
        elif auto and not manual:
            verdicts.append(Verdict(AccessRule.Effect.AUTO, auto[0]))
        elif manual:
            strict = max(manual, key=lambda r: (r.approvals_required + r.second_level_approvals, -r.pk))
            verdicts.append(Verdict(AccessRule.Effect.MANUAL, strict, max(1, strict.approvals_required),
                                    strict.second_level_approvals, strict.pending_minutes,
                                    [f"{selection.vm.name}: rule “{strict.name}”", *unread]))
        elif any(r.effect != AccessRule.Effect.DENY for r in rules):
            verdicts.append(Verdict(AccessRule.Effect.MANUAL, None, 1, 0, None,
                                    [f"{selection.vm.name}: no rule auto-approves this request"]))
        else:
            verdicts.append(Verdict(AccessRule.Effect.AUTO))
    if problems:
        raise ValidationError(list(dict.fromkeys(problems)))
    manual = [v for v in verdicts if v.needs_approval]
    if not manual:
        return next((v for v in verdicts if v.rule is not None), Verdict(AccessRule.Effect.AUTO))
    strictest = max(manual, key=lambda v: (v.approvals + v.second_level))
    minutes = [v.pending_minutes for v in manual if v.pending_minutes]
    return Verdict(AccessRule.Effect.MANUAL, strictest.rule, max(v.approvals for v in manual),
                   max(v.second_level for v in manual), min(minutes) if minutes else None,
                   [r for v in manual for r in v.reasons])


def pending_until(verdict: Verdict, *, now: datetime, start: datetime | None) -> datetime:
    """When a pending request expires: after the rule's time (else the default), or at a scheduled start
    (whichever comes first when the rule sets a time)."""
    if start is not None and start > now:
        return min(start, now + timedelta(minutes=verdict.pending_minutes)) if verdict.pending_minutes else start
    return now + timedelta(minutes=verdict.pending_minutes or settings.ACCESS_APPROVAL_PENDING_MINUTES)


# --- who decides ----------------------------------------------------------------------------------------------------
def _vm_rows(request: AccessRequest) -> list[AccessRequestVm]:
    return list(request.vms.all())


def may_approve_vms(user, rows: list[AccessRequestVm]) -> bool:
    return bool(rows) and all(authz.has_permission(user, REQUEST_APPROVE, row.vm_arm_id) for row in rows)


def overdue(request: AccessRequest, now: datetime) -> bool:
    """Pending past its approval deadline: no longer decidable, though ``expire_pending`` has not marked it yet."""
    return request.is_pending and request.approval_expires_at is not None and request.approval_expires_at <= now


def may_decide(user, request: AccessRequest) -> bool:
    """``user`` may approve or deny ``request`` now: pending within its deadline, not theirs, approver at every VM,
    not yet decided."""
    if not request.is_pending or getattr(user, "pk", None) in (None, request.requester_id):
        return False
    if overdue(request, timezone.now()):
        return False
    if request.approvals.filter(approver_id=user.pk).exists():
        return False
    return may_approve_vms(user, _vm_rows(request))


def approvers_for(request: AccessRequest) -> list:
    """Active users, other than the requester, holding the approve action at every VM of ``request``.

    Only users whose last sign-in carries a claim that some approving mapping names are checked in full."""
    from accounts.models import RoleMapping, SignInClaims
    from accounts.roles import ROLES

    rows = _vm_rows(request)
    mappings = list(RoleMapping.objects.all())
    approving = [m for m in mappings if (role := ROLES.get(m.role)) and role.allows(REQUEST_APPROVE)
                 and any(scope_contains(m.scope, row.vm_arm_id) for row in rows)]
    if not approving:
        return []
    app_roles = {m.source_value for m in approving if m.source_kind == RoleMapping.SourceKind.APP_ROLE}
    groups = {m.source_value.lower() for m in approving if m.source_kind == RoleMapping.SourceKind.GROUP}
    candidates = {claims.user_id: claims
                  for claims in SignInClaims.objects.only("user_id", "tenant_id", "app_roles", "groups")
                  if app_roles & {str(v) for v in claims.app_roles or []}
                  or groups & {str(v).lower() for v in claims.groups or []}}
    users = list(get_user_model().objects.filter(is_active=True, pk__in=candidates).exclude(
        pk=request.requester_id).order_by("username"))
    authz.prime_grants(users, mappings=mappings, claims=candidates)  # no query, not two per approver
    return [user for user in users if may_approve_vms(user, rows)]


def current_level(request: AccessRequest) -> int:
    """1 until the first level has its approvals, then 2 (when the rule asks for a second level)."""
    first = request.approvals.filter(level=1, decision=Approval.Decision.APPROVE).count()
    return 2 if first >= request.approvals_required and request.second_level_approvals else 1


def progress(request: AccessRequest, decisions: Iterable[tuple[int, str]] | None = None) -> dict:
    """Approvals given and needed per level, for the pages and the API; from ``decisions`` (level, decision) when
    the caller read them already, else from the request's."""
    given = {1: 0, 2: 0}
    if decisions is None:
        decisions = ((d.level, d.decision) for d in request.approvals.all())
    for level, decision in decisions:
        if decision == Approval.Decision.APPROVE:
            given[level] = given.get(level, 0) + 1
    return {"first": given[1], "first_needed": request.approvals_required,
            "second": given[2], "second_needed": request.second_level_approvals}


def _audit(actor, action: str, request: AccessRequest, rows: list[AccessRequestVm], after: dict,
           client_ip: str | None = None) -> None:
    for row in rows:
        audit_record(actor=actor, action=action, target_type="vm", target_id=row.vm_id, target_label=row.vm_name,
                     after={"request": request.pk, **after}, client_ip=client_ip,
                     correlation_id=str(request.correlation_id), **audit_place(row))


def request_decide(*, actor, request: AccessRequest, approve: bool, comment: str = "",
                   client_ip: str | None = None) -> AccessRequest:
    """Record ``actor``'s approval or denial; the last approval releases the request to open (or to wait for
    its scheduled start). Raises ``PermissionDenied`` (own request, not an approver here) or
    ``ValidationError`` (not pending, expired, already decided, a denial without a comment)."""
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT:
        raise ValidationError(f"Keep the comment under {MAX_COMMENT} characters.")
    now = timezone.now()
    with transaction.atomic():
        request = AccessRequest.objects.select_for_update().get(pk=request.pk)
        rows = _vm_rows(request)
        if getattr(actor, "pk", None) == request.requester_id:
            raise PermissionDenied("You cannot approve or deny your own request.")
        if not may_approve_vms(actor, rows):
            raise PermissionDenied("You are not an approver for every VM of this request.")
        if not request.is_pending:
            raise ValidationError("This request is not waiting for approval.", code="not_pending")
        if overdue(request, now):
            raise ValidationError("This request was not approved in time and has expired.", code="expired")
        if request.approvals.filter(approver_id=actor.pk).exists():
            raise ValidationError("You have already decided on this request.", code="already_decided")
        if not approve and not comment:
            raise ValidationError("Say why you deny the request.", code="comment_required")
        level = current_level(request)
        try:
            with transaction.atomic():
                Approval.objects.create(request=request, approver=actor, approver_name=actor.get_username(),
                                        level=level, comment=comment,
                                        decision=Approval.Decision.APPROVE if approve else Approval.Decision.DENY)
        except IntegrityError:  # a second submit racing the first (no row locks on SQLite)
            raise ValidationError("You have already decided on this request.", code="already_decided") from None
        if not approve:
            _finish_pending(request, ApprovalState.DENIED, PortState.DENIED, f"Denied by {actor.get_username()}: "
                            f"{comment}", now)
            _audit(actor, "access.denied", request, rows, {"comment": comment, "level": level}, client_ip)
            signals.emit("denied", request, actor=actor, comment=comment, level=level)
            return request
        counts = progress(request)
        done_first = counts["first"] >= request.approvals_required
        done = done_first and counts["second"] >= request.second_level_approvals
        _audit(actor, "access.approved", request, rows, {"comment": comment, "level": level, "complete": done},
               client_ip)
        if not done:
            signals.emit("approved", request, actor=actor, comment=comment, level=level, complete=False)
            return request
        AccessRequest.objects.filter(pk=request.pk).update(approval_state=ApprovalState.APPROVED, approved_at=now)
        request.approval_state, request.approved_at = ApprovalState.APPROVED, now
        release(request, now=now)
        signals.emit("approved", request, actor=actor, comment=comment, level=level, complete=True)
    return request


def _finish_pending(request: AccessRequest, approval_state: str, port_state: str, message: str, now) -> None:
    from .services import refresh_state

    AccessRequest.objects.filter(pk=request.pk).update(approval_state=approval_state)
    request.approval_state = approval_state
    AccessRequestPort.objects.filter(request=request, state=PortState.PENDING).update(
        state=port_state, finished_at=now, last_error=message[:4000])
    request.state = refresh_state(request.pk)


def _still_allowed(request: AccessRequest, rows: list[AccessRequestVm]) -> str:
    """Why ``request`` may no longer open (the requester left or lost the role, a deny rule came), or ``""``."""
    from .services import may_request

    requester = request.requester
    if not requester.is_active:
        return "The requester's account is disabled."
    authz.forget_grants(requester)
    for row in rows:
        if not may_request(requester, row.vm):
            return f"The requester may no longer request access to {row.vm_name}."
        ports = tuple(p.number for p in row.ports.all())
        for rule in rules_for(row.vm.resource_id):
            if rule.effect == AccessRule.Effect.DENY and _applies(rule, ports, request.source_prefix,
                                                                   timedelta(0), request.created_at):
                return rule.message or f"Refused by rule “{rule.name}” on {row.vm_name}."
    return ""


def release(request: AccessRequest, *, now: datetime) -> None:
    """An approved (or auto-approved) request: wait for its scheduled start, or queue it to open now. At its
    start the requester's role and the deny rules are checked again; a request no longer allowed fails visibly."""
    from .services import enqueue_after_commit, refresh_state

    waiting = AccessRequestPort.objects.filter(request=request, state__in=(PortState.PENDING, PortState.SCHEDULED))
    if request.scheduled_start and request.scheduled_start > now:
        waiting.update(state=PortState.SCHEDULED)
        refresh_state(request.pk)
        return
    rows = list(request.vms.select_related("vm").prefetch_related("ports"))
    reason = _still_allowed(request, rows)
    if reason:
        waiting.update(state=PortState.FAILED, finished_at=now, last_error=f"Not opened: {reason}"[:4000])
        refresh_state(request.pk)
        _audit(None, "access.failed", request, rows, {"error": reason})
        signals.emit("failed", request, error=reason)
        return
    keys = sorted(set(waiting.values_list("policy_key", flat=True)))
    _plan_end(request, waiting, now=now)
    waiting.update(state=PortState.QUEUED, updated_at=now)
    refresh_state(request.pk)
    for key in keys:
        enqueue_after_commit(request.pk, key)


def _plan_end(request: AccessRequest, waiting, *, now: datetime) -> None:
    """Plan the released ports' ends (and the request's) again from ``now``: their window starts now (when the last
    approval landed or the scheduled start came), not when it was asked for. Still a plan: the open task asks Azure
    for "now + window" when it calls ``initiate`` (within each port's maximum) and stores Azure's end; until then no
    page, payload or API answer gives it as the end (``ends.port_end``), and the beat expires open ports only. It
    keeps the Requests list's sort by end and ``my_open_ports``' order true, and a port recorded open without Azure's
    end (``request_mark_open`` falls back on it) from ending, by an old plan, before Azure ends it."""
    seconds = sorted(set(waiting.values_list("duration_seconds", flat=True)))
    for length in seconds:
        waiting.filter(duration_seconds=length).update(end_at=now + timedelta(seconds=length))
    if seconds:
        AccessRequest.objects.filter(pk=request.pk).update(end_at=now + timedelta(seconds=seconds[-1]))
        request.end_at = now + timedelta(seconds=seconds[-1])


# --- beat -----------------------------------------------------------------------------------------------------------
def expire_pending(*, now: datetime | None = None) -> int:
    """Pending requests nobody decided in time: ports end ``expired`` with the reason; requester told."""
    now = now or timezone.now()
    expired = 0
    for request in AccessRequest.objects.filter(approval_state=ApprovalState.PENDING,
                                                approval_expires_at__lte=now)[:500]:
        with transaction.atomic():
            locked = AccessRequest.objects.select_for_update().filter(
                pk=request.pk, approval_state=ApprovalState.PENDING).first()
            if locked is None:
                continue
            _finish_pending(locked, ApprovalState.EXPIRED, PortState.EXPIRED, TIMED_OUT, now)
            _audit(None, "access.approval_expired", locked, _vm_rows(locked),
                   {"expired_at": (locked.approval_expires_at or now).isoformat()})
            signals.emit("approval_expired", locked)
            expired += 1
    return expired


def release_scheduled(*, now: datetime | None = None) -> int:
    """Scheduled windows whose start came: queue them to open (the beat runs this every minute)."""
    now = now or timezone.now()
    due = AccessRequest.objects.filter(ports__state=PortState.SCHEDULED, scheduled_start__lte=now,
                                       closed_at__isnull=True).distinct()
    released = 0
    for request in due[:500]:
        with transaction.atomic():
            locked = AccessRequest.objects.select_for_update().get(pk=request.pk)
            release(locked, now=now)
            released += 1
    return released




# --- rules (settings pages) -----------------------------------------------------------------------------------------
def _rule_state(rule: AccessRule) -> dict:
    return {"name": rule.name, "scope": rule.scope, "effect": rule.effect, "ports": rule.ports,
            "sources": rule.source_prefixes, "max_duration_minutes": rule.max_duration_minutes,
            "hours": [str(rule.hours_start or ""), str(rule.hours_end or "")], "weekdays_only": rule.weekdays_only,
            "approvals": rule.approvals_required, "second_level": rule.second_level_approvals,
            "pending_minutes": rule.pending_minutes, "justification_pattern": rule.justification_pattern,
            "enabled": rule.enabled}


def _rule_place(scope: str) -> dict:
    from accounts.scopes import parse_scope

    parsed = parse_scope(scope)
    return {"subscription_id": parsed.subscription_id, "resource_group": (parsed.resource_group or "").lower(),
            "resource_id": scope.lower() if parsed.vm_name else ""}


def _require_rule_admin(actor, scope: str) -> None:
    from accounts.roles import JIT_POLICY_WRITE

    if not authz.has_permission(actor, JIT_POLICY_WRITE, scope):
        raise PermissionDenied("You do not administer JIT at this scope.")


# The fields an access rule's form shows, as the rule holds them: what its basis digests (``rule_basis``).
RULE_FORM_FIELDS = {"name": "name", "scope": "scope", "effect": "effect", "ports_text": "ports",
                    "sources_text": "source_prefixes", "approvals_required": "approvals_required",
                    "second_level_approvals": "second_level_approvals", "pending_minutes": "pending_minutes",
                    "max_duration_minutes": "max_duration_minutes", "hours_start": "hours_start",
                    "hours_end": "hours_end", "weekdays_only": "weekdays_only",
                    "justification_pattern": "justification_pattern", "justification_hint": "justification_hint",
                    "message": "message", "enabled": "enabled"}


def rule_values(rule: AccessRule) -> dict[str, object]:
    """``rule`` as its form shows it: each form field's value, by the field's name."""
    return {name: getattr(rule, attribute) for name, attribute in RULE_FORM_FIELDS.items()}


def rule_basis(rule: AccessRule) -> str:
    """The digest the edit form of ``rule`` carries (``jitportal.lib.basis``): which fields changed since, it tells."""
    return fields_digest(rule_values(rule))


class RuleChanged(ValidationError):
    """An access rule's edit form shown before the rule changed: ``changed`` names the fields that did (form field
    names; ``None`` when the form does not say what it was shown with), ``current`` is the rule as it is now."""

    def __init__(self, current: AccessRule, changed: list[str] | None) -> None:
        super().__init__(f"The access rule “{current.name}” changed since its form was shown.", code="rule_changed")
        self.current, self.changed = current, changed


def access_rule_save(*, actor, rule: AccessRule, client_ip: str | None = None, token: str = "",
                     shown: str | None = None) -> tuple[AccessRule, bool]:
    """Create or update ``rule`` (validated by its form) with its audit row: ``(rule, saved)``.

    A new rule made with the form's one-time ``token`` keeps it: the same form sent again (a double click on Save,
    or sent again from the browser's history) saves nothing and returns the rule it made, ``saved`` false. An edit
    with ``shown``, the ``rule_basis`` its form was shown with, raises ``RuleChanged`` when the stored rule changed
    since (read under its row lock), unless the edit sets exactly what it holds now (the same form sent twice)."""
    _require_rule_admin(actor, rule.scope)
    if rule.pk is None and token:
        existing = _made_with(token, actor)
        if existing is not None:
            return existing, False
        rule.form_token = token
    with transaction.atomic():
        before = None
        if rule.pk:
            stored = AccessRule.objects.select_for_update().get(pk=rule.pk)
            _require_rule_admin(actor, stored.scope)
            if shown is not None and stale(shown, rule_basis(stored),
                                           sets_current=rule_values(rule) == rule_values(stored)):
                raise RuleChanged(stored, changed_fields(shown, rule_values(stored)))
            before = _rule_state(stored)
        else:
            rule.created_by = actor
        try:
            with transaction.atomic():
                rule.save()
        except IntegrityError:  # the same form sent twice at once: the other submit stored first
            existing = _made_with(token, actor) if token and not before else None
            if existing is None:
                raise
            return existing, False
        audit_record(actor=actor, action="access_rule.updated" if before else "access_rule.created",
                     target_type="access_rule", target_id=rule.pk, target_label=rule.name, before=before,
                     after=_rule_state(rule), client_ip=client_ip, **_rule_place(rule.scope))
    return rule, True


def _made_with(token: str, actor) -> AccessRule | None:
    """The rule the New access rule form with ``token`` made, when it was this ``actor``'s."""
    existing = AccessRule.objects.filter(form_token=token).first()
    if existing is not None and existing.created_by_id != actor.pk:
        raise ValidationError("This form was sent by someone else: open New access rule again.", code="token_used")
    return existing


def access_rule_delete(*, actor, rule: AccessRule, client_ip: str | None = None) -> None:
    _require_rule_admin(actor, rule.scope)
    with transaction.atomic():
        audit_record(actor=actor, action="access_rule.deleted", target_type="access_rule", target_id=rule.pk,
                     target_label=rule.name, before=_rule_state(rule), client_ip=client_ip,
                     **_rule_place(rule.scope))
        rule.delete()


__all__ = ["RuleChanged", "Verdict", "access_rule_delete", "access_rule_save", "approvers_for", "current_level",
           "evaluate", "expire_pending", "may_decide", "progress", "release", "release_scheduled", "request_decide",
           "rule_basis", "rule_values"]
