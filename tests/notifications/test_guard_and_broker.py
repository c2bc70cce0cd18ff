"""The SSRF guard (https only, no private receivers, when production settings say so) and a down broker."""
from __future__ import annotations

import pytest

from notifications import services, transport
from notifications.forms import WebhookForm
from notifications.models import Notification, PendingEvent, WebhookDelivery
from policies.access.signals import emit
from tests.notifications.factories import REQUEST_SCOPE, make_request, make_webhook, record_event
from tests.plugins.personas import make_persona

pytestmark = pytest.mark.django_db


@pytest.fixture
def production_guard(settings):
    settings.WEBHOOK_ALLOW_HTTP = False
    settings.WEBHOOK_ALLOW_PRIVATE = False


@pytest.mark.parametrize("url", ["https://127.0.0.1/hook", "https://localhost:8443/hook", "https://[::1]/",
                                 "https://169.254.169.254/latest/meta-data/", "https://10.1.2.3/",
                                 "https://[::ffff:127.0.0.1]/", "https://0.0.0.0/"])
def test_private_and_local_receivers_are_refused(production_guard, url):
    with pytest.raises(transport.BlockedAddress, match="private or local address"):
        transport.check_url(url)


def test_public_receivers_and_http_follow_the_settings(production_guard, settings):
    transport.check_url("https://8.8.8.8/hook")  # a literal public address resolves without DNS
    with pytest.raises(transport.BlockedAddress, match="must use https"):
        transport.check_url("http://8.8.8.8/hook")
    with pytest.raises(transport.BlockedAddress, match="absolute https"):
        transport.check_url("ftp://8.8.8.8/hook")
    settings.WEBHOOK_ALLOW_HTTP = settings.WEBHOOK_ALLOW_PRIVATE = True
    transport.check_url("http://127.0.0.1:8000/hook")


def test_the_form_refuses_a_private_receiver(production_guard, persona_mappings):
    form = WebhookForm({"name": "x", "url": "https://127.0.0.1/hook", "format": "json", "events": ["opened"],
                        "scope": REQUEST_SCOPE, "active": "on"}, actor=make_persona("policy_admin"))
    assert not form.is_valid()
    assert "private or local address" in form.errors["url"][0]


def test_a_stored_webhook_that_now_points_inside_is_not_called(persona_mappings, webhook_receiver, settings):
    make_webhook(REQUEST_SCOPE, url=webhook_receiver.url)  # stored while allowed
    record_event(request=make_request(), event="opened")
    settings.WEBHOOK_ALLOW_PRIVATE = False
    [pk] = WebhookDelivery.objects.values_list("pk", flat=True)
    assert services.webhook_deliver(delivery_id=pk) == "failed"
    assert WebhookDelivery.objects.get().last_error.startswith("Not retried: Blocked: The host 127.0.0.1 resolves")
    assert webhook_receiver.received == []


@pytest.mark.django_db(transaction=True)
def test_events_while_the_broker_is_down_are_delivered_by_the_beat(persona_mappings, broker_down, webhook_receiver,
                                                                   mailoutbox, caplog):
    alice = make_persona("requester")
    webhook = make_webhook(REQUEST_SCOPE, url=webhook_receiver.url, events=["opened", "closed"])
    request = make_request(alice)
    emit("opened", request)  # outside a transaction: at once; the enqueue fails, the event stays
    emit("closed", request, reason="closed")
    assert list(PendingEvent.objects.values_list("event", flat=True)) == ["opened", "closed"]
    assert not Notification.objects.exists() and not WebhookDelivery.objects.exists()
    assert webhook_receiver.received == []
    assert "could not enqueue" in caplog.text

    # What the beat runs: it expands both events (their sending cannot be enqueued either) and sends the rows.
    assert services.deliver_due() == {"events_expanded": 2, "email_sent": 1, "webhook_sent": 2}
    assert not PendingEvent.objects.exists()
    posts = webhook_receiver.wait_for(2)
    assert [p.json()["event"] for p in posts] == ["opened", "closed"]
    assert posts[1].json()["detail"] == {"reason": "closed"}
    assert all(webhook_receiver.verify(p, webhook.secret) for p in posts)
    assert [m.to for m in mailoutbox] == [[alice.email]]
