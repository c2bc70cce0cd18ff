"""The portal served under a URL prefix (WSGI ``SCRIPT_NAME``, a reverse proxy at ``/jit/``): every link it writes,
to a page or to a static file, carries the prefix of the request that asked, and whitenoise serves the static files
there; a request without a prefix in the same process still gets plain links."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.urls import set_script_prefix

from tests.plugins.script_prefix import PREFIX, prefixed

pytestmark = pytest.mark.django_db

# Every URL a page names in an attribute (links, stylesheets, scripts, images, forms, htmx).
URLS = re.compile(r'\b(?:href|src|action|hx-get|hx-post|content)="([^"]*)"')


def local_urls(body: str) -> list[str]:
    """The portal's own URLs in ``body`` (absolute paths; not fragments or other hosts)."""
    return [url for url in URLS.findall(body) if url.startswith("/")]


def test_the_sign_in_page_links_its_pages_and_static_files_under_the_prefix(prefixed_client):
    response = prefixed_client.get("/accounts/login/")
    body = response.content.decode()
    assert response.status_code == 200
    assert 'href="/jit/static/jitportal/portal.css"' in body
    assert 'src="/jit/static/admin/js/theme.js"' in body
    urls = local_urls(body)
    assert urls and [url for url in urls if not url.startswith("/jit/")] == []


def test_whitenoise_serves_the_static_files_at_the_prefixed_url(prefixed_client):
    page = prefixed_client.get("/accounts/login/").content.decode()
    static = [url for url in local_urls(page) if "/static/" in url]
    assert len(static) >= 3
    for url in static:
        # the proxy (or gunicorn, told SCRIPT_NAME) takes the prefix off the path it passes on
        response = prefixed_client.get(url.removeprefix("/jit"))
        assert response.status_code == 200, url
        assert b"".join(response.streaming_content)


def test_a_request_without_the_prefix_still_gets_plain_links_after_one_with_it(fresh_settings, client):
    first = prefixed(Client(SCRIPT_NAME=PREFIX))  # the process's first request, its middleware loaded then
    try:
        assert 'href="/jit/static/jitportal/portal.css"' in first.get("/accounts/login/").content.decode()
    finally:
        set_script_prefix("/")  # as Django's WSGI handler does for the next request of this thread
    body = client.get("/accounts/login/").content.decode()
    assert 'href="/static/jitportal/portal.css"' in body
    assert [url for url in local_urls(body) if url.startswith("/jit")] == []


def test_signing_in_is_asked_for_under_the_prefix_and_returns_there(prefixed_client):
    response = prefixed_client.get("/requests/")
    assert response.status_code == 302
    assert response["Location"] == "/jit/accounts/login/?next=/jit/requests/"


def test_the_missing_page_links_under_the_prefix(prefixed_client, django_user_model):
    prefixed_client.force_login(django_user_model.objects.create_user("nobody", password="x"))
    response = prefixed_client.get("/nothing-here/")
    body = response.content.decode()
    assert response.status_code == 404
    assert 'href="/jit/static/jitportal/portal.css"' in body
    assert [url for url in local_urls(body) if not url.startswith("/jit/")] == []


def test_the_entra_sign_in_sends_the_prefixed_callback_url(entra_settings):
    client = prefixed(Client(SCRIPT_NAME=PREFIX, SERVER_NAME="127.0.0.1"))
    try:
        response = client.post("/accounts/oidc/entra/login/")
    finally:
        set_script_prefix("/")
    assert response.status_code == 302, response.content[:300]
    redirect_uri = parse_qs(urlsplit(response["Location"]).query)["redirect_uri"]
    assert redirect_uri == ["http://127.0.0.1/jit/accounts/oidc/entra/login/callback/"]


def test_an_unknown_api_url_under_the_prefix_answers_the_apis_json_404(prefixed_client, django_user_model):
    prefixed_client.force_login(django_user_model.objects.create_user("nobody", password="x"))
    response = prefixed_client.get("/api/v1/nothing-here/")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json()["detail"] == "Not found."
