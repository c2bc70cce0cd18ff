"""Shared Django admin pieces."""
from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """An admin page that only shows rows: every change goes through the portal's own pages and services, which
    check scopes and write the audit trail."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
