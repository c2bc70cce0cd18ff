"""Reads of notifications, restricted to what the user may see."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from accounts import authz
from accounts.roles import SETTINGS_WRITE

from .models import PendingEvent, Webhook, WebhookDelivery

RECENT_DELIVERIES = 50
MAX_DELIVERY_PAGE = 10_000  # keeps ``?page=`` an offset the database takes


def webhook_list(user) -> QuerySet[Webhook]:
    """Webhooks at or under the scopes where ``user`` manages settings (unscoped ones: settings everywhere)."""
    return authz.restrict(Webhook.objects.all(), user, SETTINGS_WRITE)


def webhook_get(user, pk: int) -> Webhook:
    """One webhook ``user`` manages, else ``Http404``."""
    return authz.get_for_user_or_404(Webhook.objects.all(), user, SETTINGS_WRITE, pk=pk)


def delivery_page(webhook: Webhook, page: int = 1,
                  per_page: int = RECENT_DELIVERIES) -> tuple[list[WebhookDelivery], bool]:
    """Page ``page`` of the webhook's deliveries, newest first, and whether older ones follow (no count)."""
    start = (max(page, 1) - 1) * per_page
    rows = list(WebhookDelivery.objects.filter(webhook=webhook).order_by("-created_at", "-id")[
        start:start + per_page + 1])
    return rows[:per_page], len(rows) > per_page


def events_waiting() -> tuple[int, int]:
    """(events still waiting to be expanded after three beat intervals, events given up on): a nonzero first
    number means no notifications worker is taking them (``/healthz`` says so)."""
    late = timezone.now() - timedelta(seconds=3 * settings.NOTIFY_INTERVAL_SECONDS)
    waiting = PendingEvent.objects.filter(attempts__lt=settings.NOTIFY_MAX_ATTEMPTS, occurred_at__lt=late).count()
    given_up = PendingEvent.objects.filter(attempts__gte=settings.NOTIFY_MAX_ATTEMPTS).count()
    return waiting, given_up
