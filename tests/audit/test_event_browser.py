"""The audit's event pages in headless chromium: each field's label beside its value (two columns), one column on a
phone, and nothing wider than the window."""
from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from audit.ingestion import store_events
from audit.models import ActivityLogEvent, AuditEvent
from audit.services import audit_record
from tests.audit.factories import PROD, event, vm_id
from tests.plugins.personas import sign_in_as_breakglass

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ROWS = """dl => [...dl.querySelectorAll('dt')].map(dt => { const a = dt.getBoundingClientRect(),
            b = dt.nextElementSibling.getBoundingClientRect(); return [a.top, a.right, b.top, b.left]; })"""


def rows(page, selector: str) -> list[list[float]]:
    expect(page.locator(selector)).to_be_visible()
    return page.locator(selector).evaluate(ROWS)


def test_the_event_pages_show_each_label_beside_its_value_and_stack_them_on_a_phone(page, live_server,
                                                                                    breakglass_admin):
    store_events([event(properties={
        "virtualMachines": f"{vm_id(name='web-04')},{vm_id(name='web-05-with-a-rather-long-name')}",
        "ports": "22,3389", "sourceAddressPrefixes": "2001:db8::25", "endTimeUtc": "2030-01-01T02:00:00Z",
        "justification": "alice: " + "patch " * 60})])
    audit_record(actor=None, action="policy.save", target_label="web-04", subscription_id=PROD, resource_id=vm_id())
    pages = [reverse("audit:activity_event", args=[ActivityLogEvent.objects.get().pk]),
             reverse("audit:trail_event", args=[AuditEvent.objects.get(action="policy.save").pk])]
    page.set_viewport_size({"width": 1024, "height": 800})
    sign_in_as_breakglass(page, live_server.url)
    for path in pages:
        page.goto(f"{live_server.url}{path}")
        for selector in ("#jit-summary dl", "#event-fields dl") if path == pages[0] else ("#event-fields dl",):
            for dt_top, dt_right, dd_top, dd_left in rows(page, selector):
                assert abs(dt_top - dd_top) < 1 and dd_left > dt_right, (path, selector)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 1024
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"{live_server.url}{pages[0]}")
    for _dt_top, _dt_right, dd_top, _dd_left in [*rows(page, "#jit-summary dl"), *rows(page, "#event-fields dl")]:
        assert dd_top > _dt_top
    # The title, its operation's name (70 characters without a space), wraps rather than widening the page.
    expect(page.locator("h1")).to_contain_text("jitNetworkAccessPolicies/initiate/action")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
