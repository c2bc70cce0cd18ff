"""Search filters of the audit pages (also used, unchanged, by the CSV export)."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import django_filters
from django import forms
from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from jitportal.lib.times import UtcDateTimeField

from .callers import portal_identities
from .ingestion import KNOWN_OPERATIONS, vm_filter_q
from .models import ActivityLogEvent, AuditEvent

TIME_PRESETS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
                "30d": timedelta(days=30)}
RANGE_CHOICES = [("1h", "Last hour"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days"),
                 ("custom", "Custom range")]
STATUS_CHOICES = [(s, s) for s in ("Started", "Accepted", "Succeeded", "Failed")]
OPERATION_CHOICES = [(op, op.split("/", 1)[0].split(".")[-1] + ": " + "/".join(op.split("/")[-2:]))
                     for op in KNOWN_OPERATIONS]
_DATETIME = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
# The time of day in a typed date and time: hours, minutes, and maybe seconds with a fraction.
_CLOCK = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:[.,](\d+))?)?")


def vm_ids_named(value: str) -> list[str]:
    """The VMs (lower-case ARM ids) a VM filter names: a resource id as typed (``/subscriptions/…``), else every VM of
    the inventory with that name, whatever its case (the searches are restricted to the user's scopes anyway)."""
    from policies.models import VirtualMachine

    key = value.strip().rstrip("/")
    if not key or "\x00" in key:
        return []
    if key.startswith("/"):
        return [key.lower()]
    return list(VirtualMachine.objects.filter(name__iexact=key).order_by("resource_id")
                .values_list("resource_id", flat=True)[:50])


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC (PostgreSQL refuses offsets beyond ±15:59, which Python accepts up to ±23:59); a time
    whose UTC form falls outside the calendar is clamped to its first or last instant."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC) if moment.year < 2 else datetime.max.replace(tzinfo=UTC)


def _span(text: str) -> timedelta:
    """How long the moment ``text`` names lasts: a date the whole day, a time without seconds its minute, one with
    seconds its second (or the fraction typed)."""
    clock = _CLOCK.search(text or "")
    if clock is None:
        return timedelta(days=1)
    if clock.group(0).count(":") == 1:
        return timedelta(minutes=1)
    digits = len(clock.group(1) or "")
    return timedelta(microseconds=10 ** max(6 - digits, 0))


class _UtcDateTimeFilter(django_filters.DateTimeFilter):
    field_class = UtcDateTimeField


class _TimeRangeForm(forms.Form):
    """The search form; "To" includes the whole day, minute or second it names, and may not end before "From"."""

    def until_end(self) -> datetime | None:
        """The first instant after what "To" names (``None``: no "To", or the calendar ends before)."""
        until = self.cleaned_data.get("until")
        if until is None:
            return None
        try:
            return _utc(until) + _span(str(self["until"].data))
        except OverflowError:
            return None

    def clean(self) -> dict:
        data = super().clean()
        if data.get("range") not in TIME_PRESETS and data.get("since") and data.get("until"):
            end = self.until_end()
            if end is not None and end <= _utc(data["since"]):
                self.add_error("until", "Give a time at or after From (UTC).")
        return data


class _TimeRangeFilterSet(django_filters.FilterSet):
    """Time presets or a custom range; every search is sorted by time, newest first."""

    range = django_filters.ChoiceFilter(label="Time", choices=RANGE_CHOICES, method="filter_range",
                                        empty_label="Any time")
    since = _UtcDateTimeFilter(label="From (UTC)", method="filter_noop", widget=_DATETIME)
    until = _UtcDateTimeFilter(label="To (UTC)", method="filter_noop", widget=_DATETIME)

    time_field = "occurred_at"

    def filter_noop(self, queryset: QuerySet, name: str, value) -> QuerySet:
        return queryset  # applied together with ``range`` in filter_queryset

    def filter_range(self, queryset: QuerySet, name: str, value) -> QuerySet:
        return queryset

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        queryset = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        preset = data.get("range")
        if preset in TIME_PRESETS:
            return queryset.filter(**{f"{self.time_field}__gte": timezone.now() - TIME_PRESETS[preset]})
        if data.get("since"):
            queryset = queryset.filter(**{f"{self.time_field}__gte": _utc(data["since"])})
        if data.get("until"):
            end = self.form.until_end()
            queryset = queryset.filter(**({f"{self.time_field}__lt": end} if end else
                                          {f"{self.time_field}__lte": _utc(data["until"])}))  # the calendar's end
        return queryset

    def applied(self) -> dict[str, str]:
        """The filters in effect (for the export's audit record)."""
        if not self.is_bound:
            return {}
        return {k: str(v) for k, v in self.form.cleaned_data.items() if v not in (None, "")}


class ActivityFilterSet(_TimeRangeFilterSet):
    """Azure Activity Log copies: by subscription, resource group, VM, caller, operation, status, free text."""

    subscription = django_filters.CharFilter(label="Subscription id", method="filter_lower_exact",
                                             field_name="subscription_id")
    resource_group = django_filters.CharFilter(label="Resource group", method="filter_lower_exact",
                                               field_name="resource_group")
    vm = django_filters.CharFilter(label="VM (name or resource id)", method="filter_vm")
    caller = django_filters.CharFilter(
        label="Caller", method="filter_caller",
        help_text="Callers starting with this, in any case: the part of a user name before the @ finds that user; "
                  "jitportal finds the portal's own calls.")
    operation = django_filters.ChoiceFilter(label="Operation", choices=OPERATION_CHOICES,
                                            field_name="operation_name")
    status = django_filters.ChoiceFilter(label="Status", choices=STATUS_CHOICES)
    correlation = django_filters.CharFilter(label="Correlation id", method="filter_lower_exact",
                                            field_name="correlation_id")
    q = django_filters.CharFilter(label="Text", method="filter_text")

    class Meta:
        model = ActivityLogEvent
        form = _TimeRangeForm
        fields: list[str] = []

    def filter_lower_exact(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(**{name: value.strip().lower()})

    def filter_vm(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(vm_filter_q(vm_ids_named(value)))

    def filter_caller(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        """Callers starting with ``value`` (stored lower-cased), and the portal's own identities when what the
        search shows for them does (``audit.callers``)."""
        text = value.strip().lower()
        shown = [client_id for client_id, label in portal_identities().items() if label.lower().startswith(text)]
        return queryset.filter(caller_prefix_q(text) | Q(caller__in=shown))

    def filter_text(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # search_text is stored lower-cased; PostgreSQL answers LIKE '%…%' from a trigram index.
        return queryset.filter(search_text__contains=value.strip().lower())


def caller_prefix_q(text: str) -> Q:
    """Callers starting with ``text`` (lower case), answered from the caller's index: PostgreSQL's LIKE 'text%' from
    its pattern index (migration ``0004``); on SQLite from its caller index (``prefix_q``)."""
    return prefix_q("caller", text)


def prefix_q(column: str, text: str) -> Q:
    """``column`` (a field or alias holding lower case) starting with ``text`` (lower case), in a form an index of it
    answers: PostgreSQL's LIKE 'text%' from a pattern index (``text_pattern_ops``: migrations ``0004`` and
    ``0005``); SQLite's LIKE uses no index on a case-sensitive column, so there the prefix is also the range of the
    index's byte order it spans."""
    prefix = Q(**{f"{column}__startswith": text})
    if connection.vendor == "sqlite" and text and text[-1] != chr(0x10FFFF):
        following = ord(text[-1]) + 1
        if 0xD800 <= following <= 0xDFFF:  # a surrogate is no character: no text can hold it (nor be sent with it)
            following = 0xE000
        prefix &= Q(**{f"{column}__gte": text, f"{column}__lt": text[:-1] + chr(following)})
    return prefix


class TrailFilterSet(_TimeRangeFilterSet):
    """The portal's own trail: by subscription, resource group, VM, user, action, free text."""

    subscription = django_filters.CharFilter(label="Subscription id", field_name="subscription_id",
                                             lookup_expr="iexact")
    resource_group = django_filters.CharFilter(label="Resource group", field_name="resource_group",
                                               lookup_expr="iexact")
    vm = django_filters.CharFilter(label="VM (name or resource id)", method="filter_vm")
    user = django_filters.CharFilter(
        label="User", method="filter_user",
        help_text="Users starting with this, in any case: the part of a user name before the @ finds that user; "
                  "jitportal finds the portal's own actions.")
    action = django_filters.CharFilter(label="Action", field_name="action", lookup_expr="iexact")
    q = django_filters.CharFilter(label="Text", method="filter_text")

    class Meta:
        model = AuditEvent
        form = _TimeRangeForm
        fields: list[str] = []

    def filter_vm(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        named = Q()
        for key in vm_ids_named(value):
            named |= Q(resource_id__iexact=key) | Q(target_id__iexact=key)
        return queryset.filter(named) if named else queryset.none()

    def filter_user(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        """Users whose name (as the trail records it: the user name, an e-mail address or UPN) starts with ``value``
        in any case, answered from the index of its lower case (migration ``0005``)."""
        return queryset.alias(user_key=Lower("actor_label")).filter(prefix_q("user_key", value.strip().lower()))

    def filter_text(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        text = value.strip()
        return queryset.filter(Q(actor_label__icontains=text) | Q(action__icontains=text)
                               | Q(target_label__icontains=text) | Q(target_id__icontains=text)
                               | Q(correlation_id__iexact=text))
