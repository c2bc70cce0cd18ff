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
    expect(page).to_have_url(re.compile(r"range=7d"))
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
