"""The Content-Security-Policy in headless chromium: each demo role signs in through the emulator's Entra ID pages
(so ``form-action`` lets the sign-in's redirect through) and opens its main pages, which the browser runs without
refusing anything: no inline script or style, nothing from another origin. The Django admin's pages too.

Every ``securitypolicyviolation`` event of a portal page, and every console message about the policy, is collected
(``tests/plugins/csp.py``); a page that broke the policy (an inline ``<style>`` such as htmx's indicator styles) is
named with what it broke.
"""
from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.urls import reverse
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Route, expect
from rest_framework.renderers import BrowsableAPIRenderer

from api.views.base import ApiView
from audit.ingestion import store_events
from audit.models import ActivityLogEvent, AuditEvent
from policies.models import VirtualMachine, VmState
from tests.audit.factories import event
from tests.plugins.csp import SETTLED, watch
from tests.plugins.personas import IN_SCOPE, sign_in_as_breakglass, sign_in_with_entra
from tests.policies import factories as policy_factories  # first: it imports the access factories
from tests.policies.access.factories import ask, rule, vm

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


@pytest.fixture
def demo(live_server, entra_settings, fresh_emulator, persona_mappings, requester):
    """Production registered and synced; Alice's request to web-02 waiting for approval (a rule on rg-web-prod) and
    one to jump-02 queued (no worker runs: its page keeps polling); an Activity Log event."""
    policy_factories.sync(policy_factories.register(fresh_emulator, policy_factories.PROD, "Contoso Production"))
    rule(f"{IN_SCOPE}/resourceGroups/rg-web-prod", "manual", approvals_required=1, name="Approve web")
    pending = ask(requester, {"web-02": [22]}, justification="Ship the hotfix")
    queued = ask(requester, {"jump-02": [22]}, justification="Rotate the host keys")
    store_events([event(caller="alice@contoso.example")])
    assert pending.state == "pending" and queued.state == "queued", (pending.state, queued.state)
    return {"pending": pending, "queued": queued}


def not_configured() -> VirtualMachine:
    return VirtualMachine.objects.filter(state=VmState.NOT_CONFIGURED,
                                         subscription__subscription_id=policy_factories.PROD).first()


def inventory_tabs() -> list[str]:
    return [f"/inventory/?tab={tab}" for tab in ("configured", "not_configured", "unsupported")]


def polls(page: Page) -> None:
    """The request page's status fragment is fetched and swapped in (htmx) at least once: the status marked here is
    replaced by a poll's (a request awaiting approval polls every 5 s)."""
    page.locator("#request-status").evaluate("status => { status.dataset.polled = 'not yet'; }")
    expect(page.locator("#request-status[data-polled]")).to_have_count(0, timeout=10_000)
    expect(page.locator("#request-state")).to_be_visible()


def adds_a_port(page: Page) -> None:
    """The ports editor's script adds a row from its template."""
    rows = page.locator("#port-rules tbody tr").count()
    page.click("#add-port")
    expect(page.locator("#port-rules tbody tr")).to_have_count(rows + 1)


def docs_load(page: Page) -> None:
    """Swagger UI draws the schema's operations, and one opened with its parameters and example responses."""
    operation = page.locator(".opblock").first
    operation.locator(".opblock-summary").click()
    expect(operation.locator(".responses-wrapper")).to_be_visible()
    page.click(".btn.authorize")
    expect(page.locator(".dialog-ux .modal-ux")).to_be_visible()


def common() -> list[tuple[str, Callable[[Page], None] | None]]:
    """Every role's pages: the dashboard, requests, My access, notifications, API tokens."""
    return [("/", None), ("/requests/", None), (reverse("my_access"), None),
            (reverse("notifications:preferences"), None), (reverse("api_tokens"), None)]


def pages_of(role: str, demo: dict) -> list[tuple[str, Callable[[Page], None] | None]]:
    pending, queued = demo["pending"], demo["queued"]
    jump = vm("jump-02")
    if role == "requester":
        return [*[(tab, None) for tab in inventory_tabs()], (f"/inventory/vm/{jump.pk}/", None),
                (f"/inventory/vm/{jump.pk}/connect/", None), (f"/requests/new/?vm={jump.pk}", None),
                (f"/requests/{queued.pk}/", polls), (f"/requests/{pending.pk}/", polls)]
    if role == "policy_admin":
        idle = not_configured()
        return [*[(tab, None) for tab in inventory_tabs()], (f"/inventory/vm/{jump.pk}/", None),
                (f"/inventory/vm/{jump.pk}/jit/", adds_a_port), (f"/inventory/enable/?vm={idle.pk}", adds_a_port),
                (reverse("settings"), None), (reverse("accounts:rolemapping_list"), None),
                (reverse("accounts:rolemapping_add"), None), (reverse("accounts:role_definitions"), None),
                (reverse("policies:subscriptions"), None),
                (reverse("policies:subscription_add"), None), (reverse("policies:rules"), None),
                (reverse("policies:rule_new"), None), (reverse("notifications:webhook_list"), None),
                (reverse("notifications:webhook_add"), None), (f"/requests/{queued.pk}/", polls)]
    if role == "auditor":
        activity = ActivityLogEvent.objects.first()
        trail = AuditEvent.objects.filter(subscription_id=policy_factories.PROD).first()
        return [(reverse("audit:search"), None), (reverse("audit:search") + "?q=alice", None),
                (reverse("audit:activity_event", args=[activity.pk]), None),
                (reverse("audit:trail_event", args=[trail.pk]), None),
                (reverse("audit:vm_timeline") + f"?vm={jump.arm_id}", None),
                (reverse("audit:ingestion_status"), None)]
    assert role == "approver"
    return [(reverse("policies:approvals"), None), (f"/requests/{pending.pk}/review/", None),
            (f"/requests/{pending.pk}/", polls)]


USERS = {"requester": "alice@contoso.example", "policy_admin": "bob@contoso.example",
         "auditor": "carol@contoso.example", "approver": "dave@contoso.example"}


@pytest.mark.parametrize("role", list(USERS))
def test_each_roles_pages_run_under_the_content_security_policy(demo, live_server, entra_page, role):
    page = entra_page
    found = watch(page.context)
    try:
        sign_in_with_entra(page, live_server.url, USERS[role])
    except PlaywrightError:
        assert found == [], "sign-in"  # form-action refused the redirect to the emulator's sign-in page
        raise
    expect(page.locator("#portal-nav")).to_be_visible()
    page.evaluate(SETTLED)
    assert found == [], "sign-in"
    for path, then in [*common(), *pages_of(role, demo), (reverse("api:docs"), docs_load)]:
        visit(page, f"{live_server.url}{path}", found, then=then)


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
