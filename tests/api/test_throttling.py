"""API rate limits: every throttle reads the client's address the same way, X-Forwarded-For only from
``ACCESS_TRUSTED_PROXIES``, so a forged header per call does not escape a limit."""
from __future__ import annotations

import pytest

from tests.api.conftest import ApiClient

pytestmark = pytest.mark.django_db
DOCS = "/api/docs/"
SCHEMA = "/api/schema/"
ME = "/api/v1/me/"


def forged(n: int) -> dict:
    return {"HTTP_X_FORWARDED_FOR": f"198.51.100.{n}"}


def test_a_forged_x_forwarded_for_does_not_escape_the_anonymous_throttle(settings):
    settings.API_THROTTLE_ANON = "3/min"
    for n in range(3):
        assert ApiClient(None).get(SCHEMA, **forged(n)).status_code == 200
    answer = ApiClient(None).get(SCHEMA, **forged(99))
    assert answer.status_code == 429 and answer.has_header("Retry-After")


def test_a_forged_x_forwarded_for_does_not_escape_the_user_throttle_of_an_anonymous_caller(settings):
    settings.API_THROTTLE_USER = "3/min"
    for n in range(3):
        assert ApiClient(None).get(DOCS, **forged(n)).status_code == 200
    assert ApiClient(None).get(DOCS, **forged(99)).status_code == 429


def test_behind_a_trusted_proxy_anonymous_calls_count_per_client(settings):
    settings.API_THROTTLE_ANON = "3/min"
    settings.ACCESS_TRUSTED_PROXIES = ["127.0.0.1/32"]
    for _ in range(3):
        assert ApiClient(None).get(DOCS, **forged(1)).status_code == 200
    assert ApiClient(None).get(DOCS, **forged(1)).status_code == 429
    assert ApiClient(None).get(DOCS, **forged(2)).status_code == 200


def test_the_user_throttle_counts_per_user_whatever_address_they_send(settings, api_as, requester, reader):
    settings.API_THROTTLE_USER = "3/min"
    alice = api_as(requester)
    for n in range(3):
        assert alice.get(ME, **forged(n)).status_code == 200
    assert alice.get(ME, **forged(99)).status_code == 429
    assert api_as(reader).get(ME, **forged(99)).status_code == 200
