"""Personal API tokens: stored hashed, shown once, revoked or expired → 401, acting with their user's roles."""
from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import RoleMapping
from api import services
from api.models import ApiToken
from audit.models import AuditEvent
from jitportal.lib.times import zoned_time
from tests.api.conftest import ApiClient

pytestmark = pytest.mark.django_db
ME = "/api/v1/me/"


def page_form(name: str, expires: datetime | None = None) -> dict:
    """The create form as a browser sends it: the name, and the expiry field (prefilled with the default)."""
    expires = expires or services.default_expiry()
    return {"name": name, "expires_at": expires.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")}


def test_only_the_hash_of_the_secret_is_stored(requester):
    issued = services.token_create(actor=requester, name="deploy")
    assert issued.secret.startswith("jit_") and len(issued.secret) >= 40
    token = ApiToken.objects.get()
    assert token.secret_hash == hashlib.sha256(issued.secret.encode()).hexdigest()
    assert token.prefix == issued.secret[4:12]
    assert issued.secret not in str(ApiToken.objects.values().get())
    event = AuditEvent.objects.get(action="api_token.created")
    assert event.actor_id == requester.pk and issued.secret not in str(event.after)


def test_a_token_acts_as_its_user_with_the_users_roles(requester):
    client = ApiClient(services.token_create(actor=requester, name="cli").secret)
    response = client.get(ME)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["username"] == "alice@contoso.example" and body["authentication"] == "api_token"
    assert {"role": "requester", "scope": "/subscriptions/c0a1b2c3-0000-4000-8000-000000000001"} in body["roles"]
    assert ApiToken.objects.get().last_used_at is not None


def test_a_token_never_does_more_than_its_user(requester, auditor):
    requesters = ApiClient(services.token_create(actor=requester, name="cli").secret)
    assert requesters.get("/api/v1/audit/events/").status_code == 403
    auditors = ApiClient(services.token_create(actor=auditor, name="cli").secret)
    assert auditors.get("/api/v1/audit/events/").status_code == 200
    RoleMapping.objects.filter(source_value="JIT.Auditor").delete()  # the role is taken away: at once
    response = auditors.get("/api/v1/audit/events/")
    assert response.status_code == 403
    assert "JitPortal/audit/read" in response.json()["detail"]


@pytest.mark.parametrize("header", [None, "Bearer jit_unknown", "Token jit_", "Bearer", "Basic abc"])
def test_no_or_an_unknown_token_gets_401(db, header):
    client = ApiClient(None)
    response = client.get(ME, **({"HTTP_AUTHORIZATION": header} if header else {}))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["detail"]


def test_a_revoked_token_gets_401_at_once(requester):
    issued = services.token_create(actor=requester, name="cli")
    client = ApiClient(issued.secret)
    assert client.get(ME).status_code == 200
    services.token_revoke(actor=requester, token=issued.token)
    response = client.get(ME)
    assert response.status_code == 401
    assert response.json()["detail"] == "This API token was revoked."
    assert AuditEvent.objects.filter(action="api_token.revoked", actor=requester).count() == 1


def test_an_expired_token_gets_401_saying_when_it_expired_and_what_to_do(requester):
    issued = services.token_create(actor=requester, name="cli", expires_at=timezone.now() + timedelta(hours=1))
    ended = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    ApiToken.objects.filter(pk=issued.token.pk).update(created_at=ended - timedelta(days=1), expires_at=ended)
    response = ApiClient(issued.secret).get(ME)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["detail"] == ("This API token expired on 2026-03-04 05:06 UTC: create a new one on the "
                                         "portal's API tokens page.")


# --- lifetime: a default, a maximum, never "never" ---------------------------------------------------------------
def test_a_new_token_expires_after_the_default_lifetime(requester, settings):
    settings.API_TOKEN_DEFAULT_DAYS = 7
    before = timezone.now()
    issued = services.token_create(actor=requester, name="cli")
    token = ApiToken.objects.get()
    assert before + timedelta(days=7) <= token.expires_at <= timezone.now() + timedelta(days=7)
    assert token.expires == token.expires_at and issued.token.status == "active"
    event = AuditEvent.objects.get(action="api_token.created")
    assert event.after["expires_at"] == token.expires_at.isoformat()


def test_a_token_longer_than_the_maximum_or_in_the_past_is_refused(requester, settings):
    settings.API_TOKEN_MAX_DAYS = 30
    latest = timezone.now() + timedelta(days=30)
    with pytest.raises(ValidationError, match=r"at most 30 days from now \(on or before \d{4}-\d\d-\d\d \d\d:\d\d UTC"):
        services.token_create(actor=requester, name="cli", expires_at=latest + timedelta(minutes=5))
    with pytest.raises(ValidationError, match="must be in the future"):
        services.token_create(actor=requester, name="cli", expires_at=timezone.now() - timedelta(minutes=1))
    assert not ApiToken.objects.exists() and not AuditEvent.objects.filter(action="api_token.created").exists()
    services.token_create(actor=requester, name="cli", expires_at=latest - timedelta(minutes=1))
    assert ApiToken.objects.count() == 1


def test_the_page_offers_the_default_expiry_and_refuses_never_or_too_late(client, requester, settings):
    settings.API_TOKEN_DEFAULT_DAYS, settings.API_TOKEN_MAX_DAYS = 30, 60
    client.force_login(requester)
    url = reverse("api_tokens")
    field = client.get(url).context["form"]["expires_at"]
    offered = datetime.strptime(field.value(), "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
    assert abs(offered - (timezone.now() + timedelta(days=30))) < timedelta(minutes=2)
    assert 'type="datetime-local"' in str(field) and "at most 60 days" in field.help_text

    never = client.post(url, {"name": "forever", "expires_at": ""})
    assert never.status_code == 400
    assert "A token must expire: give a date at most 60 days from now" in never.content.decode()
    too_late = client.post(url, page_form("too long", timezone.now() + timedelta(days=61)))
    assert too_late.status_code == 400
    assert "A token may last at most 60 days from now" in too_late.content.decode()
    assert not ApiToken.objects.exists()
    assert client.post(url, page_form("a month", timezone.now() + timedelta(days=59))).status_code == 302


def _next_spring_forward() -> datetime:
    """02:30 on the next last Sunday of March at least a day away: a time Paris skips (02:00 → 03:00), not UTC."""
    now = timezone.now()
    for year in (now.year, now.year + 1):
        day = datetime(year, 3, 31, 2, 30, tzinfo=UTC)
        day -= timedelta(days=(day.weekday() + 1) % 7)
        if day > now + timedelta(days=1):
            return day
    raise AssertionError("unreachable")


def test_an_expiry_the_portals_time_zone_skips_is_read_as_the_utc_time_the_field_names(client, requester, settings):
    settings.TIME_ZONE, settings.API_TOKEN_MAX_DAYS = "Europe/Paris", 400
    client.force_login(requester)
    moment = _next_spring_forward()
    response = client.post(reverse("api_tokens"), page_form("over the clock change", moment))
    assert response.status_code == 302, response.content.decode()
    assert ApiToken.objects.get().expires_at == moment


def test_the_list_shows_when_each_token_stops_working(client, requester, settings):
    settings.API_TOKEN_MAX_DAYS = 365
    chosen = services.token_create(actor=requester, name="chosen", expires_at=timezone.now() + timedelta(days=10))
    legacy = services.token_create(actor=requester, name="legacy").token  # as if made before expiry was required:
    ApiToken.objects.filter(pk=legacy.pk).update(expires_at=None)  # no expiry, so the maximum applies
    legacy.refresh_from_db()
    client.force_login(requester)
    page = client.get(reverse("api_tokens")).content.decode()
    for token in (chosen.token, legacy):
        row = page.split(f'data-prefix="{token.prefix}"', 1)[1].split("</tr>", 1)[0]
        assert f'<td data-label="Expires" class="token-expires">{zoned_time(token.expires)}</td>' in row
    assert legacy.expires == legacy.created_at + timedelta(days=365)


def test_a_token_without_expiry_or_a_later_one_stops_at_the_maximum_after_it_was_made(requester, settings):
    settings.API_TOKEN_MAX_DAYS = 365
    issued = services.token_create(actor=requester, name="old")
    client = ApiClient(issued.secret)
    made = timezone.now() - timedelta(days=300)
    ApiToken.objects.filter(pk=issued.token.pk).update(created_at=made, expires_at=None)
    assert client.get(ME).status_code == 200  # 300 days old, within the year
    settings.API_TOKEN_MAX_DAYS = 90  # an operator lowers the maximum: older tokens stop at once
    response = client.get(ME)
    assert response.status_code == 401
    assert f"expired on {made + timedelta(days=90):%Y-%m-%d %H:%M} UTC" in response.json()["detail"]
    settings.API_TOKEN_MAX_DAYS = 365
    ApiToken.objects.filter(pk=issued.token.pk).update(expires_at=made + timedelta(days=3650))
    ApiToken.objects.filter(pk=issued.token.pk).update(created_at=made - timedelta(days=100))
    assert client.get(ME).status_code == 401  # a ten-year expiry still ends a year after the token was made
    assert ApiToken.objects.unexpired().count() == 0


def test_the_token_scheme_is_accepted_too(requester):
    secret = services.token_create(actor=requester, name="cli").secret
    assert ApiClient(None).get(ME, HTTP_AUTHORIZATION=f"Token {secret}").status_code == 200


def test_a_deactivated_users_token_gets_401(requester):
    client = ApiClient(services.token_create(actor=requester, name="cli").secret)
    requester.is_active = False
    requester.save()
    assert client.get(ME).status_code == 401


def test_a_token_revoked_twice_at_once_is_revoked_and_recorded_once(requester):
    """Two requests that both loaded the token while it was active (a double click on Yes, revoke; two tabs) revoke
    it once: the second finds it revoked meanwhile, keeps the first's time and records nothing."""
    token = services.token_create(actor=requester, name="cli").token
    first, second = ApiToken.objects.get(pk=token.pk), ApiToken.objects.get(pk=token.pk)
    services.token_revoke(actor=requester, token=first)
    assert services.token_revoke(actor=requester, token=second).revoked_at == first.revoked_at
    token.refresh_from_db()
    assert token.revoked_at == first.revoked_at
    assert AuditEvent.objects.filter(action="api_token.revoked").count() == 1


def test_nobody_revokes_someone_elses_token(requester, reader):
    issued = services.token_create(actor=requester, name="cli")
    with pytest.raises(services.PermissionDenied):
        services.token_revoke(actor=reader, token=issued.token)


# --- the "API tokens" page ---------------------------------------------------------------------------------------
def test_the_page_shows_a_new_secret_once_and_revokes(client, requester):
    client.force_login(requester)
    url = reverse("api_tokens")
    response = client.post(url, page_form("laptop"))
    assert response.status_code == 302 and response["Location"] == url
    response = client.get(url)
    secret = response.context["secret"]
    assert secret.startswith("jit_") and secret in response.content.decode()
    listing = client.get(url).content.decode()
    assert secret not in listing and f"jit_{secret[4:12]}" in listing and "laptop" in listing
    token = ApiToken.objects.get(user=requester)
    confirm = reverse("api_token_revoke", args=[token.pk])
    assert f'href="{confirm}"' in listing
    assert client.post(confirm).status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert ApiClient(secret).get(ME).status_code == 401


def test_reloading_after_creating_a_token_does_not_mint_another(client, requester):
    client.force_login(requester)
    url = reverse("api_tokens")
    response = client.post(url, page_form("laptop"), follow=True)
    assert response.redirect_chain == [(url, 302)] and response.context["secret"]
    reloaded = client.get(url)  # the browser's reload repeats the GET, not the POST
    assert reloaded.context["secret"] is None and "new-token" not in reloaded.content.decode()
    assert ApiToken.objects.filter(user=requester).count() == 1


def test_a_head_of_the_page_leaves_a_new_secret_for_the_get(client, requester):
    client.force_login(requester)
    url = reverse("api_tokens")
    client.post(url, page_form("laptop"))
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert client.get(url).context["secret"].startswith("jit_")


def test_the_page_lists_only_my_tokens_and_refuses_to_revoke_others(client, requester, reader):
    theirs = services.token_create(actor=reader, name="readers-token").token
    client.force_login(requester)
    assert "readers-token" not in client.get(reverse("api_tokens")).content.decode()
    assert client.post(reverse("api_tokens"), {"revoke": theirs.pk}).status_code == 404
    confirm = reverse("api_token_revoke", args=[theirs.pk])
    assert client.get(confirm).status_code == 404
    assert client.post(confirm).status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    assert not AuditEvent.objects.filter(action="api_token.revoked").exists()


def test_revoking_from_the_page_asks_first_and_only_a_post_revokes(client, requester):
    """The list's Revoke opens a page that names the token and what revoking does; opening it (or a list page
    of before, which posted ``revoke``) revokes nothing, its Yes button does."""
    issued = services.token_create(actor=requester, name="deploy <script>")
    token = issued.token
    client.force_login(requester)
    confirm = reverse("api_token_revoke", args=[token.pk])
    response = client.get(confirm)
    page = response.content.decode()
    assert response.status_code == 200 and response["Cache-Control"].startswith("max-age=0")
    assert "Revoke the token “deploy &lt;script&gt;” (jit_" in page and "<script>" not in page
    assert "Scripts using it stop working at once" in page and "It was never used." in page
    assert 'value="Yes, revoke"' in page and 'name="csrfmiddlewaretoken"' in page
    assert f'href="{reverse("api_tokens")}" class="button cancel-link"' in page
    assert client.post(reverse("api_tokens"), {"revoke": token.pk})["Location"] == confirm
    token.refresh_from_db()
    assert token.revoked_at is None and ApiClient(issued.secret).get(ME).status_code == 200

    response = client.post(confirm, follow=True)
    assert response.redirect_chain == [(reverse("api_tokens"), 302)]
    assert "Token &#x27;deploy &lt;script&gt;&#x27; revoked: it no longer works." in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None and ApiClient(issued.secret).get(ME).status_code == 401
    assert AuditEvent.objects.filter(action="api_token.revoked", actor=requester).count() == 1
    # Asked again (a second tab, the Back button), it says the token is already revoked and asks nothing.
    response = client.get(confirm, follow=True)
    assert response.redirect_chain == [(reverse("api_tokens"), 302)]
    assert "is already revoked: it no longer works." in response.content.decode()
    assert client.post(confirm).status_code == 302
    assert AuditEvent.objects.filter(action="api_token.revoked").count() == 1


def test_the_revoke_page_needs_the_csrf_token(requester):
    token = services.token_create(actor=requester, name="cli").token
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(requester)
    assert browser.post(reverse("api_token_revoke", args=[token.pk])).status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None


def test_the_page_refuses_a_nameless_token(client, requester):
    client.force_login(requester)
    response = client.post(reverse("api_tokens"), page_form(""))
    assert response.status_code == 400 and not ApiToken.objects.exists()


def test_expired_tokens_do_not_count_against_the_limit(client, requester):
    for n in range(services.MAX_ACTIVE_TOKENS):
        services.token_create(actor=requester, name=f"ci-{n}")
    with pytest.raises(ValidationError, match="revoke one first"):
        services.token_create(actor=requester, name="one too many")
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    client.force_login(requester)
    page = client.get(reverse("api_tokens")).content.decode()
    assert 'name="revoke"' not in page  # nothing left to revoke on the page ...
    response = client.post(reverse("api_tokens"), page_form("deploy"))
    assert response.status_code == 302  # ... and a new token is made
    assert ApiToken.objects.filter(name="deploy").exists()
