"""Pages: e-mail preferences, and webhooks under Settings (secret shown once, test, disable, delete, deliveries)."""
from __future__ import annotations

import html
import re
import socket
import zoneinfo

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from notifications import services
from notifications.models import NotificationPreference, Webhook, WebhookDelivery
from tests.notifications.factories import REQUEST_SCOPE, make_request, make_webhook, record_event
from tests.plugins.personas import OUT_OF_SCOPE, make_persona
from tests.plugins.webhooks import Answer

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, persona_mappings):
    client.force_login(make_persona("policy_admin"))
    return client


def test_preferences_page_shows_the_defaults_and_saves_choices(client, persona_mappings):
    from accounts.models import RoleMapping
    from tests.plugins.personas import WEB_GROUP

    alice = make_persona("requester")  # who also approves, somewhere
    RoleMapping.objects.create(source_kind="group", source_value=WEB_GROUP, role="approver", scope=REQUEST_SCOPE)
    client.force_login(alice)
    url = reverse("notifications:preferences")
    page = client.get(url).content.decode()
    assert alice.email in page
    assert 'name="requester_events" value="opened" id="id_requester_events_5" checked' in page
    assert 'name="requester_events" value="submitted" id="id_requester_events_0" checked' not in page
    response = client.post(url, {"requester_events": ["opened", "closed"], "approver_events": ["needs_approval"]})
    assert response.status_code == 302
    row = NotificationPreference.objects.get(user=alice)
    assert (row.requester_events, row.approver_events) == (["opened", "closed"], ["needs_approval"])
    event = AuditEvent.objects.filter(action="notifications.preferences_updated").get()
    assert event.after["requester_events"] == ["opened", "closed"]


def test_only_approvers_are_asked_about_requests_they_may_approve(client, persona_mappings):
    """A user who approves nowhere was offered "About requests I may approve"; what they stored there (when they
    were an approver) is kept, and an approver still chooses it."""
    url = reverse("notifications:preferences")
    alice = make_persona("requester")
    NotificationPreference.objects.create(user=alice, requester_events=["opened"], approver_events=["approved"])
    client.force_login(alice)
    page = client.get(url).content.decode()
    assert "About my own requests" in page
    assert "About requests I may approve" not in page and 'name="approver_events"' not in page
    assert client.post(url, {"requester_events": ["closed"], "approver_events": ["denied"]}).status_code == 302
    row = NotificationPreference.objects.get(user=alice)
    assert (row.requester_events, row.approver_events) == (["closed"], ["approved"])

    dave = make_persona("approver")
    client.force_login(dave)
    assert 'name="approver_events"' in client.get(url).content.decode()
    assert client.post(url, {"approver_events": ["denied"]}).status_code == 302
    assert NotificationPreference.objects.get(user=dave).approver_events == ["denied"]


def test_the_trail_names_the_client_behind_a_trusted_proxy(client, persona_mappings, settings):
    settings.ACCESS_TRUSTED_PROXIES = ["10.0.0.0/8"]
    client.force_login(make_persona("requester"))
    client.post(reverse("notifications:preferences"), {"requester_events": ["opened"]},
                REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert AuditEvent.objects.get(action="notifications.preferences_updated").client_ip == "203.0.113.9"


def test_preferences_refuse_unknown_events(client, persona_mappings):
    client.force_login(make_persona("requester"))
    response = client.post(reverse("notifications:preferences"), {"requester_events": ["exploded"]})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not NotificationPreference.objects.exists()


def test_the_preferences_page_is_linked_from_my_access(client, persona_mappings):
    client.force_login(make_persona("reader"))
    assert reverse("notifications:preferences") in client.get(reverse("my_access")).content.decode()


def test_a_new_webhooks_secret_is_shown_once(admin_client):
    response = admin_client.post(reverse("notifications:webhook_add"), {
        "name": "Ops channel", "url": "https://hooks.example.com/ops", "format": "slack",
        "events": ["needs_approval", "opened"], "scope": REQUEST_SCOPE, "active": "on"})
    webhook = Webhook.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("notifications:webhook_detail",
                                                                             args=[webhook.pk])
    assert (webhook.format, webhook.events, webhook.scope) == ("slack", ["needs_approval", "opened"], REQUEST_SCOPE)
    first = admin_client.get(response["Location"]).content.decode()
    assert webhook.secret in first and len(webhook.secret) >= 40
    copy = re.search(r'<button[^>]*id="copy-secret"[^>]*>([^<]*)</button>', first)  # as an API token's
    assert copy and copy.group(1) == "Copy secret" and f'data-line="{webhook.secret}"' in copy.group(0)
    assert 'class="button copy"' in copy.group(0) and "jitportal/copy.js" in first
    assert webhook.secret not in admin_client.get(response["Location"]).content.decode()
    audit = AuditEvent.objects.get(action="webhook.created")
    assert audit.after["url"].startswith("https://hooks.example.com/… (sha256:") and "secret" not in audit.after
    assert audit.subscription_id == "c0a1b2c3-0000-4000-8000-000000000001"


def test_the_webhook_list_and_page_name_its_state_in_the_same_words(admin_client):
    """The list said "Active: yes" and the page "State: active" for the same thing."""
    on, off = make_webhook(REQUEST_SCOPE, name="On"), make_webhook(REQUEST_SCOPE, name="Off")
    Webhook.objects.filter(pk=off.pk).update(active=False)
    listing = admin_client.get(reverse("notifications:webhook_list")).content.decode()
    assert "<th>State</th>" in listing and "<th>Active</th>" not in listing
    states = re.findall(r'<td data-label="State">(Active|Disabled|yes|disabled)</td>', listing)
    assert sorted(states) == ["Active", "Disabled"]
    for webhook, state in ((on, "Active"), (off, "Disabled")):
        page = admin_client.get(reverse("notifications:webhook_detail", args=[webhook.pk])).content.decode()
        assert f'<th scope="row">State</th><td id="webhook-state">{state}</td>' in page


def test_webhook_pages_name_events_as_the_preferences_page_does(admin_client):
    """The form's "needs approval" and the list's and page's "needs_approval" differed from the preferences'
    "Needs approval — a request waits for approval"."""
    form = html.unescape(admin_client.get(reverse("notifications:webhook_add")).content.decode())
    assert "Needs approval — a request waits for approval" in form
    webhook = make_webhook(REQUEST_SCOPE, events=["opened", "needs_approval"])
    for url in (reverse("notifications:webhook_list"), reverse("notifications:webhook_detail", args=[webhook.pk])):
        page = admin_client.get(url).content.decode()
        assert "Needs approval, Opened" in page and "needs_approval" not in page, url


@pytest.mark.parametrize(("scope", "message"), [
    ("", "only administrators of every scope"),
    (OUT_OF_SCOPE, "scopes you administer"),
    ("/subscriptions/nope", "A scope is"),
])
def test_a_webhook_needs_a_scope_the_user_administers(admin_client, scope, message):
    response = admin_client.post(reverse("notifications:webhook_add"), {
        "name": "x", "url": "https://hooks.example.com/x", "format": "json", "events": ["opened"], "scope": scope})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Webhook.objects.exists()


def test_a_bad_url_is_a_clear_error(admin_client):
    response = admin_client.post(reverse("notifications:webhook_add"), {
        "name": "x", "url": "not a url", "format": "json", "events": ["opened"], "scope": REQUEST_SCOPE})
    assert response.status_code == 400 and "Enter a valid URL" in response.content.decode()


def test_an_invalid_edit_is_a_400_and_changes_nothing(admin_client):
    webhook = make_webhook(REQUEST_SCOPE, name="kept")
    response = admin_client.post(reverse("notifications:webhook_edit", args=[webhook.pk]), {
        "name": "changed", "url": "https://hooks.example.com/x", "format": "json", "events": [], "scope": ""})
    assert response.status_code == 400
    webhook.refresh_from_db()
    assert webhook.name == "kept"
    # The page is still titled with the stored name; the typed one is only in its box, to correct.
    page = response.content.decode()
    assert "<title>Change webhook kept |" in page and "&rsaquo; Change webhook kept" in page
    assert "Change webhook changed" not in page and 'value="changed"' in page


def test_the_scope_help_says_who_may_leave_it_empty(admin_client):
    page = admin_client.get(reverse("notifications:webhook_add")).content.decode()
    assert "Leave it empty for every request, all of it: only administrators of every scope (superusers) may." in page
    assert "(empty: every request)" not in page
    # and what a scoped webhook is sent of a request spanning scopes
    assert ("and of those only what a reader of this scope sees on the request&#x27;s page: its VMs here (how many it "
            "has elsewhere, never which), its justification and approvers&#x27; comments withheld where they name a VM "
            "elsewhere") in page


def test_edit_disable_test_and_delete_are_audited(admin_client, django_capture_on_commit_callbacks, eager_celery,
                                                  webhook_receiver):
    webhook = make_webhook(REQUEST_SCOPE, url=webhook_receiver.url)
    edit = reverse("notifications:webhook_edit", args=[webhook.pk])
    assert admin_client.post(edit, {"name": "Renamed", "url": webhook_receiver.url, "format": "teams",
                                    "events": ["failed"], "scope": REQUEST_SCOPE, "active": "on"}).status_code == 302
    webhook.refresh_from_db()
    assert (webhook.name, webhook.format, webhook.events) == ("Renamed", "teams", ["failed"])

    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(reverse("notifications:webhook_test", args=[webhook.pk])).status_code == 302
    [received] = webhook_receiver.wait_for(1)
    assert received.header("X-Jitportal-Event") == "test" and webhook_receiver.verify(received, webhook.secret)
    assert received.json()["type"] == "message"
    assert WebhookDelivery.objects.get().state == "sent"

    assert admin_client.post(reverse("notifications:webhook_toggle", args=[webhook.pk])).status_code == 302
    webhook.refresh_from_db()
    assert not webhook.active
    refused = admin_client.post(reverse("notifications:webhook_test", args=[webhook.pk]), follow=True)
    assert "is disabled: enable it to send a test." in refused.content.decode()
    assert WebhookDelivery.objects.count() == 1  # no test queued to a disabled webhook
    assert admin_client.post(reverse("notifications:webhook_delete", args=[webhook.pk])).status_code == 302
    assert not Webhook.objects.exists()
    assert list(AuditEvent.objects.filter(target_type="webhook").order_by("pk").values_list("action", flat=True)) == [
        "webhook.created", "webhook.updated", "webhook.tested", "webhook.updated", "webhook.deleted"]


def test_the_deliveries_page_shows_why_it_gave_up(admin_client, webhook_receiver, settings):
    settings.NOTIFY_MAX_ATTEMPTS = 1
    webhook = make_webhook(REQUEST_SCOPE, url=webhook_receiver.url)
    webhook_receiver.respond_with(Answer(500, body=b"<script>boom</script>"))
    record_event(request=make_request(), event="opened")
    assert services.deliver_due() == {"webhook_failed": 1}
    page = admin_client.get(reverse("notifications:webhook_detail", args=[webhook.pk])).content.decode()
    assert "Gave up after 1 attempts. Last error: HTTP 500: &lt;script&gt;boom&lt;/script&gt;" in page
    assert "<script>boom" not in page
    assert 'class="delivery-failed"' in page


def test_the_deliveries_page_names_a_failing_receiver_without_the_secret_in_its_url(admin_client, webhook_receiver,
                                                                                     settings):
    settings.NOTIFY_MAX_ATTEMPTS = 1
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{probe.getsockname()[1]}"  # nothing listens once the probe is closed
    tail = "/services/T0SECRETTEAM/B0SECRETHOOK/SECRETPATHTOKEN?token=SECRETQUERYTOKEN"
    closed = make_webhook(REQUEST_SCOPE, url=refused + tail, name="closed port")
    failing = make_webhook(REQUEST_SCOPE, url=webhook_receiver.url.removesuffix("/hook") + tail, name="HTTP 500")
    webhook_receiver.respond_with(Answer(500, body=f"unknown hook {tail}".encode()))
    record_event(request=make_request(), event="opened")
    assert services.deliver_due() == {"webhook_failed": 2}
    shown_for = {closed: f"ConnectionError: POST to {refused} failed", failing: "HTTP 500: unknown hook …"}
    for webhook, shown in shown_for.items():
        page = admin_client.get(reverse("notifications:webhook_detail", args=[webhook.pk])).content.decode()
        [cell] = re.findall(r'<td data-label="Last error" class="last-error">(.*?)</td>', page, re.S)
        assert not any(secret in cell for secret in ("SECRETTEAM", "SECRETHOOK", "SECRETPATH", "SECRETQUERY"))
        assert shown in cell


def test_webhooks_out_of_scope_are_neither_listed_nor_reachable(admin_client):
    mine = make_webhook(REQUEST_SCOPE, name="mine")
    theirs = make_webhook(OUT_OF_SCOPE, name="theirs")
    everywhere = make_webhook("", name="everywhere")
    page = admin_client.get(reverse("notifications:webhook_list")).content.decode()
    assert "mine" in page and "theirs" not in page and "everywhere" not in page
    for webhook in (theirs, everywhere):
        assert admin_client.get(reverse("notifications:webhook_detail", args=[webhook.pk])).status_code == 404
        assert admin_client.post(reverse("notifications:webhook_delete", args=[webhook.pk])).status_code == 404
    assert Webhook.objects.count() == 3 and mine.pk


def test_people_without_settings_write_get_403(client, persona_mappings):
    client.force_login(make_persona("approver"))
    assert client.get(reverse("notifications:webhook_list")).status_code == 403
    assert client.get(reverse("notifications:webhook_add")).status_code == 403


def test_a_head_of_the_webhook_page_leaves_its_new_secret_for_the_get(admin_client):
    """A HEAD (a link checker, a prefetch) answers as the page does, without a body: the secret it would have shown
    once is still there for the GET that shows it."""
    webhook = make_webhook(REQUEST_SCOPE)
    response = admin_client.post(reverse("notifications:webhook_rotate", args=[webhook.pk]))
    webhook.refresh_from_db()
    head = admin_client.head(response["Location"])
    assert head.status_code == 200 and head.content == b""
    assert webhook.secret in admin_client.get(response["Location"]).content.decode()
    assert webhook.secret not in admin_client.get(response["Location"]).content.decode()


def test_a_new_secret_is_shown_once_and_the_old_one_stops_verifying(admin_client):
    webhook = make_webhook(REQUEST_SCOPE)
    old = webhook.secret
    response = admin_client.post(reverse("notifications:webhook_rotate", args=[webhook.pk]))
    webhook.refresh_from_db()
    assert webhook.secret != old
    assert webhook.secret in admin_client.get(response["Location"]).content.decode()
    assert webhook.secret not in admin_client.get(response["Location"]).content.decode()
    assert AuditEvent.objects.filter(action="webhook.secret_rotated", target_id=str(webhook.pk)).exists()


def test_the_webhook_page_costs_the_same_with_many_deliveries(admin_client, django_assert_max_num_queries):
    webhook = make_webhook(REQUEST_SCOPE)
    url = reverse("notifications:webhook_detail", args=[webhook.pk])
    for _ in range(3):
        services.webhook_test(actor=None, webhook=webhook)
    with django_assert_max_num_queries(12) as few:
        admin_client.get(url)
    for _ in range(40):
        services.webhook_test(actor=None, webhook=webhook)
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = admin_client.get(url).content.decode()
    assert page.count('class="delivery-pending"') == 43


def test_delivery_times_name_their_time_zone(admin_client, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    webhook = make_webhook(REQUEST_SCOPE)
    delivery = services.webhook_test(actor=None, webhook=webhook)
    page = admin_client.get(reverse("notifications:webhook_detail", args=[webhook.pk])).content.decode()
    local = timezone.localtime(delivery.created_at, zoneinfo.ZoneInfo("Europe/Berlin"))
    assert local.strftime("%Y-%m-%d %H:%M:%S %Z") in page  # when it was made, and its next attempt
    assert page.count(local.strftime(" %Z</time></td>")) == 2


def test_older_deliveries_are_a_page_away(admin_client):
    webhook = make_webhook(REQUEST_SCOPE)
    for _ in range(52):
        services.webhook_test(actor=None, webhook=webhook)
    oldest, newest = WebhookDelivery.objects.order_by("pk").first(), WebhookDelivery.objects.order_by("pk").last()
    url = reverse("notifications:webhook_detail", args=[webhook.pk])
    first = admin_client.get(url).content.decode()
    assert first.count('class="delivery-pending"') == 50 and str(newest.delivery_id) in first
    assert str(oldest.delivery_id) not in first and "Older deliveries" in first and "Newer deliveries" not in first
    older = html.unescape(re.search(r'<a href="([^"]+)">Older deliveries</a>', first)[1])
    second = admin_client.get(url + older).content.decode()
    assert second.count('class="delivery-pending"') == 2 and str(oldest.delivery_id) in second
    assert "Newer deliveries" in second and "Older deliveries" not in second
    for cursor in ("x", "0", "-3", "99999999999999999999999"):
        edited = admin_client.get(url, {"after": cursor})
        assert edited.status_code == 200 and "The newest deliveries are shown." in edited.content.decode()


def test_deliveries_made_between_two_pages_neither_repeat_nor_push_a_row_past_the_next_page(admin_client):
    webhook = make_webhook(REQUEST_SCOPE)
    made = [services.webhook_test(actor=None, webhook=webhook).delivery_id for _ in range(60)]
    url = reverse("notifications:webhook_detail", args=[webhook.pk])
    first = admin_client.get(url).content.decode()
    older = html.unescape(re.search(r'<a href="([^"]+)">Older deliveries</a>', first)[1])
    for _ in range(5):  # the webhook keeps sending while its admin reads
        services.webhook_test(actor=None, webhook=webhook)
    second = admin_client.get(url + older).content.decode()
    shown = re.findall(r"<code>([0-9a-f-]{36})</code>", first + second)
    assert len(shown) == len(set(shown)) and {str(d) for d in made} <= set(shown)


@pytest.mark.django_db
def test_the_django_admin_shows_webhooks_and_preferences_but_changes_them_only_through_the_portal(
        client, breakglass_admin):
    """A webhook added in the admin would have no sealed secret and no audit row: the admin only shows them."""
    from notifications.models import Webhook

    hook = Webhook.objects.create(name="ops", url="https://hooks.example/ops", format="generic")
    client.force_login(breakglass_admin)
    assert client.get(f"/admin/notifications/webhook/{hook.pk}/change/").status_code == 200  # view only
    assert client.get("/admin/notifications/webhook/add/").status_code == 403
    response = client.post(f"/admin/notifications/webhook/{hook.pk}/change/",
                           {"name": "ops", "url": "https://collector.example/", "format": "generic", "active": "on"})
    assert response.status_code == 403
    assert Webhook.objects.get(pk=hook.pk).url == "https://hooks.example/ops"
    assert client.get("/admin/notifications/notificationpreference/add/").status_code == 403
    assert client.post(f"/admin/notifications/webhook/{hook.pk}/delete/", {"post": "yes"}).status_code == 403


def test_the_webhook_forms_event_checkboxes_are_a_group_named_and_described_by_its_help_and_errors(admin_client):
    add = reverse("notifications:webhook_add")
    page = admin_client.get(add).content.decode()
    group = re.search(r"<fieldset[^>]*>\s*<legend[^>]*>Events</legend>", page)
    assert group and 'aria-describedby="id_events_helptext"' in group.group(0)
    refused = admin_client.post(add, {"name": "hook", "url": "https://hooks.example.com/jit", "format": "json",
                                      "scope": REQUEST_SCOPE})
    page = refused.content.decode()
    group = re.search(r"<fieldset[^>]*>\s*<legend[^>]*>Events</legend>", page).group(0)
    described = re.search(r'aria-describedby="([^"]+)"', group).group(1).split()
    assert refused.status_code == 400 and set(described) == {"id_events_helptext", "id_events_error"}
    assert all(f'id="{target}"' in page for target in described)


SLACK_URL = "https://hooks.slack.com/services/T0SECRETTEAM/B0SECRETHOOK/SECRETPATHTOKEN?token=SECRETQUERYTOKEN"
SECRETS = ("T0SECRETTEAM", "B0SECRETHOOK", "SECRETPATHTOKEN", "SECRETQUERYTOKEN")


@pytest.mark.parametrize(("url", "shown"), [
    (SLACK_URL, "https://hooks.slack.com/…"),
    ("https://user:hunter2@hooks.example.com:8443/", "https://hooks.example.com:8443/"),
    ("https://hooks.example.com", "https://hooks.example.com/"),
    ("https://[2001:db8::1]/x#frag", "https://[2001:db8::1]/…"),
    ("https://hooks.example.com/?t=x", "https://hooks.example.com/…"),
])
def test_a_webhook_url_is_shown_as_its_scheme_and_host_only(url, shown):
    assert Webhook(url=url).masked_url == shown


def test_the_webhook_list_and_page_show_the_url_without_its_secret_parts(admin_client):
    webhook = make_webhook(REQUEST_SCOPE, url=SLACK_URL, name="Slack")
    for page in (reverse("notifications:webhook_list"), reverse("notifications:webhook_detail", args=[webhook.pk])):
        content = admin_client.get(page).content.decode()
        assert "https://hooks.slack.com/…" in content
        assert not any(secret in content for secret in SECRETS), page


def test_the_edit_form_keeps_the_url_unless_a_new_one_is_entered_and_never_sends_it_back(admin_client):
    webhook = make_webhook(REQUEST_SCOPE, url=SLACK_URL, name="Slack")
    edit = reverse("notifications:webhook_edit", args=[webhook.pk])
    form = admin_client.get(edit).content.decode()
    [url_input] = re.findall(r'<input[^>]*name="url"[^>]*>', form)
    assert 'type="password"' in url_input and 'value=' not in url_input
    assert not any(secret in form for secret in SECRETS)
    assert "Now https://hooks.slack.com/… (the rest is not shown). Leave it empty to keep it" in form

    fields = {"name": "Renamed", "format": "slack", "events": ["opened"], "scope": REQUEST_SCOPE, "active": "on"}
    assert admin_client.post(edit, {**fields, "url": ""}).status_code == 302
    webhook.refresh_from_db()
    assert (webhook.name, webhook.url) == ("Renamed", SLACK_URL)

    refused = admin_client.post(edit, {**fields, "url": "", "scope": OUT_OF_SCOPE})  # invalid: still not sent back
    assert refused.status_code == 400 and not any(secret in refused.content.decode() for secret in SECRETS)

    new = "https://hooks.slack.com/services/T0NEW/B0NEW/NEWTOKEN"
    assert admin_client.post(edit, {**fields, "url": new}).status_code == 302
    webhook.refresh_from_db()
    assert webhook.url == new


def test_a_new_webhook_still_needs_its_url(admin_client):
    response = admin_client.post(reverse("notifications:webhook_add"), {
        "name": "x", "url": "", "format": "json", "events": ["opened"], "scope": REQUEST_SCOPE})
    assert response.status_code == 400 and "This field is required." in response.content.decode()
    assert not Webhook.objects.exists()


def test_the_django_admin_shows_a_webhooks_url_masked_and_does_not_search_it(client, breakglass_admin):
    webhook = make_webhook(REQUEST_SCOPE, url=SLACK_URL, name="Slack")
    client.force_login(breakglass_admin)
    for page in ("/admin/notifications/webhook/", f"/admin/notifications/webhook/{webhook.pk}/change/"):
        content = client.get(page).content.decode()
        assert "https://hooks.slack.com/…" in content
        assert not any(secret in content for secret in SECRETS), page
    found = client.get("/admin/notifications/webhook/", {"q": "SECRETPATHTOKEN"}).content.decode()
    assert "0 webhooks" in found or "0 results" in found


@pytest.mark.django_db
def test_the_webhook_pages_buttons_stand_apart_like_a_submit_rows(admin_client):
    """Send test, Disable and New secret (one form each) were stacked with no room between them."""
    from django.contrib.staticfiles import finders

    webhook = make_webhook(REQUEST_SCOPE, name="On")
    page = admin_client.get(reverse("notifications:webhook_detail", args=[webhook.pk])).content.decode()
    row = re.search(r'<div class="submit-row" id="webhook-actions">(.*?)</div>', page, re.S).group(1)
    assert re.findall(r'<input type="submit" value="([^"]+)"', row) == ["Send test", "Disable", "New secret"]
    assert "/static/jitportal/portal.css" in page
    with open(finders.find("jitportal/portal.css"), encoding="utf-8") as css:
        rule = re.search(r"#webhook-actions \{([^}]*)\}", css.read()).group(1)
    assert "display: flex" in rule and "gap: 10px" in rule


def test_the_deliveries_name_their_event_as_the_pages_do_not_by_its_raw_name(admin_client):
    """A delivery's event read ``needs_approval`` (and the test delivery ``test``): its label, as the webhook's own
    events are named on the same page."""
    webhook = make_webhook(REQUEST_SCOPE, events=["needs_approval"])
    request = make_request()
    record_event(request=request, event="needs_approval")
    services.webhook_test(actor=None, webhook=webhook)
    page = admin_client.get(reverse("notifications:webhook_detail", args=[webhook.pk])).content.decode()
    events = [cell.strip() for cell in re.findall(r'<td data-label="Event">([^<(]*)', page)]
    assert events == ["Test", "Needs approval"]
    assert f'Needs approval (<a href="{reverse("policies:request_detail", args=[request.pk])}">' in page
    assert "needs_approval" not in page.split('id="webhook-deliveries"', 1)[1]
