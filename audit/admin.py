from django.contrib import admin

from jitportal.lib.admin import ReadOnlyAdmin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: the trail has no change or delete path."""

    list_display = ("occurred_at", "actor_label", "action", "target_label", "client_ip")
    list_filter = ("action",)
    search_fields = ("actor_label", "target_label", "target_id", "correlation_id")
    date_hierarchy = "occurred_at"
    show_full_result_count = False
