"""The dashboard in headless chromium: the Django admin look with the portal's navigation."""
import re

import pytest
from playwright.sync_api import expect

from tests.plugins.personas import sign_in_as_breakglass


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_dashboard_opens_with_the_admin_look(page, live_server, breakglass_admin):
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    page.fill("#id_username", "admin")
    page.fill("#id_password", "correct-horse-1")
    page.keyboard.press("Enter")

    page.wait_for_url(f"{live_server.url}/")  # and loaded: its stylesheets are read below
    expect(page.locator("#header #site-name")).to_have_text("JIT Portal")
    nav = page.locator("#portal-nav")
    for label in ("Dashboard", "Inventory", "Requests", "Audit", "Settings"):
        expect(nav.get_by_role("link", name=label)).to_be_visible()
    expect(nav.get_by_role("link", name="Dashboard")).to_have_attribute("aria-current", "page")
    expect(page.locator("#my-open-access")).to_contain_text("no open access")
    # The admin stylesheet is loaded and applied: the header takes the admin's colours.
    assert page.evaluate("() => [...document.styleSheets].some(s => (s.href || '').endsWith('admin/css/base.css'))")
    header_bg = page.locator("#header").evaluate("el => getComputedStyle(el).backgroundColor")
    assert header_bg not in ("rgba(0, 0, 0, 0)", "transparent")

    nav.get_by_role("link", name="Inventory").click()
    expect(page).to_have_url(f"{live_server.url}/inventory/")
    expect(page.locator("#changelist")).to_be_visible()
    expect(page.locator(".breadcrumbs")).to_contain_text("Inventory")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_on_a_phone_the_navigation_is_on_the_screen_and_the_page_does_not_scroll_sideways(page, live_server,
                                                                                         breakglass_admin):
    page.set_viewport_size({"width": 400, "height": 800})
    sign_in_as_breakglass(page, live_server.url)
    for label in ("Dashboard", "Inventory", "Requests", "Audit", "Settings"):
        box = page.locator("#portal-nav").get_by_role("link", name=label).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 400, (label, box)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 400


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/inventory/", "/audit/"])
def test_on_a_phone_the_search_box_of_a_list_can_be_typed_in(page, live_server, breakglass_admin, path):
    page.set_viewport_size({"width": 400, "height": 800})
    sign_in_as_breakglass(page, live_server.url)
    page.goto(f"{live_server.url}{path}")
    box = page.locator("#searchbar").bounding_box()
    assert box is not None and box["width"] >= 150, box


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/inventory/", "/audit/", "/settings/role-mappings/"])
def test_a_filter_sidebars_controls_line_up_with_their_labels_in_either_theme(page, live_server, breakglass_admin,
                                                                            path):
    """The admin indents the labels (and the Filter heading's text) 15 px; the controls under them sat at the box's
    left edge, the Filter button and Clear all filters at 10 px."""
    sign_in_as_breakglass(page, live_server.url)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.goto(f"{live_server.url}{path}")
        lefts = page.evaluate("""() => {
            const box = document.querySelector('#changelist-filter').getBoundingClientRect().left;
            const at = e => Math.round(e.getBoundingClientRect().left - box);
            const shown = s => [...document.querySelector('#changelist-filter form').querySelectorAll(s)]
                .filter(e => e.getClientRects().length && getComputedStyle(e).position !== 'absolute').map(at);
            return {labels: shown('h3 label, summary'), controls: shown('select, input:not([type=hidden])'),
                    links: shown('a')};
        }""")
        assert lefts["labels"] and lefts["controls"], lefts
        assert set(lefts["labels"]) == set(lefts["controls"] + lefts["links"]) == {15}, (scheme, lefts)
