"""Writes of notifications: outbox rows for an event, sending them, retries, ``expiring``, webhooks, preferences.

``event_queue`` is what the ``access_event`` receiver calls: one ``PendingEvent`` row, stored in the transaction of
the change it tells of (so it is never lost nor sent for a change that rolled back), expanded off the request's
path (``event_expand``, a task on the notifications queue) into one ``Notification`` per recipient and one
``WebhookDelivery`` per matching webhook, whose sending is enqueued after commit. ``email_send`` and
``webhook_deliver`` claim a row (conditional update), send once and record the outcome; ``deliver_due`` (beat)
expands and sends what is due again, so a down broker or receiver delays a notification, never loses it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import secrets
import smtplib
import time
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError

from accounts.scopes import InvalidScope, parse_scope, scope_contains
from audit.services import audit_record
from jitportal.lib import sealing
from jitportal.lib.times import utc_iso
from policies.access.models import AccessRequest, PortState
from policies.access.signals import EVENTS, emit

from . import payloads, transport
from .models import (
    APPROVER_EVENTS,
    DEFAULT_APPROVER_EVENTS,
    DEFAULT_REQUESTER_EVENTS,
    EventMarker,
    Notification,
    NotificationPreference,
    OutboxState,
    PendingEvent,
    Webhook,
    WebhookDelivery,
)

log = logging.getLogger(__name__)
BROKER_ERRORS = (OperationalError, OSError)
EMAIL_ERRORS = (smtplib.SMTPException, OSError)
TEST_EVENT = "test"


# --- recipients and preferences -------------------------------------------------------------------------------
def approvers_of(request: AccessRequest) -> list:
    """Who may decide ``request`` (``policies.access.approvals.approvers_for``)."""
    from policies.access.approvals import approvers_for

    return list(approvers_for(request))


def preferences_of(user) -> tuple[list[str], list[str]]:
    """(events on own requests, events on requests to approve) the user gets e-mail about."""
    row = NotificationPreference.objects.filter(user_id=user.pk).first()
    if row is None:
        return list(DEFAULT_REQUESTER_EVENTS), list(DEFAULT_APPROVER_EVENTS)
    return list(row.requester_events), list(row.approver_events)


def preference_save(*, actor, requester_events: list[str], approver_events: list[str],
                    client_ip: str | None = None) -> NotificationPreference:
    """Store the actor's own e-mail choices (audited)."""
    requester_events = [e for e in EVENTS if e in set(requester_events)]
    approver_events = [e for e in APPROVER_EVENTS if e in set(approver_events)]
    with transaction.atomic():
        before = preferences_of(actor)
        row, _ = NotificationPreference.objects.update_or_create(
            user=actor, defaults={"requester_events": requester_events, "approver_events": approver_events})
        audit_record(actor=actor, action="notifications.preferences_updated", target_type="user",
                     target_id=actor.pk, target_label=actor.get_username(),
                     before={"requester_events": before[0], "approver_events": before[1]},
                     after={"requester_events": requester_events, "approver_events": approver_events},
                     client_ip=client_ip)
    return row


def _recipients(request: AccessRequest, event: str, actor, detail: dict | None = None,
                occurred_at: datetime | None = None) -> list[tuple[object, str, str]]:
    """(user, address, "requester" or "approver") of everyone who gets e-mail about ``event`` on ``request``, by
    their preferences (and the requester whenever someone else ended their access). An e-mail asking approvers to
    review (``payloads.asks_approvers``) does not go to those who had decided before the event: they can no longer
    act on it."""
    candidates: dict[int, tuple[object, str]] = {}
    requester = request.requester
    candidates[requester.pk] = (requester, "requester")
    if event in APPROVER_EVENTS:
        decided = set(request.approvals.filter(created_at__lte=occurred_at or timezone.now()).values_list(
            "approver_id", flat=True)) if payloads.asks_approvers(event, detail) else set()
        for user in approvers_of(request):
            if user.pk != requester.pk and (actor is None or user.pk != actor.pk) and user.pk not in decided:
                candidates.setdefault(user.pk, (user, "approver"))
    users = [user for user, _ in candidates.values() if user.is_active and user.email]
    stored = {row.user_id: row for row in NotificationPreference.objects.filter(user__in=users)}
    chosen = []
    for user in users:
        row = stored.get(user.pk)
        role = candidates[user.pk][1]
        if role == "requester":
            wanted = row.requester_events if row else DEFAULT_REQUESTER_EVENTS
        else:
            wanted = row.approver_events if row else DEFAULT_APPROVER_EVENTS
        if event in wanted or (role == "requester" and ended_by_someone_else(event, actor, requester, detail)):
            chosen.append((user, user.email, role))
    return chosen


def ended_by_someone_else(event: str, actor, requester, detail: dict | None) -> bool:
    """Whether ``event`` is someone other than the requester (a policy admin) closing or cancelling their request:
    the requester is always told, whatever their preferences, as they did not end it themselves."""
    return (event == "closed" and (detail or {}).get("reason") in ("closed", "cancelled")
            and getattr(actor, "pk", None) is not None and actor.pk != requester.pk)


def webhooks_for(request: AccessRequest | None, event: str) -> list[Webhook]:
    """Active webhooks subscribed to ``event`` whose scope holds a VM of ``request`` (or no scope)."""
    vm_ids = list(request.vms.values_list("vm_arm_id", flat=True)) if request is not None else []
    matching = []
    for webhook in Webhook.objects.filter(active=True):
        if event not in webhook.events:
            continue
        if webhook.scope and not any(scope_contains(webhook.scope, vm_id) for vm_id in vm_ids):
            continue
        matching.append(webhook)
    return matching


# --- recording an event -----------------------------------------------------------------------------------------
def event_queue(*, request: AccessRequest, event: str, actor=None, detail: dict | None = None) -> int:
    """What the ``access_event`` receiver does: store a ``PendingEvent`` (one INSERT, in the caller's transaction)
    and, after commit, send its expansion to the notifications queue. Nothing is rendered on the request's own
    path; when the broker is down the beat (``deliver_due``) expands it."""
    if event not in EVENTS:
        raise ValueError(f"unknown access event {event!r}")
    row = PendingEvent.objects.create(event=event, request_id=request.pk, actor_id=getattr(actor, "pk", None),
                                      detail=_jsonable(detail), occurred_at=timezone.now())
    transaction.on_commit(lambda: _enqueue_expand(row.pk), robust=True)
    return row.pk


def _enqueue_expand(event_id: int) -> None:
    from .tasks import expand_event

    try:
        expand_event.delay(event_id)
    except BROKER_ERRORS as exc:
        log.warning("notifications: could not enqueue event %s (%s); the beat expands it later", event_id, exc)


def event_expand(*, event_id: int) -> tuple[list[int], list[int]] | None:
    """Turn one ``PendingEvent`` into its e-mails and deliveries, once: the rows are stored in the transaction
    that deletes it (composed before it, so no write lock is held while rendering). ``None``: already done."""
    row = PendingEvent.objects.select_related("actor").filter(pk=event_id).first()
    if row is None:
        return None
    notes, deliveries = _compose(request_id=row.request_id, event=row.event, actor=row.actor, detail=row.detail,
                                 occurred_at=row.occurred_at)
    with transaction.atomic():
        if not PendingEvent.objects.filter(pk=event_id).delete()[0]:
            return None  # another run expanded it meanwhile
        return _store(notes, deliveries)


def event_try_expand(*, event_id: int) -> str:
    """``event_expand`` for the task and the beat: ``"expanded"``, ``"done"`` (nothing left to do) or
    ``"failed"``; a failure is counted on the row, and after ``NOTIFY_MAX_ATTEMPTS`` the beat stops trying (the
    row keeps the reason)."""
    try:
        return "done" if event_expand(event_id=event_id) is None else "expanded"
    except Exception as exc:  # noqa: BLE001 - one broken event must not hold up every other notification
        PendingEvent.objects.filter(pk=event_id).update(attempts=F("attempts") + 1,
                                                        last_error=f"{type(exc).__name__}: {exc}"[:4000])
        attempts = PendingEvent.objects.filter(pk=event_id).values_list("attempts", flat=True).first() or 0
        if attempts >= settings.NOTIFY_MAX_ATTEMPTS:
            log.error("notifications: gave up expanding event %s after %s attempts: %s", event_id, attempts, exc)
        else:
            log.warning("notifications: event %s could not be expanded (%s); the beat tries again", event_id, exc)
        return "failed"


def _jsonable(detail: dict | None) -> dict:
    return json.loads(json.dumps(detail or {}, cls=DjangoJSONEncoder))  # times and ids as JSON text


def _compose(*, request_id: int, event: str, actor, detail: dict,
             occurred_at: datetime) -> tuple[list[Notification], list[WebhookDelivery]]:
    """The unsaved e-mails (rendered) and webhook deliveries of one event on the request as it is now."""
    request = AccessRequest.objects.select_related("requester").get(pk=request_id)
    now = timezone.now()
    recipients = _recipients(request, event, actor, detail, occurred_at)
    texts = {role: payloads.email_text(event=event, request=request, actor=actor, detail=detail,
                                       approver=role == "approver")
             for role in sorted({role for _user, _address, role in recipients})}
    notes = [Notification(event=event, request=request, recipient=user, address=address, subject=texts[role][0],
                          body=texts[role][1], next_attempt_at=now) for user, address, role in recipients]
    deliveries = []
    hooks = webhooks_for(request, event)
    # Per webhook scope, once: the request and the event as a webhook there is sent them (``payloads.scoped``: only
    # the request's VMs there, its text naming none elsewhere). Deliveries store it; sending and retries only shape
    # it for Slack or Teams.
    views: dict[str, tuple[dict, dict]] = {}
    for webhook in hooks:
        if webhook.scope not in views:
            views[webhook.scope] = payloads.scoped(request, detail, scope=webhook.scope)
        summary, shown = views[webhook.scope]
        delivery_id = uuid.uuid4()
        payload = payloads.event_payload(event=event, delivery_id=str(delivery_id), occurred_at=occurred_at,
                                         request=summary, actor=payloads.person(actor), detail=shown)
        deliveries.append(WebhookDelivery(webhook=webhook, delivery_id=delivery_id, event=event, request=request,
                                          payload=payload, scope=webhook.scope, next_attempt_at=now))
    return notes, deliveries


def _store(notes: list[Notification], deliveries: list[WebhookDelivery]) -> tuple[list[int], list[int]]:
    """Insert the composed rows (inside the caller's transaction) and enqueue their sending after commit."""
    note_ids = [n.pk for n in Notification.objects.bulk_create(notes)] if notes else []
    delivery_ids = [d.pk for d in WebhookDelivery.objects.bulk_create(deliveries)] if deliveries else []
    if note_ids or delivery_ids:
        transaction.on_commit(lambda: enqueue_sending(note_ids, delivery_ids), robust=True)
    return note_ids, delivery_ids


def enqueue_sending(note_ids: list[int], delivery_ids: list[int]) -> None:
    """One task per row; when the broker is unreachable the rows wait for ``deliver_due`` (beat)."""
    from .tasks import deliver_webhook, send_email

    try:
        for pk in note_ids:
            send_email.delay(pk)
        for pk in delivery_ids:
            deliver_webhook.delay(pk)
    except BROKER_ERRORS as exc:
        log.warning("notifications: could not enqueue (%s); the beat sends them later", exc)


# --- sending ------------------------------------------------------------------------------------------------------
def backoff(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before the next attempt: exponential from ``NOTIFY_RETRY_BASE_SECONDS``, never earlier than the
    receiver's Retry-After, at most ``NOTIFY_RETRY_MAX_SECONDS``."""
    wait = float(settings.NOTIFY_RETRY_BASE_SECONDS) * 2 ** max(0, min(attempts - 1, 20))
    if retry_after is not None:
        wait = max(wait, float(retry_after))
    return min(wait, float(settings.NOTIFY_RETRY_MAX_SECONDS))


def _claim(model, pk: int, now: datetime):
    """The row, claimed for one attempt (attempts + 1), or ``None`` when it is not due or someone else has it."""
    stale = now - timedelta(seconds=settings.NOTIFY_STUCK_SECONDS)
    claimed = model.objects.filter(pk=pk).filter(
        Q(state=OutboxState.PENDING, next_attempt_at__lte=now)
        | Q(state=OutboxState.SENDING, claimed_at__lt=stale, attempts__lt=settings.NOTIFY_MAX_ATTEMPTS)
    ).update(state=OutboxState.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    return model.objects.get(pk=pk) if claimed else None


def _finish(row, *, now: datetime, delivered: bool, error: str = "", retryable: bool = False,
            retry_after: float | None = None, **extra) -> str:
    """Record one attempt's outcome: sent, due again after a backoff, or given up with the reason."""
    fields = dict(extra, claimed_at=None)
    if delivered:
        fields.update(state=OutboxState.SENT, sent_at=now, last_error="")
    elif retryable and row.attempts < settings.NOTIFY_MAX_ATTEMPTS:
        fields.update(state=OutboxState.PENDING, last_error=error,
                      next_attempt_at=now + timedelta(seconds=backoff(row.attempts, retry_after)))
    elif retryable:
        fields.update(state=OutboxState.FAILED,
                      last_error=f"Gave up after {row.attempts} attempts. Last error: {error}")
    else:
        fields.update(state=OutboxState.FAILED, last_error=f"Not retried: {error}")
    type(row).objects.filter(pk=row.pk, state=OutboxState.SENDING).update(**fields)
    return fields["state"]


def email_send(*, notification_id: int, now: datetime | None = None) -> str | None:
    """One attempt at the e-mail ``notification_id`` through Django's e-mail backend; its new state."""
    now = now or timezone.now()
    note = _claim(Notification, notification_id, now)
    if note is None:
        return None
    try:  # the address comes from Entra ID's claims as they were: Django's mail code raises odd errors on a bad one
        validate_email(note.address)
    except ValidationError:
        return _finish(note, now=now, delivered=False, error=f"{note.address!r} is not a valid e-mail address.")
    try:
        EmailMessage(note.subject, note.body, settings.DEFAULT_FROM_EMAIL, [note.address]).send()
    except EMAIL_ERRORS as exc:
        return _finish(note, now=now, delivered=False, error=f"{type(exc).__name__}: {exc}"[:1000], retryable=True)
    except ValueError as exc:  # an address or header Django refuses (BadHeaderError, UnicodeError): not retried
        return _finish(note, now=now, delivered=False, error=f"{type(exc).__name__}: {exc}"[:1000])
    return _finish(note, now=now, delivered=True)


def webhook_deliver(*, delivery_id: int, now: datetime | None = None) -> str | None:
    """One attempt at the webhook delivery ``delivery_id``; its new state (``None``: not due, or taken)."""
    now = now or timezone.now()
    delivery = _claim(WebhookDelivery, delivery_id, now)
    if delivery is None:
        return None
    webhook = delivery.webhook
    if not webhook.active:
        return _finish(delivery, now=now, delivered=False, error="the webhook was disabled")
    if not scope_contains(webhook.scope, delivery.scope):  # its payload may name VMs the webhook's scope left out
        return _finish(delivery, now=now, delivered=False,
                       error=f"the webhook's scope changed to {webhook.scope} after this was made for "
                             f"{delivery.scope or 'every scope'}")
    try:
        secret = webhook.secret
    except sealing.SecretUnreadable as exc:
        return _finish(delivery, now=now, delivered=False, error=str(exc))
    answer = transport.post_signed(url=webhook.url, secret=secret, event=delivery.event,
                                   delivery_id=str(delivery.delivery_id),
                                   body=payloads.body_for(webhook.format, delivery.payload))
    return _finish(delivery, now=now, delivered=answer.delivered, error=answer.error, retryable=answer.retryable,
                   retry_after=answer.retry_after, last_status=answer.status)


def deliver_due(*, now: datetime | None = None) -> dict[str, int]:
    """Beat: expand the events the broker never carried, then send every e-mail and delivery that is due (new
    ones the broker never carried, retries, rows of a worker that died mid-send), within
    ``NOTIFY_TIME_BUDGET_SECONDS``.

    Returns counts such as ``{"email_sent": 2, "webhook_pending": 1}``.
    """
    started = time.monotonic()
    counts: dict[str, int] = {}
    retryable = PendingEvent.objects.filter(attempts__lt=settings.NOTIFY_MAX_ATTEMPTS)
    for event_id in list(retryable.values_list("pk", flat=True)[: settings.NOTIFY_BATCH_SIZE]):
        if time.monotonic() - started > settings.NOTIFY_TIME_BUDGET_SECONDS:
            return counts
        outcome = event_try_expand(event_id=event_id)
        if outcome != "done":
            counts[f"events_{outcome}"] = counts.get(f"events_{outcome}", 0) + 1
    current = now or timezone.now()
    stale = current - timedelta(seconds=settings.NOTIFY_STUCK_SECONDS)
    for model, kind in ((Notification, "email"), (WebhookDelivery, "webhook")):
        # A sender that kept dying on the last attempt: give up rather than claim the row forever.
        lost = model.objects.filter(state=OutboxState.SENDING, claimed_at__lt=stale,
                                    attempts__gte=settings.NOTIFY_MAX_ATTEMPTS).update(
            state=OutboxState.FAILED, claimed_at=None,
            last_error=f"Gave up after {settings.NOTIFY_MAX_ATTEMPTS} attempts: the sender stopped without an "
                       "outcome (worker lost).")
        if lost:
            counts[f"{kind}_failed"] = lost
    for model, send, key, kind in ((Notification, email_send, "notification_id", "email"),
                                   (WebhookDelivery, webhook_deliver, "delivery_id", "webhook")):
        current = now or timezone.now()
        stale = current - timedelta(seconds=settings.NOTIFY_STUCK_SECONDS)
        due = model.objects.filter(
            Q(state=OutboxState.PENDING, next_attempt_at__lte=current)
            | Q(state=OutboxState.SENDING, claimed_at__lt=stale)
        ).order_by("next_attempt_at", "pk").values_list("pk", flat=True)[: settings.NOTIFY_BATCH_SIZE]
        for pk in list(due):
            if time.monotonic() - started > settings.NOTIFY_TIME_BUDGET_SECONDS:
                return counts
            state = send(**{key: pk}, now=now)
            if state:
                counts[f"{kind}_{state}"] = counts.get(f"{kind}_{state}", 0) + 1
    return counts


def warn_expiring(*, now: datetime | None = None) -> int:
    """Beat: emit ``expiring`` once for each open request whose window ends within
    ``NOTIFY_EXPIRY_WARNING_MINUTES`` (an ``EventMarker`` row makes it once)."""
    now = now or timezone.now()
    soon = now + timedelta(minutes=settings.NOTIFY_EXPIRY_WARNING_MINUTES)
    warned = EventMarker.objects.filter(event="expiring").values("request_id")
    candidates = AccessRequest.objects.filter(state=PortState.OPEN, end_at__gt=now, end_at__lte=soon).exclude(
        pk__in=warned)
    sent = 0
    for request in candidates:
        try:
            with transaction.atomic():
                EventMarker.objects.create(request=request, event="expiring")
                emit("expiring", request, end=utc_iso(request.end_at))
        except IntegrityError:
            continue  # another beat run marked it first
        sent += 1
    return sent


# --- webhooks -----------------------------------------------------------------------------------------------------
def redacted_url(url: str) -> str:
    """The URL as the audit trail keeps it: scheme and host, plus a fingerprint of the whole (Slack and Teams
    incoming-webhook URLs carry their credential in the path or query)."""
    parts = urlsplit(url)
    fingerprint = hashlib.sha256(url.encode()).hexdigest()[:12]
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/… (sha256:{fingerprint})"


def _webhook_state(webhook: Webhook) -> dict:
    return {"name": webhook.name, "url": redacted_url(webhook.url), "format": webhook.format,
            "events": list(webhook.events), "scope": webhook.scope, "active": webhook.active}


def _place(scope: str) -> dict:
    try:
        parsed = parse_scope(scope)
    except InvalidScope:
        return {}
    return {"subscription_id": parsed.subscription_id, "resource_group": (parsed.resource_group or "").lower(),
            "resource_id": parsed.id.lower() if parsed.vm_name else ""}


def _audit_webhook(actor, action: str, webhook: Webhook, before: dict | None, after: dict | None,
                   client_ip: str | None) -> None:
    audit_record(actor=actor, action=action, target_type="webhook", target_id=webhook.pk, target_label=webhook.name,
                 before=before, after=after, client_ip=client_ip, **_place(webhook.scope))


def webhook_create(*, actor, name: str, url: str, format: str, events: list[str], scope: str = "",
                   active: bool = True, client_ip: str | None = None) -> tuple[Webhook, str]:
    """Add a webhook with a new secret; returns it and the secret (shown to the user once)."""
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        webhook = Webhook.objects.create(name=name, url=url, secret=secret, format=format,
                                         events=[e for e in EVENTS if e in set(events)], scope=scope, active=active,
                                         created_by=actor, updated_by=actor)
        _audit_webhook(actor, "webhook.created", webhook, None, _webhook_state(webhook), client_ip)
    return webhook, secret


def webhook_update(*, actor, webhook: Webhook, client_ip: str | None = None, **fields) -> Webhook:
    """Change a webhook's name, URL, format, events, scope or active flag (the secret stays)."""
    allowed = {"name", "url", "format", "events", "scope", "active"}
    if set(fields) - allowed:
        raise TypeError(f"cannot change {sorted(set(fields) - allowed)}")
    if "events" in fields:
        fields["events"] = [e for e in EVENTS if e in set(fields["events"])]
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update().get(pk=webhook.pk)
        before = _webhook_state(webhook)
        for key, value in fields.items():
            setattr(webhook, key, value)
        webhook.updated_by = actor
        webhook.save()
        _audit_webhook(actor, "webhook.updated", webhook, before, _webhook_state(webhook), client_ip)
    return webhook


def webhook_rotate_secret(*, actor, webhook: Webhook, client_ip: str | None = None) -> str:
    """Give ``webhook`` a new secret (returned, to be shown once); the old one stops verifying at once."""
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        Webhook.objects.filter(pk=webhook.pk).update(secret_sealed=sealing.seal(secret), updated_by=actor,
                                                     updated_at=timezone.now())
        _audit_webhook(actor, "webhook.secret_rotated", webhook, None, None, client_ip)
    webhook.secret = secret
    return secret


def webhook_delete(*, actor, webhook: Webhook, client_ip: str | None = None) -> None:
    """Delete a webhook and its delivery history."""
    with transaction.atomic():
        _audit_webhook(actor, "webhook.deleted", webhook, _webhook_state(webhook), None, client_ip)
        webhook.delete()


def webhook_test(*, actor, webhook: Webhook, client_ip: str | None = None,
                 now: datetime | None = None) -> WebhookDelivery:
    """Queue a ``test`` delivery to ``webhook`` (signed like any other), sent by a task after commit."""
    now = now or timezone.now()
    delivery_id = uuid.uuid4()
    payload = payloads.event_payload(event=TEST_EVENT, delivery_id=str(delivery_id), occurred_at=now, request=None,
                                     actor=payloads.person(actor),
                                     detail={"message": f"Test delivery to webhook {webhook.name!r}."})
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(webhook=webhook, delivery_id=delivery_id, event=TEST_EVENT,
                                                  payload=payload, scope=webhook.scope, next_attempt_at=now)
        _audit_webhook(actor, "webhook.tested", webhook, None, {"delivery": str(delivery_id)}, client_ip)
        transaction.on_commit(lambda: enqueue_sending([], [delivery.pk]), robust=True)
    return delivery
