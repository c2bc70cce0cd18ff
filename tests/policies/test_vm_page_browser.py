"""The VM page in headless chromium: its buttons read as buttons."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.plugins.personas import sign_in_as_breakglass
from tests.policies.factories import make_vm

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PROD_RG = "/subscriptions/c0a1b2c3-0000-4000-8000-000000000001/resourceGroups/rg-web-prod"


def test_remove_jit_is_white_on_the_delete_buttons_red(page, live_server, breakglass_admin):
    vm = make_vm(PROD_RG)
    sign_in_as_breakglass(page, live_server.url)

    page.goto(f"{live_server.url}/inventory/vm/{vm.pk}/")
    remove = page.locator("#remove-jit")
    expect(remove).to_have_text("Remove JIT…")
    colours = remove.evaluate("""el => {
        const probe = document.createElement("button");
        probe.className = "button deletelink";
        document.body.append(probe);
        const wanted = getComputedStyle(probe);
        const got = getComputedStyle(el);
        const out = {text: got.color, background: got.backgroundColor, image: got.backgroundImage,
                     wantedText: wanted.color, wantedBackground: wanted.backgroundColor};
        probe.remove();
        return out;
    }""")
    assert colours["text"] == colours["wantedText"], colours
    assert colours["background"] == colours["wantedBackground"], colours
    assert colours["image"] == "none", colours


def test_remove_jit_sits_below_the_ports_table_not_over_it(page, live_server, breakglass_admin):
    """An inline link drawn as a button overlapped the table's last row by its padding."""
    vm = make_vm(PROD_RG)
    sign_in_as_breakglass(page, live_server.url)
    page.goto(f"{live_server.url}/inventory/vm/{vm.pk}/")
    table = page.locator("#vm-ports").bounding_box()
    remove = page.locator("#remove-jit").bounding_box()
    assert remove["y"] >= table["y"] + table["height"], (table, remove)


def test_on_a_phone_the_network_details_wrap_within_the_screen(page, live_server, breakglass_admin):
    """Its values (a subscription's name and id, NSG ids) were cut off at the screen's edge in a sideways-scrolling
    table; as a description list each value wraps under its label."""
    vm = make_vm(PROD_RG)
    page.set_viewport_size({"width": 390, "height": 800})
    sign_in_as_breakglass(page, live_server.url)
    page.goto(f"{live_server.url}/inventory/vm/{vm.pk}/")
    values = page.locator("#vm-network dd")
    expect(values.first).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    for right in values.evaluate_all("dds => dds.map(dd => dd.getBoundingClientRect().right)"):
        assert right <= 390, right
