"""Webhook secrets are sealed at rest under SECRET_KEY: readable through its fallbacks while rotating, resealed by
``reseal_webhook_secrets``, and a secret no key opens fails its deliveries visibly instead of signing wrongly."""
from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from jitportal.lib.sealing import SecretUnreadable
from notifications import services
from notifications.models import OutboxState, Webhook, WebhookDelivery
from tests.notifications.factories import REQUEST_SCOPE, make_request, record_event
from tests.plugins.personas import make_persona

OLD_KEY = settings.SECRET_KEY
NEW_KEY = "a-rotated-secret-key-for-the-sealing-tests-0123456789abcdef"


def _stored(webhook: Webhook) -> str:
    return Webhook.objects.values_list("secret_sealed", flat=True).get(pk=webhook.pk)


@pytest.mark.django_db
def test_the_secret_is_stored_sealed_and_reads_back():
    webhook, secret = services.webhook_create(actor=None, name="ops", url="https://hooks.example.com/ops",
                                              format="json", events=["opened"])
    stored = _stored(webhook)
    assert secret not in stored and len(stored) > len(secret)
    assert Webhook.objects.get(pk=webhook.pk).secret == secret
    rotated = services.webhook_rotate_secret(actor=None, webhook=webhook)
    assert rotated != secret and rotated not in _stored(webhook)
    assert Webhook.objects.get(pk=webhook.pk).secret == rotated


@pytest.mark.django_db
def test_a_rotated_secret_key_reads_through_its_fallback_until_resealed(capsys):
    webhook, secret = services.webhook_create(actor=None, name="ops", url="https://hooks.example.com/ops",
                                              format="json", events=["opened"])
    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[]), pytest.raises(SecretUnreadable):
        Webhook.objects.get(pk=webhook.pk).secret  # noqa: B018 - the read is what is tested
    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[OLD_KEY]):
        assert Webhook.objects.get(pk=webhook.pk).secret == secret
        call_command("reseal_webhook_secrets")
    assert "1 webhook secret(s) sealed under the current key" in capsys.readouterr().out
    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[]):
        assert Webhook.objects.get(pk=webhook.pk).secret == secret


@pytest.mark.django_db
def test_reseal_names_the_webhooks_no_key_opens_and_fails():
    webhook, _ = services.webhook_create(actor=None, name="lost key", url="https://hooks.example.com/ops",
                                         format="json", events=["opened"])
    before = _stored(webhook)
    with (override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[]),
          pytest.raises(CommandError, match="1 webhook secret")):
        call_command("reseal_webhook_secrets")
    assert _stored(webhook) == before  # nothing is overwritten with something unreadable


@pytest.mark.django_db
def test_a_delivery_whose_secret_no_key_opens_fails_with_the_reason(client, persona_mappings, webhook_receiver):
    requester = make_persona("requester")
    webhook, _ = services.webhook_create(actor=None, name="ops", url=webhook_receiver.url, format="json",
                                         events=["opened"], scope=REQUEST_SCOPE)
    record_event(request=make_request(requester), event="opened", actor=requester, detail={})
    delivery = WebhookDelivery.objects.get()
    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[]):
        assert services.webhook_deliver(delivery_id=delivery.pk) == OutboxState.FAILED
    delivery.refresh_from_db()
    assert "secret cannot be read" in delivery.last_error and not webhook_receiver.received
    client.force_login(make_persona("policy_admin"))
    page = client.get(reverse("notifications:webhook_detail", args=[webhook.pk])).content.decode()
    assert "secret cannot be read" in page


@pytest.mark.django_db(transaction=True)
def test_the_migration_seals_secrets_stored_in_clear():
    executor = MigrationExecutor(connection)
    before, after = [("notifications", "0002_pending_events")], [("notifications", "0003_webhook_secret_sealed")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("notifications", "Webhook")
    old.objects.create(name="legacy", url="https://hooks.example.com/old", secret="clear-text-secret",
                       events=["opened"])
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    webhook = Webhook.objects.get(name="legacy")
    assert webhook.secret == "clear-text-secret" and "clear-text-secret" not in webhook.secret_sealed
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_the_migration_records_deliveries_as_made_for_their_webhooks_scope():
    """Deliveries stored before ``WebhookDelivery.scope`` keep being sent while their webhook's scope stays."""
    executor = MigrationExecutor(connection)
    before = [("notifications", "0003_webhook_secret_sealed")]
    after = [("notifications", "0004_webhook_delivery_scope")]
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    old_webhook, old_delivery = apps.get_model("notifications", "Webhook"), apps.get_model("notifications",
                                                                                            "WebhookDelivery")
    for name, scope in (("scoped", REQUEST_SCOPE), ("everywhere", "")):
        hook = old_webhook.objects.create(name=name, url="https://hooks.example.com/old", scope=scope,
                                          events=["opened"])
        old_delivery.objects.create(webhook=hook, event="opened", payload={}, next_attempt_at=timezone.now())
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    assert dict(WebhookDelivery.objects.values_list("webhook__name", "scope")) == {"scoped": REQUEST_SCOPE,
                                                                                  "everywhere": ""}
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db
def test_a_new_secret_waits_in_the_session_sealed_and_is_shown_once(client, persona_mappings):
    from django.contrib.sessions.models import Session

    client.force_login(make_persona("policy_admin"))
    response = client.post(reverse("notifications:webhook_add"), {
        "name": "Ops", "url": "https://hooks.example.com/ops", "format": "json", "events": ["opened"],
        "scope": REQUEST_SCOPE, "active": "on"})
    secret = Webhook.objects.get().secret
    stored = "".join(Session.objects.values_list("session_data", flat=True))
    assert secret not in stored and secret not in str([s.get_decoded() for s in Session.objects.all()])
    page = client.get(response["Location"])
    assert secret in page.content.decode() and "no-cache" in page["Cache-Control"]
    assert secret not in client.get(response["Location"]).content.decode()
