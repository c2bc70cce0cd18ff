"""Sliding sessions: saved again (new expiry) when the refresh is due, not on every request."""
from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.middleware import REFRESHED_KEY

pytestmark = pytest.mark.django_db


def expiry(client) -> object:
    return Session.objects.get(session_key=client.session.session_key).expire_date


def test_a_session_is_saved_again_only_when_its_refresh_is_due(client, django_user_model, settings):
    settings.SESSION_REFRESH_SECONDS = 60
    client.force_login(django_user_model.objects.create(username="dora@contoso.example"))
    signed_in = expiry(client)
    client.get("/healthz")
    first = expiry(client)
    assert first > signed_in  # the first request after sign-in slides the expiry
    for _ in range(3):
        client.get("/healthz")
    assert expiry(client) == first  # within the interval: no write at all

    session = client.session
    session[REFRESHED_KEY] -= 61
    session.save()
    before = expiry(client)
    client.get("/healthz")
    assert expiry(client) > before


def test_an_anonymous_visit_stores_no_session(client):
    client.get("/healthz")
    assert not Session.objects.exists()


def test_an_unknown_session_cookie_is_not_turned_into_a_new_session(client, settings):
    client.cookies[settings.SESSION_COOKIE_NAME] = "nosuchsession0123456789abcdefghij"
    client.get("/healthz")
    assert not Session.objects.exists()


# --- an Entra session's renewal, for a user taken off the app -----------------------------------------------------
# The portal keeps no Entra ID refresh token (scopes openid, profile and email; no offline_access): a session's roles
# come from its sign-in, and it ends ``ENTRA_SIGN_IN_MAX_AGE`` after it, however busy. Renewing it is a new sign-in.
# An organisation that takes the user off the app (AADSTS50105) refuses that sign-in: at Entra ID's page, or at the
# token endpoint for a sign-in code issued just before.
NOT_ASSIGNED = re.compile(
    r"Your organisation's Entra ID refused to sign you in: AADSTS50105: Your administrator has configured the "
    r"application JIT Portal \('[0-9a-f-]+'\) to block users unless they are specifically granted \('assigned'\) "
    r"access to the application\. The signed in user 'alice@contoso\.example' is blocked because .* Trace ID: "
    r"[0-9a-f-]{36} Correlation ID: [0-9a-f-]{36} Timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\. Give this message to "
    r"your Entra ID administrator\.")


def refusal_of(response) -> str:
    """The reason the sign-in-failed page gives, as the person reads it."""
    body = response.content.decode()
    assert response.status_code == 403, body[:500]
    assert "You are not signed in" in body and 'id="try-again"' in body
    return html.unescape(re.search(r'id="sign-in-failure-reason">([^<]*)<', body).group(1))


@pytest.mark.django_db(transaction=True)
def test_a_user_taken_off_the_app_loses_access_when_the_session_is_due_for_renewal(entra_settings, fresh_emulator,
                                                                                   persona_mappings):
    """Signed in, then taken off the app in Entra ID: at the sign-in's maximum age the session ends, and the sign-in
    that would renew it is refused in Entra ID's words; nothing of it is recorded, nobody is signed in."""
    from accounts.models import SignInClaims
    from tests.plugins.personas import PERSONAS, authorize_with_client, sign_in_with_client

    oid = PERSONAS["requester"].oid
    client = Client(SERVER_NAME="127.0.0.1")  # a loopback host, which the emulator takes as redirect URI
    assert sign_in_with_client(client, fresh_emulator, oid).status_code == 302
    assert client.get(reverse("my_access")).status_code == 200
    fresh_emulator.control("PUT", f"entra/users/{oid}", json={"assigned": False})
    stale = timezone.now() - timedelta(seconds=entra_settings.ENTRA_SIGN_IN_MAX_AGE + 60)
    SignInClaims.objects.update(signed_in_at=stale)

    ended = client.get(reverse("my_access"))
    assert ended.status_code == 302 and ended["Location"].startswith(reverse("login"))
    reason = refusal_of(client.get(authorize_with_client(client, fresh_emulator, oid)))
    assert NOT_ASSIGNED.fullmatch(reason), reason
    assert SignInClaims.objects.get().signed_in_at == stale  # the refused sign-in freshened nothing
    assert client.get(reverse("my_access")).status_code == 302


@pytest.mark.django_db(transaction=True)
def test_a_sign_in_code_issued_before_the_user_was_taken_off_the_app_signs_nobody_in(entra_settings, fresh_emulator,
                                                                                     persona_mappings):
    """Entra ID handed out a sign-in code, then the user was taken off the app before the portal redeemed it: the
    token endpoint's ``invalid_grant`` (AADSTS50105) ends on the 403 page in Entra ID's words, not a 500, and
    nobody is signed in; once assigned again, Try again signs them in."""
    from accounts.models import SignInClaims
    from tests.plugins.personas import PERSONAS, authorize_with_client

    oid = PERSONAS["requester"].oid
    client = Client(SERVER_NAME="127.0.0.1")
    callback = authorize_with_client(client, fresh_emulator, oid)
    fresh_emulator.control("PUT", f"entra/users/{oid}", json={"assigned": False})
    refused = client.get(callback)
    reason = refusal_of(refused)
    assert NOT_ASSIGNED.fullmatch(reason), reason
    assert "_auth_user_id" not in client.session and not SignInClaims.objects.exists()
    assert client.get(reverse("my_access")).status_code == 302

    fresh_emulator.control("PUT", f"entra/users/{oid}", json={"assigned": True})
    assert client.get(authorize_with_client(client, fresh_emulator, oid)).status_code == 302
    assert client.get(reverse("my_access")).status_code == 200
