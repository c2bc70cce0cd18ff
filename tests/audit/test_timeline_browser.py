"""The VM timeline in headless chromium: a wide story scrolls inside its table, not the whole page."""
from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from audit.ingestion import store_events
from tests.audit.factories import initiate_with_rule, vm_id
from tests.plugins.personas import sign_in_as_breakglass

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
RULE_WRITE = "Microsoft.Network/networkSecurityGroups/securityRules/write"


def test_a_wide_timeline_scrolls_within_its_table_and_its_times_stay_on_one_line(page, live_server,
                                                                                breakglass_admin):
    correlation = "aaaaaaaa-2222-4333-8444-555555555555"
    store_events(initiate_with_rule(correlation, "securitycenter-jitrule_d066f386_web-01_22_allow"))
    page.set_viewport_size({"width": 1024, "height": 800})
    sign_in_as_breakglass(page, live_server.url)

    page.goto(f"{live_server.url}{reverse('audit:vm_timeline')}?vm={vm_id()}")
    expect(page.locator("#timeline")).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1024
    time_cell = page.locator("#timeline tbody tr").first.locator("td").first
    lines = time_cell.evaluate("""el => { const range = document.createRange(); range.selectNodeContents(el);
                                          return new Set([...range.getClientRects()].map(r => r.top)).size; }""")
    assert lines == 1


def test_at_1280px_every_column_of_the_timeline_shows_without_scrolling(page, live_server, breakglass_admin):
    """Operation names and the network rules' resource ids (up to 200 characters without a space) wrap inside their
    cells: at a desktop width the Portal column was off to the right of a table wider than its box."""
    correlation = "aaaaaaaa-2222-4333-8444-555555555556"
    store_events(initiate_with_rule(correlation, "securitycenter-jitrule_d066f386_web-01_22_allow"))
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in_as_breakglass(page, live_server.url)
    page.goto(f"{live_server.url}{reverse('audit:vm_timeline')}?vm={vm_id()}")
    expect(page.locator("#timeline")).to_be_visible()
    box = page.locator("#timeline").evaluate("el => [el.scrollWidth, el.parentElement.clientWidth]")
    assert box[0] <= box[1], box


WORDS_BROKEN = """table => { const broken = [];
    for (const cell of table.querySelectorAll('tbody td:nth-child(2), tbody td:nth-child(5)')) {
        const text = cell.firstChild && cell.textContent, node = cell.querySelector('a')?.firstChild || cell.firstChild;
        if (!text || !node || node.nodeType !== Node.TEXT_NODE) continue;
        let at = 0;
        for (const word of node.textContent.split(/([ /])/)) {
            if (word.trim().length > 1 && word !== '/') {
                const range = document.createRange(); range.setStart(node, at); range.setEnd(node, at + word.length);
                if (new Set([...range.getClientRects()].map(r => Math.round(r.top))).size > 1) broken.push(word);
            }
            at += word.length;
        }
    }
    return broken; }"""


@pytest.mark.parametrize("width", [1280, 390])
def test_the_timelines_justification_and_operation_keep_their_words_whole(page, live_server, breakglass_admin,
                                                                          width):
    """The Why column (a justification) and Operation (an Azure operation's path) had a few characters' width beside
    the rules' long ids: 'Patch' read 'Pat ch', each row a column of fragments, at a desktop width as on a phone
    (where the table scrolls within its box)."""
    store_events(initiate_with_rule("aaaaaaaa-2222-4333-8444-555555555557",
                                    "securitycenter-jitrule_d066f386_web-01_22_allow"))
    page.set_viewport_size({"width": width, "height": 800})
    sign_in_as_breakglass(page, live_server.url)
    page.goto(f"{live_server.url}{reverse('audit:vm_timeline')}?vm={vm_id()}")
    expect(page.locator("#timeline")).to_contain_text("alice: Patch the web tier")
    assert page.locator("#timeline").evaluate(WORDS_BROKEN) == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
