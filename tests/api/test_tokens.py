"""Personal API tokens: stored hashed, shown once, revoked or expired → 401, acting with their user's roles."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from accounts.models import RoleMapping
from api import services
from api.models import ApiToken
from audit.models import AuditEvent
from tests.api.conftest import ApiClient

pytestmark = pytest.mark.django_db
ME = "/api/v1/me/"


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


def test_an_expired_token_gets_401(requester):
    issued = services.token_create(actor=requester, name="cli", expires_at=timezone.now() + timedelta(hours=1))
    ApiToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = ApiClient(issued.secret).get(ME)
    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_the_token_scheme_is_accepted_too(requester):
    secret = services.token_create(actor=requester, name="cli").secret
    assert ApiClient(None).get(ME, HTTP_AUTHORIZATION=f"Token {secret}").status_code == 200


def test_a_deactivated_users_token_gets_401(requester):
    client = ApiClient(services.token_create(actor=requester, name="cli").secret)
    requester.is_active = False
    requester.save()
    assert client.get(ME).status_code == 401


def test_nobody_revokes_someone_elses_token(requester, reader):
    issued = services.token_create(actor=requester, name="cli")
    with pytest.raises(services.PermissionDenied):
        services.token_revoke(actor=reader, token=issued.token)


# --- the "API tokens" page ---------------------------------------------------------------------------------------
def test_the_page_shows_a_new_secret_once_and_revokes(client, requester):
    client.force_login(requester)
    url = reverse("api_tokens")
    response = client.post(url, {"name": "laptop"})
    assert response.status_code == 302 and response["Location"] == url
    response = client.get(url)
    secret = response.context["secret"]
    assert secret.startswith("jit_") and secret in response.content.decode()
    listing = client.get(url).content.decode()
    assert secret not in listing and f"jit_{secret[4:12]}" in listing and "laptop" in listing
    token = ApiToken.objects.get(user=requester)
    assert client.post(url, {"revoke": token.pk}).status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert ApiClient(secret).get(ME).status_code == 401


def test_reloading_after_creating_a_token_does_not_mint_another(client, requester):
    client.force_login(requester)
    url = reverse("api_tokens")
    response = client.post(url, {"name": "laptop"}, follow=True)
    assert response.redirect_chain == [(url, 302)] and response.context["secret"]
    reloaded = client.get(url)  # the browser's reload repeats the GET, not the POST
    assert reloaded.context["secret"] is None and "new-token" not in reloaded.content.decode()
    assert ApiToken.objects.filter(user=requester).count() == 1


def test_the_page_lists_only_my_tokens_and_refuses_to_revoke_others(client, requester, reader):
    theirs = services.token_create(actor=reader, name="readers-token").token
    client.force_login(requester)
    assert "readers-token" not in client.get(reverse("api_tokens")).content.decode()
    assert client.post(reverse("api_tokens"), {"revoke": theirs.pk}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_the_page_refuses_a_nameless_token(client, requester):
    client.force_login(requester)
    response = client.post(reverse("api_tokens"), {"name": ""})
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
    response = client.post(reverse("api_tokens"), {"name": "deploy"})
    assert response.status_code == 302  # ... and a new token is made
    assert ApiToken.objects.filter(name="deploy").exists()
