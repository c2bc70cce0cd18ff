"""A requester's daily path in headless chromium, signed in through the emulator's Entra ID pages.

No worker runs here: where a worker would pick the task up, this test runs the task's service in its own
process (``request_open``, ``request_close_apply``) while the page, untouched, polls and updates itself.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from policies.access import services
from policies.access.models import AccessRequest
from tests.plugins.personas import sign_in_with_entra
from tests.policies.access.factories import ask, open_all, vm
from tests.policies.azure_side import Azure, vm_id

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def portal(live_server, entra_settings, prod, persona_mappings):
    return live_server.url


def test_a_requester_opens_ssh_for_their_ip_watches_it_open_copies_the_line_and_closes_it(
        portal, entra_page, fresh_emulator):
    page = entra_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=portal)
    azure = Azure(fresh_emulator)
    jump = vm("jump-02")
    target = vm_id("rg-ops-prod", "jump-02")
    sign_in_with_entra(page, portal, "alice@contoso.example")

    page.goto(f"{portal}/inventory/vm/{jump.pk}/")
    page.click("#connect")
    page.fill("#connect-justification", "Rotate the host keys")
    page.get_by_role("button", name=re.compile("Choose ports")).click()
    expect(page.locator("#request-form")).to_be_visible()
    my_ip = re.search(r"My IP \((.+)\)", page.locator("#row-source").inner_text()).group(1)
    page.locator("input[name='ports']").first.check()
    page.wait_for_load_state()  # the form's script has run
    page.fill("#id_source_ip", "198.51.100.7")  # typing an address picks "A specific IP"...
    expect(page.locator("input[name='source_kind'][value='ip']")).to_be_checked()
    page.fill("#id_source_ip", "")  # ...but this requester connects from here
    page.check("input[name='source_kind'][value='my_ip']")
    page.select_option("#id_duration", "3600")
    expect(page.locator("#id_justification")).to_have_value("Rotate the host keys")  # typed on the Connect page
    page.click("#submit-request")

    expect(page.locator("#request-state")).to_have_text("Queued")
    request = AccessRequest.objects.get()
    page.evaluate("() => { window.__sameDocument = true; }")
    # The worker's part, in this process: Azure opens the port; the page polls and turns "Open" by itself.
    assert services.request_open(request_id=request.pk, policy_key=jump.policy_id.lower()).state == "open"
    expect(page.locator("#request-state")).to_have_text("Open", timeout=10_000)
    expect(page.locator("#request-announcement")).to_have_text("State: Open")  # the live region, for screen readers
    expect(page.locator("#request-announcement")).to_have_attribute("aria-live", "polite")  # kept, not replaced
    expect(page.locator("#extend-form")).to_be_visible()  # swapped in beside the status, no reload
    assert page.evaluate("() => window.__sameDocument === true")

    rules = azure.jit_rules(target, "Allow")
    assert [(r["sourceAddressPrefix"], r["destinationPortRange"]) for r in rules.values()] == [(f"{my_ip}/32", "22")]

    row = page.locator("tr[data-port='22']")
    expect(row.locator(".connect-line code")).to_have_text("ssh alice@51.105.20.2 -p 22")
    row.get_by_role("button", name="Copy SSH").click()
    expect(row.locator("button.copy")).to_have_text("Copied")
    expect(page.locator("#copy-status[aria-live=polite]")).to_have_text("Copy SSH: copied")  # for screen readers
    assert page.evaluate("() => navigator.clipboard.readText()") == "ssh alice@51.105.20.2 -p 22"
    page.evaluate("() => Object.defineProperty(navigator, 'clipboard', {value: undefined})")  # a plain-http page
    row.locator("button.copy").click()
    expect(row.locator("button.copy")).to_have_text("Copy failed: select the line and copy it")
    expect(page.locator("#copy-status")).to_have_text("Copy failed: select the line and copy it")
    expect(row.locator("button.copy")).to_have_text("Copy SSH", timeout=6000)  # then its label again

    expect(page.locator("#close-form")).to_contain_text("not cut")
    page.click("#close-now")
    expect(page.locator("#closing")).to_be_visible()
    page.evaluate("() => { window.__sameDocument = true; }")
    assert services.request_close_apply(request_id=request.pk).state == "closed"
    expect(page.locator("#request-state")).to_have_text("Closed", timeout=10_000)
    expect(page.locator("#request-announcement")).to_have_text("State: Closed")
    expect(page.locator("#extend-form")).to_have_count(0)
    assert page.evaluate("() => window.__sameDocument === true")
    assert azure.jit_rules(target, "Allow") == {}
    expect(page.locator("#closed-note")).to_be_visible()


def test_keyboard_focus_on_a_copy_button_survives_the_pages_poll(portal, entra_page, requester):
    page = entra_page
    sign_in_with_entra(page, portal, "alice@contoso.example")
    request = AccessRequest.objects.get(pk=ask(requester, {"jump-02": [22], "web-02": [22]}).pk)
    open_all(request)
    AccessRequest.objects.filter(pk=request.pk).update(closed_at=timezone.now())  # closing: it polls every 250 ms
    page.goto(f"{portal}/requests/{request.pk}/")
    copy = page.locator("tr[data-port='22'] button.copy").last
    copy.focus()
    before = page.evaluate("() => document.activeElement.id")
    page.locator("#request-status").evaluate("status => { status.dataset.polled = 'not yet'; }")
    expect(page.locator("#request-status[data-polled]")).to_have_count(0)  # a poll swapped it, and its buttons, anew
    assert before and page.evaluate("() => document.activeElement.id") == before
    expect(page.locator(f"#{before}")).to_have_text("Copy SSH")


def test_the_dashboard_shows_access_opening_and_its_time_left_counting_down_without_a_reload(
        portal, entra_page, requester, monkeypatch):
    from policies.access import selectors

    page = entra_page
    sign_in_with_entra(page, portal, "alice@contoso.example")
    request = ask(requester, {"jump-02": [22]}, hours=2)  # queued: the worker opens it in a moment
    page.goto(f"{portal}/")
    row = page.locator("#my-open-access tr[data-port='jump-02:22']")
    expect(row.locator(".time-left")).to_have_text("Opening…")
    page.evaluate("() => { window.__sameDocument = true; }")
    monkeypatch.setattr(selectors, "DASHBOARD_POLL", "250ms")  # once open, every 30 s: sooner for the test
    open_all(request)  # the worker's part, in this process: the dashboard polls and shows it open
    expect(row.locator(".time-left")).to_have_text(re.compile(r"^1\xa0hour, 59\xa0minutes$"), timeout=10_000)
    request.ports.update(end_at=timezone.now() + timedelta(minutes=20, seconds=30))  # time passes
    expect(row.locator(".time-left")).to_have_text(re.compile(r"^20\xa0minutes$"), timeout=10_000)
    request.ports.update(state="expired")  # the reconciler marks it over: it leaves the list
    expect(page.locator("#my-open-access")).to_contain_text("no open access", timeout=10_000)
    assert page.evaluate("() => window.__sameDocument === true")
