"""On a phone (390 px) in headless chromium: the inventory's tabs and the audit trail show each row as a card whose
cells name their columns, nothing scrolls sideways, and a card's actions open within reach; at 1280 px they are
tables. The generic forms set each label beside its field at 1280 px and above it on a phone."""
import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from tests.plugins.personas import sign_in_as_breakglass
from tests.policies.factories import PROD, make_many_vms

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE, DESKTOP = {"width": 390, "height": 844}, {"width": 1280, "height": 900}
# Each data cell with a name: its display, the text drawn before it, and its name.
CELLS = """table => Array.from(table.querySelectorAll("tbody td[data-label]:not([data-label=''])"), td =>
    [getComputedStyle(td).display, getComputedStyle(td, "::before").content, td.dataset.label])"""
SIDEWAYS = "el => el.scrollWidth - el.clientWidth"


def cards(page: Page) -> None:
    """The results are cards: each cell shows its column's name before its value; nothing scrolls sideways."""
    cells = page.locator("#result_list").evaluate(CELLS)
    assert cells and all(display == "flow-root" and content == f'"{label}"' for display, content, label in cells), \
        cells[:3]
    assert page.locator("html").evaluate(SIDEWAYS) <= 0
    assert page.locator("#result_list").evaluate("t => t.closest('.results').scrollWidth - "
                                                 "t.closest('.results').clientWidth") <= 0


@pytest.fixture
def signed_in(page: Page, live_server, breakglass_admin) -> Page:
    make_many_vms(6)
    from audit.services import audit_record

    audit_record(actor=breakglass_admin, action="policy.save", target_label="a-rather-long-virtual-machine-name-01",
                 subscription_id=PROD)
    sign_in_as_breakglass(page, live_server.url)
    return page


@pytest.mark.parametrize("tab", ["configured", "unsupported"])
def test_the_inventory_is_cards_on_a_phone_with_its_actions_in_reach(signed_in, live_server, tab):
    page = signed_in
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}{reverse('policies:inventory')}?tab={tab}")
    cards(page)
    expect(page.locator("#result_list thead th.col-name a")).to_be_visible()  # sorting stays on the phone
    summary = page.locator("#result_list tbody tr").first.locator(".row-menu summary")
    summary.click()
    details = page.locator("#result_list tbody tr").first.get_by_role("link", name="Details")
    expect(details).to_be_in_viewport()
    box = details.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    page.set_viewport_size(DESKTOP)
    assert page.locator("#result_list tbody td").first.evaluate("td => getComputedStyle(td).display") == "table-cell"


def test_the_audit_trail_is_cards_on_a_phone(signed_in, live_server):
    page = signed_in
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}{reverse('audit:search')}?source=portal&range=7d")
    cards(page)
    header = page.locator("#result_list thead tr").bounding_box()  # kept for screen readers, out of sight
    assert header is not None and header["height"] <= 1
    page.set_viewport_size(DESKTOP)
    assert page.locator("#result_list tbody td").first.evaluate("td => getComputedStyle(td).display") == "table-cell"


def test_a_generic_forms_labels_stand_beside_their_fields_and_above_them_on_a_phone(signed_in, live_server):
    page = signed_in
    page.goto(f"{live_server.url}{reverse('notifications:webhook_add')}")
    label, field = page.locator("#row-url > label"), page.locator("#id_url")
    legend, boxes = page.locator("#row-events > legend"), page.locator("#id_events")
    for (a, b) in ((label, field), (legend, boxes)):
        first, second = a.bounding_box(), b.bounding_box()
        assert first["x"] + first["width"] <= second["x"], (first, second)  # side by side
    page.set_viewport_size(PHONE)
    for (a, b) in ((label, field), (legend, boxes)):
        first, second = a.bounding_box(), b.bounding_box()
        assert first["y"] + first["height"] <= second["y"], (first, second)  # stacked
    assert page.locator("html").evaluate(SIDEWAYS) <= 0


# Each link: its text, and whether the element at the centre of its first line box is the link (or inside it), once
# scrolled into view: nothing covers it, so a tap lands on it.
TAPPABLE = """links => links.map(a => {
    a.scrollIntoView({block: "center"});
    const box = a.getClientRects()[0];
    const hit = box && document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
    return [a.textContent.trim(), Boolean(hit) && (hit === a || a.contains(hit))];
})"""


def tappable(page: Page, table: str) -> None:
    """On a phone, ``table`` is cards, the page does not scroll sideways, and every sort link over the cards and
    every link in the first card can be tapped."""
    page.set_viewport_size(PHONE)
    assert page.locator(f"{table} tbody tr").first.evaluate("tr => getComputedStyle(tr).display") == "block"
    assert page.locator("html").evaluate(SIDEWAYS) <= 0
    sort_links = page.locator(f"{table} thead th a").evaluate_all(TAPPABLE)
    card_links = page.locator(f"{table} tbody tr").first.locator("a").evaluate_all(TAPPABLE)
    assert sort_links and card_links
    assert all(ok for _, ok in sort_links + card_links), sort_links + card_links
    assert page.locator("html").evaluate(SIDEWAYS) <= 0


def test_the_requests_list_is_cards_on_a_phone_with_its_sort_links_and_links_in_reach(page, live_server,
                                                                                      breakglass_admin):
    from tests.policies.access.factories import make_access_request

    for _ in range(2):
        make_access_request(f"/subscriptions/{PROD}/resourceGroups/rg-a-rather-long-resource-group-name")
    sign_in_as_breakglass(page, live_server.url)
    page.goto(f"{live_server.url}{reverse('policies:requests')}")
    tappable(page, "#request-table")
    cells = page.locator("#request-table").evaluate(CELLS)
    assert cells and all(content == f'"{label}"' for _, content, label in cells), cells[:3]
    page.locator("#request-table thead th a", has_text="Requester").click()  # a chip sorts
    expect(page.locator('#request-table thead th[aria-sort="ascending"]')).to_have_text("Requester")


def test_the_role_mappings_are_cards_on_a_phone_with_their_sort_links_and_links_in_reach(page, live_server,
                                                                                        breakglass_admin):
    from accounts.models import RoleMapping

    RoleMapping.objects.create(source_kind=RoleMapping.SourceKind.GROUP, role="requester",
                               source_value="5f0c3c52-93c6-4e71-8d0a-2b1f4c7e9a10", scope=f"/subscriptions/{PROD}",
                               description="Requesters of every VM of Production")
    sign_in_as_breakglass(page, live_server.url)
    page.goto(f"{live_server.url}{reverse('accounts:rolemapping_list')}")
    tappable(page, "#result_list")
