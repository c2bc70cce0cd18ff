"""Celery tasks of notifications (all on their own queue): expanding an access event into rows, one send per row,
and the beat's retries and ``expiring`` warnings.

Tasks take ids, claim their row by a conditional update and never retry themselves: a failed attempt sets the
row's next attempt time and ``deliver_due`` (beat) picks it up, so every countdown lives in the database.
"""
from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="notifications.expand_event", acks_late=True, ignore_result=True)
def expand_event(event_id: int) -> str:
    """Turn one access event into its e-mails and webhook deliveries (once) and enqueue their sending."""
    return services.event_try_expand(event_id=event_id)


@shared_task(name="notifications.send_email", acks_late=True)
def send_email(notification_id: int) -> str | None:
    """Send one e-mail (if it is still due)."""
    return services.email_send(notification_id=notification_id)


@shared_task(name="notifications.deliver_webhook", acks_late=True)
def deliver_webhook(delivery_id: int) -> str | None:
    """POST one webhook delivery (if it is still due)."""
    return services.webhook_deliver(delivery_id=delivery_id)


@shared_task(name="notifications.deliver_due", acks_late=True)
def deliver_due() -> dict:
    """Beat: send what is due (retries, and rows whose task the broker never carried)."""
    return services.deliver_due()


@shared_task(name="notifications.warn_expiring", acks_late=True)
def warn_expiring() -> int:
    """Beat (every minute): emit ``expiring`` once per request that ends soon."""
    return services.warn_expiring()
