"""Activity Log ingestion: read a subscription's events window by window into ``ActivityLogEvent``.

One run per subscription at a time (claimed by a conditional update on ``IngestionState``). The first run
backfills ``AUDIT_BACKFILL_DAYS`` in day-sized windows; later runs read ``[watermark - overlap, now]``,
because Azure publishes an entry minutes after its operation. Rows are keyed by Azure's event id, so
reading a window twice adds nothing. A throttled run keeps its window and page and hands back Azure's
``Retry-After``; the task retries later from there.
"""
from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jitportal.lib.text import without_nul

from .jit_events import JIT_RULE, RULE_OPERATIONS, vm_name
from .models import ActivityLogEvent, ActivityLogEventVm, IngestionState

log = logging.getLogger(__name__)
_VM_ID = re.compile(
    r"/subscriptions/[^/\s\"',;]+/resourcegroups/[^/\s\"',;]+/providers/microsoft\.compute/"
    r"virtualmachines/[^/\s\"',;\]\}\\]+"
)
KNOWN_OPERATIONS = (
    "Microsoft.Security/locations/jitNetworkAccessPolicies/write",
    "Microsoft.Security/locations/jitNetworkAccessPolicies/delete",
    "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action",
    "Microsoft.Network/networkSecurityGroups/securityRules/write",
    "Microsoft.Network/networkSecurityGroups/securityRules/delete",
    "Microsoft.Network/azureFirewalls/write",
    "Microsoft.Network/firewallPolicies/ruleCollectionGroups/write",  # DNAT behind an Azure Firewall Manager firewall
)
_CANONICAL_OPERATION = {name.lower(): name for name in KNOWN_OPERATIONS}
NSG_RULE_OPERATIONS = tuple(name for name in KNOWN_OPERATIONS if name.startswith("Microsoft.Network/"))
# What an event is stored, found and scoped by, which Azure's answer fills (the other text is cut to its column): an
# event naming one longer than its column (a malformed answer) is skipped, not cut, as a cut id would no longer name it
# (a re-read would not find it stored, nor a filter or a scope its place). PostgreSQL refused the whole page's insert
# for it (every run stopped there again); SQLite stored it.
_ID_FIELDS = {"event_data_id": "event id", "correlation_id": "correlation id", "subscription_id": "subscription id",
              "resource_group": "resource group"}


class ActivityGateway(Protocol):
    """What ingestion needs from ``cloud``: pages of Activity Log events for a time window."""

    def iter_activity_events(self, start: datetime, end: datetime, **filters: Any) -> Iterable[Any]: ...


@dataclass
class IngestionOutcome:
    """What one run did; ``retry_after`` is set when Azure throttled it and it should run again later."""

    subscription_id: str
    claimed: bool = True
    pages: int = 0
    seen: int = 0
    added: int = 0
    skipped: int = 0
    last_skipped: str = ""
    complete: bool = False
    retry_after: float | None = None


def _setting(name: str, default):
    return getattr(settings, name, default)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):  # {value, localizedValue} objects
        return without_nul(str(value.get("value") or ""))
    return without_nul(str(value))


def _short(text: str) -> str:
    """What free text looks in: ARM ids by their names (so the trigram index stays small), 200 chars at most."""
    if "/subscriptions/" in text:
        text = ",".join(part.rstrip("/").rsplit("/", 1)[-1] for part in text.split(","))
    return text[:200]


def vm_ids_in(resource_id: str, properties: Any) -> list[str]:
    """The VM resource ids (lower-cased, unique, in order) an event is about."""
    text = (resource_id or "").lower() + " " + json.dumps(properties or {}, default=str).lower()
    found: list[str] = []
    for match in _VM_ID.finditer(text.replace("\\/", "/")):
        vm_id = match.group(0).rstrip("/")
        if vm_id not in found:
            found.append(vm_id)
    return found


def is_vm_id(text: str) -> bool:
    """Whether ``text`` is a whole VM resource id (any case)."""
    return _VM_ID.fullmatch(text.lower().rstrip("/")) is not None


def row_from_event(event: Any) -> ActivityLogEvent:
    """An unsaved ``ActivityLogEvent`` from a ``cloud.types.ActivityEvent`` (plain attributes)."""
    resource_id = _text(getattr(event, "resource_id", "")).lower()
    properties = without_nul(getattr(event, "properties", None) or {})
    operation = _text(getattr(event, "operation_name", ""))
    operation = _CANONICAL_OPERATION.get(operation.lower(), operation)
    caller = _text(getattr(event, "caller", "")).lower()
    status = _text(getattr(event, "status", ""))
    vms = vm_ids_in(resource_id, properties)
    search_parts = [caller, "/".join(operation.lower().split("/")[-2:]), status.lower(), _short(resource_id),
                    _text(getattr(event, "sub_status", "")).lower(), *(_short(vm) for vm in vms)]
    if isinstance(properties, dict):
        search_parts += [_short(str(v).lower()) for v in properties.values()]
    return ActivityLogEvent(
        event_data_id=_text(getattr(event, "event_data_id", "")).lower(),
        correlation_id=_text(getattr(event, "correlation_id", "")).lower(),
        occurred_at=event.event_timestamp,
        submitted_at=getattr(event, "submission_timestamp", None),
        subscription_id=_text(getattr(event, "subscription_id", "")).lower(),
        resource_group=_text(getattr(event, "resource_group", "")).lower(),
        resource_id=resource_id[:1024],
        resource_provider=_text(getattr(event, "resource_provider", ""))[:128],
        resource_type=_text(getattr(event, "resource_type", ""))[:256],
        caller=caller[:256],
        operation_name=operation[:256],
        status=status[:64],
        sub_status=_text(getattr(event, "sub_status", ""))[:128],
        level=_text(getattr(event, "level", ""))[:32],
        category=_text(getattr(event, "category", ""))[:64],
        vm_ids=(" " + " ".join(vms) + " ") if vms else "",
        search_text=" ".join(dict.fromkeys(p for p in search_parts if p)),
        properties=properties if isinstance(properties, dict) else {"value": properties},
        raw=without_nul(getattr(event, "raw", None) or {}),
    )


def skip_reason(row: ActivityLogEvent) -> str:
    """Why ``row`` is not stored, in words ("" when it is): an id longer than its column (``_ID_FIELDS``), or no time
    (which every row has)."""
    problem = "" if row.occurred_at else "it has no time"
    for name, label in _ID_FIELDS.items():
        value, limit = getattr(row, name), ActivityLogEvent._meta.get_field(name).max_length
        if not problem and len(value) > limit:
            problem = f"its {label} has {len(value)} characters, more than the {limit} the portal stores"
    if not problem:
        return ""
    when = f" of {row.occurred_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if row.occurred_at else ""
    shown = row.event_data_id if len(row.event_data_id) <= 64 else f"{row.event_data_id[:64]}…"
    return f"Skipped the event{when} (event id {shown!r}): {problem}."


@dataclass
class Stored:
    """What ``store_events`` did: rows added, and why each event it skipped was (``skip_reason``)."""

    added: int = 0
    skipped: list[str] = field(default_factory=list)


def store_events(events: Iterable[Any]) -> Stored:
    """Insert events not stored yet (by event id), skipping (and saying why) any with an id too long to store; give
    VM-less events of a JIT call that call's VMs. Safe to run concurrently and repeatedly.
    """
    rows, stored = {}, Stored()
    for event in events:
        row = row_from_event(event)
        if reason := skip_reason(row):
            log.warning("Activity Log ingestion: %s", reason)
            stored.skipped.append(reason)
        elif row.event_data_id:
            rows.setdefault(row.event_data_id, row)
    if not rows:
        return stored
    existing = set(
        ActivityLogEvent.objects.filter(event_data_id__in=list(rows)).values_list("event_data_id", flat=True)
    )
    new_rows = [row for key, row in rows.items() if key not in existing]
    _share_vm_ids(new_rows)
    with transaction.atomic():
        ActivityLogEvent.objects.bulk_create(new_rows, batch_size=500, ignore_conflicts=True)
        _link_vms([(r.event_data_id, r.vm_ids, r.occurred_at) for r in new_rows if r.vm_ids])
        _backfill_vm_ids([r for r in new_rows if r.vm_ids])
    stored.added = len(new_rows)
    return stored


def vm_filter_q(vm_id: str | list[str]) -> Q:
    """Events that concern the VM ``vm_id``, or any of a list of VMs (answered from the ``ActivityLogEventVm``
    index)."""
    keys = [key.strip().lower().rstrip("/") for key in ([vm_id] if isinstance(vm_id, str) else vm_id)]
    return Q(event_data_id__in=ActivityLogEventVm.objects.filter(vm_id__in=keys).values("event_data_id"))


def _link_vms(rows: list[tuple[str, str, datetime]]) -> None:
    """Index each row's VMs; an id longer than the index's column (found in a malformed answer's text) names no VM
    Azure can have (its names are far shorter), so it is left out of the index, and stays in the row's ``vm_ids``."""
    longest = ActivityLogEventVm._meta.get_field("vm_id").max_length
    links = [ActivityLogEventVm(event_data_id=event_id, vm_id=vm, occurred_at=at)
             for event_id, vm_ids, at in rows for vm in vm_ids.split() if len(vm) <= longest]
    ActivityLogEventVm.objects.bulk_create(links, batch_size=500, ignore_conflicts=True)


def _vm_keys(row: ActivityLogEvent) -> list[str]:
    """What links a VM-less row to rows that name VMs: its call (correlation id) and, for a network rule,
    the rule itself (an expiry removes the rule a JIT call wrote, under another correlation id)."""
    keys = [f"c:{row.correlation_id}"] if row.correlation_id else []
    if row.operation_name in NSG_RULE_OPERATIONS and row.resource_id:
        keys.append(f"r:{row.resource_id}")
    return keys


def rule_own_vms(operation: str, resource_id: str, vms: set[str]) -> set[str]:
    """Of ``vms`` (those of the call an NSG rule's row shares), the one the rule is for: JIT names a rule
    ``SecurityCenter-JITRule_<policy hash>_<vm>_<port>[_Allow]``, so a policy write for several VMs does not put each
    VM's rules in the others' activity. All of ``vms`` when the name tells none of them (not a JIT rule)."""
    if operation not in RULE_OPERATIONS or len(vms) < 2:
        return vms
    rule = JIT_RULE.match(vm_name(resource_id))
    own = {vm for vm in vms if rule and vm_name(vm).lower() == rule["vm"].lower()}
    return own or vms


def _share_vm_ids(rows: list[ActivityLogEvent]) -> None:
    """Rows without VMs take the VMs of rows (in this batch or stored) of the same call or rule; an NSG rule's row
    only the VM its JIT rule's name names, when one does (``rule_own_vms``)."""
    known: dict[str, set[str]] = {}
    for row in rows:
        if row.vm_ids:
            for key in _vm_keys(row):
                known.setdefault(key, set()).update(row.vm_ids.split())
    wanting = {key for row in rows if not row.vm_ids for key in _vm_keys(row)} - set(known)
    correlations = [k[2:] for k in wanting if k.startswith("c:")]
    resources = [k[2:] for k in wanting if k.startswith("r:")]
    stored = ActivityLogEvent.objects.exclude(vm_ids="")
    if correlations:
        for correlation_id, vm_ids in stored.filter(correlation_id__in=correlations).values_list(
                "correlation_id", "vm_ids"):
            known.setdefault(f"c:{correlation_id}", set()).update(vm_ids.split())
    if resources:
        for resource_id, vm_ids in stored.filter(resource_id__in=resources).values_list("resource_id", "vm_ids"):
            known.setdefault(f"r:{resource_id}", set()).update(vm_ids.split())
    for row in rows:
        if not row.vm_ids:
            vms = rule_own_vms(row.operation_name, row.resource_id,
                               set().union(*(known.get(key, set()) for key in _vm_keys(row))))
            if vms:
                row.vm_ids = " " + " ".join(sorted(vms)) + " "


def _backfill_vm_ids(rows: list[ActivityLogEvent]) -> None:
    """Stored VM-less rows of the same calls or rules (read earlier) take these rows' VMs (one query when
    there are none, which is the usual case)."""
    known: dict[str, set[str]] = {}
    for row in rows:
        for key in _vm_keys(row):
            known.setdefault(key, set()).update(row.vm_ids.split())
    correlations = [k[2:] for k in known if k.startswith("c:")]
    resources = [k[2:] for k in known if k.startswith("r:")]
    if not known:
        return
    orphans = ActivityLogEvent.objects.filter(vm_ids="").filter(
        Q(correlation_id__in=correlations) | Q(resource_id__in=resources)
    )
    linked = []
    for pk, event_id, at, correlation_id, resource_id, operation in orphans.values_list(
            "pk", "event_data_id", "occurred_at", "correlation_id", "resource_id", "operation_name"):
        vms = known.get(f"c:{correlation_id}", set())
        if operation in NSG_RULE_OPERATIONS:
            vms = rule_own_vms(operation, resource_id, vms | known.get(f"r:{resource_id}", set()))
        if vms:
            vm_ids = " " + " ".join(sorted(vms)) + " "
            ActivityLogEvent.objects.filter(pk=pk).update(vm_ids=vm_ids)
            linked.append((event_id, vm_ids, at))
    _link_vms(linked)


def _pages(gateway: ActivityGateway, start: datetime, end: datetime,
           next_link: str | None) -> Iterator[tuple[list, str | None]]:
    """(events, next_link) per page of the window, resuming at ``next_link`` when one was stored."""
    for page in gateway.iter_activity_events(start, end, next_link=next_link or None):
        yield list(page.events), page.next_link


def claim(subscription_id: str, *, now: datetime | None = None) -> IngestionState | None:
    """Mark the subscription's ingestion running, unless another run holds it (a stale hold expires)."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=_setting("AUDIT_INGEST_STALE_SECONDS", 900))
    subscription_id = subscription_id.lower()
    IngestionState.objects.get_or_create(subscription_id=subscription_id)
    free = Q(running_since__isnull=True) | Q(running_since__lt=stale)
    taken = IngestionState.objects.filter(Q(subscription_id=subscription_id) & free).update(
        running_since=now, last_started_at=now
    )
    return IngestionState.objects.get(subscription_id=subscription_id) if taken else None


def _release(state: IngestionState, **changes: Any) -> None:
    changes["running_since"] = None
    IngestionState.objects.filter(pk=state.pk).update(**changes)


def _next_window(state: IngestionState, now: datetime) -> tuple[datetime, datetime] | None:
    if state.window_start and state.window_end:
        return state.window_start, state.window_end
    overlap = timedelta(minutes=_setting("AUDIT_INGEST_OVERLAP_MINUTES", 15))
    if state.watermark is None:
        start = now - timedelta(days=_setting("AUDIT_BACKFILL_DAYS", 90))
        state.backfill_from = start
    else:
        if state.watermark >= now:
            return None
        start = state.watermark - overlap
    return start, min(start + timedelta(days=1), now)


def ingest_subscription(subscription_id: str, gateway: ActivityGateway, *, now: datetime | None = None,
                        time_budget: float | None = None) -> IngestionOutcome:
    """Read the subscription's Activity Log up to ``now`` (or until ``time_budget`` seconds are spent).

    ``Throttled`` from the gateway ends the run with ``retry_after`` set and the window kept for the retry;
    any other error is recorded on the state and re-raised.
    """
    from cloud.errors import Throttled  # the gateway's error types; imported here to keep models light

    outcome = IngestionOutcome(subscription_id.lower())
    state = claim(subscription_id, now=now)
    if state is None:
        outcome.claimed = False
        return outcome
    now = now or timezone.now()
    budget_ends = time.monotonic() + time_budget if time_budget else None
    try:
        while (window := _next_window(state, now)) is not None:
            start, end = window
            resume = state.next_link if state.window_start == start and state.window_end == end else ""
            state.window_start, state.window_end = start, end
            IngestionState.objects.filter(pk=state.pk).update(
                window_start=start, window_end=end, backfill_from=state.backfill_from
            )
            for events, link in _pages(gateway, start, end, resume):
                stored = store_events(events)
                outcome.pages += 1
                outcome.seen += len(events)
                outcome.added += stored.added
                outcome.skipped += len(stored.skipped)
                outcome.last_skipped = stored.skipped[-1] if stored.skipped else outcome.last_skipped
                state.next_link = link or ""
                IngestionState.objects.filter(pk=state.pk).update(next_link=state.next_link)
            state.watermark = max(end, state.watermark) if state.watermark else end
            state.window_start = state.window_end = None
            state.next_link = ""
            IngestionState.objects.filter(pk=state.pk).update(
                watermark=state.watermark, window_start=None, window_end=None, next_link=""
            )
            if end >= now:
                break
            if budget_ends is not None and time.monotonic() > budget_ends:
                break
    except Throttled as exc:
        outcome.retry_after = float(getattr(exc, "retry_after", None) or 60)
        _record_counts(state, outcome)
        _release(state, last_error=f"Throttled by Azure; retrying in {outcome.retry_after:.0f} s.",
                 last_error_at=timezone.now(), retry_at=timezone.now() + timedelta(seconds=outcome.retry_after))
        return outcome
    except BaseException as exc:  # kept on purpose, and re-raised: whatever stops the run (an error from Azure, a
        # bug, the worker's time limit) is said on the state and the claim released, or the subscription waits
        _record_counts(state, outcome)
        _release(state, last_error=f"{type(exc).__name__}: {exc}"[:2000], last_error_at=timezone.now())
        raise
    outcome.complete = state.watermark is not None and state.watermark >= now
    _record_counts(state, outcome)
    _release(state, last_success_at=timezone.now(), last_error="", retry_at=None)
    return outcome


def record_failure(subscription_id: str, message: str) -> None:
    """Say on the subscription's state why a run could not start (no gateway could be made for it), as a run's own
    error is said (``ingest_subscription``): the status page shows it until a run succeeds."""
    state, _ = IngestionState.objects.get_or_create(subscription_id=subscription_id.lower())
    IngestionState.objects.filter(pk=state.pk).update(last_error=message[:2000], last_error_at=timezone.now())


def _record_counts(state: IngestionState, outcome: IngestionOutcome) -> None:
    from django.db.models import F

    skipped = {"last_skipped": outcome.last_skipped[:2000], "last_skipped_at": timezone.now()} \
        if outcome.last_skipped else {}
    IngestionState.objects.filter(pk=state.pk).update(
        events_seen=F("events_seen") + outcome.seen,
        events_added=F("events_added") + outcome.added,
        events_skipped=F("events_skipped") + outcome.skipped,
        pages_read=F("pages_read") + outcome.pages,
        **skipped,
    )
