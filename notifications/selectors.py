"""Reads of notifications, restricted to what the user may see."""
from __future__ import annotations

from django.db.models import QuerySet

from accounts import authz
from accounts.roles import SETTINGS_WRITE

from .models import Webhook, WebhookDelivery

RECENT_DELIVERIES = 50


def webhook_list(user) -> QuerySet[Webhook]:
    """Webhooks at or under the scopes where ``user`` manages settings (unscoped ones: settings everywhere)."""
    return authz.restrict(Webhook.objects.all(), user, SETTINGS_WRITE)


def webhook_get(user, pk: int) -> Webhook:
    """One webhook ``user`` manages, else ``Http404``."""
    return authz.get_for_user_or_404(Webhook.objects.all(), user, SETTINGS_WRITE, pk=pk)


def recent_deliveries(webhook: Webhook, limit: int = RECENT_DELIVERIES) -> list[WebhookDelivery]:
    """The webhook's latest deliveries, newest first (bounded, no count)."""
    return list(WebhookDelivery.objects.filter(webhook=webhook).order_by("-created_at", "-id")[:limit])
