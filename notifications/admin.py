"""Read-mostly admin pages of notifications (for break-glass staff)."""
from django.contrib import admin

from .models import EventMarker, Notification, NotificationPreference, PendingEvent, Webhook, WebhookDelivery


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ("name", "url", "format", "scope", "active", "updated_at")
    list_filter = ("format", "active")
    search_fields = ("name", "url", "scope")
    readonly_fields = ("created_at", "created_by", "updated_at", "updated_by")
    exclude = ("secret_sealed",)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("delivery_id", "webhook", "event", "state", "attempts", "last_status", "created_at")
    list_filter = ("state", "event")
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("event", "address", "request", "state", "attempts", "created_at")
    list_filter = ("state", "event")
    readonly_fields = [f.name for f in Notification._meta.fields]


@admin.register(PendingEvent)
class PendingEventAdmin(admin.ModelAdmin):
    list_display = ("event", "request", "occurred_at", "attempts", "last_error")
    list_filter = ("event",)
    readonly_fields = [f.name for f in PendingEvent._meta.fields]


admin.site.register(NotificationPreference)
admin.site.register(EventMarker)
