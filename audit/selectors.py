"""Reads for the audit pages: every queryset is already restricted to what the user may see."""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts import authz
from accounts.roles import AUDIT_READ
from accounts.scopes import Scope, ScopeKind, valid_scopes

from .callers import caller_label
from .filtersets import OPERATION_CHOICES, any_case_q
from .ingestion import NSG_RULE_OPERATIONS, is_vm_id, vm_filter_q
from .jit_events import JitSummary, jit_summary, utc_moment, vm_name
from .models import ActivityLogEvent, AuditEvent, IngestionState
from .redaction import AuditScope, activity_shown, trail_shown

OPERATION_LABELS = dict(OPERATION_CHOICES)


def _activity_scope_q(parsed: Scope) -> Q:
    if parsed.kind is ScopeKind.SUBSCRIPTION:
        return Q(subscription_id=parsed.subscription_id)
    if parsed.kind is ScopeKind.RESOURCE_GROUP:
        return Q(subscription_id=parsed.subscription_id, resource_group=parsed.resource_group.lower())
    return vm_filter_q(parsed.id)


def activity_for_user(user, action: str = AUDIT_READ) -> QuerySet[ActivityLogEvent]:
    """Activity Log copies in the user's scopes for ``action``.

    A VM-scoped grant sees the events that concern that VM (including JIT policy events naming it), which
    ``authz.restrict``'s resource-id prefix would miss; subscription and resource-group grants filter on the
    lower-cased columns so the indexes apply.
    """
    scopes = authz.permitted_scopes(user, action)
    queryset = ActivityLogEvent.objects.all()
    if authz.EVERYWHERE in scopes:
        return queryset
    condition = Q()
    for parsed in valid_scopes(scopes):
        condition |= _activity_scope_q(parsed)
    return queryset.filter(condition) if condition else queryset.none()


def trail_for_user(user, action: str = AUDIT_READ) -> QuerySet[AuditEvent]:
    """The portal's own trail in the user's scopes (events without a place are for global auditors only)."""
    return authz.restrict(AuditEvent.objects.all(), user, action, subscription_field="subscription_id",
                          resource_group_field="resource_group", resource_id_field="resource_id")


def activity_as_seen(user, events: Iterable[ActivityLogEvent], action: str = AUDIT_READ) -> list[ActivityLogEvent]:
    """``events`` as ``user`` may see them: the VMs outside their ``action`` scopes (worked out once) withheld from
    each (``redaction.activity_shown``), no query."""
    scope = AuditScope.of(user, action)
    return [activity_shown(event, scope) for event in events]


def trail_as_seen(user, events: Iterable[AuditEvent], action: str = AUDIT_READ) -> list[AuditEvent]:
    """The portal trail's ``events`` as ``user`` may see them (``redaction.trail_shown``), no query."""
    scope = AuditScope.of(user, action)
    return [trail_shown(event, scope) for event in events]


def with_request_links(user, events: list[AuditEvent]) -> list[AuditEvent]:
    """The portal trail's ``events``, each with ``request_pk``: the number of the portal request it is about (by its
    correlation id) when ``user`` may open that request's page, else ``None``; two queries at most for all."""
    from policies.access.selectors import readable_by_correlation

    found = readable_by_correlation(user, {event.correlation_id for event in events if event.correlation_id})
    for event in events:
        event.request_pk = found.get(event.correlation_id)
    return events


def subscription_names(ids: Iterable[str] | None = None) -> dict[str, str]:
    """Display names of the registered subscriptions among ``ids`` (``None``: all), by lower-case id, in one query
    (none when ``ids`` is empty). Audit rows keep the id only, so a subscription removed since, or without a name,
    is left out and shown by its id."""
    from policies.models import Subscription

    queryset = Subscription.objects.exclude(display_name="")
    if ids is not None:
        keys = {key.lower() for key in ids if key}
        if not keys:
            return {}
        queryset = queryset.filter(subscription_id__in=keys)
    return {key.lower(): name for key, name in queryset.values_list("subscription_id", "display_name")}


def ingestion_states_for_user(user) -> list[IngestionState]:
    """Ingestion states of the subscriptions the user may audit as a whole, each with its ``subscription_name``
    ("" when unknown)."""
    states = [state for state in IngestionState.objects.all()
              if authz.has_permission(user, AUDIT_READ, f"/subscriptions/{state.subscription_id}")]
    names = subscription_names(state.subscription_id for state in states)
    for state in states:
        state.subscription_name = names.get(state.subscription_id.lower(), "")
    return states


@dataclass(frozen=True)
class JitVm:
    """A VM a JIT event names: its name, what Azure wrote (its resource id), whether the viewer may open its
    timeline."""

    name: str
    resource_id: str
    timeline: bool


@dataclass(frozen=True)
class PortalRequestNamed:
    """The portal request a justification's tail names; ``visible`` when the viewer may open its page."""

    number: int
    correlation_id: str
    closes_early: bool
    visible: bool


@dataclass(frozen=True)
class InitiateDetails:
    summary: JitSummary
    vms: list[JitVm]
    portal_request: PortalRequestNamed | None


def initiate_details(user, event: ActivityLogEvent) -> InitiateDetails | None:
    """What a JIT initiate says, for its event page (``None`` for other events, or one that names no VM): each VM
    with whether ``user`` may audit it, and the portal request its justification ends by naming (``_PORTAL_TAIL``)
    with whether ``user`` may open that request's page (as its requester, a viewer in scope or one of its approvers;
    two queries at most, only then)."""
    from policies.access.models import portal_request_in
    from policies.access.selectors import request_readable

    summary = jit_summary(event)
    if summary is None or summary.kind != "initiate":
        return None
    vms = [JitVm(vm_name(vm), vm, is_vm_id(vm) and authz.has_permission(user, AUDIT_READ, vm)) for vm in summary.vms]
    named = portal_request_in(summary.justification)
    if named is None:
        return InitiateDetails(summary, vms, None)
    number, correlation, closes = named
    visible = number < 2**63 and request_readable(user, number, correlation_id=correlation)
    return InitiateDetails(summary, vms, PortalRequestNamed(number, correlation, closes, visible))


@dataclass
class TimelineEntry:
    """One Azure call (or one portal action without one): who, what, from where, why, the rules it wrote."""

    at: datetime
    correlation_id: str
    portal_events: list[AuditEvent] = field(default_factory=list)
    azure_events: list[ActivityLogEvent] = field(default_factory=list)
    rule_changes: list[ActivityLogEvent] = field(default_factory=list)

    @property
    def operation(self) -> str:
        main = self._main()
        if main is not None:
            return main.operation_name
        return self.portal_events[0].action if self.portal_events else ""

    @property
    def operation_label(self) -> str:
        """The operation as the search's Operation column shows it ("Security: initiate/action"; its full name in the
        title): Azure's 70-character names left the timeline's other columns a few characters' width."""
        return OPERATION_LABELS.get(self.operation, self.operation)

    @property
    def status(self) -> str:
        return self.azure_events[0].status if self.azure_events else ""

    @property
    def caller(self) -> str:
        main = self._main()
        return main.caller if main is not None else ""

    @property
    def caller_name(self) -> str:
        """The caller as the search shows it (the portal's own identity by name)."""
        return caller_label(self.caller)

    @property
    def justification(self) -> str:
        for event in self.azure_events:
            text = (event.properties or {}).get("justification")
            if text:
                return str(text)
        return ""

    @property
    def source_prefixes(self) -> str:
        for event in self.azure_events:
            text = (event.properties or {}).get("sourceAddressPrefixes")
            if text:
                return str(text)
        return ", ".join(sorted({str((e.properties or {}).get("sourceAddressPrefix", ""))
                                 for e in self.rule_changes if (e.properties or {}).get("access") == "Allow"} - {""}))

    @property
    def end_time(self) -> datetime | str:
        """The window's end Azure recorded: a time when it reads as one (the page shows it as the Time column),
        else its text."""
        for event in self.azure_events:
            text = (event.properties or {}).get("endTimeUtc")
            if text:
                return utc_moment(str(text)) or str(text)
        return ""

    def _main(self) -> ActivityLogEvent | None:
        return self.azure_events[0] if self.azure_events else (self.rule_changes[0] if self.rule_changes else None)


def vm_timeline(user, vm_id: str, *, days: int = 30, limit: int = 2000) -> list[TimelineEntry]:
    """The VM's story, newest first: portal events joined by correlation id with the Azure calls they caused.

    Requests (issue 6) plug in by recording their correlation id on their audit events.
    """
    since = timezone.now() - timedelta(days=days)
    key = vm_id.lower().rstrip("/")
    azure = activity_as_seen(user, activity_for_user(user).filter(vm_filter_q(key), occurred_at__gte=since)
                             .order_by("-occurred_at", "-id")[:limit])
    portal = trail_as_seen(user, trail_for_user(user).filter(
        any_case_q("resource_id", key) | any_case_q("target_id", key), occurred_at__gte=since)
        .order_by("-occurred_at", "-id")[:limit])
    return _joined(azure, with_request_links(user, portal))


def audited_vms_named(user, name: str, *, limit: int = 50):
    """The inventory's VMs called ``name`` (any case) that ``user`` may audit, by subscription and resource group, with
    ``subscription_name``: a VM name is unique only within its resource group."""
    from policies.models import VirtualMachine

    name = name.strip()
    if not name or "\x00" in name:
        return []
    vms = list(authz.restrict(VirtualMachine.objects.filter(any_case_q("name", name)), user, AUDIT_READ)
               .order_by("subscription_key", "resource_group", "name", "pk")[:limit])
    names = subscription_names(vm.subscription_key for vm in vms)
    for vm in vms:
        vm.subscription_name = names.get(vm.subscription_key.lower(), "")
    return vms


def request_correlation(value: str) -> str | None:
    """The correlation id of the access request ``value`` names: its number (``42``) or the id itself.

    ``ValueError`` when ``value`` is neither; ``None`` when no request has that number."""
    from policies.access.models import AccessRequest

    value = value.strip()
    if value.isascii() and value.isdigit() and len(value) < 19:  # below 2**63: no overflow in the database
        correlation = AccessRequest.objects.filter(pk=int(value)).values_list("correlation_id", flat=True).first()
        return str(correlation) if correlation else None
    return str(uuid.UUID(value))  # ValueError for anything that is not a request id


def names_request(justification: object, correlation: str) -> bool:
    """Whether an Azure justification ends with the portal's tail for exactly the request ``correlation``."""
    from policies.access.models import portal_request_in

    named = portal_request_in(justification)
    return named is not None and named[1] == correlation.lower()


def request_timeline(user, correlation: str, *, limit: int = 2000) -> list[TimelineEntry]:
    """One access request's story: its portal events (by the request's correlation id), the Azure calls whose
    justification ends with the portal's tail naming exactly that id, and the rule changes those calls caused
    (by Azure's correlation id)."""
    portal = with_request_links(user, trail_as_seen(user, trail_for_user(user).filter(correlation_id=correlation)
                                                    .order_by("-occurred_at", "-id")[:limit]))
    activity = activity_for_user(user)
    candidates = activity.filter(properties__justification__icontains=correlation).values_list(
        "correlation_id", "properties__justification")  # narrowed in the database, matched exactly below
    azure_ids = {azure_id for azure_id, justification in candidates
                 if azure_id and names_request(justification, correlation)}
    azure = activity_as_seen(user, activity.filter(correlation_id__in=azure_ids)
                             .order_by("-occurred_at", "-id")[:limit])
    return _joined(azure, portal)


def _joined(azure: list[ActivityLogEvent], portal: list[AuditEvent]) -> list[TimelineEntry]:
    """Azure events grouped by correlation id, portal events attached to their Azure call or standing alone."""
    entries: dict[str, TimelineEntry] = {}
    loose: list[TimelineEntry] = []
    for event in azure:
        entry = entries.setdefault(event.correlation_id or f"event:{event.pk}",
                                   TimelineEntry(event.occurred_at, event.correlation_id))
        entry.at = max(entry.at, event.occurred_at)
        if event.operation_name in NSG_RULE_OPERATIONS:
            entry.rule_changes.append(event)
        else:
            entry.azure_events.append(event)
    for event in portal:
        if event.correlation_id and event.correlation_id.lower() in entries:
            entries[event.correlation_id.lower()].portal_events.append(event)
        else:
            loose.append(TimelineEntry(event.occurred_at, event.correlation_id, portal_events=[event]))
    return sorted([*entries.values(), *loose], key=lambda e: e.at, reverse=True)
