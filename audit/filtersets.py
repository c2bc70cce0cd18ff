"""Search filters of the audit pages (also used, unchanged, by the CSV export)."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import django_filters
from django import forms
from django.db import connection
from django.db.models import F, IntegerField, Q, QuerySet, Value
from django.db.models.functions import Length, Lower, Replace
from django.utils import timezone

from accounts.authz import EVERYWHERE
from accounts.scopes import ScopeKind, scope_contains, valid_scopes
from jitportal.lib.tables import SEARCH_MAX_LENGTH
from jitportal.lib.times import UtcDateTimeField

from .callers import portal_identities
from .ingestion import KNOWN_OPERATIONS, vm_filter_q
from .jit_events import vm_name
from .models import ActivityLogEvent, AuditEvent

TIME_PRESETS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
                "30d": timedelta(days=30)}
RANGE_CHOICES = [("1h", "Last hour"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days"),
                 ("custom", "Custom range")]
STATUS_CHOICES = [(s, s) for s in ("Started", "Accepted", "Succeeded", "Failed")]
OPERATION_CHOICES = [(op, op.split("/", 1)[0].split(".")[-1] + ": " + "/".join(op.split("/")[-2:]))
                     for op in KNOWN_OPERATIONS]
# The longest text a filter takes is a search's (``SEARCH_MAX_LENGTH``: SQLite refuses a LIKE pattern over 50,000
# bytes), but the VM filter's: a VM's resource id, up to the length of the Activity Log's resource id column.
VM_FILTER_MAX_LENGTH = ActivityLogEvent._meta.get_field("resource_id").max_length
_DATETIME = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
# The time of day in a typed date and time: hours, minutes, and maybe seconds with a fraction.
_CLOCK = re.compile(r"\d{1,2}:(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?")
# The same after an ISO 8601 date (calendar or week date, extended or basic format), which Python also reads with an
# hour alone (``2026-11-26T10``) or without colons (``20261126T1030``).
_ISO_CLOCK = re.compile(r"\s*\d{4}-?(?:\d{2}-?\d{2}|W\d{2}-?\d)\D\d{2}(?::?(?P<minute>\d{2})"
                        r"(?::?(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?)?")


def vm_ids_named(value: str) -> list[str]:
    """The VMs (lower-case ARM ids) a VM filter names: a resource id as typed (``/subscriptions/…``), else every VM of
    the inventory with that name, whatever its case (the searches are restricted to the user's scopes anyway)."""
    from policies.models import VirtualMachine

    key = value.strip().rstrip("/")
    if not key or "\x00" in key:
        return []
    if key.startswith("/"):
        return [key.lower()]
    return list(VirtualMachine.objects.filter(any_case_q("name", key)).order_by("resource_id")
                .values_list("resource_id", flat=True)[:50])


def any_case_q(field: str, text: str) -> Q:
    """``field`` is ``text`` in any case, whatever its letters (a resource group's ``RG-MÜNCHEN`` too), as the Activity
    Log's filters find it (both lower-cased in Python): SQLite's LIKE (Django's ``iexact``) folds ASCII only, its
    REGEXP is Python's, which folds them all; PostgreSQL folds them all either way."""
    if text.isascii():
        return Q(**{f"{field}__iexact": text})
    return Q(**{f"{field}__iregex": rf"\A{re.escape(text)}\Z"})  # the whole value, in both


def any_case_contains_q(field: str, text: str) -> Q:
    """``field`` holds ``text`` in any case, whatever its letters (``any_case_q``, for a part of the value)."""
    if text.isascii():
        return Q(**{f"{field}__icontains": text})
    return Q(**{f"{field}__iregex": re.escape(text)})


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC (PostgreSQL refuses offsets beyond ±15:59, which Python accepts up to ±23:59); a time
    whose UTC form falls outside the calendar is clamped to its first or last instant."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC) if moment.year < 2 else datetime.max.replace(tzinfo=UTC)


def _span(text: str) -> timedelta:
    """How long the moment ``text`` names lasts: a date the whole day, a time of an hour alone that hour, one without
    seconds its minute, one with seconds its second (or the fraction typed)."""
    clock = _ISO_CLOCK.match(text or "") or _CLOCK.search(text or "")
    if clock is None:
        return timedelta(days=1)
    if clock["minute"] is None:
        return timedelta(hours=1)
    if clock["second"] is None:
        return timedelta(minutes=1)
    digits = len(clock["fraction"] or "")
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
                                             field_name="subscription_id", max_length=SEARCH_MAX_LENGTH)
    resource_group = django_filters.CharFilter(label="Resource group", method="filter_lower_exact",
                                               field_name="resource_group", max_length=SEARCH_MAX_LENGTH)
    vm = django_filters.CharFilter(label="VM (name or resource id)", method="filter_vm",
                                   max_length=VM_FILTER_MAX_LENGTH)
    caller = django_filters.CharFilter(
        label="Caller", method="filter_caller", max_length=SEARCH_MAX_LENGTH,
        help_text="Callers starting with this, in any case: the part of a user name before the @ finds that user; "
                  "jitportal finds the portal's own calls.")
    operation = django_filters.ChoiceFilter(label="Operation", choices=OPERATION_CHOICES,
                                            field_name="operation_name")
    status = django_filters.ChoiceFilter(label="Status", choices=STATUS_CHOICES)
    correlation = django_filters.CharFilter(label="Correlation id", method="filter_lower_exact",
                                            field_name="correlation_id", max_length=SEARCH_MAX_LENGTH)
    q = django_filters.CharFilter(label="Text", method="filter_text", max_length=SEARCH_MAX_LENGTH)

    class Meta:
        model = ActivityLogEvent
        form = _TimeRangeForm
        fields: list[str] = []

    def __init__(self, *args, scopes: tuple[str, ...] | list[str] = (EVERYWHERE,), **kwargs) -> None:
        """``scopes``: where the viewer may audit (``authz.permitted_scopes``); the VM and text filters find an event
        only through what of it they may see (``redaction``), as if the VMs outside were not named."""
        super().__init__(*args, **kwargs)
        self.scopes = tuple(scopes)

    def filter_lower_exact(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(**{name: value.strip().lower()})

    def filter_vm(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        """The events of the VMs ``value`` names that the viewer may audit: an event naming one outside their scope
        among their own VMs' is not found by it (it would tell the VM exists and shares their event)."""
        everywhere = EVERYWHERE in self.scopes
        return queryset.filter(vm_filter_q([vm for vm in vm_ids_named(value)
                                            if everywhere or any(scope_contains(s, vm) for s in self.scopes)]))

    def filter_caller(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        """Callers starting with ``value`` (stored lower-cased), and the portal's own identities when what the
        search shows for them does (``audit.callers``)."""
        text = value.strip().lower()
        shown = [client_id for client_id, label in portal_identities().items() if label.lower().startswith(text)]
        return queryset.filter(caller_prefix_q(text) | Q(caller__in=shown))

    def filter_text(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # search_text is stored lower-cased; PostgreSQL answers LIKE '%…%' from a trigram index.
        text = value.strip().lower()
        if EVERYWHERE in self.scopes:
            return queryset.filter(search_text__contains=text)
        return seen_with_text(queryset, text, self.scopes)


def _occurrences(column: str, token: str):
    """How many times ``token`` occurs in ``column`` (in the database)."""
    return (Length(column) - Length(Replace(column, Value(token), Value("")))) / Value(len(token),
                                                                                     output_field=IntegerField())


def seen_with_text(queryset: QuerySet, text: str, scopes: tuple[str, ...]) -> QuerySet:
    """Of ``queryset``'s events whose ``search_text`` holds ``text`` (lower case), those where someone who may audit
    ``scopes`` (not everywhere) sees it: the events naming no VM outside ``scopes`` (each of their ``vm_ids`` in them:
    nothing of them is withheld), and the others where it is in what ``redaction`` never withholds (their caller,
    operation and status) or in the name of one of their VMs inside ``scopes``. The rest of such an event's text
    (Azure's properties, an NSG rule's name) may name the VMs outside or be withheld as naming them, so it is not
    searched there: a name (or a port, or an address) of a VM outside finds nothing, as a name no VM has, instead of
    rows with it withheld that tell it exists."""
    inside = Value(0, output_field=IntegerField())
    own_names: list[str] = []
    own_vms = Q(pk__in=[])
    for parsed in valid_scopes(scopes):
        key = parsed.id.lower()
        if parsed.kind is ScopeKind.VIRTUAL_MACHINE:  # ``vm_ids`` has a space at both ends of each id
            inside = inside + _occurrences("vm_ids", f" {key} ")
            if text in vm_name(key):
                own_vms |= Q(vm_ids__contains=f" {key} ")
        else:
            inside = inside + _occurrences("vm_ids", f" {key}/")
            group = "resourcegroups/[^ /]+/" if parsed.kind is ScopeKind.SUBSCRIPTION else ""
            own_names.append(f" {re.escape(key)}/{group}providers/microsoft\\.compute/virtualmachines/[^ /]*"
                             f"{re.escape(text)}")
    if own_names:  # the regular expression reads the same in Python (SQLite's REGEXP) and PostgreSQL
        own_vms |= Q(vm_ids__regex="|".join(own_names))
    return queryset.filter(search_text__contains=text).alias(
        vms_named=_occurrences("vm_ids", " /subscriptions/"), vms_inside=inside,
    ).filter(Q(vm_ids="") | Q(vms_named=F("vms_inside")) | Q(caller__contains=text)
             | Q(operation_name__icontains=text) | Q(status__icontains=text) | Q(sub_status__icontains=text) | own_vms)


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
                                             method="filter_any_case", max_length=SEARCH_MAX_LENGTH)
    resource_group = django_filters.CharFilter(label="Resource group", field_name="resource_group",
                                               method="filter_any_case", max_length=SEARCH_MAX_LENGTH)
    vm = django_filters.CharFilter(label="VM (name or resource id)", method="filter_vm",
                                   max_length=VM_FILTER_MAX_LENGTH)
    user = django_filters.CharFilter(
        label="User", method="filter_user", max_length=SEARCH_MAX_LENGTH,
        help_text="Users starting with this, in any case: the part of a user name before the @ finds that user; "
                  "jitportal finds the portal's own actions.")
    action = django_filters.CharFilter(label="Action", field_name="action", method="filter_any_case",
                                       max_length=SEARCH_MAX_LENGTH)
    q = django_filters.CharFilter(label="Text", method="filter_text", max_length=SEARCH_MAX_LENGTH)

    class Meta:
        model = AuditEvent
        form = _TimeRangeForm
        fields: list[str] = []

    def filter_any_case(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        """``value`` in any case, whatever its letters (``any_case_q``)."""
        return queryset.filter(any_case_q(name, value.strip()))

    def filter_vm(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        named = Q()
        for key in vm_ids_named(value):
            named |= any_case_q("resource_id", key) | any_case_q("target_id", key)
        return queryset.filter(named) if named else queryset.none()

    def filter_user(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        """Users whose name (as the trail records it: the user name, an e-mail address or UPN) starts with ``value``
        in any case, answered from the index of its lower case (migration ``0005``). SQLite's ``lower()`` folds
        ASCII only, so there a start holding other letters is matched in Python's case folding (its REGEXP), as
        ``any_case_q`` does, without the index."""
        text = value.strip()
        if connection.vendor == "sqlite" and not text.isascii():
            return queryset.filter(actor_label__iregex=rf"\A{re.escape(text)}")
        return queryset.alias(user_key=Lower("actor_label")).filter(prefix_q("user_key", text.lower()))

    def filter_text(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        text = value.strip()
        return queryset.filter(any_case_contains_q("actor_label", text) | any_case_contains_q("action", text)
                               | any_case_contains_q("target_label", text) | any_case_contains_q("target_id", text)
                               | Q(correlation_id__iexact=text))


def foreign_filters(source: str, params) -> list[tuple[str, str]]:
    """(name, label) of the filters in ``params`` (a query) given a value that only the other source has (``source``:
    ``"portal"`` the trail, else the Activity Log): ignoring one would answer the whole, unfiltered source."""
    own, other = (TrailFilterSet, ActivityFilterSet) if source == "portal" else (ActivityFilterSet, TrailFilterSet)
    return [(name, str(field.label)) for name, field in other.base_filters.items()
            if name not in own.base_filters and params.get(name, "").strip()]
