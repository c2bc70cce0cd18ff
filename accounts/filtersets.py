"""Filters of the accounts app's lists."""
import django_filters
from django import forms
from django.db.models import Q, QuerySet

from accounts.models import RoleMapping
from accounts.roles import ROLE_CHOICES
from jitportal.lib.tables import SEARCH_MAX_LENGTH


class RoleMappingFilterSet(django_filters.FilterSet):
    # Typed in the toolbar's search box (#searchbar), which the error summary links to.
    q = django_filters.CharFilter(method="search", label="Search", max_length=SEARCH_MAX_LENGTH,
                                  widget=forms.TextInput(attrs={"id": "searchbar"}))
    source_kind = django_filters.ChoiceFilter(choices=RoleMapping.SourceKind.choices, label="Source")
    role = django_filters.ChoiceFilter(choices=ROLE_CHOICES)

    class Meta:
        model = RoleMapping
        fields = ["q", "source_kind", "role"]

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(source_value__icontains=value) | Q(scope__icontains=value) | Q(description__icontains=value)
        )
