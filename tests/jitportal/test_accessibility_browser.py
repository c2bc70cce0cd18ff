"""Accessibility in headless chromium: axe-core's WCAG 2.1 A and AA rules on the portal's main pages, in the light
and the dark theme, as each demo role signed in through the emulator's Entra ID pages (and signed out).

A page passes with no violation of impact serious or critical; moderate and minor ones are printed (``-s``). Each
role's crawl also holds its pages (the sign-in's redirect, and what their scripts do once started) to the
Content-Security-Policy: a page that broke it is named with what it broke (``tests/plugins/csp.py``).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.test import RequestFactory
from django.utils import timezone
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Route, expect

from api.services import token_create
from audit.ingestion import ingest_subscription
from audit.models import ActivityLogEvent, AuditEvent
from jitportal.views import server_error
from notifications.services import webhook_create
from policies.access import gateways
from policies.access.models import AccessRequest, AccessRule
from policies.access.signals import EVENTS
from policies.gateway import gateway_for_subscription
from tests.plugins import csp
from tests.plugins.personas import IN_SCOPE, make_persona, sign_in_with_entra, start_entra_sign_in
from tests.policies import factories as policies  # first: it imports the access factories in order
from tests.policies.access.factories import ask, open_all, rule, vm

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# Best practices beyond WCAG that the pages keep too, whatever axe calls their impact: every column is named, every
# page has its heading. They run with the WCAG rules (a rule enabled by name runs whatever its tags).
ALSO = ("empty-table-header", "page-has-heading-one")
WCAG_21_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
              "rules": {rule: {"enabled": True} for rule in ALSO}, "resultTypes": ["violations"]}
# The WCAG 2.1 A and AA rules whose outcome depends on colours (what a theme changes).
COLOURS = {"runOnly": {"type": "rule", "values": ["color-contrast", "link-in-text-block"]},
           "resultTypes": ["violations"]}
BLOCKING = {"serious", "critical"}
INITIATE = "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action"
AXE = Axe()
RUN = "options => axe.run(document, options)"
# The admin's links and buttons ease their colours in: a theme is measured once its transitions have ended. One
# cancelled meanwhile (its element replaced by a poll's swap, its style changed again) has ended too: its ``finished``
# rejects with an AbortError, which is not the page's fault.
SETTLED = """() => Promise.all(document.getAnimations().filter(animation => animation instanceof CSSTransition)
                                                  .map(transition => transition.finished.catch(() => null)))"""


@dataclass(frozen=True)
class Demo:
    """What the pages show: Production synced, a pending, an open and a queued request of Alice's (no worker runs: its
    page keeps polling), the audit's events."""

    url: str
    pending: int
    opened: int
    queued: int
    web02: int
    jump02: int
    web05: int
    jump02_arm_id: str
    rule: int
    webhook: int
    activity: int
    trail: int
    token: int


def findings(page: Page) -> list[tuple[str, str, str, list[str]]]:
    """axe's violations on ``page`` in both themes (the theme toggle's default, "auto", follows the browser's colour
    scheme; its "dark" sets the same colours): (theme, impact, rule id, the first targets). The dark theme changes
    colours only, so it is checked with the rules that read colours; the light theme with all of them."""
    found = []
    page.evaluate(AXE.axe_script)  # once per page: both runs below reuse it
    for scheme, options in (("light", WCAG_21_AA), ("dark", COLOURS)):
        page.emulate_media(color_scheme=scheme)
        page.evaluate(SETTLED)
        for violation in page.evaluate(RUN, options)["violations"]:
            targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]]
            impact = "serious" if violation["id"] in ALSO else violation["impact"]
            found.append((scheme, impact, violation["id"], targets[:5]))
    page.emulate_media(color_scheme="light")
    return found


Then = Callable[[Page], None]


class Audit:
    """axe's findings over several pages: ``check`` the page shown, then ``assert_passed``. With ``violations`` (what
    ``csp.watch`` collects on the page's context), what the Content-Security-Policy refused on each page too."""

    def __init__(self, page: Page, violations: list[str] | None = None) -> None:
        self.page, self.blocking, self.other = page, [], []
        self.violations, self.refused, self.seen = violations, [], 0

    def check(self, label: str) -> None:
        self.page.wait_for_load_state()  # after a click: the page once parsed and its scripts run, not half of it
        for finding in findings(self.page):
            (self.blocking if finding[1] in BLOCKING else self.other).append((label, *finding))
        self.collect(label)

    def collect(self, label: str) -> None:
        """The policy's violations reported since the last collect, once the page's scripts have started."""
        if self.violations is None:
            return
        self.page.evaluate(csp.SETTLED)
        self.refused += [(label, report) for report in self.violations[self.seen:]]
        self.seen = len(self.violations)

    def visit(self, base: str, paths: list[str], then: dict[str, Then] | None = None) -> None:
        """Open each path (it must answer 200) and check it; then run what ``then`` has for it (its scripts at work)
        and collect the policy's violations again."""
        for path in paths:
            response = self.page.goto(f"{base}{path}")
            assert response is not None and response.status == 200, (path, response and response.status)
            if self.violations is not None:
                assert "default-src 'self'" in response.headers["content-security-policy"], path
            self.check(path)
            if then and path in then:
                then[path](self.page)
                self.collect(f"{path} ({then[path].__name__})")

    def assert_passed(self) -> None:
        """No serious or critical violation, nothing the policy refused; the others are printed."""
        for finding in self.other:
            print("axe (moderate or minor):", *finding)
        refused = [f"{label} Content-Security-Policy: {report}" for label, report in self.refused]
        assert not (self.blocking or refused), "\n".join([*(" ".join(map(str, f)) for f in self.blocking), *refused])


@pytest.fixture
def demo(live_server, entra_settings, fresh_emulator, persona_mappings) -> Iterator[Demo]:
    gateways.reset()  # request_open builds the gateways for this test's emulator
    subscription = policies.register(fresh_emulator, policies.PROD, "Contoso Production")
    policies.sync(subscription)
    # The demo's Activity Log reaches back 200 hours: ten days of windows read all of it, not 90 (tests/audit read
    # the backfill itself).
    entra_settings.AUDIT_BACKFILL_DAYS = 10
    assert ingest_subscription(policies.PROD, gateway_for_subscription(subscription)).complete
    alice = make_persona("requester")
    manual = rule(f"{IN_SCOPE}/resourceGroups/rg-web-prod", AccessRule.Effect.MANUAL, approvals_required=1,
                  name="Approval for web")
    pending = ask(alice, {"web-02": [22]}, justification="Patch the web tier")
    opened = ask(alice, {"jump-02": [22]}, justification="Rotate the host keys")
    assert open_all(opened) == ["open"]
    queued = ask(alice, {"db-01": [22]}, justification="Vacuum the database")
    assert queued.state == "queued", queued.state
    token = token_create(actor=alice, name="deploy").token
    make_persona("policy_admin")  # named to users without a role as whom to ask
    hook, _secret = webhook_create(actor=None, name="chat-ops", url="https://hooks.example.invalid/jit",
                                   format="json", scope=IN_SCOPE, events=list(EVENTS))
    yield Demo(url=live_server.url, pending=pending.pk, opened=opened.pk, queued=queued.pk, web02=vm("web-02").pk,
               jump02=vm("jump-02").pk, web05=vm("web-05").pk, jump02_arm_id=vm("jump-02").arm_id, rule=manual.pk,
               webhook=hook.pk, activity=ActivityLogEvent.objects.filter(operation_name=INITIATE).first().pk,
               trail=AuditEvent.objects.filter(action="access.requested").first().pk, token=token.pk)
    gateways.reset()


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


def role_pages(d: Demo) -> dict[str, tuple[str, list[str], dict[str, Then]]]:
    """Each demo role's user, the pages it works with, and what to do on some of them once checked (their scripts
    at work, under the Content-Security-Policy)."""
    inventory = "/inventory/?os=Linux&tab="
    pending, queued = f"/requests/{d.pending}/", f"/requests/{d.queued}/"
    jit, enable = f"/inventory/vm/{d.web02}/jit/", f"/inventory/enable/?vm={d.web05}"
    roles = f"/settings/role-mappings/azure-roles/?scopes={IN_SCOPE}&roles=requester&roles=policy_admin"
    return {
        "requester": ("alice@contoso.example", [
            "/", f"{inventory}configured", f"{inventory}configured&per_page=3", f"{inventory}not_configured",
            f"{inventory}unsupported", f"/inventory/vm/{d.jump02}/", f"/inventory/vm/{d.jump02}/connect/",
            f"/requests/new/?vm={d.web02}", pending, queued, f"/requests/{d.opened}/",
            "/requests/?state=open", "/requests/?per_page=1", "/accounts/me/", "/accounts/me/tokens/",
            f"/accounts/me/tokens/{d.token}/revoke/", "/notifications/preferences/"], {pending: polls, queued: polls}),
        "policy_admin": ("bob@contoso.example", [
            "/", f"{inventory}configured", f"{inventory}not_configured&q=web", f"{inventory}unsupported", enable,
            f"/inventory/vm/{d.web02}/", f"/inventory/vm/{d.web05}/", jit, "/settings/", "/settings/subscriptions/",
            "/settings/subscriptions/add/", "/settings/role-mappings/", "/settings/role-mappings/add/", roles,
            "/settings/access-rules/", "/settings/access-rules/new/", f"/settings/access-rules/{d.rule}/",
            "/settings/webhooks/", "/settings/webhooks/add/", f"/settings/webhooks/{d.webhook}/", "/requests/", queued,
            "/accounts/me/", "/accounts/me/tokens/", "/notifications/preferences/"],
            {jit: adds_a_port, enable: adds_a_port, queued: polls}),
        "auditor": ("carol@contoso.example", [
            "/", "/audit/?source=azure&range=7d&vm=web-01", "/audit/?source=portal&range=7d&vm=jump-02",
            f"/audit/activity/{d.activity}/", f"/audit/trail/{d.trail}/", f"/audit/timeline/?vm={d.jump02_arm_id}",
            "/audit/ingestion/", "/audit/?source=portal&range=7d&per_page=1", "/requests/", pending, "/accounts/me/",
            "/accounts/me/tokens/", "/notifications/preferences/"], {}),
        "approver": ("dave@contoso.example", [
            "/", "/approvals/", f"/requests/{d.pending}/review/", pending, "/requests/", "/accounts/me/",
            "/accounts/me/tokens/", "/notifications/preferences/"], {pending: polls}),
        "outsider": ("oscar@contoso.example", ["/", "/accounts/me/"], {}),  # no role: told whom to ask
    }


@pytest.mark.parametrize("role", ["requester", "policy_admin", "auditor", "approver", "outsider"])
def test_each_roles_pages_have_no_serious_accessibility_violations(demo, entra_page, role):
    """The role's pages after its sign-in: no serious accessibility violation, nothing the Content-Security-Policy
    refused (on the sign-in's redirect either: ``form-action``)."""
    username, paths, then = role_pages(demo)[role]
    audit = Audit(entra_page, violations=csp.watch(entra_page.context))
    try:
        sign_in_with_entra(entra_page, demo.url, username)
    except PlaywrightError:
        audit.collect("sign-in")  # form-action refused the redirect to the emulator's sign-in page
        audit.assert_passed()
        raise
    expect(entra_page.locator("#portal-nav")).to_be_visible()
    audit.collect("sign-in")
    audit.visit(demo.url, paths, then)
    if role == "requester":  # a new token's secret, shown once
        entra_page.goto(f"{demo.url}/accounts/me/tokens/")
        entra_page.fill("#id_name", "laptop")
        entra_page.click("#token-create input[type=submit]")
        expect(entra_page.locator("#token-secret")).to_contain_text("jit_")
        audit.check("/accounts/me/tokens/ (a new token)")
        AccessRequest.objects.filter(pk=demo.opened).update(closed_at=timezone.now())  # Close now: closing…
        audit.visit(demo.url, [f"/requests/{demo.opened}/"])
        expect(entra_page.locator("#closing-now")).to_be_visible()
    for path in (path for path in paths if "per_page=" in path):  # the pages checked above had a Rows per page
        entra_page.goto(f"{demo.url}{path}")
        expect(entra_page.locator(".paginator #page-size")).to_be_visible()
    audit.assert_passed()


def test_the_sign_in_pages_have_no_serious_accessibility_violations(live_server, entra_settings, fresh_emulator,
                                                                    entra_page):
    page, audit = entra_page, Audit(entra_page)
    audit.visit(live_server.url, ["/accounts/login/"])
    fresh_emulator.control("POST", "entra/next-id-token", json={"mode": "expired"})
    sign_in_with_entra(page, live_server.url, "alice@contoso.example")
    expect(page.locator("#sign-in-failure-reason")).to_be_visible()
    audit.check("sign-in failed")
    start_entra_sign_in(page, live_server.url)
    page.get_by_role("button", name=re.compile("cancel", re.IGNORECASE)).click()
    expect(page.locator("#sign-in-cancelled")).to_be_visible()
    audit.check("sign-in cancelled")
    audit.assert_passed()


def test_the_500_page_follows_the_dark_theme_with_no_serious_accessibility_violations(live_server, page):
    """The 500 page as the portal answers it (its body, the headers of the portal's 404 at the same URL, so its
    Content-Security-Policy), in the light and the dark theme."""
    body = server_error(RequestFactory().get("/broken/")).content

    def answer_500(route: Route) -> None:
        route.fulfill(response=route.fetch(), status=500, body=body)

    page.route(f"{live_server.url}/broken/", answer_500)
    response = page.goto(f"{live_server.url}/broken/")
    assert response is not None and response.status == 500
    assert "default-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator("h1")).to_have_text("Something went wrong")
    backgrounds = {}
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.evaluate(SETTLED)
        backgrounds[scheme] = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert backgrounds == {"light": "rgb(255, 255, 255)", "dark": "rgb(18, 18, 18)"}
    audit = Audit(page)
    audit.check("/broken/ (500)")
    audit.assert_passed()


def test_the_checker_holds_a_page_to_the_best_practices_beyond_wcag(live_server, page):
    """The checker itself: a page with a nameless column and no level-one heading fails both rules run beside the
    WCAG ones (``ALSO``), as serious whatever axe calls their impact; the WCAG rules still run in the same pass."""
    def unnamed(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html", body=(
            '<!doctype html><html lang="en"><head><title>t</title></head><body><main><h2>Rows</h2>'
            '<table><tr><th></th><th>VM</th></tr><tr><td>1</td><td>web-01</td></tr></table>'
            '<img src="data:,"></main></body></html>'))

    page.route(f"{live_server.url}/unnamed/", unnamed)
    page.goto(f"{live_server.url}/unnamed/")
    audit = Audit(page)
    audit.check("/unnamed/")
    assert {(rule, impact) for _label, _scheme, impact, rule, _targets in audit.blocking} >= {
        ("empty-table-header", "serious"), ("page-has-heading-one", "serious"), ("image-alt", "critical")}


def test_a_theme_is_settled_when_a_transition_is_cancelled_meanwhile(live_server, page):
    """The wait for a theme's transitions ends when one is cancelled (its element replaced, as a poll's swap does)
    instead of failing with the AbortError its ``finished`` rejects with."""
    def easing(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html", body=(
            '<!doctype html><html lang="en"><head><title>t</title><style>a { transition: color 2s; } '
            'a.on { color: red; }</style></head><body><main><h1>t</h1><a id="x" href="#">x</a></main></body></html>'))

    page.route(f"{live_server.url}/easing/", easing)
    page.goto(f"{live_server.url}/easing/")
    page.evaluate("""() => { const link = document.getElementById("x"); getComputedStyle(link).color;
                             link.classList.add("on"); setTimeout(() => link.remove(), 200); }""")
    assert page.evaluate("() => document.getAnimations().length") == 1  # easing in when the wait starts
    page.evaluate(SETTLED)
    assert page.evaluate("() => document.getElementById('x')") is None
