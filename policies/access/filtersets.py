"""Filters of the Requests list (the same FilterSet would serve an API)."""
from __future__ import annotations

from datetime import date, timedelta

import django_filters
from django import forms
from django.db.models import Exists, OuterRef, Q

from jitportal.lib.days import day_start
from jitportal.lib.tables import SEARCH_MAX_LENGTH

from . import selectors
from .models import AccessRequest, AccessRequestVm, PortState


class _RequestFilterForm(forms.Form):
    """The filters' form: "Requested to" may not name a day before "Requested from" (that range finds nothing, which
    read as "you have no such requests"); the page says so and leaves it out, the API answers 400."""

    def clean(self) -> dict:
        data = super().clean()
        since, until = data.get("created_after"), data.get("created_before")
        if since and until and until < since:
            self.add_error("created_before", "Give a day on or after “Requested from”.")
        return data


class AccessRequestFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="VM, user or reason", max_length=SEARCH_MAX_LENGTH)
    state = django_filters.ChoiceFilter(choices=PortState.choices, label="State", method="in_state")
    mine = django_filters.BooleanFilter(method="only_mine", label="Only mine", widget=forms.CheckboxInput())
    created_after = django_filters.DateFilter(method="requested_from", label="Requested from",
                                              widget=forms.DateInput(attrs={"type": "date"}))
    created_before = django_filters.DateFilter(method="requested_to", label="Requested to",
                                               widget=forms.DateInput(attrs={"type": "date"}))

    class Meta:
        model = AccessRequest
        form = _RequestFilterForm
        fields = ["state"]

    def __init__(self, *args, user=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def search(self, queryset, name, value):
        """Only what the user is shown matches: VM names among the VMs they may see (``selectors.vm_rows_shown``),
        and the justification only where they read it whole (``selectors.text_shown_whole``). A request spanning
        scopes is found neither by the name of a VM outside theirs, which its row does not show, nor by words of a
        justification naming one, which its page withholds."""
        value = value.strip()
        if not value:
            return queryset
        named = AccessRequestVm.objects.filter(request_id=OuterRef("pk"), vm_name__icontains=value)
        seen = selectors.vm_rows_readable(self.user).filter(request_id=OuterRef("pk"), vm_name__icontains=value)
        return queryset.filter((Q(requester_id=getattr(self.user, "pk", None)) & Exists(named)) | Exists(seen)
                               | Q(requester_name__icontains=value)
                               | (Q(justification__icontains=value) & selectors.text_shown_whole(self.user)))

    def in_state(self, queryset, name, value):
        return selectors.in_shown_state(queryset, value)

    def requested_from(self, queryset, name, value: date):
        start = day_start(value)
        return queryset.filter(created_at__gte=start) if start is not None else queryset

    def requested_to(self, queryset, name, value: date):
        end = day_start(value + timedelta(days=1)) if value < date.max else None
        return queryset.filter(created_at__lt=end) if end is not None else queryset

    def only_mine(self, queryset, name, value):
        return queryset.filter(requester_id=self.user.pk) if value and self.user is not None else queryset

