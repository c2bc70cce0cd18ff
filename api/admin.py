from django.contrib import admin

from jitportal.lib.admin import SafeQueryAdmin

from .models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(SafeQueryAdmin):
    """Read-only: tokens are created and revoked by their users (break-glass staff may look, not forge)."""

    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "expires", "revoked_at")
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = [f.name for f in ApiToken._meta.fields]

    @admin.display(description="Expires")
    def expires(self, obj: ApiToken):
        """When it stops working (its expiry, capped at API_TOKEN_MAX_DAYS after it was made)."""
        return obj.expires

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
