"""The tasks are registered under the names the beat schedule uses, and run their services."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings

from jitportal.celery import app as celery_app
from notifications import services, tasks
from notifications.models import PendingEvent, WebhookDelivery
from policies.access.signals import emit
from tests.notifications.factories import REQUEST_SCOPE, make_request, make_webhook


def test_the_beat_schedule_names_registered_tasks():
    celery_app.loader.import_default_modules()
    names = {entry["task"] for key, entry in settings.CELERY_BEAT_SCHEDULE.items() if key.startswith("notifications")}
    assert names == {"notifications.deliver_due", "notifications.warn_expiring"}
    assert names | {"notifications.send_email", "notifications.deliver_webhook"} <= set(celery_app.tasks)
    assert "notifications.tasks" in settings.CELERY_IMPORTS


@pytest.mark.django_db
def test_tasks_run_their_services(webhook_receiver, mailoutbox, django_capture_on_commit_callbacks, eager_celery):
    request = make_request(ends_in=timedelta(minutes=3))
    make_webhook(REQUEST_SCOPE, url=webhook_receiver.url, events=["expiring"])
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.warn_expiring.apply().get() == 1
    [post] = webhook_receiver.wait_for(1)
    assert post.json()["detail"]["end"].endswith("Z") and post.json()["request"]["id"] == request.pk
    assert tasks.deliver_due.apply().get() == {}
    assert WebhookDelivery.objects.get().state == "sent"


@pytest.mark.django_db
def test_a_detail_with_times_is_stored_as_json(django_capture_on_commit_callbacks):
    request = make_request()
    make_webhook(REQUEST_SCOPE, events=["closed"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        emit("closed", request, reason="expired", at=request.end_at)
    callbacks[0]()  # the signal, without the enqueue that follows
    event = PendingEvent.objects.get()
    assert event.detail["at"].startswith(str(request.end_at.year))
    services.event_expand(event_id=event.pk)
    assert WebhookDelivery.objects.get().payload["detail"]["at"].startswith(str(request.end_at.year))


def test_notification_tasks_have_their_own_queue_so_that_opens_never_wait_behind_them():
    router = celery_app.amqp.router
    for name in ("notifications.expand_event", "notifications.send_email", "notifications.deliver_webhook",
                 "notifications.deliver_due"):
        assert router.route({}, name)["queue"].name == settings.CELERY_NOTIFICATIONS_QUEUE
    for name in ("access.open_ports", "access.close_ports"):
        assert router.route({}, name)["queue"].name == settings.CELERY_TASK_DEFAULT_QUEUE
    assert settings.CELERY_NOTIFICATIONS_QUEUE != settings.CELERY_TASK_DEFAULT_QUEUE
