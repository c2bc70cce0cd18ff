"""Filters of the Requests list (the same FilterSet would serve an API)."""
from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Exists, OuterRef, Q

from . import selectors
from .models import AccessRequest, AccessRequestVm, PortState


class AccessRequestFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="VM, user or reason")
    state = django_filters.ChoiceFilter(choices=PortState.choices, label="State")
    mine = django_filters.BooleanFilter(method="only_mine", label="Only mine", widget=forms.CheckboxInput())
    created_after = django_filters.DateFilter(field_name="created_at", lookup_expr="date__gte", label="Requested from",
                                              widget=forms.DateInput(attrs={"type": "date"}))
    created_before = django_filters.DateFilter(field_name="created_at", lookup_expr="date__lte", label="Requested to",
                                               widget=forms.DateInput(attrs={"type": "date"}))

    class Meta:
        model = AccessRequest
        fields = ["state"]

    def __init__(self, *args, user=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def search(self, queryset, name, value):
        """VM names match only among the VMs the user may see (``selectors.vm_rows_shown``): a request spanning
        scopes is not found by the name of a VM outside theirs, which its row does not show either."""
        value = value.strip()
        if not value:
            return queryset
        named = AccessRequestVm.objects.filter(request_id=OuterRef("pk"), vm_name__icontains=value)
        seen = selectors.vm_rows_readable(self.user).filter(request_id=OuterRef("pk"), vm_name__icontains=value)
        return queryset.filter((Q(requester_id=getattr(self.user, "pk", None)) & Exists(named)) | Exists(seen)
                               | Q(requester_name__icontains=value) | Q(justification__icontains=value))

    def only_mine(self, queryset, name, value):
        return queryset.filter(requester_id=self.user.pk) if value and self.user is not None else queryset
