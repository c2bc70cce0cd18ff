"""The receiver's outbox rows, signed deliveries to a real local HTTP server, retries, giving up, e-mail."""
from __future__ import annotations

import logging
import re
import socket
from datetime import UTC, timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from notifications import services, tasks
from notifications.models import EventMarker, Notification, OutboxState, PendingEvent, WebhookDelivery
from policies.access.signals import emit
from tests.notifications.factories import REQUEST_SCOPE, make_request, make_webhook, record_event
from tests.plugins.personas import OUT_OF_SCOPE, make_persona
from tests.plugins.webhooks import Answer

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(persona_mappings):
    return make_persona("requester")


def deliver_all(**kwargs) -> list[str | None]:
    return [services.webhook_deliver(delivery_id=pk, **kwargs)
            for pk in WebhookDelivery.objects.order_by("pk").values_list("pk", flat=True)]


def test_the_event_is_stored_with_the_change_and_expanded_only_after_it_commits(
        alice, django_capture_on_commit_callbacks, eager_celery, webhook_receiver):
    request = make_request(alice)
    webhook = make_webhook(REQUEST_SCOPE, url=webhook_receiver.url, events=["opened"])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            emit("opened", request, actor=None)
            assert PendingEvent.objects.get().event == "opened"  # in the change's own transaction (an outbox)
            assert not Notification.objects.exists()
        assert not Notification.objects.exists()  # expanded only once the change commits
    # The event's expansion (a task, eager here), then the rows' sending.
    assert len(callbacks) == 2
    assert not PendingEvent.objects.exists()  # expanded once, then gone
    note = Notification.objects.get()
    assert (note.event, note.recipient, note.address, note.state) == ("opened", alice, alice.email, "sent")
    assert mail.outbox[0].to == [alice.email]
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == "sent"
    assert delivery.payload["event"] == "opened"
    assert delivery.payload["request"]["id"] == request.pk
    assert delivery.payload["delivery"] == str(delivery.delivery_id)
    [received] = webhook_receiver.wait_for(1)
    assert webhook_receiver.verify(received, webhook.secret)


def test_an_event_is_expanded_once_and_renders_nothing_on_the_requests_path(alice, django_capture_on_commit_callbacks):
    request = make_request(alice)
    make_webhook(REQUEST_SCOPE, events=["opened"])
    with django_capture_on_commit_callbacks(execute=False), transaction.atomic():
        emit("opened", request, actor=None)  # one row, nothing rendered; its expansion is not run here
    event = PendingEvent.objects.get()
    assert (event.event, event.request_id, event.actor_id) == ("opened", request.pk, None)
    assert not Notification.objects.exists() and not WebhookDelivery.objects.exists()
    notes, deliveries = services.event_expand(event_id=event.pk)
    assert len(notes) == 1 and len(deliveries) == 1
    assert services.event_expand(event_id=event.pk) is None  # a second run (redelivery, the beat) adds nothing
    assert (Notification.objects.count(), WebhookDelivery.objects.count()) == (1, 1)
    assert WebhookDelivery.objects.get().payload["occurred_at"].startswith(str(event.occurred_at.year))


def test_an_event_that_cannot_be_expanded_does_not_hold_up_the_others(alice, monkeypatch, caplog, settings):
    settings.NOTIFY_MAX_ATTEMPTS = 2
    broken, fine = make_request(alice), make_request(alice)
    services.event_queue(request=broken, event="opened")
    services.event_queue(request=fine, event="opened")
    real = services.payloads.email_text

    def email_text(*, request, **kwargs):
        if request.pk == broken.pk:
            raise RuntimeError("template broke")
        return real(request=request, **kwargs)

    monkeypatch.setattr(services.payloads, "email_text", email_text)
    assert services.deliver_due() == {"events_failed": 1, "events_expanded": 1, "email_sent": 1}
    kept = PendingEvent.objects.get()
    assert (kept.request_id, kept.attempts, kept.last_error) == (broken.pk, 1, "RuntimeError: template broke")
    assert "could not be expanded" in caplog.text
    assert tasks.expand_event.apply(args=[kept.pk]).get() == "failed"  # the task counts its failures too
    assert "gave up expanding event" in caplog.text
    assert services.deliver_due() == {}  # given up: no longer tried, the row keeps the reason
    assert PendingEvent.objects.get().attempts == 2


def test_an_event_expanded_meanwhile_by_another_run_adds_nothing(alice, monkeypatch):
    request = make_request(alice)
    event_id = services.event_queue(request=request, event="opened")
    real = services._compose

    def compose_while_another_run_finishes(**kwargs):
        composed = real(**kwargs)
        PendingEvent.objects.filter(pk=event_id).delete()  # the other run's transaction committed first
        return composed

    monkeypatch.setattr(services, "_compose", compose_while_another_run_finishes)
    assert services.event_expand(event_id=event_id) is None
    assert not Notification.objects.exists()


def test_a_rolled_back_change_notifies_nobody(alice, django_capture_on_commit_callbacks):
    request = make_request(alice)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        emit("opened", request)
        raise RuntimeError("the change failed")
    assert not Notification.objects.exists() and not PendingEvent.objects.exists()


def test_a_failing_receiver_loses_only_its_own_writes_never_the_change(alice, caplog):
    from policies.access import signals
    from policies.access.models import AccessRequest

    request = make_request(alice)

    def broken(sender, **kwargs):
        AccessRequest.objects.create(requester=alice, justification="a duplicate key",
                                     idempotency_key=request.idempotency_key)

    signals.access_event.connect(broken, weak=False)
    try:
        with transaction.atomic():
            AccessRequest.objects.filter(pk=request.pk).update(justification="changed")
            emit("opened", request)
    finally:
        signals.access_event.disconnect(broken)
    assert AccessRequest.objects.get(pk=request.pk).justification == "changed"
    assert "receiver" in caplog.text and "failed on opened" in caplog.text
    assert AccessRequest.objects.count() == 1


def test_a_receivers_failed_statement_never_undoes_the_change(alice, caplog):
    from django.db import connection

    from policies.access import signals
    from policies.access.models import AccessRequest

    request = make_request(alice)

    def broken(sender, **kwargs):
        with connection.cursor() as cursor:  # not a save(): Django does not mark the block for rollback
            cursor.execute("SELECT * FROM no_such_table")

    signals.access_event.connect(broken, weak=False)
    try:
        with transaction.atomic():
            AccessRequest.objects.filter(pk=request.pk).update(justification="changed")
            emit("opened", request)
            AccessRequest.objects.filter(pk=request.pk).update(rule_name="after the event")
    finally:
        signals.access_event.disconnect(broken)
    request.refresh_from_db()
    assert (request.justification, request.rule_name) == ("changed", "after the event")
    assert "failed on opened" in caplog.text


def test_a_delivery_is_signed_so_that_the_receiver_can_verify_it(alice, webhook_receiver):
    request = make_request(alice)
    webhook = make_webhook(REQUEST_SCOPE, url=webhook_receiver.url, events=["opened", "closed"])
    record_event(request=request, event="opened", actor=alice, detail={})
    assert deliver_all() == ["sent"]
    [received] = webhook_receiver.wait_for(1)
    delivery = WebhookDelivery.objects.get()
    assert webhook_receiver.verify(received, webhook.secret)
    assert not webhook_receiver.verify(received, "not-the-secret")
    assert received.header("X-Jitportal-Event") == "opened"
    assert received.header("X-Jitportal-Delivery") == str(delivery.delivery_id)
    body = received.json()
    assert body["event"] == "opened" and body["delivery"] == str(delivery.delivery_id)
    assert body["actor"]["username"] == alice.username
    assert body["request"]["url"] == f"http://testserver/requests/{request.pk}/"
    assert body["request"]["justification"] == "Patch the kernel (CHG-1234)"
    [vm] = body["request"]["vms"]
    assert vm["name"] == "vm-matrix" and vm["ports"][0]["number"] == 22
    assert vm["ports"][0]["endTimeUtc"].endswith("Z")
    assert delivery.state == "sent" and delivery.last_status == 200 and delivery.attempts == 1


def test_a_tampered_body_fails_verification(alice, webhook_receiver):
    webhook = make_webhook(REQUEST_SCOPE, url=webhook_receiver.url)
    record_event(request=make_request(alice), event="opened")
    deliver_all()
    [received] = webhook_receiver.wait_for(1)
    forged = type(received)(received.path, received.headers, received.body.replace(b"opened", b"closed"))
    assert not webhook_receiver.verify(forged, webhook.secret)


def test_it_retries_with_backoff_after_500_and_waits_for_retry_after_on_429(alice, webhook_receiver, settings):
    services.preference_save(actor=alice, requester_events=[], approver_events=[])  # webhooks only
    settings.NOTIFY_RETRY_BASE_SECONDS = 10
    webhook = make_webhook(REQUEST_SCOPE, url=webhook_receiver.url)
    webhook_receiver.respond_with(500, Answer(429, {"Retry-After": "120"}, b"slow down"))
    record_event(request=make_request(alice), event="opened")
    delivery = WebhookDelivery.objects.get()
    t0 = timezone.now()
    assert services.webhook_deliver(delivery_id=delivery.pk, now=t0) == "pending"
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.last_status, delivery.last_error) == (1, 500, "HTTP 500")
    assert delivery.next_attempt_at == t0 + timedelta(seconds=10)
    assert services.deliver_due(now=t0 + timedelta(seconds=9)) == {}  # not due yet

    t1 = t0 + timedelta(seconds=10)
    assert services.deliver_due(now=t1) == {"webhook_pending": 1}
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.last_status) == (2, 429)
    assert delivery.next_attempt_at == t1 + timedelta(seconds=120)  # Retry-After beats the 20 s backoff
    assert services.deliver_due(now=t1 + timedelta(seconds=60)) == {}

    assert services.deliver_due(now=t1 + timedelta(seconds=120)) == {"webhook_sent": 1}
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status, delivery.last_error) == ("sent", 3, 200, "")
    posts = webhook_receiver.wait_for(3)
    assert {p.header("X-Jitportal-Delivery") for p in posts} == {str(delivery.delivery_id)}
    assert all(webhook_receiver.verify(p, webhook.secret) for p in posts)


@pytest.mark.parametrize("retry_after", ["\u00b2", "\u00b9\u00b2\u00b3", "99999999999999999999999999"])
def test_a_retry_after_the_portal_cannot_read_as_a_number_is_only_a_backoff(alice, webhook_receiver, settings,
                                                                              retry_after):
    services.preference_save(actor=alice, requester_events=[], approver_events=[])  # webhooks only
    settings.NOTIFY_RETRY_BASE_SECONDS = 10
    make_webhook(REQUEST_SCOPE, url=webhook_receiver.url)
    webhook_receiver.respond_with(Answer(429, {"Retry-After": retry_after}, b"slow down"))
    record_event(request=make_request(alice), event="opened")
    t0 = timezone.now()
    assert services.deliver_due(now=t0) == {"webhook_pending": 1}  # a superscript digit is no number of seconds
    delivery = WebhookDelivery.objects.get()
    assert (delivery.attempts, delivery.last_status, delivery.last_error) == (1, 429, "HTTP 429: slow down")
    assert t0 + timedelta(seconds=10) <= delivery.next_attempt_at <= t0 + timedelta(
        seconds=settings.NOTIFY_RETRY_MAX_SECONDS)


def test_a_receivers_answer_holding_nul_characters_is_kept_without_them(alice, webhook_receiver, settings):
    """PostgreSQL stores no NUL in text: the reason would fail to save, and the send with it."""
    services.preference_save(actor=alice, requester_events=[], approver_events=[])  # webhooks only
    make_webhook(REQUEST_SCOPE, url=webhook_receiver.url)
    webhook_receiver.respond_with(Answer(500, body=b"bad\x00gateway"), Answer(302, {"Location": "http://a\x00b/"}))
    record_event(request=make_request(alice), event="opened")
    delivery = WebhookDelivery.objects.get()
    now = timezone.now()
    assert services.webhook_deliver(delivery_id=delivery.pk, now=now) == "pending"
    delivery.refresh_from_db()
    assert (delivery.last_status, delivery.last_error) == (500, "HTTP 500: bad\ufffdgateway")
    assert services.webhook_deliver(delivery_id=delivery.pk, now=now + timedelta(hours=1)) == "failed"
    delivery.refresh_from_db()
    assert delivery.last_status == 302 and "\x00" not in delivery.last_error


def test_it_gives_up_after_the_last_attempt_and_keeps_the_reason(alice, webhook_receiver, settings):
    services.preference_save(actor=alice, requester_events=[], approver_events=[])  # webhooks only
    settings.NOTIFY_MAX_ATTEMPTS = 3
    settings.NOTIFY_RETRY_BASE_SECONDS = 1
    make_webhook(REQUEST_SCOPE, url=webhook_receiver.url)
    webhook_receiver.respond_with(Answer(503, body=b"down for maintenance"), 502, 500)
    record_event(request=make_request(alice), event="opened")
    later = timezone.now()
    states = []
    for _ in range(3):
        later += timedelta(minutes=5)
        states.append(services.deliver_due(now=later))
    assert states == [{"webhook_pending": 1}, {"webhook_pending": 1}, {"webhook_failed": 1}]
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == OutboxState.FAILED and delivery.attempts == 3
    assert delivery.last_error == "Gave up after 3 attempts. Last error: HTTP 500"
    assert services.deliver_due(now=later + timedelta(days=1)) == {}
    assert len(webhook_receiver.received) == 3


def test_a_refusal_that_a_retry_cannot_fix_is_not_retried(alice, webhook_receiver):
    make_webhook(REQUEST_SCOPE, url=webhook_receiver.url)
    webhook_receiver.respond_with(Answer(404, body=b"no such hook"))
    record_event(request=make_request(alice), event="opened")
    assert deliver_all() == ["failed"]
    assert WebhookDelivery.objects.get().last_error == "Not retried: HTTP 404: no such hook"


def test_redirects_are_not_followed(alice, webhook_receiver):
    make_webhook(REQUEST_SCOPE, url=webhook_receiver.url)
    webhook_receiver.respond_with(Answer(302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""))
    record_event(request=make_request(alice), event="opened")
    assert deliver_all() == ["failed"]
    assert "redirect to http://169.254.169.254 not followed" in WebhookDelivery.objects.get().last_error
    assert len(webhook_receiver.received) == 1


def test_an_unreachable_receiver_is_retried(alice, settings):
    make_webhook(REQUEST_SCOPE, url="http://127.0.0.1:9/hook")  # discard port: connection refused
    record_event(request=make_request(alice), event="opened")
    assert deliver_all() == ["pending"]
    assert "ConnectionError" in WebhookDelivery.objects.get().last_error


SECRET_TAIL = "/services/T0SECRETTEAM/B0SECRETHOOK/SECRETPATHTOKEN?token=SECRETQUERYTOKEN"
SECRETS = ("SECRETTEAM", "SECRETHOOK", "SECRETPATHTOKEN", "SECRETQUERYTOKEN")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again once the probe is: nothing listens there


def test_a_failed_delivery_never_stores_or_logs_the_secret_part_of_the_url(alice, webhook_receiver, caplog,
                                                                           settings):
    """Slack/Teams-style URLs carry their credential in the path or query; requests' and urllib3's errors name
    the URL ("Max retries exceeded with url: /services/...?token=..."), a redirect or an error body may too."""
    settings.NOTIFY_MAX_ATTEMPTS = 1
    caplog.set_level(logging.INFO)
    receiver = webhook_receiver.url.removesuffix("/hook")
    refused = f"http://127.0.0.1:{closed_port()}"
    make_webhook(REQUEST_SCOPE, url=refused + SECRET_TAIL, name="refused")
    make_webhook(REQUEST_SCOPE, url=receiver + SECRET_TAIL, name="echoes the URL")
    make_webhook(REQUEST_SCOPE, url=receiver + SECRET_TAIL.replace("?", "/again?"), name="redirects")
    make_webhook(REQUEST_SCOPE, url=f"http://hooks.invalid{SECRET_TAIL}", name="unresolvable")
    make_webhook(REQUEST_SCOPE, url=f"http://user:SECRETQUERYTOKEN@{receiver.removeprefix('http://')}/x", name="creds")
    answers = {
        "echoes the URL": Answer(500, body=f"no hook at {SECRET_TAIL} ({receiver}{SECRET_TAIL})".encode()),
        "redirects": Answer(301, {"Location": "https://127.0.0.1" + SECRET_TAIL.replace("?", "/again?")}, b""),
        "creds": Answer(403, body=b"bad credentials SECRETQUERYTOKEN"),
    }
    record_event(request=make_request(alice), event="opened")
    for delivery in WebhookDelivery.objects.select_related("webhook"):
        if delivery.webhook.name in answers:
            webhook_receiver.respond_with(answers[delivery.webhook.name])
        assert services.webhook_deliver(delivery_id=delivery.pk) == "failed"
    assert len(webhook_receiver.received) == 3
    errors = {d.webhook.name: d.last_error for d in WebhookDelivery.objects.select_related("webhook")}
    for secret in SECRETS:
        assert not any(secret in error for error in errors.values()), (secret, errors)
        assert secret not in caplog.text
    assert f"ConnectionError: POST to {refused} failed" in errors["refused"]
    assert "Connection refused" in errors["refused"]
    assert errors["echoes the URL"].startswith("Gave up after 1 attempts. Last error: HTTP 500: no hook at ")
    assert "redirect to https://127.0.0.1 not followed" in errors["redirects"]
    assert "hooks.invalid cannot be resolved" in errors["unresolvable"]
    assert errors["creds"].startswith("Not retried: HTTP 403: bad credentials ")


def test_slack_and_teams_webhooks_get_their_shapes(alice, webhook_receiver):
    make_webhook(REQUEST_SCOPE, url=webhook_receiver.url + "/slack", format="slack", name="slack")
    make_webhook(REQUEST_SCOPE, url=webhook_receiver.url + "/teams", format="teams", name="teams")
    request = make_request(alice, justification="<b>urgent</b> & now")
    record_event(request=request, event="opened", actor=alice)
    deliver_all()
    posts = {p.path.rsplit("/", 1)[-1]: p.json() for p in webhook_receiver.wait_for(2)}

    slack = posts["slack"]
    assert slack["text"] == f"Access request #{request.pk} is open"
    assert [b["type"] for b in slack["blocks"]] == ["section", "section", "context"]
    assert f"<http://testserver/requests/{request.pk}/|Open in the portal>" in slack["blocks"][0]["text"]["text"]
    assert {f["type"] for f in slack["blocks"][1]["fields"]} == {"plain_text"}  # shown as typed, never parsed
    fields = " ".join(f["text"] for f in slack["blocks"][1]["fields"])
    assert "Justification:\n<b>urgent</b> & now" in fields
    assert "vm-matrix: 22" in fields

    teams = posts["teams"]
    assert teams["type"] == "message"
    [attachment] = teams["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"]
    assert card["body"][0]["text"] == f"Access request #{request.pk} is open"
    assert {"title": "Justification", "value": "\\<b\\>urgent\\</b\\> & now"} in card["body"][1]["facts"]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open in the portal",
                                "url": f"http://testserver/requests/{request.pk}/"}]


MARKDOWN = "[click](https://evil.example) **x** _y_ ~z~ `c` <https://evil.example|here>\n- item\n> quote\n1. one"


def test_chat_cards_show_the_requesters_text_as_typed_not_as_markdown(alice, webhook_receiver):
    make_webhook(REQUEST_SCOPE, url=webhook_receiver.url + "/slack", format="slack", name="slack")
    make_webhook(REQUEST_SCOPE, url=webhook_receiver.url + "/teams", format="teams", name="teams")
    record_event(request=make_request(alice, justification=MARKDOWN), event="opened", actor=alice)
    deliver_all()
    posts = {p.path.rsplit("/", 1)[-1]: p.json() for p in webhook_receiver.wait_for(2)}
    facts = {f["title"]: f["value"] for f in posts["teams"]["attachments"][0]["content"]["body"][1]["facts"]}
    assert facts["Justification"] == ("\\[click\\]\\(https://evil.example\\) \\*\\*x\\*\\* \\_y\\_ \\~z\\~ \\`c\\` "
                                      "\\<https://evil.example|here\\>\n\\- item\n\\> quote\n1\\. one")
    fields = posts["slack"]["blocks"][1]["fields"]
    assert {"type": "plain_text", "text": f"Justification:\n{MARKDOWN}", "emoji": False} in fields  # never formatted


def test_chat_cards_asking_approvers_lead_to_the_review_page(alice, webhook_receiver):
    make_webhook(REQUEST_SCOPE, url=webhook_receiver.url + "/slack", format="slack", name="slack",
                 events=["needs_approval"])
    make_webhook(REQUEST_SCOPE, url=webhook_receiver.url + "/teams", format="teams", name="teams",
                 events=["needs_approval"])
    request = make_request(alice)
    record_event(request=request, event="needs_approval", actor=alice)
    deliver_all()
    posts = {p.path.rsplit("/", 1)[-1]: p.json() for p in webhook_receiver.wait_for(2)}
    review = f"http://testserver/requests/{request.pk}/review/"  # an approver may not open the request page
    assert f"<{review}|Review in the portal>" in posts["slack"]["blocks"][0]["text"]["text"]
    card = posts["teams"]["attachments"][0]["content"]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Review in the portal", "url": review}]


def test_webhooks_get_only_their_events_and_scope(alice):
    make_webhook(REQUEST_SCOPE, events=["opened"], name="in scope")
    make_webhook(OUT_OF_SCOPE, events=["opened"], name="other subscription")
    make_webhook(REQUEST_SCOPE, events=["closed"], name="other event")
    disabled = make_webhook(REQUEST_SCOPE, events=["opened"], name="disabled")
    services.webhook_update(actor=None, webhook=disabled, active=False)
    record_event(request=make_request(alice), event="opened")
    assert list(WebhookDelivery.objects.values_list("webhook__name", flat=True)) == ["in scope"]


def test_a_delivery_made_before_its_webhooks_scope_was_narrowed_is_not_sent(alice, webhook_receiver):
    """Its payload names the VMs the old scope held: once the scope no longer holds that one, it is not sent (nor
    retried), and says why."""
    from tests.plugins.personas import IN_SCOPE

    webhook = make_webhook(IN_SCOPE, url=webhook_receiver.url)
    record_event(request=make_request(alice), event="opened")
    narrower = f"{IN_SCOPE}/resourceGroups/rg-data-prod"
    services.webhook_update(actor=None, webhook=webhook, scope=narrower)
    assert deliver_all() == ["failed"]
    delivery = WebhookDelivery.objects.get()
    assert delivery.last_error == (f"Not retried: the webhook's scope changed to {narrower} after this was made "
                                   f"for {IN_SCOPE}")
    assert "webhook_sent" not in services.deliver_due(now=timezone.now() + timedelta(days=1))
    assert webhook_receiver.received == []


def test_a_delivery_is_still_sent_after_its_webhooks_scope_was_widened_and_its_url_fixed(alice, webhook_receiver):
    """A wider scope holds everything the payload names; a new URL (a typo fixed) takes the deliveries waiting."""
    from tests.plugins.personas import IN_SCOPE

    webhook = make_webhook(REQUEST_SCOPE, url=f"http://127.0.0.1:{closed_port()}/hook")
    record_event(request=make_request(alice), event="opened")
    assert deliver_all() == ["pending"]
    services.webhook_update(actor=None, webhook=webhook, scope=IN_SCOPE, url=webhook_receiver.url)
    assert services.deliver_due(now=timezone.now() + timedelta(days=1))["webhook_sent"] == 1
    [received] = webhook_receiver.wait_for(1)
    assert received.json()["request"]["vms"][0]["name"] == "vm-matrix"


def test_a_webhook_of_one_scope_is_told_nothing_of_the_requests_vms_in_another(alice):
    from tests.plugins.personas import IN_SCOPE
    from tests.policies.access.factories import add_vm_at

    request = make_request(alice)  # port 22 on a VM in REQUEST_SCOPE, and port 3389 on one in another group:
    add_vm_at(request, f"{IN_SCOPE}/resourceGroups/rg-elsewhere")
    make_webhook(REQUEST_SCOPE, events=["opened"], name="group")
    make_webhook(IN_SCOPE, events=["opened"], name="subscription")
    record_event(request=request, event="opened")
    seen = {d.webhook.name: [(vm["id"], [p["number"] for p in vm["ports"]]) for vm in d.payload["request"]["vms"]]
            for d in WebhookDelivery.objects.select_related("webhook")}
    assert seen["group"] == [(request.vms.get(resource_group="rg-notify").vm_arm_id, [22])]
    assert sorted(ports for _vm, ports in seen["subscription"]) == [[22], [3389]]


def test_a_webhook_of_one_scope_gets_no_detail_that_may_name_vms_of_another(alice):
    from datetime import timedelta

    from tests.plugins.personas import IN_SCOPE
    from tests.policies.access.factories import add_vm_at

    request = make_request(alice)
    later = request.end_at + timedelta(hours=2)  # the VM elsewhere ends later: the group must not learn when
    add_vm_at(request, f"{IN_SCOPE}/resourceGroups/rg-elsewhere", name="vm-elsewhere", state="failed", end_at=later)
    type(request).objects.filter(pk=request.pk).update(end_at=later)
    make_webhook(REQUEST_SCOPE, events=["failed"], name="group")
    make_webhook(IN_SCOPE, events=["failed"], name="subscription")
    record_event(request=request, event="failed", actor=None,
                 detail={"error": "vm-elsewhere: The VM has no network security group"})
    sent = {d.webhook.name: d.payload for d in WebhookDelivery.objects.select_related("webhook")}
    assert "vm-elsewhere" not in str(sent["group"]) and sent["group"]["request"]["vms_elsewhere"] == 1
    assert sent["group"]["detail"]["error"].startswith("Withheld")
    assert sent["group"]["request"]["end"] != sent["subscription"]["request"]["end"]
    assert sent["subscription"]["detail"]["error"] == "vm-elsewhere: The VM has no network security group"
    assert "vms_elsewhere" not in sent["subscription"]["request"]


def test_a_webhook_of_one_scope_is_not_told_who_removed_jit_from_a_vm_of_another(alice):
    from tests.plugins.personas import IN_SCOPE
    from tests.policies.access.factories import add_vm_at

    request = make_request(alice)
    add_vm_at(request, f"{IN_SCOPE}/resourceGroups/rg-elsewhere", name="vm-elsewhere", state="closed")
    make_webhook(REQUEST_SCOPE, events=["closed"], name="group")
    make_webhook(IN_SCOPE, events=["closed"], name="subscription")
    removed = [{"vm": "vm-elsewhere", "ports": [22], "whole": True, "by": "Bob (bob@contoso.example)",
                "at": "2026-11-27T14:02:31.000000Z"}]
    record_event(request=request, event="closed", detail={"reason": "revoked", "azure_reason": "UserRequested",
                                                          "removed": removed})
    sent = {d.webhook.name: d.payload for d in WebhookDelivery.objects.select_related("webhook")}
    assert "vm-elsewhere" not in str(sent["group"]) and sent["group"]["detail"]["removed"].startswith("Withheld")
    assert sent["subscription"]["detail"]["removed"] == removed


def _spanning_web_and_data(alice):
    """A request on vm-matrix in rg-web-prod (port 22) and sql-07 in rg-data-prod (port 1433), whose justification
    names sql-07; a JSON, a Slack and a Teams webhook at rg-web-prod, and a JSON one at the subscription."""
    from tests.plugins.personas import IN_SCOPE
    from tests.policies.access.factories import add_named_vm

    request = make_request(alice, scope=f"{IN_SCOPE}/resourceGroups/rg-web-prod",
                           justification="Restart vm-matrix after the sql-07 failover (CHG-1234)")
    data = add_named_vm(request, f"{IN_SCOPE}/resourceGroups/rg-data-prod", "sql-07", number=1433,
                        address="51.105.20.9")
    events = ["approved", "opened", "expiring"]
    for format_ in ("json", "slack", "teams"):
        make_webhook(f"{IN_SCOPE}/resourceGroups/rg-web-prod", format=format_, name=format_, events=events)
    make_webhook(IN_SCOPE, name="subscription", events=events)
    return request, data


def test_a_webhook_at_one_resource_group_is_sent_nothing_of_a_requests_vm_in_another_in_any_format(alice):
    """As a reader of rg-web-prod sees the request's page: its VM there only (sql-07 counted, never named), and the
    justification and an approver's comment naming sql-07 withheld; in the JSON payload and the Slack and Teams
    cards made from it. The subscription's webhook, whose scope holds both VMs, gets all of it."""
    import json

    from jitportal.lib.times import utc_iso
    from notifications.payloads import body_for

    withheld = "[withheld: outside this webhook's scope]"
    request, data = _spanning_web_and_data(alice)
    later = request.end_at + timedelta(hours=2)
    data.ports.update(end_at=later)
    type(request).objects.filter(pk=request.pk).update(end_at=later)
    record_event(request=request, event="approved", actor=None,
                 detail={"comment": "ok, sql-07 too", "level": 1, "complete": True})
    record_event(request=request, event="opened", detail={"ports": [22, 1433]})
    record_event(request=request, event="expiring", detail={"end": utc_iso(later)})
    deliveries = list(WebhookDelivery.objects.select_related("webhook").order_by("pk"))
    assert len(deliveries) == 3 * 4
    web = request.vms.get(vm_name="vm-matrix")
    for delivery in deliveries:
        payload = delivery.payload
        summary, detail = payload["request"], payload["detail"]
        if delivery.webhook.name == "subscription":
            assert summary["justification"] == "Restart vm-matrix after the sql-07 failover (CHG-1234)"
            assert sorted(vm["name"] for vm in summary["vms"]) == ["sql-07", "vm-matrix"]
            assert "vms_elsewhere" not in summary
            assert detail == {"approved": {"comment": "ok, sql-07 too", "level": 1, "complete": True},
                              "opened": {"ports": [22, 1433]},
                              "expiring": {"end": utc_iso(later)}}[delivery.event]
            continue
        assert [(vm["name"], vm["id"], [p["number"] for p in vm["ports"]]) for vm in summary["vms"]] == [
            ("vm-matrix", web.vm_arm_id, [22])]
        assert summary["vms_elsewhere"] == 1
        assert summary["justification"] == withheld
        assert detail == {"approved": {"comment": withheld, "level": 1, "complete": True},
                          "opened": {"ports": [22]},
                          "expiring": {"end": summary["end"]}}[delivery.event]
        assert summary["end"] == utc_iso(request.end_at)  # vm-matrix's, not the later end of sql-07
        body = json.dumps(body_for(delivery.webhook.format, payload))
        for secret in ("sql-07", data.vm_arm_id.lower(), "rg-data-prod", "failover", "51.105.20.9",
                       utc_iso(later)):
            assert secret not in body.lower(), (delivery.webhook.name, delivery.event, secret)
        if delivery.webhook.format != "json":  # the cards (Teams escapes Markdown marks with a backslash)
            card = body.replace("\\\\", "")
            assert "vm-matrix: 22 (and 1 VM outside this webhook's scope)" in card and withheld in card


def test_a_webhook_whose_scope_holds_every_vm_of_a_request_gets_its_text_whole(alice):
    from tests.plugins.personas import IN_SCOPE
    from tests.policies.access.factories import add_named_vm

    request = make_request(alice, justification="Restart vm-matrix after the sql-07 failover")
    add_named_vm(request, REQUEST_SCOPE, "sql-07", number=1433)
    make_webhook(REQUEST_SCOPE, name="group", events=["approved"])
    make_webhook(f"{IN_SCOPE}/resourceGroups/rg-other", name="elsewhere", events=["approved"])
    record_event(request=request, event="approved", actor=None, detail={"comment": "sql-07 is fine"})
    [delivery] = WebhookDelivery.objects.all()
    assert delivery.payload["request"]["justification"] == "Restart vm-matrix after the sql-07 failover"
    assert delivery.payload["detail"] == {"comment": "sql-07 is fine"}
    assert len(delivery.payload["request"]["vms"]) == 2 and "vms_elsewhere" not in delivery.payload["request"]


def test_emails_about_a_request_spanning_scopes_go_to_its_requester_and_approvers_at_every_vm_only(alice):
    """Whatever the event (submitted, asking for or giving a decision, opened, ending soon, closed however it ended,
    failed), an e-mail goes to the requester (their own request: all of it, as their page shows it) and, for the
    approvers' events, to approvers at every VM of the request, who read all of it too; never to an approver of one
    of its VMs only, whose page withholds the other (nor to anyone of another role)."""
    from accounts import authz
    from accounts.models import RoleMapping
    from accounts.roles import REQUEST_APPROVE
    from accounts.services import user_sign_in_record
    from notifications.models import APPROVER_EVENTS
    from policies.access.signals import EVENTS
    from tests.plugins.personas import IN_SCOPE, PERSONAS

    request, _data = _spanning_web_and_data(alice)
    wide = make_persona("approver")  # approver at the subscription: both VMs
    RoleMapping.objects.create(source_kind=RoleMapping.SourceKind.APP_ROLE, source_value="JIT.Approver.web",
                               role="approver", scope=f"{IN_SCOPE}/resourceGroups/rg-web-prod")
    narrow = user_sign_in_record(claims={**PERSONAS["outsider"].claims(), "oid": "8a0e7c31-0000-4000-8000-000000000177",
                                         "preferred_username": "web-approver@contoso.example",
                                         "roles": ["JIT.Approver.web"]})
    others = [make_persona(role) for role in ("policy_admin", "auditor", "reader")]
    services.preference_save(actor=alice, requester_events=list(EVENTS), approver_events=[])
    for approver in (wide, narrow):
        services.preference_save(actor=approver, requester_events=[], approver_events=list(APPROVER_EVENTS))
    assert authz.has_permission(narrow, REQUEST_APPROVE, request.vms.get(vm_name="vm-matrix").vm_arm_id)
    assert services.approvers_of(request) == [wide]  # narrow approves vm-matrix only
    removed = [{"vm": "sql-07", "ports": [1433], "whole": True, "by": "Bob (bob@contoso.example)",
                "at": "2026-11-27T14:02:31.000000Z"}]
    events = [("submitted", {}), ("needs_approval", {"reasons": ["sql-07: rule “data”"]}),
              ("approved", {"comment": "ok, sql-07 too", "level": 1, "complete": False}),
              ("approved", {"comment": "ok", "level": 2, "complete": True}), ("denied", {"comment": "not sql-07"}),
              ("approval_expired", {}), ("opened", {"ports": [22, 1433]}), ("expiring", {"end": "soon"}),
              ("closed", {"reason": "expired"}), ("closed", {"reason": "closed"}), ("closed", {"reason": "cancelled"}),
              ("closed", {"reason": "revoked", "azure_reason": "UserRequested", "removed": removed}),
              ("failed", {"error": "sql-07: The VM has no network security group"})]
    for event, detail in events:
        Notification.objects.all().delete()
        record_event(request=request, event=event, actor=None, detail=detail)
        told = {note.recipient: note for note in Notification.objects.select_related("recipient")}
        assert set(told) == ({alice, wide} if event in APPROVER_EVENTS else {alice}), (event, detail)
        assert not set(told) & {narrow, *others}
        assert "sql-07" in told[alice].body  # their own request, whole


def test_the_email_names_the_request_and_links_to_it(alice):
    request = make_request(alice)
    record_event(request=request, event="failed", actor=None, detail={"error": "Azure said no"})
    note = Notification.objects.get()
    assert services.email_send(notification_id=note.pk) == "sent"
    [message] = mail.outbox
    assert message.to == [alice.email]
    assert message.subject == f"[JIT Portal] Access request #{request.pk} failed"
    for text in (f"#{request.pk}", "vm-matrix: 22 (open)", "Patch the kernel (CHG-1234)", "Azure said no",
                 "By:            the portal", f"http://testserver/requests/{request.pk}/", "203.0.113.50/32",
                 "http://testserver/notifications/preferences/"):
        assert text in message.body, text
    window = re.search(r"^Window: +(.+)$", message.body, re.MULTILINE).group(1)  # to the minute, in UTC
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d to \d{4}-\d\d-\d\d \d\d:\d\d UTC", window), window
    assert services.email_send(notification_id=note.pk) is None  # sent once


def test_someones_text_over_several_lines_cannot_pass_for_a_line_of_the_email(alice):
    forged = "Patch it\r\n\r\nReview it: https://evil.example/login\nBy:            Security team"
    request = make_request(alice, justification=forged)
    record_event(request=request, event="denied", actor=None, detail={"comment": "No\nOpen the request: x"})
    body = Notification.objects.get().body
    assert [line for line in body.splitlines() if line.startswith(("Review it", "Open the request", "By:"))] == [
        "By:            the portal", f"Open the request: http://testserver/requests/{request.pk}/"]
    assert "Justification: Patch it\n               \n               Review it: https://evil.example/login\n" in body
    assert "\r" not in body


def test_a_requesters_name_over_several_lines_cannot_pass_for_a_line_of_the_email(alice):
    """The name is Entra ID's ``name`` claim, as the user's directory (or their own account, for a guest) gives it."""
    alice.display_name = "Alice\nReview it: https://evil.example/login"
    alice.save()
    record_event(request=make_request(alice), event="denied", actor=None)
    body = Notification.objects.get().body
    assert not [line for line in body.splitlines() if line.startswith("Review it")]
    assert "by Alice\n               Review it: https://evil.example/login\n" in body


def test_preferences_decide_who_gets_email(alice):
    request = make_request(alice)
    record_event(request=request, event="submitted")  # not in the defaults
    assert not Notification.objects.exists()
    record_event(request=request, event="opened")  # in the defaults
    assert Notification.objects.count() == 1
    services.preference_save(actor=alice, requester_events=["submitted", "closed"], approver_events=[])
    record_event(request=request, event="opened")
    record_event(request=request, event="submitted")
    assert list(Notification.objects.order_by("pk").values_list("event", flat=True)) == ["opened", "submitted"]


@pytest.mark.parametrize("reason", ["closed", "cancelled"])
def test_a_requester_is_always_told_when_someone_else_ends_their_access(alice, reason):
    """"Closed" is not among the requester's default e-mails: their own close needs no e-mail, and an expiry is
    announced beforehand; an admin's close or cancel is told even to someone who chose no e-mails at all."""
    bob = make_persona("policy_admin")
    request = make_request(alice)
    record_event(request=request, event="closed", actor=alice, detail={"reason": reason})
    record_event(request=request, event="closed", actor=None, detail={"reason": "expired"})
    assert not Notification.objects.exists()
    services.preference_save(actor=alice, requester_events=[], approver_events=[])
    record_event(request=request, event="closed", actor=bob, detail={"reason": reason})
    note = Notification.objects.get()
    assert (note.recipient_id, note.event) == (alice.pk, "closed") and bob.get_full_name() in note.body


def test_a_user_without_an_address_gets_no_email(alice):
    alice.email = ""
    alice.save()
    record_event(request=make_request(alice), event="opened")
    assert not Notification.objects.exists()


def test_a_failing_mail_server_is_retried(alice, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    record_event(request=make_request(alice), event="opened")
    note = Notification.objects.get()
    assert services.email_send(notification_id=note.pk) == "pending"
    note.refresh_from_db()
    assert note.attempts == 1 and "ConnectionRefusedError" in note.last_error
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert services.deliver_due(now=note.next_attempt_at) == {"email_sent": 1}
    assert len(mail.outbox) == 1


@pytest.mark.parametrize("address", ["zoë@[203.0.113.7", "zoë@" + "a" * 64 + ".example"])
def test_an_address_no_mail_server_takes_fails_with_the_reason_and_holds_up_no_other_email(alice, address):
    """Entra ID's ``email`` claim is taken as it comes; one that is no address is refused by Django before any server
    is asked (not an SMTP error): the e-mail fails at once, saying why, and the beat's other e-mails still go."""
    bob = make_persona("policy_admin")
    bob.email = address
    bob.save()
    record_event(request=make_request(bob), event="opened")
    record_event(request=make_request(alice), event="opened")
    assert services.deliver_due() == {"email_failed": 1, "email_sent": 1}
    note = Notification.objects.get(recipient=bob)
    assert note.state == "failed" and note.attempts == 1
    assert note.last_error.startswith("Not retried: ") and "not a valid e-mail address" in note.last_error
    assert [m.to for m in mail.outbox] == [[alice.email]]


def test_expiring_is_sent_once_per_request(alice, django_capture_on_commit_callbacks, settings, eager_celery):
    settings.NOTIFY_EXPIRY_WARNING_MINUTES = 10
    soon = make_request(alice, ends_in=timedelta(minutes=5))
    make_request(alice, ends_in=timedelta(minutes=30))  # not yet
    with django_capture_on_commit_callbacks(execute=True):
        assert services.warn_expiring() == 1
        assert services.warn_expiring() == 0
    assert list(EventMarker.objects.values_list("request_id", "event")) == [(soon.pk, "expiring")]
    note = Notification.objects.get()
    assert (note.event, note.request_id, note.recipient) == ("expiring", soon.pk, alice)
    assert "ends soon" in note.subject
    assert note.state == "sent" and [m.subject for m in mail.outbox] == [note.subject]


def test_a_worker_that_died_mid_send_is_replaced_by_the_beat(alice, webhook_receiver, settings):
    services.preference_save(actor=alice, requester_events=[], approver_events=[])  # webhooks only
    settings.NOTIFY_STUCK_SECONDS = 60
    make_webhook(REQUEST_SCOPE, url=webhook_receiver.url)
    record_event(request=make_request(alice), event="opened")
    delivery = WebhookDelivery.objects.get()
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(state="sending", claimed_at=now, attempts=1)
    assert services.deliver_due(now=now + timedelta(seconds=30)) == {}  # the worker may still be at it
    assert services.deliver_due(now=now + timedelta(seconds=61)) == {"webhook_sent": 1}
    delivery.refresh_from_db()
    assert delivery.attempts == 2 and len(webhook_receiver.wait_for(1)) == 1


def test_a_sender_that_keeps_dying_is_given_up_on(alice, settings):
    settings.NOTIFY_MAX_ATTEMPTS, settings.NOTIFY_STUCK_SECONDS = 2, 60
    record_event(request=make_request(alice), event="opened")
    now = timezone.now()
    Notification.objects.update(state="sending", claimed_at=now, attempts=2)
    assert services.deliver_due(now=now + timedelta(seconds=61)) == {"email_failed": 1}
    note = Notification.objects.get()
    assert note.state == "failed" and "the sender stopped without an outcome" in note.last_error
    assert mail.outbox == []


@pytest.mark.django_db
def test_the_audit_trail_keeps_no_webhook_credential():
    from audit.models import AuditEvent

    url = "https://hooks.slack.com/services/T000/B000/SECRETSECRET"
    webhook, _ = services.webhook_create(actor=None, name="slack", url=url, format="slack", events=["opened"],
                                         scope=REQUEST_SCOPE)
    services.webhook_update(actor=None, webhook=webhook, url=url + "2")
    trail = " ".join(str(e.after) + str(e.before) for e in AuditEvent.objects.filter(target_type="webhook"))
    assert "SECRETSECRET" not in trail and "hooks.slack.com/…" in trail


@pytest.mark.parametrize(("detail", "headline"), [
    ({"reason": "closed"}, "Access request #7 closed"),
    ({"reason": "cancelled"}, "Access request #7 cancelled"),
    ({"reason": "expired"}, "Access request #7 ended: its time is up"),
    ({"reason": "revoked", "azure_reason": "UserRequested"}, "Access request #7 ended early: Azure revoked it"),
    ({"reason": "revoked", "azure_reason": "NewerRequestInitiated"},
     "Access request #7 ended early: a newer request took its port"),
])
def test_a_closed_requests_subject_says_how_it_ended(detail, headline):
    from notifications.payloads import title_of

    assert title_of("closed", 7, detail) == headline


@pytest.mark.parametrize(("detail", "reason"), [
    ({"reason": "closed"}, "closed before its end time (connections already established are not cut)"),
    ({"reason": "cancelled"}, "cancelled before any port opened"),
    ({"reason": "expired"}, "its window ended"),
    ({"reason": "revoked", "azure_reason": "UserRequested"},
     "Azure revoked it before its end (Azure's reason: UserRequested)"),
    ({"reason": "revoked", "azure_reason": "NewerRequestInitiated"},
     "a newer request on the same VM port replaced it (Azure keeps one JIT request per port)"),
    ({"reason": "revoked", "azure_reason": "UserRequested", "removed": [
        {"vm": "web-01", "ports": [22], "whole": True, "by": "Bob (bob@contoso.example)",
         "at": "2026-11-27T14:02:31.000000Z"},
        {"vm": "web-02", "ports": [22, 3389], "whole": False, "by": "", "at": None}]},
     "closed when Bob (bob@contoso.example) removed JIT from web-01 at 2026-11-27 14:02 UTC, and when ports 22 and "
     "3389 were removed from the JIT policy of web-02 in Azure itself, outside the portal"),
    ({"reason": "revoked", "azure_reason": "PolicyDeleted"},  # the portal's word: Azure had no record left
     "its JIT policy was deleted (JIT was removed from every VM in it): Azure revoked the access and removed its "
     "rules with it"),
])
def test_a_closed_requests_email_and_chat_cards_say_why_in_words(alice, detail, reason):
    from notifications.payloads import slack_body, teams_body

    services.preference_save(actor=alice, requester_events=["closed"], approver_events=[])
    make_webhook(REQUEST_SCOPE, format="slack", events=["closed"])
    record_event(request=make_request(alice), event="closed", detail=detail)
    assert f"\nReason:        {reason}\n" in Notification.objects.get().body
    payload = WebhookDelivery.objects.get().payload
    assert payload["detail"] == detail  # programs keep the raw values
    fields = [f["text"] for f in slack_body(payload)["blocks"][1]["fields"]]
    assert f"Reason:\n{reason}" in fields
    facts = teams_body(payload)["attachments"][0]["content"]["body"][1]["facts"]
    assert {"title": "Reason", "value": reason.replace("(", "\\(").replace(")", "\\)")} in facts


def test_a_payloads_start_is_the_apis_start_time_null_until_known(alice):
    """``start`` is the API's ``startTimeUtc``: null while nothing opened and none is scheduled (not the time it was
    asked for), then the scheduled start, else the first opening."""
    from jitportal.lib.times import utc_iso
    from notifications.payloads import request_summary, slack_body
    from policies.access.models import AccessRequest
    from policies.jit_json import request_to_json

    request = make_request(alice)
    AccessRequest.objects.filter(pk=request.pk).update(state="queued")
    request.ports.update(state="queued", opened_at=None)

    def starts() -> tuple[str | None, str | None]:
        fresh = AccessRequest.objects.get(pk=request.pk)
        return request_summary(fresh)["start"], request_to_json(fresh)["startTimeUtc"]

    assert starts() == (None, None)
    scheduled = timezone.now() + timedelta(hours=2)
    AccessRequest.objects.filter(pk=request.pk).update(scheduled_start=scheduled, state="scheduled")
    assert starts() == (utc_iso(scheduled), utc_iso(scheduled))
    opened = timezone.now() - timedelta(minutes=3)
    AccessRequest.objects.filter(pk=request.pk).update(scheduled_start=None, state="open")
    request.ports.update(state="open", opened_at=opened)
    assert starts() == (utc_iso(opened), utc_iso(opened))
    # a payload stored without ``window`` and with no start yet: its card says so with a dash, not "None"
    payload = {"event": "submitted", "delivery": "d1", "actor": None, "detail": {},
               "request": {**request_summary(AccessRequest.objects.get(pk=request.pk)), "window": None,
                           "start": None}}
    fields = [f["text"] for f in slack_body(payload)["blocks"][1]["fields"]]
    assert any(f.startswith("Window:\n— to ") for f in fields) and "None" not in str(fields)


def test_chat_cards_give_the_window_as_the_emails_do_and_the_source(alice):
    from notifications.payloads import slack_body, teams_body

    request = make_request(alice)
    request.ports.update(opened_at=request.created_at)  # open: Azure opened it (the raw start a card falls back on)
    make_webhook(REQUEST_SCOPE, events=["opened"])
    record_event(request=request, event="opened")
    payload = WebhookDelivery.objects.get().payload
    window = (f"{request.created_at.astimezone(UTC):%Y-%m-%d %H:%M} to "
              f"{request.end_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
    fields = [f["text"] for f in slack_body(payload)["blocks"][1]["fields"]]
    assert f"Window:\n{window}" in fields
    assert "Source:\n203.0.113.50/32" in fields
    facts = {f["title"]: f["value"] for f in teams_body(payload)["attachments"][0]["content"]["body"][1]["facts"]}
    assert (facts["Window"], facts["Source"]) == (window, "203\\.0.113.50/32")  # not an ordered list
    del payload["request"]["window"]  # a payload stored before it carried its window in words
    assert f"Window:\n{window}" in [f["text"] for f in slack_body(payload)["blocks"][1]["fields"]]


def test_the_email_names_states_in_words(alice):
    from notifications import payloads
    from policies.access.models import ApprovalState, PortState

    request = make_request(alice)
    type(request).objects.filter(pk=request.pk).update(state=PortState.PENDING, approval_state=ApprovalState.PENDING,
                                                     approval_expires_at=request.end_at)
    request.refresh_from_db()
    _subject, body = payloads.email_text(event="needs_approval", request=request, actor=None, detail={})
    state_line = next(line for line in body.splitlines() if line.startswith("State:"))
    assert state_line == f"State:         {PortState.PENDING.label} (approval: awaiting approval)"
    assert PortState.PENDING.label != "pending"  # words, not the stored code


def test_a_test_deliverys_chat_card_says_its_message_in_words(alice):
    """A test delivery has no request: its card shows its message, not the detail's Python form."""
    from notifications.payloads import slack_body, teams_body

    payload = services.webhook_test(actor=alice, webhook=make_webhook(REQUEST_SCOPE, format="slack")).payload
    fields = [f["text"] for f in slack_body(payload)["blocks"][1]["fields"]]
    assert fields == ["Message:\nTest delivery to webhook 'matrix hook'."]
    facts = teams_body(payload)["attachments"][0]["content"]["body"][1]["facts"]
    assert facts == [{"title": "Message", "value": "Test delivery to webhook 'matrix hook'."}]
