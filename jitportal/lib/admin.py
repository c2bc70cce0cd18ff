"""Shared Django admin pieces."""
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .tables import SEARCH_MAX_LENGTH


class ReadOnlyAdmin(admin.ModelAdmin):
    """An admin page that only shows rows: every change goes through the portal's own pages and services, which
    check scopes and write the audit trail."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class CappedSearchAdmin(admin.ModelAdmin):
    """An admin page whose search takes at most ``SEARCH_MAX_LENGTH`` characters, as the portal's lists do: a longer
    one finds nothing and says why. The admin looks for each word in each of ``search_fields`` with LIKE, and SQLite
    refuses a pattern over 50,000 bytes, or thousands of words, as a 500."""

    def get_search_results(self, request: HttpRequest, queryset: QuerySet,
                           search_term: str) -> tuple[QuerySet, bool]:
        if len(search_term) > SEARCH_MAX_LENGTH:
            messages.error(request, f"Search: give at most {SEARCH_MAX_LENGTH} characters (this search has "
                                    f"{len(search_term)}); nothing was searched.")
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)
