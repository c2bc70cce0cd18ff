"""Notifications: per-user e-mail preferences, webhooks, and the outbox rows the senders work through.

The ``access_event`` receiver only writes rows here (``Notification`` per recipient, ``WebhookDelivery`` per
matching webhook); tasks send them and the beat retries what is due, so a down broker or receiver loses nothing.
"""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from jitportal.lib import sealing
from policies.access.signals import EVENTS

from . import transport


def _label(event: str) -> str:
    return event.replace("_", " ").capitalize()


# Each access event with its label as pages name it: ``needs_approval`` is "Needs approval".
EVENT_CHOICES = [(event, _label(event)) for event in EVENTS]
_EVENT_LABELS = dict(EVENT_CHOICES)


def event_label(event: str) -> str:
    """An event as pages name it: its label in ``EVENT_CHOICES``, or one made the same way for another (a webhook's
    test delivery, "test": "Test")."""
    return _EVENT_LABELS.get(event) or _label(event)


# Events an approver hears about (the request is someone else's).
APPROVER_EVENTS = ("needs_approval", "approved", "denied")
DEFAULT_REQUESTER_EVENTS = ("approved", "denied", "approval_expired", "opened", "expiring", "failed")
DEFAULT_APPROVER_EVENTS = ("needs_approval",)


def _default_requester_events() -> list[str]:
    return list(DEFAULT_REQUESTER_EVENTS)


def _default_approver_events() -> list[str]:
    return list(DEFAULT_APPROVER_EVENTS)


class NotificationPreference(models.Model):
    """Which events a user gets e-mail about: on their own requests, and on requests they may approve."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True,
                                related_name="notification_preference")
    requester_events = models.JSONField(default=_default_requester_events, blank=True)
    approver_events = models.JSONField(default=_default_approver_events, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"notification preferences of {self.user}"


class Webhook(models.Model):
    """An HTTPS endpoint that receives signed JSON (or Slack/Teams-shaped) POSTs for subscribed events."""

    class Format(models.TextChoices):
        JSON = "json", "JSON (signed)"
        SLACK = "slack", "Slack incoming webhook"
        TEAMS = "teams", "Microsoft Teams (Adaptive Card)"

    # ``accounts.authz.restrict`` reads a webhook's place from its scope (empty: everywhere).
    AUTHZ_FIELDS = {"resource_id_field": "scope"}

    name = models.CharField(max_length=100)
    url = models.URLField("URL", max_length=1000)
    # The HMAC key of X-Jitportal-Signature, sealed (``jitportal.lib.sealing``); read and set it as ``secret``.
    secret_sealed = models.TextField(editable=False)
    format = models.CharField(max_length=8, choices=Format.choices, default=Format.JSON)
    events = models.JSONField(default=list, help_text="The events it is sent (a subset of the access events).")
    scope = models.CharField(
        max_length=512, blank=True,
        help_text="Only requests touching a VM at or under this ARM scope (empty: every request).")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def event_names(self) -> str:
        """Its events as the pages name them ("Needs approval, Opened"), in the order of the access events."""
        return ", ".join(event_label(event) for event in EVENTS if event in self.events)

    @property
    def masked_url(self) -> str:
        """The URL as pages show it: scheme, host and port, the rest (which may hold a credential) masked."""
        return transport.masked(self.url)

    @property
    def secret(self) -> str:
        """The HMAC key (``sealing.SecretUnreadable`` when ``SECRET_KEY`` no longer opens it)."""
        return sealing.unseal(self.secret_sealed)

    @secret.setter
    def secret(self, value: str) -> None:
        self.secret_sealed = sealing.seal(value)


class OutboxState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Gave up"


class Notification(models.Model):
    """One e-mail to one recipient about one event, rendered when the event happened."""

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"

    event = models.CharField(max_length=32, choices=EVENT_CHOICES)
    request = models.ForeignKey("policies.AccessRequest", on_delete=models.CASCADE, null=True, blank=True,
                                related_name="notifications")
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
    address = models.CharField(max_length=254)
    subject = models.CharField(max_length=255)
    body = models.TextField()
    state = models.CharField(max_length=16, choices=OutboxState.choices, default=OutboxState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="notif_due")]

    def __str__(self) -> str:
        return f"{self.event} to {self.address}"


class WebhookDelivery(models.Model):
    """One POST of one event to one webhook, with its attempts, last answer and last error."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.CharField(max_length=32)
    request = models.ForeignKey("policies.AccessRequest", on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="webhook_deliveries")
    payload = models.JSONField(help_text="The JSON payload (Slack and Teams shapes are made from it when sent).")
    scope = models.CharField(max_length=512, blank=True,
                             help_text="The webhook's scope its payload was made for (empty: every scope). Not sent "
                                       "once the webhook's scope no longer holds it.")
    state = models.CharField(max_length=16, choices=OutboxState.choices, default=OutboxState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveIntegerField(null=True, blank=True, help_text="HTTP status of the last answer.")
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="webhook_delivery_due"),
                   models.Index(fields=["webhook", "-created_at"], name="webhook_delivery_recent")]

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook_id} ({self.state})"

    @property
    def event_name(self) -> str:
        """Its event as pages name it ("Needs approval"; a test delivery's "Test"), not its raw name."""
        return event_label(self.event)


class PendingEvent(models.Model):
    """An access event not yet turned into e-mails and webhook deliveries.

    The ``access_event`` receiver stores one (a single INSERT) so that the request's own path never renders a
    message; a task on the notifications queue expands it, or the beat does when the broker could not carry it.
    """

    event = models.CharField(max_length=32, choices=EVENT_CHOICES)
    request = models.ForeignKey("policies.AccessRequest", on_delete=models.CASCADE, related_name="+")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="+")
    detail = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0, help_text="Expansions that failed (the beat gives up at "
                                                                "NOTIFY_MAX_ATTEMPTS).")
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.event} of request {self.request_id} (not expanded yet)"


class EventMarker(models.Model):
    """An event already emitted for a request (``expiring`` is sent once per request)."""

    request = models.ForeignKey("policies.AccessRequest", on_delete=models.CASCADE, related_name="+")
    event = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request", "event"], name="notif_event_once")]

    def __str__(self) -> str:
        return f"{self.event} of request {self.request_id}"
