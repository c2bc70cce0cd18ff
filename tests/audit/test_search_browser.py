"""An auditor, signed in through the emulator's Entra ID pages, audits one VM and downloads the CSV."""
from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from audit.ingestion import ingest_subscription
from audit.tables import OPERATION_LABELS
from policies.gateway import gateway_for_subscription
from tests.audit.factories import PROD, vm_id
from tests.plugins.personas import sign_in_with_entra
from tests.policies.factories import register

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
INITIATE = "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action"


@pytest.fixture
def portal(live_server, entra_settings, fresh_emulator, persona_mappings):
    """Contoso Production registered against the demo emulator, its Activity Log ingested once."""
    subscription = register(fresh_emulator, PROD, "Contoso Production")
    outcome = ingest_subscription(PROD, gateway_for_subscription(subscription))
    assert outcome.complete and outcome.added > 0
    return live_server.url


def test_an_auditor_filters_to_one_vm_and_seven_days_and_downloads_the_csv(portal, entra_page):
    page = entra_page
    web01 = vm_id(name="web-01")
    sign_in_with_entra(page, portal, "carol@contoso.example")

    page.goto(f"{portal}/audit/?vm={web01}")  # where the inventory's "Activity log" link leads
    page.select_option("#id_range", "7d")
    page.click("#audit-filter input[type=submit]")
    page.wait_for_url(re.compile(r"range=7d"))  # and loaded: the rows counted below are all of the new page's
    results = page.locator("#result_list tbody tr")
    # The page names the operation briefly ("Security: initiate/action"), the full ARM name in its title.
    alice_initiate = results.filter(has_text="alice@contoso.example").filter(has_text=OPERATION_LABELS[INITIATE])
    expect(alice_initiate.first).to_be_visible()
    expect(results.filter(has_text="web-02")).to_have_count(0)

    with page.expect_download() as download_info:
        page.click("#download-csv")
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    text = Path(download.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows, text
    assert {"Time (UTC)", "Resource name", "Operation", "Caller", "Correlation id", "Event id"} <= set(rows[0])
    week_ago = datetime.now(UTC) - timedelta(days=7, minutes=1)
    assert all(datetime.fromisoformat(r["Time (UTC)"]) >= week_ago for r in rows)
    assert all(r["Subscription"] == PROD for r in rows)
    initiates = [r for r in rows if r["Operation"] == INITIATE and r["Caller"] == "alice@contoso.example"]
    assert initiates and all(r["Resource name"] == "default" for r in initiates)  # the VM's JIT policy
    assert any(r["Resource name"].startswith("securitycenter-jitrule") and "web-01" in r["Resource name"]
               for r in rows)  # the NSG rules the initiates wrote
    assert len({r["Event id"] for r in rows}) == len(rows)
    shown = page.locator("#result_list tbody tr").count()
    assert len(rows) >= shown


@pytest.mark.parametrize("width", [1280, 390])
def test_the_results_fit_the_window_their_long_callers_wrapping(portal, entra_page, width):
    """At a desktop's 1280 px the results need no sideways scroll beside the filters, the portal's named identity
    and long user names wrapping inside the Caller column; on a phone the table scrolls within its box, never the
    page."""
    from audit.ingestion import store_events
    from tests.audit.factories import event

    long_name = "firstname.lastname-with-a-long-department@subsidiary.contoso.example"
    store_events([event(caller="0d3b6a9e-5c1f-4e2a-9b7d-1a2b3c4d5e6f"), event(caller=long_name)])
    page = entra_page
    page.set_viewport_size({"width": width, "height": 900})
    sign_in_with_entra(page, portal, "carol@contoso.example")
    page.goto(f"{portal}/audit/")
    expect(page.locator("#result_list td.field-caller .caller").first).to_have_text(
        "jitportal (service principal 0d3b6a9e…)")
    expect(page.locator("#result_list td.field-caller", has_text=long_name)).to_be_visible()
    sizes = page.evaluate("""() => {
        const box = document.querySelector('#changelist .results');
        return {page: document.documentElement.scrollWidth, scroll: box.scrollWidth, client: box.clientWidth};
    }""")
    assert sizes["page"] <= width, sizes
    if width >= 1280:
        assert sizes["scroll"] <= sizes["client"], sizes
