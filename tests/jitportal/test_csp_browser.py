"""The Content-Security-Policy in headless chromium: pages the browser runs without refusing anything (no inline
script or style, nothing from another origin): the Django admin's, the browsable API's and the API docs. Each demo
role's own pages, after its sign-in through the emulator's Entra ID pages (so ``form-action`` lets the sign-in's
redirect through), are held to it by the accessibility crawl (``test_accessibility_browser.py``), with the same
collector (``tests/plugins/csp.py``): a page that broke the policy (an inline ``<style>`` such as htmx's indicator
styles) is named with what it broke.
"""
from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.urls import reverse
from playwright.sync_api import Page, Route, expect
from rest_framework.renderers import BrowsableAPIRenderer

from api.views.base import ApiView
from tests.plugins.csp import SETTLED, watch
from tests.plugins.personas import sign_in_as_breakglass

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def visit(page: Page, url: str, found: list[str], *, then: Callable[[Page], None] | None = None) -> None:
    """Open ``url``, let its scripts start (and run ``then``), and fail naming any violation so far."""
    response = page.goto(url)
    assert response is not None and response.status == 200, (url, response and response.status)
    assert "default-src 'self'" in response.headers["content-security-policy"], url
    page.evaluate(SETTLED)
    assert found == [], url
    if then:
        then(page)
        page.evaluate(SETTLED)
        assert found == [], url


def docs_load(page: Page) -> None:
    """Swagger UI draws the schema's operations, and one opened with its parameters and example responses."""
    operation = page.locator(".opblock").first
    operation.locator(".opblock-summary").click()
    expect(operation.locator(".responses-wrapper")).to_be_visible()
    page.click(".btn.authorize")
    expect(page.locator(".dialog-ux .modal-ux")).to_be_visible()


def test_the_api_docs_run_under_the_content_security_policy(page, live_server, breakglass_admin):
    """Swagger UI (the same page for every user; each role's other pages: ``test_accessibility_browser.py``)."""
    found = watch(page.context)
    sign_in_as_breakglass(page, live_server.url)
    visit(page, f"{live_server.url}{reverse('api:docs')}", found, then=docs_load)


def test_the_django_admin_runs_under_the_content_security_policy(page, live_server, breakglass_admin):
    found = watch(page.context)
    sign_in_as_breakglass(page, live_server.url)
    for path in ("/admin/", "/admin/accounts/user/", f"/admin/accounts/user/{breakglass_admin.pk}/change/",
                 "/admin/accounts/rolemapping/add/", "/admin/audit/auditevent/", "/admin/policies/virtualmachine/"):
        visit(page, f"{live_server.url}{path}", found)


def test_the_browsable_api_runs_under_the_content_security_policy(page, live_server, breakglass_admin, monkeypatch):
    """``API_BROWSABLE`` (on in the demo): DRF's HTML pages, their scripts and forms. The setting is read when the
    views' classes are made, so the test gives the API's base view the renderers it would have."""
    monkeypatch.setattr(ApiView, "renderer_classes", [*ApiView.renderer_classes, BrowsableAPIRenderer])
    found = watch(page.context)
    sign_in_as_breakglass(page, live_server.url)
    for path in ("/api/v1/me/", "/api/v1/requests/", "/api/v1/vms/"):
        visit(page, f"{live_server.url}{path}", found)
        expect(page.locator(".response-info")).to_be_visible()  # DRF's page, not JSON


def test_a_page_with_an_inline_style_or_script_is_caught(page, live_server, breakglass_admin):
    """The collector itself: the dashboard served with an inline ``<style>``, ``style`` attribute and ``<script>``
    (the portal's own header kept) fails the check, naming each."""
    def with_inline_code(route: Route) -> None:
        response = route.fetch()
        body = response.text().replace("</head>", "<style>p { color: red }</style></head>").replace(
            '<div id="content"', '<div style="color: red"></div><script>window.ran = true</script><div id="content"')
        route.fulfill(response=response, body=body)

    found = watch(page.context)
    sign_in_as_breakglass(page, live_server.url)
    page.route(f"{live_server.url}/", with_inline_code)
    with pytest.raises(AssertionError, match=re.escape(f"{live_server.url}/")):
        visit(page, f"{live_server.url}/", found)
    assert page.evaluate("() => window.ran") is None
    refused = {report.split(" refused ")[0] for report in found if not report.startswith("console:")}
    assert refused == {"style-src-elem", "style-src-attr", "script-src-elem"}, found
