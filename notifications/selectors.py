"""Reads of notifications, restricted to what the user may see."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from accounts import authz
from accounts.roles import SETTINGS_WRITE
from jitportal.lib.keyset import SeekPage, seek_page

from .models import PendingEvent, Webhook, WebhookDelivery

RECENT_DELIVERIES = 50


def webhook_list(user) -> QuerySet[Webhook]:
    """Webhooks at or under the scopes where ``user`` manages settings (unscoped ones: settings everywhere)."""
    return authz.restrict(Webhook.objects.all(), user, SETTINGS_WRITE)


def webhook_get(user, pk: int) -> Webhook:
    """One webhook ``user`` manages, else ``Http404``."""
    return authz.get_for_user_or_404(Webhook.objects.all(), user, SETTINGS_WRITE, pk=pk)


def delivery_page(webhook: Webhook, *, after: str | None = None, before: str | None = None,
                  per_page: int = RECENT_DELIVERIES) -> SeekPage:
    """The webhook's deliveries, newest first, ``per_page`` a page: those older than the ``after`` cursor (or newer
    than ``before``), paged by cursor (no count, no offset), so deliveries made meanwhile neither repeat a row on the
    next page nor push one past it. A cursor this list did not give is a ``ValidationError``."""
    return seek_page(WebhookDelivery.objects.filter(webhook=webhook), key="created_at", descending=True,
                     after=after, before=before, size=per_page)


def events_waiting() -> tuple[int, int]:
    """(events still waiting to be expanded after three beat intervals, events given up on): a nonzero first
    number means no notifications worker is taking them (``/healthz`` says so)."""
    late = timezone.now() - timedelta(seconds=3 * settings.NOTIFY_INTERVAL_SECONDS)
    waiting = PendingEvent.objects.filter(attempts__lt=settings.NOTIFY_MAX_ATTEMPTS, occurred_at__lt=late).count()
    given_up = PendingEvent.objects.filter(attempts__gte=settings.NOTIFY_MAX_ATTEMPTS).count()
    return waiting, given_up
