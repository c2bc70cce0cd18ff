"""Result tables of the audit search (django-tables2; rendered by ``audit/_table.html``, never ordered by
clicking: results are always newest first, paged by keyset)."""
from __future__ import annotations

from collections.abc import Mapping

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html

from jitportal.lib.tables import TimeColumn
from jitportal.lib.times import zoned_time

from .filtersets import OPERATION_CHOICES
from .models import ActivityLogEvent, AuditEvent

OPERATION_LABELS = dict(OPERATION_CHOICES)  # "Security: initiate/action" for the long ARM operation name


def _last_segment(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1] if resource_id else ""


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


class ActivityTable(_SubscriptionNames, tables.Table):
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

    def render_occurred_at(self, record: ActivityLogEvent, value) -> str:
        url = reverse("audit:activity_event", args=[record.pk])
        return format_html('<a href="{}">{}</a>', url, zoned_time(value, utc=True, seconds=True))

    def render_resource_id(self, value: str) -> str:
        return format_html('<span title="{}">{}</span>', value, _last_segment(value))

    def render_operation_name(self, value: str) -> str:
        return format_html('<span title="{}">{}</span>', value, OPERATION_LABELS.get(value, value))


class TrailTable(_SubscriptionNames, tables.Table):
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
