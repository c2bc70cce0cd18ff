"""Sliding sessions: saved again (new expiry) when the refresh is due, not on every request."""
from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session

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
