"""Result tables of the audit search (django-tables2; rendered by ``audit/_table.html``, never ordered by
clicking: results are always newest first, paged by keyset)."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from jitportal.lib.arm import resource_name
from jitportal.lib.tables import StackedRows, TimeColumn
from jitportal.lib.times import zoned_time

from .callers import caller_label, portal_identities
from .filtersets import OPERATION_CHOICES
from .jit_events import JitSummary, jit_summary
from .models import ActivityLogEvent, AuditEvent

OPERATION_LABELS = dict(OPERATION_CHOICES)  # "Security: initiate/action" for the long ARM operation name
SHOWN_VMS, SHOWN_PORTS, SHOWN_SOURCES, SHOWN_CHARS = 3, 4, 2, 64  # the rest is counted ("+2 more")


def _short(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS - 1]}…"


def _listed(items: tuple[str, ...], shown: int, css: str) -> SafeString:
    """The first ``shown`` items, each kept whole on a line (the list wraps between them), and how many more."""
    head = format_html_join(", ", '<span class="{}">{}</span>', ((css, _short(item)) for item in items[:shown]))
    more = len(items) - shown
    return format_html('{} <span class="jit-more">+{} more</span>', head, more) if more > 0 else head


def _until(summary: JitSummary, occurred_at: datetime) -> str:
    if summary.end is None:
        return f"until {_short(summary.end_text)}" if summary.end_text else ""
    same_day = summary.end.date() == occurred_at.astimezone(UTC).date()
    return f"until {summary.end:%H:%M} UTC" if same_day else f"until {summary.end:%Y-%m-%d %H:%M} UTC"


def summary_cell(summary: JitSummary, occurred_at: datetime) -> SafeString:
    """A JIT event in one short line: ``web-04 · 22 · from 203.0.113.25 · until 02:00 UTC`` (a rule's access
    before its source: ``allow from …``); every part escaped. It wraps between VMs, ports, sources and parts."""
    sources = tuple("any" if source == "*" else source for source in summary.sources)
    access = f"{summary.access} " if summary.access else ""
    parts = [("jit-vms", _listed(summary.vm_names, SHOWN_VMS, "jit-vm")),
             ("jit-ports", _listed(summary.ports, SHOWN_PORTS, "jit-port")),
             ("jit-from", format_html("{}from {}", access, _listed(sources, SHOWN_SOURCES, "jit-source"))
              if sources else summary.access),
             ("jit-until", _until(summary, occurred_at))]
    return format_html_join(" · ", '<span class="{}">{}</span>', ((css, part) for css, part in parts if part))


def subscription_cell(subscription_id: str, names: Mapping[str, str]) -> str:
    """A subscription as the results show it: its display name, or the start of its id when the portal knows no
    name; the whole id in the title."""
    name = names.get(subscription_id.lower())
    return format_html('<span class="subscription" title="{}">{}</span>', subscription_id,
                       name or f"{subscription_id[:8]}…")


class _SubscriptionNames:
    """A results table whose ``subscription_id`` column shows names: ``subscription_names`` maps the page's lower-case
    ids to them (``selectors.subscription_names``, one query per page)."""

    def __init__(self, *args, subscription_names: Mapping[str, str] | None = None, **kwargs) -> None:
        self.subscription_names = subscription_names or {}
        super().__init__(*args, **kwargs)

    def render_subscription_id(self, value: str) -> str:
        return subscription_cell(value, self.subscription_names)


class _Results(StackedRows, _SubscriptionNames, tables.Table):
    """A results table: its rows stacked as cards on a phone (``StackedRows``), each cell ``field-<column>``."""

    def get_column_class_names(self, classes_set: set[str], bound_column) -> set[str]:
        return {*super().get_column_class_names(classes_set, bound_column), f"field-{bound_column.name}"}


class ActivityTable(_Results):
    occurred_at = TimeColumn(verbose_name="Time (UTC)", utc=True, seconds=True, orderable=False)
    subscription_id = tables.Column(verbose_name="Subscription", orderable=False)
    resource_group = tables.Column(verbose_name="Resource group", orderable=False)
    resource_id = tables.Column(verbose_name="Resource", orderable=False)
    operation_name = tables.Column(verbose_name="Operation", orderable=False)
    status = tables.Column(orderable=False)
    caller = tables.Column(orderable=False)

    class Meta:
        model = ActivityLogEvent
        fields = ("occurred_at", "subscription_id", "resource_group", "resource_id", "operation_name", "status",
                  "caller")
        orderable = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.portal_callers = portal_identities()

    def render_occurred_at(self, record: ActivityLogEvent, value) -> str:
        url = reverse("audit:activity_event", args=[record.pk])
        return format_html('<a href="{}">{}</a>', url, zoned_time(value, utc=True, seconds=True))

    def render_resource_id(self, record: ActivityLogEvent, value: str) -> str:
        """A JIT event's VMs, ports, source and end (``summary_cell``); any other resource by its name. The whole
        resource id is in the title."""
        summary = jit_summary(record)
        withheld = getattr(record, "withheld", 0)
        note = format_html(' <span class="jit-withheld">({} outside your audit scope withheld)</span>',
                           withheld) if withheld else ""
        if summary is None:
            return format_html('<span title="{}">{}</span>{}', value, resource_name(value), note)
        return format_html('<span class="jit-summary" title="{}">{}</span>{}', value,
                           summary_cell(summary, record.occurred_at), note)

    def render_operation_name(self, value: str) -> str:
        return format_html('<span title="{}">{}</span>', value, OPERATION_LABELS.get(value, value))

    def render_caller(self, value: str) -> str:
        """The portal's own identity by name (``audit.callers``), its id in the title; anyone else as logged."""
        label = caller_label(value, self.portal_callers)
        if label == value:
            return value
        return format_html('<span class="caller" title="{}">{}</span>', value, label)


class TrailTable(_Results):
    occurred_at = TimeColumn(verbose_name="Time (UTC)", utc=True, seconds=True, orderable=False)
    actor_label = tables.Column(verbose_name="User", orderable=False)
    action = tables.Column(orderable=False)
    target_label = tables.Column(verbose_name="Target", orderable=False)
    subscription_id = tables.Column(verbose_name="Subscription", orderable=False)
    client_ip = tables.Column(verbose_name="Client IP", orderable=False)

    class Meta:
        model = AuditEvent
        fields = ("occurred_at", "actor_label", "action", "target_label", "subscription_id", "client_ip")
        orderable = False

    def render_occurred_at(self, record: AuditEvent, value) -> str:
        url = reverse("audit:trail_event", args=[record.pk])
        return format_html('<a href="{}">{}</a>', url, zoned_time(value, utc=True, seconds=True))

    def render_target_label(self, record: AuditEvent, value: str) -> str:
        """The target; a row about a portal request links to its page when the viewer may open it (``request_pk``,
        ``selectors.with_request_links``)."""
        number = getattr(record, "request_pk", None)
        if number is None:
            return value
        return format_html('{} · <a class="portal-request" href="{}">request #{}</a>', value,
                           reverse("policies:request_detail", args=[number]), number)
