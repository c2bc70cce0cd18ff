"""Two approvers in headless chromium: each person signs in through the emulator's Entra ID pages.

No worker runs here: where a worker would pick the open task up, the test runs its service in this process
while the requester's page, untouched, polls and updates itself.
"""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import RoleMapping
from notifications import services as notifications
from notifications.services import webhook_create
from policies.access import services
from policies.access.models import AccessRequest
from policies.access.signals import EVENTS
from tests.plugins.personas import IN_SCOPE, sign_in_with_entra
from tests.policies.access.factories import ask, rule, vm
from tests.policies.azure_side import Azure, vm_id

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WEB_RG = f"{IN_SCOPE}/resourceGroups/rg-web-prod"


@pytest.fixture
def hook(db, webhook_receiver):
    """A JSON webhook for every access event, pointing at the test's receiver."""
    return webhook_create(actor=None, name="chat-ops", url=webhook_receiver.url, format="json", scope=IN_SCOPE,
                          events=list(EVENTS))[0]


@pytest.fixture
def portal(live_server, entra_settings, prod, persona_mappings, hook):
    # Requesters are approvers too here, so it is the no-self-approval rule that stops Alice.
    RoleMapping.objects.create(source_kind=RoleMapping.SourceKind.APP_ROLE, source_value="JIT.Requester",
                               role="approver", scope=IN_SCOPE, description="requesters approve too")
    rule(WEB_RG, "manual", approvals_required=2, name="Two approvers for web")
    return live_server.url


def _person(browser, portal: str, username: str):
    context = browser.new_context(ignore_https_errors=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    sign_in_with_entra(page, portal, username)
    return page


def _approve(browser, portal: str, username: str, request_id: int, comment: str) -> None:
    page = _person(browser, portal, username)
    page.goto(f"{portal}/approvals/")
    row = page.locator(f"tr[data-request='{request_id}']")
    expect(row).to_contain_text("Ship the hotfix")
    row.get_by_role("link", name=f"#{request_id}").click()
    page.fill("#id_comment", comment)
    page.click("#approve")
    expect(page.locator(".messagelist")).to_contain_text(f"Approved request #{request_id}")
    page.context.close()


def test_two_approvers_open_a_request_its_requester_cannot_approve(portal, browser, entra_page, fresh_emulator,
                                                                    hook, webhook_receiver):
    page = entra_page
    web = vm("web-02")
    sign_in_with_entra(page, portal, "alice@contoso.example")
    page.goto(f"{portal}/requests/new/?vm={web.pk}")
    page.check("input[name='source_kind'][value='ip']")
    page.fill("#id_source_ip", "198.51.100.23")
    page.select_option("#id_duration", "3600")
    page.fill("#id_justification", "Ship the hotfix")
    page.click("#submit-request")
    expect(page.locator("#request-state")).to_have_text("Awaiting approval")
    expect(page.locator("#approval")).to_contain_text("0 of 2 approvals")
    expect(page.locator("#approval-expiry")).to_be_visible()
    request = AccessRequest.objects.get()

    # Her own approve button is absent, on the request page and on the review page; a direct POST is refused.
    expect(page.locator("#approve")).to_have_count(0)
    page.goto(f"{portal}/requests/{request.pk}/review/")
    expect(page.locator("#request-state")).to_have_text("Awaiting approval")
    expect(page.locator("#approve")).to_have_count(0)
    token = page.locator("input[name='csrfmiddlewaretoken']").first.input_value()
    refused = page.request.post(f"{portal}/requests/{request.pk}/decide/", form={
        "csrfmiddlewaretoken": token, "decision": "approve"}, max_redirects=0)
    assert refused.status == 403
    assert not request.approvals.exists()

    page.goto(f"{portal}/requests/{request.pk}/")
    page.evaluate("() => { window.__sameDocument = true; }")
    _approve(browser, portal, "dave@contoso.example", request.pk, "Looks right")
    expect(page.locator("#approval")).to_contain_text("1 of 2 approvals", timeout=10_000)
    _approve(browser, portal, "erin@contoso.example", request.pk, "Go ahead")
    expect(page.locator("#request-state")).to_have_text("Queued", timeout=10_000)

    # The worker's part, in this process: Azure opens the port; the page turns "Open" by itself.
    assert services.request_open(request_id=request.pk, policy_key=web.policy_id.lower()).state == "open"
    expect(page.locator("#request-state")).to_have_text("Open", timeout=10_000)
    assert page.evaluate("() => window.__sameDocument === true")
    expect(page.locator("#decisions")).to_contain_text("Looks right")
    rules = Azure(fresh_emulator).jit_rules(vm_id("rg-web-prod", "web-02"), "Allow")
    assert [(r["sourceAddressPrefix"], r["destinationPortRange"]) for r in rules.values()] == [
        ("198.51.100.23/32", "22")]

    # The webhook receiver got one signed payload per event, in order (the beat's sender, run here).
    notifications.deliver_due()
    received = webhook_receiver.wait_for(5)
    assert [r.json()["event"] for r in received] == ["submitted", "needs_approval", "approved", "approved", "opened"]
    assert all(webhook_receiver.verify(r, hook.secret) for r in received)
    assert [r.json()["request"]["id"] for r in received] == [request.pk] * 5
    assert [r.json()["actor"]["username"] for r in received[2:4]] == ["dave@contoso.example", "erin@contoso.example"]


def test_a_denial_without_a_comment_puts_the_keyboards_focus_on_what_went_wrong(portal, browser, requester):
    """Deny pressed from the keyboard with no comment came back with the field's error and the focus at the top of
    the page; the error summary now takes the focus, and the comment keeps its own error."""
    request = ask(requester, {"web-02": [22]}, justification="Ship the hotfix")
    page = _person(browser, portal, "dave@contoso.example")
    page.goto(f"{portal}/requests/{request.pk}/review/")
    page.focus("#deny")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    summary = page.locator("#decision-errors")
    expect(summary).to_be_focused()
    expect(summary.locator("h2")).to_have_text("There is a problem with your decision")
    expect(page.locator("#id_comment_error")).to_have_text("Say why you deny the request.")
    page.keyboard.press("Tab")  # the summary's link to the comment, then to the field itself
    expect(summary.locator('a[href="#id_comment"]')).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#id_comment")).to_be_focused()
    page.keyboard.type("Not during the freeze")
    page.focus("#deny")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.locator(".messagelist")).to_contain_text(f"Denied request #{request.pk}")
    page.context.close()
