"""Form errors in headless chromium: a page that comes back with a form's errors puts keyboard focus on its error
summary (an alert), whose links put the focus in their fields (or lead to the form that has them), and an htmx swap
moves focus only when it brings in a summary not already on the page."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from policies.models import VirtualMachine
from tests.plugins.personas import sign_in_as_breakglass, sign_in_with_entra
from tests.policies.factories import PROD, register, register_and_sync

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
    assert_summary_focused(page, "form-errors", "There are 2 problems with this form")
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
    expect(page.locator("#filter-errors h2")).to_have_text("There is a problem with the filters")
    page.keyboard.press("Tab")  # the source is chosen by the links above the results: the error leads there
    expect(page.locator('#filter-errors a[href="#audit-sources"]')).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#audit-sources")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#audit-sources a").first).to_be_focused()


def test_a_list_filters_summary_links_each_refused_filter_to_its_control(live_server, entra_settings, fresh_emulator,
                                                                         persona_mappings, entra_page):
    page = entra_page
    register_and_sync(fresh_emulator, PROD, "Contoso Production")
    sign_in_with_entra(page, live_server.url, "bob@contoso.example")
    for path, target in (("/inventory/?tab=configured&resource_group=rg-gone&os=BeOS", "#id_resource_group"),
                         ("/requests/?created_after=2026-11-21&created_before=2026-11-20", "#id_created_before"),
                         ("/audit/?source=portal&range=custom&since=2026-11-21&until=2026-11-20", "#id_until")):
        page.goto(f"{live_server.url}{path}")
        summary = page.locator("#filter-errors")
        expect(summary).to_be_focused()
        expect(summary.locator("h2")).to_have_text(re.compile(r"^There (is a problem|are 2 problems) with the filters"))
        page.keyboard.press("Tab")
        link = summary.locator(f'a[href="{target}"]')
        expect(link).to_be_focused()
        expect(link).to_contain_text(":")  # "Label: what is wrong"; "The filter was left out." follows the link
        page.keyboard.press("Enter")
        expect(page.locator(target)).to_be_focused()


def test_a_summary_link_to_a_filter_in_a_closed_group_opens_the_group_and_focuses_it(live_server, page,
                                                                                    breakglass_admin):
    """The role mappings' filters sit in groups one can close (``<details>``): following the summary's link to a
    filter of a closed group opens it, as the browser's own jump to #id would, and puts the focus in the filter."""
    sign_in_as_breakglass(page, live_server.url)
    page.goto(f"{live_server.url}/settings/role-mappings/?role=nobody")
    assert_summary_focused(page, "filter-errors", "Role:")
    page.click("#changelist-filter details:has(#id_role) > summary")  # the admin closes the Role group
    expect(page.locator("#id_role")).to_be_hidden()
    page.click('#filter-errors a[href="#id_role"]')
    expect(page.locator("#id_role")).to_be_visible()
    expect(page.locator("#id_role")).to_be_focused()


def test_the_connect_pages_summary_leads_to_its_field_and_to_the_full_form_for_the_others(
        live_server, entra_settings, fresh_emulator, persona_mappings, entra_page):
    page = entra_page
    register_and_sync(fresh_emulator, PROD, "Contoso Production")
    jump = VirtualMachine.objects.get(name="jump-02")
    sign_in_with_entra(page, live_server.url, "alice@contoso.example")
    page.goto(f"{live_server.url}/inventory/vm/{jump.pk}/connect/")
    page.fill("#connect-justification", " ")  # passes the browser's own check, not the portal's
    page.click("#connect-request")
    assert_summary_focused(page, "form-errors", "There is a problem with this form")
    page.keyboard.press("Tab")
    expect(page.locator('#form-errors a[href="#connect-justification"]')).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#connect-justification")).to_be_focused()
    assert "#" not in page.url  # the form, sent again, posts to the page's address: the next summary takes the focus

    # A port that takes only the office's range: the source is not on this page; the full form is.
    VirtualMachine.objects.filter(pk=jump.pk).update(ports=[{"number": 22, "protocol": "*",
                                                              "allowedSourceAddressPrefix": "10.0.0.0/8",
                                                              "maxRequestAccessDuration": "PT3H"}])
    page.fill("#connect-justification", "Deploy")
    page.keyboard.press("Enter")
    assert_summary_focused(page, "form-errors", "“Allowed source IP” is not on this page")
    page.keyboard.press("Tab")
    full_form = page.locator("#form-errors button", has_text="choose it in the full request form")
    expect(full_form).to_be_focused()
    page.keyboard.press("Enter")  # sends the Connect form there: the justification typed goes along
    page.wait_for_url(re.compile(r"/requests/new/$"))
    expect(page.locator("#request-form")).to_be_visible()
    expect(page.locator("#id_justification")).to_have_value("Deploy")


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
