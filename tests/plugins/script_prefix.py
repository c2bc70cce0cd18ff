"""The test client served under a URL prefix (WSGI ``SCRIPT_NAME``), as behind a reverse proxy at ``/jit/``."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.handlers.wsgi import get_script_name
from django.test import Client
from django.test.client import ClientHandler
from django.urls import get_script_prefix, set_script_prefix

PREFIX = "/jit"


class ScriptPrefixHandler(ClientHandler):
    """The test client's handler, setting the script prefix from the request (its ``SCRIPT_NAME``, or
    FORCE_SCRIPT_NAME) as Django's WSGIHandler does; Django's test handler leaves it as it was."""

    def __call__(self, environ: dict):
        set_script_prefix(get_script_name(environ))
        return super().__call__(environ)


def prefixed(client: Client) -> Client:
    """``client`` with ``ScriptPrefixHandler``; its requests carry ``SCRIPT_NAME=/jit`` when it was made with it."""
    client.handler = ScriptPrefixHandler(enforce_csrf_checks=client.handler.enforce_csrf_checks)
    return client


@pytest.fixture
def fresh_settings(settings):
    """Settings as a new process reads them: Django caches ``STATIC_URL`` with the script prefix of its first read
    (and the static files storage the value it read), so each test starts without either."""
    settings.STATIC_URL = "static/"
    return settings


@pytest.fixture
def prefixed_client(fresh_settings) -> Iterator[Client]:
    """A test client whose requests carry ``SCRIPT_NAME=/jit`` (a proxy's prefix, the path already stripped of it,
    as gunicorn passes it on), its middleware loaded before the first request as a WSGI server's start-up does; the
    test thread's script prefix is put back afterwards."""
    prefix = get_script_prefix()
    set_script_prefix("/")
    client = prefixed(Client(SCRIPT_NAME=PREFIX, raise_request_exception=False))
    client.handler.load_middleware()
    try:
        yield client
    finally:
        set_script_prefix(prefix)
