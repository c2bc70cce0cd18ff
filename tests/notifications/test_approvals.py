"""Approvals notify the approvers (needs approval) and the requester (approved); webhooks get each step in order."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.urls import reverse

from accounts.models import RoleMapping
from accounts.services import user_sign_in_record
from notifications import services
from notifications.models import APPROVER_EVENTS, Notification
from policies.access import approvals
from policies.access import services as access_services
from policies.access.models import AccessRule
from tests.notifications.factories import REQUEST_SCOPE, make_webhook
from tests.plugins.personas import OUT_OF_SCOPE, PERSONAS, make_persona
from tests.policies import factories as policy_factories

pytestmark = pytest.mark.django_db(transaction=True)


def second_approver():
    claims = {**PERSONAS["approver"].claims(), "oid": "8a0e7c31-0000-4000-8000-000000000099",
              "preferred_username": "erin@contoso.example", "name": "Erin Approver"}
    return user_sign_in_record(claims=claims)


def test_two_approvals_notify_approvers_then_the_requester_and_reach_the_webhook_in_order(
        persona_mappings, broker_down, webhook_receiver, mailoutbox):
    alice, dave, erin = make_persona("requester"), make_persona("approver"), second_approver()
    services.preference_save(actor=erin, requester_events=[], approver_events=["needs_approval", "approved"])
    vm = policy_factories.make_vm(REQUEST_SCOPE)
    AccessRule.objects.create(name="two approvers", scope=REQUEST_SCOPE, effect=AccessRule.Effect.MANUAL,
                              approvals_required=2)
    webhook = make_webhook(REQUEST_SCOPE, url=webhook_receiver.url,
                           events=["submitted", "needs_approval", "approved", "denied"])
    request, _ = access_services.request_create(
        actor=alice, selections=[access_services.Selection(vm, (22,))], source_prefix="203.0.113.50/32",
        duration=timedelta(hours=1), justification="Patch the kernel", idempotency_key=uuid.uuid4().hex)
    assert {u.username for u in services.approvers_of(request)} == {dave.username, erin.username}

    approvals.request_decide(actor=dave, request=request, approve=True, comment="ok")
    approvals.request_decide(actor=erin, request=request, approve=True, comment="fine")
    services.deliver_due()  # the broker is down: the beat sends everything

    posts = webhook_receiver.wait_for(4)
    assert [(p.json()["event"], p.json()["detail"].get("complete")) for p in posts] == [
        ("submitted", None), ("needs_approval", None), ("approved", False), ("approved", True)]
    assert all(webhook_receiver.verify(p, webhook.secret) for p in posts)
    assert [p.json()["actor"]["username"] for p in posts[2:]] == [dave.username, erin.username]
    assert posts[3].json()["request"]["approval_state"] == "approved"

    sent = sorted((m.to[0], m.subject.split("] ", 1)[1]) for m in mailoutbox)
    assert sent == sorted([
        (dave.email, f"Access request #{request.pk} needs approval"),
        (erin.email, f"Access request #{request.pk} needs approval"),
        (erin.email, f"Access request #{request.pk}: an approval is in, more are needed"),  # dave's, for erin
        (alice.email, f"Access request #{request.pk}: an approval is in, more are needed"),
        (alice.email, f"Access request #{request.pk} approved"),
    ])
    assert not Notification.objects.exclude(state="sent").exists()
    review = reverse("policies:request_review", args=[request.pk])
    page = reverse("policies:request_detail", args=[request.pk])
    for message in mailoutbox:  # approvers get the page where they decide; the requester their request's page
        assert (f"Review it: {settings.PORTAL_BASE_URL}{review}\n" in message.body) == (message.to[0] != alice.email)
        assert (f"Open the request: {settings.PORTAL_BASE_URL}{page}\n" in message.body) == (
            message.to[0] == alice.email)


def test_a_denial_tells_the_requester_why(persona_mappings, broker_down, mailoutbox):
    alice, dave = make_persona("requester"), make_persona("approver")
    vm = policy_factories.make_vm(REQUEST_SCOPE)
    AccessRule.objects.create(name="one approver", scope=REQUEST_SCOPE, effect=AccessRule.Effect.MANUAL)
    request, _ = access_services.request_create(
        actor=alice, selections=[access_services.Selection(vm, (22,))], source_prefix="203.0.113.50/32",
        duration=timedelta(hours=1), justification="Patch the kernel", idempotency_key=uuid.uuid4().hex)
    approvals.request_decide(actor=dave, request=request, approve=False, comment="Not during the freeze")
    services.deliver_due()
    [denial] = [m for m in mailoutbox if m.to == [alice.email]]
    assert denial.subject.endswith(f"Access request #{request.pk} denied")
    assert "Comment:       Not during the freeze" in denial.body
    assert f"By:            {dave}" in denial.body


def test_an_approver_who_has_decided_is_not_asked_again(persona_mappings, broker_down, mailoutbox):
    alice, dave, erin = make_persona("requester"), make_persona("approver"), second_approver()
    frank = user_sign_in_record(claims={**PERSONAS["approver"].claims(), "oid": "8a0e7c31-0000-4000-8000-000000000098",
                                        "preferred_username": "frank@contoso.example", "name": "Frank Approver"})
    for approver in (dave, erin, frank):
        services.preference_save(actor=approver, requester_events=[], approver_events=["approved"])
    vm = policy_factories.make_vm(REQUEST_SCOPE)
    AccessRule.objects.create(name="two levels", scope=REQUEST_SCOPE, effect=AccessRule.Effect.MANUAL,
                              approvals_required=1, second_level_approvals=2)
    request, _ = access_services.request_create(
        actor=alice, selections=[access_services.Selection(vm, (22,))], source_prefix="203.0.113.50/32",
        duration=timedelta(hours=1), justification="Patch the kernel", idempotency_key=uuid.uuid4().hex)
    approvals.request_decide(actor=dave, request=request, approve=True, comment="level 1")
    services.deliver_due()
    asked = sorted(m.to[0] for m in mailoutbox if m.to != [alice.email])
    assert asked == sorted([erin.email, frank.email])
    mailoutbox.clear()
    approvals.request_decide(actor=erin, request=request, approve=True, comment="level 2, first")
    services.deliver_due()
    # Only frank may still decide: dave (level 1) cannot, and is not asked to review again.
    [asked] = [m for m in mailoutbox if m.to != [alice.email]]
    assert asked.to == [frank.email] and "Review it: " in asked.body


def test_an_email_about_a_request_waiting_for_approval_gives_no_end_time_it_cannot_know(
        persona_mappings, broker_down, mailoutbox):
    alice, dave, erin = make_persona("requester"), make_persona("approver"), second_approver()
    vm = policy_factories.make_vm(REQUEST_SCOPE)
    AccessRule.objects.create(name="two approvers", scope=REQUEST_SCOPE, effect=AccessRule.Effect.MANUAL,
                              approvals_required=2)
    request, _ = access_services.request_create(
        actor=alice, selections=[access_services.Selection(vm, (22,))], source_prefix="203.0.113.50/32",
        duration=timedelta(hours=1), justification="Patch the kernel", idempotency_key=uuid.uuid4().hex)
    services.deliver_due()
    [asked] = [m for m in mailoutbox if m.to == [dave.email]]
    assert "\nWindow:        1 hour, starting when the last approval lands\n" in asked.body
    mailoutbox.clear()
    approvals.request_decide(actor=dave, request=request, approve=True)
    approvals.request_decide(actor=erin, request=request, approve=True)
    services.deliver_due()
    [approved] = [m for m in mailoutbox if m.subject.endswith(f"#{request.pk} approved")]
    assert "\nWindow:        1 hour, starting when it opens\n" in approved.body


def test_once_an_approved_request_opens_its_window_starts_when_it_opened_not_when_it_was_asked_for(
        persona_mappings, broker_down, webhook_receiver, mailoutbox):
    from django.utils import timezone

    from policies.access.models import AccessRequest
    from tests.notifications.factories import record_event

    alice, dave = make_persona("requester"), make_persona("approver")
    vm = policy_factories.make_vm(REQUEST_SCOPE)
    AccessRule.objects.create(name="one approver", scope=REQUEST_SCOPE, effect=AccessRule.Effect.MANUAL,
                              approvals_required=1)
    make_webhook(REQUEST_SCOPE, url=webhook_receiver.url, events=["opened"])
    request, _ = access_services.request_create(
        actor=alice, selections=[access_services.Selection(vm, (22,))], source_prefix="203.0.113.50/32",
        duration=timedelta(hours=1), justification="Patch the kernel", idempotency_key=uuid.uuid4().hex)
    asked_at = timezone.now() - timedelta(hours=2)  # the approver took two hours
    AccessRequest.objects.filter(pk=request.pk).update(created_at=asked_at)
    approvals.request_decide(actor=dave, request=request, approve=True)
    opened = timezone.now()  # the worker's part: Azure opens the port for the hour asked, from now
    request.ports.update(state="open", opened_at=opened, end_at=opened + timedelta(hours=1))
    AccessRequest.objects.filter(pk=request.pk).update(state="open", end_at=opened + timedelta(hours=1))
    mailoutbox.clear()
    record_event(request=AccessRequest.objects.get(pk=request.pk), event="opened")
    services.deliver_due()

    window = f"{opened:%Y-%m-%d %H:%M} to {opened + timedelta(hours=1):%Y-%m-%d %H:%M} UTC"  # one hour, as asked
    [message] = [m for m in mailoutbox if m.subject.endswith(f"#{request.pk} is open")]
    assert f"\nWindow:        {window}\n" in message.body, message.body
    [post] = webhook_receiver.wait_for(1)
    assert post.json()["request"]["window"] == window
    assert post.json()["request"]["start"].startswith(f"{opened:%Y-%m-%dT%H:%M}")


def test_chat_cards_about_a_request_waiting_for_approval_give_its_window_as_the_emails_do(
        persona_mappings, broker_down, webhook_receiver, mailoutbox):
    alice, dave, erin = make_persona("requester"), make_persona("approver"), second_approver()
    vm = policy_factories.make_vm(REQUEST_SCOPE)
    AccessRule.objects.create(name="two approvers", scope=REQUEST_SCOPE, effect=AccessRule.Effect.MANUAL,
                              approvals_required=2)
    for format_ in ("slack", "teams"):
        make_webhook(REQUEST_SCOPE, url=webhook_receiver.url, format=format_, name=format_,
                     events=["needs_approval", "approved"])
    request, _ = access_services.request_create(
        actor=alice, selections=[access_services.Selection(vm, (22,))], source_prefix="203.0.113.50/32",
        duration=timedelta(hours=1), justification="Patch the kernel", idempotency_key=uuid.uuid4().hex)
    services.deliver_due()  # each message describes the request as it is when its event is expanded
    approvals.request_decide(actor=dave, request=request, approve=True)
    services.deliver_due()
    approvals.request_decide(actor=erin, request=request, approve=True)
    services.deliver_due()

    windows = {}  # (format, title) → the card's window
    for post in webhook_receiver.wait_for(6):
        body = post.json()
        if "blocks" in body:
            fields = [field["text"] for field in body["blocks"][1]["fields"]]
            windows["slack", body["text"]] = next(f.split("\n", 1)[1] for f in fields if f.startswith("Window:"))
        else:
            card = body["attachments"][0]["content"]
            facts = {fact["title"]: fact["value"] for fact in card["body"][1]["facts"]}
            windows["teams", card["body"][0]["text"]] = facts["Window"]
    expected = {f"Access request #{request.pk} needs approval": "1 hour, starting when the last approval lands",
                f"Access request #{request.pk}: an approval is in, more are needed":
                    "1 hour, starting when the last approval lands",
                f"Access request #{request.pk} approved": "1 hour, starting when it opens"}
    assert windows == {(format_, title): window for format_ in ("slack", "teams")
                       for title, window in expected.items()}
    for message in mailoutbox:  # the same words as the e-mail about the same event
        title = message.subject.split("] ", 1)[1]
        assert f"\nWindow:        {expected[title]}\n" in message.body


def _user_at(n: int, role: str, scope: str):
    """A user holding ``role`` only at ``scope`` (through an app role of their own)."""
    app_role = f"JIT.{role}.{n}"
    RoleMapping.objects.create(source_kind=RoleMapping.SourceKind.APP_ROLE, source_value=app_role, role=role,
                               scope=scope, description=f"{role} elsewhere")
    return user_sign_in_record(claims={**PERSONAS["outsider"].claims(), "oid": f"8a0e7c31-0000-4000-8000-0000000001{n}",
                                       "preferred_username": f"{role}{n}@contoso.example", "roles": [app_role]})


def _links(post) -> set[str]:
    """The portal links of a webhook delivery: the JSON payload's, a Slack message's, a Teams card's."""
    body = post.json()
    if "blocks" in body:
        return set(re.findall(r"<([^|>]+)\|", body["blocks"][0]["text"]["text"]))
    if "attachments" in body:
        return {action["url"] for action in body["attachments"][0]["content"]["actions"]}
    return {body["request"]["url"], body["request"]["review_url"]}


def test_an_approver_who_decided_follows_every_link_they_are_sent_and_others_of_other_scopes_do_not(
        persona_mappings, broker_down, webhook_receiver, mailoutbox, client):
    """The chat cards and e-mails about a decided request link to its page (only those asking for a decision to the
    review page): its approvers may read it there, and poll its status; an approver or a requester of another scope
    gets a 404 on each."""
    alice, dave, erin = make_persona("requester"), make_persona("approver"), second_approver()
    others = [_user_at(1, "approver", OUT_OF_SCOPE), _user_at(2, "requester", OUT_OF_SCOPE)]
    for approver in (dave, erin):
        services.preference_save(actor=approver, requester_events=[], approver_events=list(APPROVER_EVENTS))
    vm = policy_factories.make_vm(REQUEST_SCOPE)
    AccessRule.objects.create(name="two approvers", scope=REQUEST_SCOPE, effect=AccessRule.Effect.MANUAL,
                              approvals_required=2)
    for format_ in ("json", "slack", "teams"):
        make_webhook(REQUEST_SCOPE, url=webhook_receiver.url, format=format_, name=format_,
                     events=["needs_approval", "approved", "denied"])

    def ask():
        return access_services.request_create(
            actor=alice, selections=[access_services.Selection(vm, (22,))], source_prefix="203.0.113.50/32",
            duration=timedelta(hours=1), justification="Patch the kernel", idempotency_key=uuid.uuid4().hex)[0]

    approved, denied = ask(), ask()
    approvals.request_decide(actor=dave, request=approved, approve=True, comment="ok")
    approvals.request_decide(actor=erin, request=approved, approve=True, comment="fine")  # dave is told
    approvals.request_decide(actor=erin, request=denied, approve=True, comment="ok")
    approvals.request_decide(actor=dave, request=denied, approve=False, comment="not now")  # erin is told
    services.deliver_due()

    sent = {approver: {line.split(": ", 1)[1] for m in mailoutbox if m.to == [approver.email]
                       for line in m.body.splitlines() if line.startswith(("Review it: ", "Open the request: "))}
            for approver in (dave, erin)}
    told = {m.subject.split("] ", 1)[1] for m in mailoutbox if m.to == [dave.email]}
    assert f"Access request #{approved.pk} approved" in told
    page = {settings.PORTAL_BASE_URL + reverse("policies:request_detail", args=[r.pk]) for r in (approved, denied)}
    assert page <= sent[dave] | sent[erin]  # the e-mails about the outcome link to the request's page
    # needs approval and one approval in (each request), approved, denied: three formats each
    cards = set().union(*(_links(post) for post in webhook_receiver.wait_for(3 * 6)))
    assert page <= cards
    links = {urlsplit(url).path for url in cards | sent[dave] | sent[erin]}
    links |= {reverse("policies:request_status", args=[r.pk]) for r in (approved, denied)}
    for user, expected in ((dave, 200), (erin, 200), *((other, 404) for other in others)):
        client.force_login(user)
        assert {link: client.get(link).status_code for link in sorted(links)} == dict.fromkeys(sorted(links),
                                                                                               expected), user


def test_a_webhook_gives_no_end_for_a_request_until_it_opens_but_the_windows_length(
        persona_mappings, broker_down, webhook_receiver):
    from django.utils import timezone

    from jitportal.lib.times import utc_iso
    from policies.access.models import AccessRequest
    from tests.notifications.factories import record_event

    alice, dave = make_persona("requester"), make_persona("approver")
    vm = policy_factories.make_vm(REQUEST_SCOPE)
    AccessRule.objects.create(name="one approver", scope=REQUEST_SCOPE, effect=AccessRule.Effect.MANUAL,
                              approvals_required=1)
    make_webhook(REQUEST_SCOPE, url=webhook_receiver.url, events=["needs_approval", "approved", "opened"])
    request, _ = access_services.request_create(
        actor=alice, selections=[access_services.Selection(vm, (22,))], source_prefix="203.0.113.50/32",
        duration=timedelta(hours=1, minutes=30), justification="Patch the kernel", idempotency_key=uuid.uuid4().hex)
    services.deliver_due()
    approvals.request_decide(actor=dave, request=request, approve=True)  # queued: the worker opens it next
    services.deliver_due()
    opened = timezone.now()  # the worker's part: Azure opens the port for the window asked, from now
    end = opened + timedelta(hours=1, minutes=30)
    request.ports.update(state="open", opened_at=opened, end_at=end)
    AccessRequest.objects.filter(pk=request.pk).update(state="open", end_at=end)
    record_event(request=AccessRequest.objects.get(pk=request.pk), event="opened")
    services.deliver_due()

    sent = {post.json()["event"]: post.json()["request"] for post in webhook_receiver.wait_for(3)}
    for event, starts in (("needs_approval", "when the last approval lands"), ("approved", "when it opens")):
        summary = sent[event]  # the planned end (request time + window) is not when it ends: none is given
        [port] = summary["vms"][0]["ports"]
        assert (summary["end"], port["endTimeUtc"]) == (None, None), event
        assert summary["start"] is None, event  # nor when it starts: not when it was asked for
        assert (summary["duration"], port["duration"]) == ("PT1H30M", "PT1H30M"), event
        assert summary["window"] == f"1 hour 30 minutes, starting {starts}"
    summary = sent["opened"]
    assert summary["end"] == utc_iso(end) and summary["duration"] == "PT1H30M"
    assert summary["start"] == utc_iso(opened)
    assert [port["endTimeUtc"] for port in summary["vms"][0]["ports"]] == [utc_iso(end)]
