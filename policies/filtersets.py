"""The inventory's filters (django-filter): search, subscription, resource group, OS, location, connection."""
from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from jitportal.lib.tables import SEARCH_MAX_LENGTH

from .models import ConnectionType, VirtualMachine

OS_CHOICES = [("Linux", "Linux"), ("Windows", "Windows")]


class VirtualMachineFilterSet(django_filters.FilterSet):
    """Filters the (already permission-restricted) VM list; choices come from the rows the user may see."""

    # Typed in the toolbar's search box (#searchbar), which the error summary links to.
    q = django_filters.CharFilter(method="search", label="Search", max_length=SEARCH_MAX_LENGTH,
                                  widget=forms.TextInput(attrs={"id": "searchbar"}))
    subscription = django_filters.ChoiceFilter(field_name="subscription_key", label="Subscription")
    resource_group = django_filters.ChoiceFilter(field_name="resource_group", label="Resource group")
    os = django_filters.ChoiceFilter(field_name="os_type", choices=OS_CHOICES, label="OS")
    location = django_filters.ChoiceFilter(field_name="location", label="Location")
    connection = django_filters.ChoiceFilter(field_name="connection_type", choices=ConnectionType.choices,
                                             label="Connection type")

    class Meta:
        model = VirtualMachine
        fields: list[str] = []

    def __init__(self, data=None, queryset=None, *, subscriptions=(), resource_groups=(), locations=(), **kwargs):
        super().__init__(data, queryset, **kwargs)
        self.filters["subscription"].extra["choices"] = [(s.subscription_id, str(s)) for s in subscriptions]
        self.filters["resource_group"].extra["choices"] = [(rg, rg) for rg in resource_groups]
        self.filters["location"].extra["choices"] = [(loc, loc) for loc in locations]

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(resource_group__icontains=value.lower())
                               | Q(private_ip=value) | Q(public_ip=value))


def filter_controls(filterset: VirtualMachineFilterSet) -> list[tuple[str, str, SafeString]]:
    """(name, label, ``<select>``) of each choice filter, rendered in Python (hundreds of resource groups render
    in well under a millisecond; Django's widget templates take one include per option)."""
    controls = []
    data = filterset.data or {}
    for name in ("subscription", "resource_group", "os", "location", "connection"):
        field = filterset.form.fields[name]
        current = str(data.get(name, "") or "")
        options = format_html_join("", '<option value="{}"{}>{}</option>', (
            (value, " selected" if str(value) == current else "", label) for value, label in field.choices))
        refused = format_html(' aria-invalid="true" aria-describedby="id_{}_error"', name) \
            if filterset.is_bound and filterset.form.errors.get(name) else ""
        controls.append((name, str(field.label), format_html('<select name="{}" id="id_{}"{}>{}</select>', name, name,
                                                             refused, options)))
    return controls
