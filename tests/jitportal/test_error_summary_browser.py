"""Form errors in headless chromium: a page that comes back with a form's errors puts keyboard focus on its error
summary (an alert), and an htmx swap moves focus only when it brings in a summary not already on the page."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.plugins.personas import sign_in_with_entra
from tests.policies.factories import PROD, register

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
FOCUSED = "() => document.activeElement && document.activeElement.id"


def assert_summary_focused(page: Page, summary_id: str, text: str) -> None:
    summary = page.locator(f"#{summary_id}")
    expect(summary).to_be_focused()
    expect(summary).to_have_attribute("role", "alert")
    expect(summary).to_have_attribute("tabindex", "-1")
    expect(summary).to_contain_text(text)


def test_a_wrong_password_puts_focus_on_the_error_summary(page, live_server, breakglass_admin):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "wrong-guess")
    page.keyboard.press("Enter")
    assert_summary_focused(page, "form-errors", "correct username and password")


def test_a_form_and_a_filter_with_errors_put_focus_on_their_summaries(live_server, entra_settings, fresh_emulator,
                                                                     persona_mappings, entra_page):
    page = entra_page
    register(fresh_emulator, PROD, "Contoso Production")
    sign_in_with_entra(page, live_server.url, "bob@contoso.example")
    page.goto(f"{live_server.url}/settings/subscriptions/add/")
    expect(page.locator("[data-error-summary]")).to_have_count(0)
    page.click("#subscription-form input[type=submit]")
    assert_summary_focused(page, "form-errors", "Please correct the errors below.")
    # Each error is listed, as a link that puts focus in its field.
    links = page.locator("#form-errors li a")
    expect(links.first).to_have_attribute("href", "#id_tenant_id")
    expect(links.first).to_have_text(re.compile(r"^Tenant id: .+"))
    page.keyboard.press("Tab")
    expect(links.first).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#id_tenant_id")).to_be_focused()
    page.goto(f"{live_server.url}/audit/?source=trail")
    assert_summary_focused(page, "filter-errors", "is not one of the sources")


def test_an_htmx_swap_moves_focus_only_to_a_new_summary(live_server, entra_settings, fresh_emulator,
                                                       persona_mappings, entra_page):
    page = entra_page
    register(fresh_emulator, PROD, "Contoso Production")
    sign_in_with_entra(page, live_server.url, "bob@contoso.example")
    page.goto(f"{live_server.url}/inventory/")  # a page with htmx
    page.wait_for_function("() => window.htmx !== undefined")
    page.evaluate("""() => { const slot = document.createElement("div"); slot.id = "slot";
                             document.getElementById("content").append(slot); }""")
    page.locator("#searchbar").focus()
    swap = """html => htmx.swap("#slot", html, {swapStyle: "innerHTML"})"""
    page.evaluate(swap, '<p id="plain">Polled again: nothing wrong.</p>')
    expect(page.locator("#plain")).to_be_visible()
    assert page.evaluate(FOCUSED) == "searchbar"
    summary = ('<div class="errornote" id="form-errors" role="alert" tabindex="-1" data-error-summary>'
               "<ul><li>Port 22: not allowed.</li></ul></div>")
    page.evaluate(swap, summary)
    expect(page.locator("#form-errors")).to_be_focused()
    page.locator("#searchbar").focus()
    page.evaluate(swap, summary)  # the same summary again (a poll): focus stays where the user put it
    expect(page.locator("#form-errors")).to_have_count(1)
    page.wait_for_timeout(100)
    assert page.evaluate(FOCUSED) == "searchbar"
