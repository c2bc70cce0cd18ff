"""API tests: personas with personal API tokens, a JSON client, and Production registered on the emulator."""
from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.test import Client

from api import services as api_services
from policies.access import gateways
from tests.plugins.emulator import emulator, emulator_factory, fresh_emulator  # noqa: F401 - fixtures
from tests.plugins.personas import (  # noqa: F401 - fixtures, used by name
    auditor,
    entra_settings,
    outsider,
    persona_mappings,
    policy_admin,
    reader,
    requester,
)
from tests.policies.factories import PROD, register_and_sync


class ApiClient:
    """A Django test client that sends a bearer token and JSON bodies."""

    def __init__(self, token: str | None) -> None:
        self.client = Client()
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}

    def _send(self, method: str, url: str, body=None, **headers):
        kwargs = {**self.headers, **headers}
        if body is not None:
            kwargs.update(data=json.dumps(body), content_type="application/json")
        return getattr(self.client, method)(url, **kwargs)

    def get(self, url: str, params: dict | None = None, **headers):
        return self.client.get(url, params or {}, **{**self.headers, **headers})

    def head(self, url: str, params: dict | None = None, **headers):
        return self.client.head(url, params or {}, **{**self.headers, **headers})

    def post(self, url: str, body=None, **headers):
        return self._send("post", url, body if body is not None else {}, **headers)

    def put(self, url: str, body=None, **headers):
        return self._send("put", url, body, **headers)

    def delete(self, url: str, **headers):
        return self._send("delete", url, None, **headers)


def token_of(user, name: str = "test") -> str:
    return api_services.token_create(actor=user, name=name).secret


@pytest.fixture(autouse=True)
def clean_cache_and_gateways():
    """Throttle counters and Entra metadata do not leak between tests; gateways are rebuilt per emulator."""
    cache.clear()
    gateways.reset()
    yield
    gateways.reset()


@pytest.fixture
def api_as():
    """``api_as(user)``: a client authenticated with a fresh personal API token of ``user``."""
    return lambda user: ApiClient(token_of(user))


@pytest.fixture
def prod(db, fresh_emulator):  # noqa: F811 - the fixture imported above
    """Contoso Production (Defender P2) registered against the fresh demo emulator, synced once."""
    return register_and_sync(fresh_emulator, PROD, "Contoso Production")
