"""Read-mostly admin of the inventory (break-glass staff only); changes go through the portal's services."""
from django.contrib import admin

from jitportal.lib.admin import ReadOnlyAdmin

from .models import DriftFinding, JitPolicy, PolicyChange, Subscription, SyncRun, VirtualMachine


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = ("display_name", "subscription_id", "tenant_id", "defender_p2", "last_sync_status", "enabled")


@admin.register(VirtualMachine)
class VirtualMachineAdmin(ReadOnlyAdmin):
    list_display = ("name", "subscription_key", "resource_group_name", "location", "os_type", "state",
                    "unsupported_reason", "connection_type")
    list_filter = ("state", "os_type", "connection_type")
    search_fields = ("name", "resource_id")
    show_full_result_count = False


@admin.register(JitPolicy)
class JitPolicyAdmin(ReadOnlyAdmin):
    list_display = ("name", "resource_group_name", "location", "subscription_key", "synced_at")


@admin.register(PolicyChange)
class PolicyChangeAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "policy_id", "state", "attempts", "created_by", "created_at")
    list_filter = ("state", "kind")


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "subscription", "state", "phase", "vms_seen", "calls_made", "started_at", "finished_at")


@admin.register(DriftFinding)
class DriftFindingAdmin(ReadOnlyAdmin):
    list_display = ("vm", "kind", "detail", "first_seen", "last_seen", "resolved_at")
    list_filter = ("kind",)
