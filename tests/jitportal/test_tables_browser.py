"""Sorting a list with the keyboard in headless chromium: the header links are reached with Tab, and the sorted
column's header says the order (``aria-sort``)."""
import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.jitportal.test_tables import LISTS
from tests.plugins.personas import sign_in_as_breakglass

PAGES = {"policies:inventory": "Location", "policies:requests": "Requester"}  # a column each, not sorted by default


def tab_to(page, name: str, presses: int = 150) -> None:
    """Press Tab from the top of the page until the header link ``name`` has the focus."""
    page.locator("body").focus()
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.closest('thead') !== null"
                         " && document.activeElement.textContent.trim()") == name:
            return
    pytest.fail(f"the {name} header link is not reached with Tab")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", PAGES)
def test_a_list_is_sorted_from_the_keyboard_and_its_header_says_how(page, live_server, breakglass_admin, name):
    LISTS[name]()
    column = PAGES[name]
    sign_in_as_breakglass(page, live_server.url)
    page.goto(f"{live_server.url}{reverse(name)}")
    header = page.get_by_role("columnheader", name=column, exact=True)
    expect(header).not_to_have_attribute("aria-sort", re.compile(".*"))
    expect(page.locator("th[aria-sort]")).to_have_count(1)  # the default order's column
    for order in ("ascending", "descending"):
        tab_to(page, column)
        page.keyboard.press("Enter")
        expect(header).to_have_attribute("aria-sort", order)
        expect(page.locator("th[aria-sort]")).to_have_count(1)
