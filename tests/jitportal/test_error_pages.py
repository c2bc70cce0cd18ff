"""The error pages (400s, CSRF failure, 500) in the portal's look, with no inline style or script (which the
Content-Security-Policy refuses), and saying nothing about what was asked for."""
from __future__ import annotations

import json
import re

import pytest
from django.db import OperationalError, connection
from django.test import Client, RequestFactory
from django.urls import get_resolver, get_script_prefix, set_script_prefix

from jitportal import views
from tests.plugins.script_prefix import prefixed

pytestmark = pytest.mark.django_db

INLINE = re.compile(r"<style|style=|<script(?![^>]*\bsrc=)|\bon[a-z]+=", re.IGNORECASE)


def _portal_page(body: str) -> None:
    assert 'href="/static/jitportal/portal.css"' in body
    assert not INLINE.search(body), INLINE.search(body)


def test_a_missing_page_says_so_in_the_portals_look_without_naming_what_was_asked_for(client, django_user_model):
    user = django_user_model.objects.create_user("nobody", password="x")
    client.force_login(user)
    response = client.get("/nothing-here/<script>x</script>/")
    body = response.content.decode()
    assert response.status_code == 404
    assert "<h1>Not found</h1>" in body and "your role does not let you see it" in body
    assert "nothing-here" not in body and "<script>x" not in body
    _portal_page(body)


def test_a_refused_page_says_why_in_the_portals_look(client, django_user_model):
    user = django_user_model.objects.create_user("nobody", password="x")
    client.force_login(user)
    response = client.get("/settings/")
    body = response.content.decode()
    assert response.status_code == 403
    assert "<h1>Not allowed</h1>" in body and "You need a role that allows" in body
    _portal_page(body)


def test_a_form_sent_without_its_csrf_token_gets_a_page_that_says_what_to_do(django_user_model):
    user = django_user_model.objects.create_user("nobody", password="x")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/accounts/me/tokens/", {"name": "x"})
    body = response.content.decode()
    assert response.status_code == 403
    assert "This form could not be sent" in body and "reload the" in body
    _portal_page(body)


def test_a_server_error_gets_the_portals_page_with_its_name_and_nothing_else(settings):
    settings.PORTAL_NAME = "Contoso <JIT>"
    assert get_resolver().resolve_error_handler(500) is views.server_error
    response = views.server_error(RequestFactory().get("/"))
    body = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong" in body and "Contoso &lt;JIT&gt;" in body and "<JIT>" not in body
    _portal_page(body)
    # the dark theme as the admin's base gives every other page: its stylesheet, and its script for a chosen theme
    assert 'href="/static/admin/css/dark_mode.css"' in body and '<script src="/static/admin/js/theme.js">' in body


def test_a_server_error_with_the_database_down_still_renders_its_links_under_the_script_prefix(
        fresh_settings, django_user_model):
    fresh_settings.FORCE_SCRIPT_NAME = "/jit"
    client = prefixed(Client(raise_request_exception=False))
    client.handler.load_middleware()  # at start-up, as a WSGI server does
    client.force_login(django_user_model.objects.create_user("nobody", password="x"))  # its session is stored
    refused = []  # reading the session fails the request; a query of the 500 page would fail it again

    def refuse(execute, sql, params, many, context):
        refused.append(sql)
        raise OperationalError("connection refused")

    prefix = get_script_prefix()
    try:
        with connection.execute_wrapper(refuse):
            response = client.get("/")
    finally:
        set_script_prefix(prefix)
    body = response.content.decode()
    assert response.status_code == 500 and "Something went wrong" in body and refused
    assert re.findall(r'<a href="([^"]*)"', body) == ["/jit/", "/jit/"]
    assert 'href="/jit/static/jitportal/portal.css"' in body and 'src="/jit/static/admin/js/theme.js"' in body
    assert not INLINE.search(body), INLINE.search(body)


def test_a_server_error_under_the_api_answers_in_the_apis_json_shape():
    response = views.server_error(RequestFactory().get("/api/v1/requests/"))
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert body["detail"].startswith("The portal could not answer") and body["errors"] == [body["detail"]]


def test_any_other_bad_request_gets_a_plain_400_not_the_forms_page_nor_a_500(django_user_model):
    """Django answers a request it refuses before any view (a Host not in ALLOWED_HOSTS, refused before the sign-in
    middleware ran; a malformed multipart form) with the 400 handler: it answered them with the too-large form's
    template, rendered without the signed-in user, a 500, and where it rendered, 'This form could not be sent' with
    nothing said why."""
    client = Client(raise_request_exception=False)
    for path in ("/", "/api/v1/requests/"):
        response = client.get(path, HTTP_HOST="elsewhere.example")
        body = response.content.decode()
        assert response.status_code == 400, (path, response.status_code)
        assert "Bad Request (400)" in body and "could not be sent" not in body and "elsewhere" not in body
    client.force_login(django_user_model.objects.create_user("nobody", password="x"))
    response = client.post("/accounts/me/tokens/", data=b"--b\r\nbroken", content_type="multipart/form-data; boundary=")
    assert response.status_code == 400 and "could not be sent" not in response.content.decode()
    response = client.post("/api/v1/requests/", data=b"--b\r\nbroken", content_type="multipart/form-data; boundary=")
    assert response.status_code in (400, 401, 403, 415) and "could not be sent" not in response.content.decode()
    # A form refused before the sign-in middleware ran still says what to do, on the plain page.
    from django.core.exceptions import TooManyFieldsSent

    response = views.bad_request(RequestFactory().post("/requests/new/"), TooManyFieldsSent("x"))
    assert response.status_code == 400 and "select fewer VMs or ports" in response.content.decode()


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_an_actions_address_opened_in_the_browser_gets_a_page_that_says_what_happened(client, breakglass_admin):
    """Opening a POST-only address (a button's) in the browser showed a blank page: Django's 405 has no body."""
    client.force_login(breakglass_admin)
    for path in ("/inventory/vm/1/jit/enable/", "/accounts/logout/"):
        response = client.get(path, HTTP_ACCEPT=BROWSER_ACCEPT)
        body = response.content.decode()
        assert response.status_code == 405 and response["Allow"] == "POST", path
        assert response["Content-Type"] == "text/html; charset=utf-8"
        assert "<h1>This address is not a page</h1>" in body and "Nothing was done" in body, path
        assert '<a href="/">Back to the dashboard</a>' in body
        _portal_page(body)
    response = client.post("/healthz", HTTP_ACCEPT=BROWSER_ACCEPT)  # a page that only reads, sent a form
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
    assert "does not accept a POST request" in response.content.decode()


def test_a_405_outside_a_browser_or_under_the_api_keeps_its_own_body(client, breakglass_admin):
    client.force_login(breakglass_admin)
    plain = client.get("/inventory/vm/1/jit/enable/", HTTP_ACCEPT="*/*")
    assert plain.status_code == 405 and plain.content == b"" and plain["Allow"] == "POST"
    api = client.patch("/api/v1/vms/", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert api.status_code in (401, 403, 405) and api["Content-Type"] == "application/json"
