"""Shared Django admin pieces."""
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .tables import SEARCH_MAX_LENGTH

# The parts of a date the admin's ``date_hierarchy`` takes from the query, and their bounds: it reads them as whole
# numbers and goes on to the next year, month or day, so the calendar's last year is not one of them, nor its first (in
# a zone east of UTC, the year 1 begins before the calendar does).
_DATE_PARTS = {"year": (2, 9998), "month": (1, 12), "day": (1, 31)}


class SafeQueryAdmin(admin.ModelAdmin):
    """An admin page no query can crash (every admin page of the portal is one). Its search takes at most
    ``SEARCH_MAX_LENGTH`` characters, as the portal's lists do: a longer one finds nothing and says why (the admin
    looks for each word in each of ``search_fields`` with LIKE, and SQLite refuses a pattern over 50,000 bytes, or
    thousands of words; its search form refuses a NUL). A filter by a field holding a NUL character (PostgreSQL
    refuses it in text and jsonb), or a ``date_hierarchy`` part past the calendar, is a 400."""

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if "\x00" in value:
            return False
        field, _, part = lookup.rpartition("__")
        if self.date_hierarchy and field == self.date_hierarchy and part in _DATE_PARTS:
            low, high = _DATE_PARTS[part]
            if not (value.isascii() and value.isdigit() and low <= int(value) <= high):
                return False
        return super().lookup_allowed(lookup, value, request)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet,
                           search_term: str) -> tuple[QuerySet, bool]:
        if len(search_term) > SEARCH_MAX_LENGTH:
            messages.error(request, f"Search: give at most {SEARCH_MAX_LENGTH} characters (this search has "
                                    f"{len(search_term)}); nothing was searched.")
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)


class ReadOnlyAdmin(SafeQueryAdmin):
    """An admin page that only shows rows: every change goes through the portal's own pages and services, which
    check scopes and write the audit trail."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
