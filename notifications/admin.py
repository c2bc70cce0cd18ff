"""Read-only admin pages of notifications (for break-glass staff): webhooks and preferences are changed on the
portal's Notifications pages, which check scopes, seal the signing secret and write the audit trail."""
from django.contrib import admin

from jitportal.lib.admin import ReadOnlyAdmin

from .models import EventMarker, Notification, NotificationPreference, PendingEvent, Webhook, WebhookDelivery


@admin.register(Webhook)
class WebhookAdmin(ReadOnlyAdmin):
    # The URL's path or query often holds the receiver's credential (Slack, Teams): shown masked, never searched.
    list_display = ("name", "masked_url", "format", "scope", "active", "updated_at")
    list_filter = ("format", "active")
    search_fields = ("name", "scope")
    exclude = ("secret_sealed", "url")
    readonly_fields = ("masked_url",)

    @admin.display(description="URL")
    def masked_url(self, webhook: Webhook) -> str:
        return webhook.masked_url


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("delivery_id", "webhook", "event", "state", "attempts", "last_status", "created_at")
    list_filter = ("state", "event")
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("event", "address", "request", "state", "attempts", "created_at")
    list_filter = ("state", "event")
    readonly_fields = [f.name for f in Notification._meta.fields]


@admin.register(PendingEvent)
class PendingEventAdmin(ReadOnlyAdmin):
    list_display = ("event", "request", "occurred_at", "attempts", "last_error")
    list_filter = ("event",)
    readonly_fields = [f.name for f in PendingEvent._meta.fields]


admin.site.register(NotificationPreference, ReadOnlyAdmin)
admin.site.register(EventMarker, ReadOnlyAdmin)
