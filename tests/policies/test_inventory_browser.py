"""The JIT admin flow in headless chromium, signed in through the emulator's Entra ID pages.

Celery runs eagerly in this test (``task_always_eager``): the tasks a page enqueues run in the live server's
thread, against the emulator, before the page answers.
"""
from __future__ import annotations

import itertools
import re

import pytest
from playwright.sync_api import expect

from jitportal.celery import app as celery_app
from policies.models import PolicyChange
from tests.plugins.personas import sign_in_with_entra
from tests.policies.azure_side import Azure, vm_id
from tests.policies.factories import PROD, register, sync

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WEB = ("rg-web-prod", "westeurope")


@pytest.fixture
def eager_tasks():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def portal(live_server, entra_settings, fresh_emulator, persona_mappings, eager_tasks):
    subscription = register(fresh_emulator, PROD, "Contoso Production")
    sync(subscription)
    return live_server.url


@pytest.fixture
def second_page(browser):
    context = browser.new_context(ignore_https_errors=True)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def port_row(page, number: int) -> int:
    """Index of the edit form's row for ``number``, once the edit form showing it has loaded."""
    expect(page.locator(f"input[name$='-number'][value='{number}']")).to_have_count(1)
    values = page.locator("input[name$='-number']").evaluate_all("els => els.map(e => e.value)")
    return values.index(str(number))


def test_an_admin_enables_edits_and_trims_jit_and_a_requester_cannot(portal, entra_page, second_page,
                                                                   fresh_emulator):
    azure = Azure(fresh_emulator)
    page = entra_page
    web05, web06 = vm_id("rg-web-prod", "web-05"), vm_id("rg-web-prod", "web-06")
    sign_in_with_entra(page, portal, "bob@contoso.example")

    # 1. Enable JIT on two Not configured VMs with the recommended ports.
    page.goto(f"{portal}/inventory/?tab=not_configured")
    expect(page.locator("#tab-not_configured")).to_have_attribute("aria-current", "page")
    page.locator('tr[data-vm="web-05"] input[name="vm"]').check()
    page.locator('tr[data-vm="web-06"] input[name="vm"]').check()
    page.click("#enable-selected")
    expect(page.locator("#enable-vms")).to_have_text("web-05, web-06")
    expect(page.locator("input[name$='-number']")).to_have_count(5)  # the four recommended and an empty row
    page.click("#save-jit")
    expect(page.locator(".messagelist")).to_contain_text("Enabling JIT on web-05, web-06")
    for vm in (web05, web06):
        assert sorted(azure.policy_ports(*WEB, vm)) == [22, 3389, 5985, 5986]
        assert azure.jit_ports(vm) == {22, 3389, 5985, 5986}
    assert set(PolicyChange.objects.values_list("state", flat=True)) == {"applied"}
    expect(page.locator("#tab-configured")).to_contain_text("(12)")  # 10 in the demo + the two just enabled

    # 2. Edit one port: allowed source a CIDR, maximum time 2 hours.
    page.goto(f"{portal}/inventory/?tab=configured&q=web-05")
    page.get_by_role("link", name="web-05", exact=True).click()
    expect(page.locator("#vm-state")).to_have_text("Configured")
    page.click("#edit-jit")
    row = port_row(page, 22)
    page.fill(f"#id_ports-{row}-sources", "203.0.113.0/24")
    page.fill(f"#id_ports-{row}-max_hours", "2")
    expect(page.locator("#add-port")).to_have_css("padding-top", "10px")  # a button's size, not a text box's
    page.click("#add-port")  # a second new row besides the empty one
    expect(page.locator("#id_ports-5-number")).to_be_focused()
    page.keyboard.type("2222")
    page.click("#save-jit")
    expect(page.locator("#changes")).to_contain_text("Applied")
    port22 = azure.policy_ports(*WEB, web05)[22]
    assert port22["allowed_source_address_prefix"] == "203.0.113.0/24"
    assert port22["max_request_access_duration"] == "PT2H"
    expect(page.locator('#vm-ports tr[data-port="22"]')).to_contain_text("203.0.113.0/24")
    assert sorted(azure.policy_ports(*WEB, web05)) == [22, 2222, 3389, 5985, 5986]

    # 3. Remove a port.
    page.click("#edit-jit")
    page.check(f"#id_ports-{port_row(page, 5986)}-DELETE")
    page.click("#save-jit")
    expect(page.locator("#vm-ports")).not_to_contain_text("5986")
    assert sorted(azure.policy_ports(*WEB, web05)) == [22, 2222, 3389, 5985]
    assert azure.jit_ports(web05) == {22, 2222, 3389, 5985}
    assert sorted(azure.policy_ports(*WEB, web06)) == [22, 3389, 5985, 5986]  # the other VM is untouched
    expect(page.locator('#vm-ports tr[data-port="22"]')).to_contain_text("2 h")  # not "PT2H"

    web05_page = page.url

    # 4. Remove JIT from web-06: asked to confirm first; "No, keep it" leaves it alone.
    page.goto(f"{portal}/inventory/?tab=configured&q=web-06")
    page.get_by_role("link", name="web-06", exact=True).click()
    background = "e => getComputedStyle(e).backgroundColor"
    destructive = page.eval_on_selector("#remove-jit", background)
    page.click("#remove-jit")
    expect(page.locator("#confirm-question")).to_have_text("Remove just-in-time access from web-06?")
    assert page.eval_on_selector("#confirm", background) == destructive  # it looks as the link that led here
    page.click("#cancel")
    expect(page.locator("#vm-state")).to_have_text("Configured")
    assert PolicyChange.objects.count() == 3
    page.click("#remove-jit")
    page.click("#confirm")
    expect(page.locator(".messagelist")).to_contain_text("Removing JIT from web-06")
    assert not azure.policy_ports(*WEB, web06)

    # A requester sees no edit controls and is refused on a direct POST.
    sign_in_with_entra(second_page, portal, "alice@contoso.example")
    second_page.goto(web05_page)
    expect(second_page.locator("#vm-state")).to_have_text("Configured")
    expect(second_page.locator("#edit-jit")).to_have_count(0)
    expect(second_page.locator("#remove-jit")).to_have_count(0)
    expect(second_page.locator("#connect")).to_be_visible()
    csrf = next(c["value"] for c in second_page.context.cookies() if c["name"] == "csrftoken")
    edit_url = re.sub(r"/$", "/jit/", web05_page.split("?")[0])
    refused = second_page.request.post(edit_url, headers={"X-CSRFToken": csrf, "Referer": portal + "/"}, form={
        "ports-TOTAL_FORMS": "1", "ports-INITIAL_FORMS": "0", "ports-MIN_NUM_FORMS": "0",
        "ports-MAX_NUM_FORMS": "50", "ports-0-number": "22", "ports-0-protocol": "*", "ports-0-sources": "*",
        "ports-0-max_hours": "24"})
    assert refused.status == 404
    assert sorted(azure.policy_ports(*WEB, web05)) == [22, 2222, 3389, 5985]
    assert PolicyChange.objects.count() == 4

    # The requester selects two Configured VMs and asks for access to both (the seed's Configured tab flow).
    second_page.goto(f"{portal}/inventory/?tab=configured&q=web-0")
    expect(second_page.locator("#enable-selected")).to_have_count(0)
    second_page.locator('tr[data-vm="web-02"] input[name="vm"]').check()
    second_page.locator('tr[data-vm="web-05"] input[name="vm"]').check()
    second_page.click("#request-selected")
    expect(second_page.get_by_role("heading", level=1)).to_have_text("Request access")
    ports = second_page.locator('input[name="ports"]')
    expect(ports).to_have_count(1 + 4)  # web-02: 22; web-05: 22, 2222, 3389, 5985
    values = ports.evaluate_all("els => els.map(e => e.value)")
    assert len({value.split(":")[0] for value in values}) == 2


def test_the_inventory_says_how_many_vms_are_selected_and_that_a_selection_is_of_its_page(portal, entra_page):
    page = entra_page
    sign_in_with_entra(page, portal, "bob@contoso.example")
    page.goto(f"{portal}/inventory/?tab=not_configured&per_page=3")
    count, select_all = page.locator("#selected-count"), page.locator("#result_list .select-all")
    rows = page.locator('#result_list input[name="vm"]')
    expect(rows).to_have_count(3)
    expect(count).to_have_text("No VM selected.")
    expect(select_all).to_have_attribute("aria-label", "Select all VMs on this page")
    select_all.check()
    expect(count).to_have_text("3 VMs of 3 on this page selected (a selection is of this page only).")
    rows.nth(1).uncheck()
    expect(count).to_have_text("2 VMs of 3 on this page selected (a selection is of this page only).")
    assert select_all.evaluate("box => box.indeterminate") and not select_all.is_checked()
    rows.nth(1).check()
    expect(select_all).to_be_checked()


def test_the_box_of_a_vm_named_too_long_is_disabled_described_by_why_and_left_out_of_select_all(portal, entra_page):
    from policies.models import VirtualMachine

    long = "web-" + "x" * 46  # 50 characters: one too many with "default"
    VirtualMachine.objects.filter(name="web-05").update(name=long)
    page = entra_page
    sign_in_with_entra(page, portal, "bob@contoso.example")
    page.goto(f"{portal}/inventory/?tab=not_configured")
    box = page.get_by_role("checkbox", name=f"Select {long}")
    expect(box).to_be_disabled()
    expect(box).to_have_accessible_description(re.compile(r"^Cannot be selected: its name and the JIT policy name "
                                                          r"'default' are 57 characters together"))
    expect(page.locator(f'tr[data-vm="{long}"] .too-long-flag')).to_be_visible()
    others = page.locator('#result_list input[name="vm"]').count()
    page.locator("#result_list .select-all").check()
    expect(box).not_to_be_checked()
    expect(page.locator("#selected-count")).to_have_text(
        f"{others} VMs of {others} on this page selected (a selection is of this page only).")


def test_a_whole_ticked_page_offers_every_vm_that_matches_by_keyboard_and_sends_the_filter_not_the_ids(
        portal, entra_page):
    page = entra_page
    sign_in_with_entra(page, portal, "bob@contoso.example")
    page.goto(f"{portal}/inventory/?tab=not_configured&per_page=2&os=Linux")
    matching = int(re.search(r"\((\d+)\)", page.locator("#tab-not_configured").inner_text()).group(1))
    assert matching > 2  # more than the page shows
    count, offer = page.locator("#selected-count"), page.locator("#select-across-all")
    clear, rows = page.locator("#select-across-clear"), page.locator('#result_list input[name="vm"]')
    expect(offer).to_be_hidden()
    rows.nth(0).check()
    expect(offer).to_be_hidden()  # only once the whole page is ticked
    page.locator("#result_list .select-all").check()
    expect(offer).to_be_visible()
    expect(offer).to_have_text(f"Select all {matching} VMs that match")
    offer.focus()
    page.keyboard.press("Enter")
    expect(count).to_have_text(f"All {matching} VMs that match the filter are selected, not only the 2 on this page.")
    expect(clear).to_be_focused()
    page.keyboard.press("Enter")  # Clear selection: nothing ticked, back to the page's selection
    expect(count).to_have_text("No VM selected.")
    expect(page.locator("#result_list .select-all")).to_be_focused()
    page.locator("#result_list .select-all").check()
    offer.click()
    page.locator("#enable-selected").click()
    page.wait_for_url(re.compile(r"/inventory/enable/"))
    assert "all=1" in page.url and "os=Linux" in page.url and "vm=" not in page.url
    expect(page.locator("#enable-count")).to_have_text(f"{matching} VMs")


def test_rows_per_page_is_chosen_by_keyboard_and_keeps_the_tab_filter_and_sort(portal, entra_page):
    page = entra_page
    sign_in_with_entra(page, portal, "bob@contoso.example")
    page.goto(f"{portal}/inventory/?tab=configured&os=Linux&sort=name&per_page=2&page=2")
    size = page.locator("#page-size")
    expect(size).to_have_value("2")
    expect(page.get_by_label("Rows per page")).to_have_count(1)
    size.focus()
    page.keyboard.press("ArrowDown")  # 2 → 25
    expect(size).to_have_value("25")
    assert "per_page=2&" in page.url  # changing the choice sends nothing
    page.keyboard.press("Tab")
    expect(page.locator("#page-size-show")).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"per_page=25"))
    query = dict(part.split("=", 1) for part in page.url.split("?", 1)[1].split("&"))
    assert query == {"tab": "configured", "os": "Linux", "sort": "name", "per_page": "25"}, query
    matching = int(re.search(r"\((\d+)\)", page.locator("#tab-configured").inner_text()).group(1))
    expect(page.locator("#result_list tbody tr")).to_have_count(min(matching, 25))
    expect(page.locator("#page-size")).to_have_count(0 if matching <= 25 else 1)


def _fits(page) -> dict:
    """Where the table's region ends, how wide its content is, and the right edge of each row's Actions menu."""
    return page.evaluate("""() => {
        const region = document.querySelector('#vm-table-region');
        const menus = [...region.querySelectorAll('tbody .row-menu summary')];
        return {right: region.getBoundingClientRect().right, client: region.clientWidth, scroll: region.scrollWidth,
                page: document.documentElement.scrollWidth, actions: menus.map(s => s.getBoundingClientRect().right)};
    }""")


def test_the_configured_tab_fits_a_1280px_window_with_every_column(portal, entra_page):
    from policies.models import VirtualMachine

    page = entra_page
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in_with_entra(page, portal, "bob@contoso.example")
    long_user = "firstname.middlename.lastname@subsidiary.contoso.example"
    VirtualMachine.objects.filter(name="web-01").update(last_user=long_user)
    page.goto(f"{portal}/inventory/?tab=configured")
    headers = page.locator("#result_list thead th")
    expect(headers).to_have_count(11)
    for name in ("Last user", "Connection details", "Last access"):
        expect(headers.filter(has_text=name)).to_be_visible()
    fits = _fits(page)
    assert fits["page"] <= 1280 and fits["scroll"] <= fits["client"], fits  # nothing cut off, nothing to scroll
    assert len(fits["actions"]) == 10 and max(fits["actions"]) <= fits["right"], fits
    cell = page.locator('tr[data-vm="web-01"] .last-user')
    expect(cell).to_have_attribute("title", long_user)  # cut short on the page, whole in its title
    assert cell.evaluate("e => e.scrollWidth > e.clientWidth")


def test_a_table_wider_than_the_window_scrolls_in_a_focusable_labelled_region(portal, entra_page):
    from policies.models import VirtualMachine

    page = entra_page
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in_with_entra(page, portal, "bob@contoso.example")
    VirtualMachine.objects.filter(name="web-01").update(name="web-01-" + "x" * 57)  # Azure allows 64 characters
    page.goto(f"{portal}/inventory/?tab=configured&q=web-01")
    region = page.get_by_role("region", name="Virtual machines")
    fits = _fits(page)
    assert fits["page"] <= 1280 and fits["scroll"] > fits["client"], fits  # the region scrolls, not the page
    assert region.get_attribute("tabindex") == "0"
    region.focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    expect(region).not_to_have_js_property("scrollLeft", 0)  # the keys scroll it smoothly: in a moment, not at once
    summary = page.locator('tr[data-vm^="web-01-"] .row-menu summary')
    summary.scroll_into_view_if_needed()
    assert summary.bounding_box()["x"] + summary.bounding_box()["width"] <= _fits(page)["right"]
    summary.click()
    expect(page.locator('tr[data-vm^="web-01-"] .row-menu').get_by_role("link", name="Details")).to_be_visible()


def test_escape_closes_a_row_menu_and_gives_focus_back_to_its_button(portal, entra_page):
    page = entra_page
    sign_in_with_entra(page, portal, "bob@contoso.example")
    page.goto(f"{portal}/inventory/?tab=configured&q=web-01")
    menu = page.locator('tr[data-vm="web-01"] .row-menu')
    summary = menu.locator("summary")
    summary.focus()
    page.keyboard.press("Enter")  # opened by keyboard, focus on a link of it
    expect(menu).to_have_attribute("open", "")
    page.keyboard.press("Tab")
    expect(menu.get_by_role("link", name="Details")).to_be_focused()
    page.keyboard.press("Escape")
    expect(menu).not_to_have_attribute("open", "")
    expect(menu.get_by_role("link", name="Details")).to_be_hidden()
    expect(summary).to_be_focused()
    summary.click()  # opened by mouse, focus left on the "…"
    expect(menu).to_have_attribute("open", "")
    page.keyboard.press("Escape")
    expect(menu).not_to_have_attribute("open", "")
    expect(summary).to_be_focused()


def open_web01_jit_settings(page, portal: str, viewport: dict) -> None:
    """Bob (a policy admin), signed in at ``viewport``, on web-01's JIT settings."""
    from policies.models import VirtualMachine

    page.set_viewport_size(viewport)
    sign_in_with_entra(page, portal, "bob@contoso.example")
    page.goto(f"{portal}/inventory/vm/{VirtualMachine.objects.get(name='web-01').pk}/jit/")


def test_a_port_typed_in_a_new_row_is_named_and_the_rows_stay_narrow_on_a_phone(portal, entra_page):
    page = entra_page
    open_web01_jit_settings(page, portal, {"width": 375, "height": 740})
    numbers = page.locator("#port-rules input[name$='-number']")
    new = numbers.last
    expect(new).to_have_value("")
    new.fill("5986")
    expect(page.locator(f"#{new.get_attribute('id')}_service")).to_have_text("WinRM HTTPS")
    expect(new).to_have_accessible_description("WinRM HTTPS")
    new.fill("59861")
    expect(page.locator(f"#{new.get_attribute('id')}_service")).to_have_text("")
    new.fill("22")
    expect(page.locator(f"#{new.get_attribute('id')}_service")).to_have_text("SSH")
    # The name sits under the port: the column is no wider than its field (and its cell's padding).
    widths = page.locator("#port-rules tbody td:first-child").evaluate_all(
        "cells => cells.map(c => [c.getBoundingClientRect().width, c.querySelector('input').offsetWidth])")
    assert all(cell <= field + 24 for cell, field in widths), widths


# Each field of the port rules and each Remove box, once scrolled into view: its name, its box (top and bottom in
# the page) and its card's sides, and whether the element at its centre is the field itself (nothing covers it, so a
# tap lands on it).
FIELDS = """table => Array.from(table.querySelectorAll("tbody tr"), tr => Array.from(
    tr.querySelectorAll("input:not([type=hidden]), select"), field => {
        field.scrollIntoView({block: "center"});
        const box = field.getBoundingClientRect(), card = tr.getBoundingClientRect();
        const hit = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
        return {name: field.name, type: field.type, left: box.left, right: box.right, top: box.top + scrollY,
                bottom: box.bottom + scrollY, cardLeft: card.left, cardRight: card.right, hit: hit === field};
    }))"""


def test_the_port_rules_are_cards_on_a_phone_whose_fields_fit_and_a_row_added_there_saves(portal, entra_page,
                                                                                        fresh_emulator):
    """At 390 px the port rules scrolled sideways in their box (fields 22em wide): each rule is now a card, each field
    on a line of its own under its column's name, as wide as the card, a row added by "Add another port" too."""
    page = entra_page
    open_web01_jit_settings(page, portal, {"width": 390, "height": 844})
    rows = page.locator("#port-rules tbody tr")
    expect(rows).to_have_count(2)  # port 22 and the empty row
    page.click("#add-port")
    expect(rows).to_have_count(3)
    sideways = "el => el.scrollWidth - el.clientWidth"
    assert page.locator("html").evaluate(sideways) <= 0
    assert page.locator("#port-rules").evaluate("t => t.parentElement.scrollWidth - t.parentElement.clientWidth") <= 0
    assert rows.evaluate_all("trs => trs.map(tr => getComputedStyle(tr).display)") == ["block"] * 3
    names = rows.last.locator("td").evaluate_all(
        "tds => tds.map(td => getComputedStyle(td, '::before').content)")
    assert names == ['"Port"', '"Protocol"', '"Allowed source IPs"', '"Max request time"', '"Remove"'], names
    cards = page.locator("#port-rules").evaluate(FIELDS)
    assert [len(fields) for fields in cards] == [6, 5, 5]  # Remove boxes but for the new rows
    for fields in cards:
        for field in fields:
            assert field["hit"], field  # in reach
            assert field["cardLeft"] <= field["left"] and field["right"] <= field["cardRight"], field
            if field["type"] != "checkbox":  # as wide as the card, less its padding (and the unit after a time)
                share = 0.55 if field["name"].endswith(("-max_hours", "-max_minutes")) else 0.9
                assert field["right"] - field["left"] >= share * (field["cardRight"] - field["cardLeft"]), field
        for above, below in itertools.pairwise(fields):  # each on a line of its own
            assert above["bottom"] <= below["top"], (above, below)
    assert page.locator("html").evaluate(sideways) <= 0
    # The added row saves: port 8080 for 2 hours.
    added = rows.last
    added.locator("input[name$='-number']").fill("8080")
    added.locator("input[name$='-max_hours']").fill("2")
    page.click("#save-jit")
    expect(page.locator("#changes")).to_contain_text("Applied")
    port = Azure(fresh_emulator).policy_ports(*WEB, vm_id("rg-web-prod", "web-01"))[8080]
    assert port["max_request_access_duration"] == "PT2H"
    # A wider window keeps the table as it was: the sources field 22em wide, a port's hours and minutes on one line
    # (the admin's 480 px for its own ``.stacked`` up to 1024 px had squeezed them onto two).
    page.click("#edit-jit")
    for width in (1280, 1024):
        page.set_viewport_size({"width": width, "height": 900})
        assert page.locator("#port-rules tbody td").first.evaluate("td => getComputedStyle(td).display") == \
            "table-cell"
        assert page.locator("#id_ports-0-sources").evaluate(
            "i => i.offsetWidth / parseFloat(getComputedStyle(i).fontSize)") >= 21  # its 22em
        hours, minutes = (page.locator(f"#id_ports-0-{name}").bounding_box() for name in ("max_hours", "max_minutes"))
        assert hours["y"] == minutes["y"] and hours["x"] < minutes["x"], (width, hours, minutes)


@pytest.mark.parametrize("width", [1280, 375])
def test_an_open_row_menu_stays_within_the_table_on_a_wide_window_and_a_phone(portal, entra_page, width):
    """The Not configured tab's menu has its longest item, "Enable JIT with custom settings…": it opens to the left
    of its "…" (the table's last column), not beyond the table where its region would scroll it out of sight, and
    its items carry no list markers."""
    page = entra_page
    page.set_viewport_size({"width": width, "height": 800})
    sign_in_with_entra(page, portal, "bob@contoso.example")
    page.goto(f"{portal}/inventory/?tab=not_configured")
    menu = page.locator("#result_list tbody .row-menu").first
    menu.locator("summary").click()
    item = menu.get_by_role("link", name="Enable JIT with custom settings…")
    expect(item).to_be_visible()
    box = menu.locator("ul").evaluate("""ul => { const r = ul.getBoundingClientRect();
        const region = document.querySelector('#vm-table-region').getBoundingClientRect();
        return {left: r.left, right: r.right, regionLeft: region.left, regionRight: region.right}; }""")
    assert box["regionLeft"] <= box["left"] and box["right"] <= box["regionRight"], box
    assert item.evaluate("a => a.getBoundingClientRect().height") < 30  # one line
    # no list markers: the admin's square bullets drew outside the menu's box, beside its items
    assert set(menu.locator("li").evaluate_all("lis => lis.map(li => getComputedStyle(li).listStyleType)")) == {"none"}


def test_the_rows_and_tab_counts_follow_a_change_when_azure_applies_it(portal, entra_page):
    from accounts.models import User
    from policies import services
    from policies.models import VirtualMachine
    from tests.policies.factories import apply_all

    page = entra_page
    sign_in_with_entra(page, portal, "bob@contoso.example")
    celery_app.conf.task_always_eager = False  # the change waits for ``apply_all`` below
    services.policy_enable(actor=User.objects.get(email="bob@contoso.example"),
                           vms=[VirtualMachine.objects.get(name="web-05")])
    page.goto(f"{portal}/inventory/?tab=not_configured")
    row = page.locator("#result_list tr", has_text="web-05")
    expect(row).to_contain_text("Enabling JIT…")
    configured = page.locator("#tab-configured .count").inner_text()
    assert apply_all() == ["applied"]
    expect(page.locator("#pending-changes")).to_contain_text("Applied")
    expect(row).to_have_count(0)  # the row left for the Configured tab, whose count grew
    expect(page.locator("#tab-configured .count")).to_have_text(f"({int(configured.strip('()')) + 1})")


def test_the_vm_page_follows_a_change_when_azure_applies_it(portal, entra_page):
    """The VM page polls its pending change; once Azure applied it, the page shows the VM as it is now (state,
    ports, Connect and Remove JIT), not the 'JIT is not enabled' it loaded with beside an 'Applied' change."""
    from accounts.models import User
    from policies import services
    from policies.models import VirtualMachine
    from tests.policies.factories import apply_all

    page = entra_page
    sign_in_with_entra(page, portal, "bob@contoso.example")
    celery_app.conf.task_always_eager = False  # the changes wait for ``apply_all`` below
    bob = User.objects.get(email="bob@contoso.example")
    web05 = VirtualMachine.objects.get(name="web-05")
    services.policy_enable(actor=bob, vms=[web05])
    page.goto(f"{portal}/inventory/vm/{web05.pk}/")
    expect(page.locator("#vm-state")).to_have_text("Not configured")
    expect(page.locator("#changes")).to_contain_text("Pending")
    assert apply_all() == ["applied"]
    expect(page.locator("#changes")).to_contain_text("Applied")
    expect(page.locator("#vm-state")).to_have_text("Configured")
    expect(page.locator('#vm-ports tr[data-port="22"]')).to_be_visible()
    expect(page.locator("#remove-jit")).to_be_visible()
    expect(page.locator("#enable-blocked")).to_have_count(0)

    # And back: removing JIT leaves the page on Not configured, with Enable JIT, once Azure applied it.
    services.policy_remove(actor=bob, vm=VirtualMachine.objects.get(pk=web05.pk))
    page.reload()
    expect(page.locator("#vm-state")).to_have_text("Configured")
    assert apply_all() == ["applied"]
    expect(page.locator("#vm-state")).to_have_text("Not configured")
    expect(page.locator("#enable-jit")).to_be_visible()
    expect(page.locator("#vm-ports")).to_have_count(0)
