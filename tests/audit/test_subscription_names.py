"""Audit pages name subscriptions: the display name, with the id in the title or beside it; the id where the portal
knows no name; one query per page for the names, however many rows; the subscription filter still by id."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.ingestion import store_events
from audit.models import ActivityLogEvent, AuditEvent, IngestionState
from audit.services import audit_record
from tests.audit.factories import DEV, PROD, event, named_subscription, vm_id

pytestmark = pytest.mark.django_db
SEARCH = reverse("audit:search")
THIRD = "c0a1b2c3-0000-4000-8000-000000000003"
SUBSCRIPTIONS = (PROD, DEV, THIRD)


def named(subscription_id: str, name: str) -> str:
    return f'<span class="subscription" title="{subscription_id}">{name}</span>'


def record_trail(count: int) -> None:
    for n in range(count):
        sub = SUBSCRIPTIONS[n % 3]
        audit_record(actor=None, action="policy.save", target_label=f"vm-{n}", subscription_id=sub,
                     resource_group="rg-a", resource_id=vm_id(sub, "rg-a", f"vm-{n}"))


def test_the_results_show_each_subscriptions_name_with_its_id_in_the_title(client, breakglass_admin):
    named_subscription(PROD, "Contoso <b>Production</b>")
    named_subscription(DEV, "")  # registered without a name: its id
    store_events([event(caller="prod@contoso.example"), event(sub=DEV, rg="rg-dev", caller="dev@contoso.example"),
                  event(sub=THIRD, rg="rg-x", caller="gone@contoso.example")])  # not registered (any more)
    record_trail(3)
    client.force_login(breakglass_admin)
    for source in ("azure", "portal"):
        body = client.get(SEARCH, {"source": source}).content.decode()
        assert named(PROD, "Contoso &lt;b&gt;Production&lt;/b&gt;") in body and "<b>Production" not in body
        assert named(DEV, f"{DEV[:8]}…") in body and named(THIRD, f"{THIRD[:8]}…") in body


def test_an_auditor_sees_the_names_of_the_subscriptions_in_their_scope(client, auditor):
    named_subscription(PROD, "Contoso Production")
    store_events([event()])
    client.force_login(auditor)
    assert named(PROD, "Contoso Production") in client.get(SEARCH).content.decode()


@pytest.mark.parametrize("source", ["azure", "portal"])
def test_naming_subscriptions_costs_one_query_per_page_however_many_rows(client, breakglass_admin, source,
                                                                         settings):
    settings.AUDIT_PAGE_SIZE = 200
    for sub in SUBSCRIPTIONS:
        named_subscription(sub, f"Subscription {sub[-1]}")
    add = record_trail if source == "portal" else (
        lambda n: store_events([event(sub=SUBSCRIPTIONS[i % 3], rg="rg-a") for i in range(n)]))
    client.force_login(breakglass_admin)
    add(6)
    client.get(SEARCH, {"source": source})  # the first request of a session stores it: not what is measured
    with CaptureQueriesContext(connection) as few:
        client.get(SEARCH, {"source": source})
    add(144)
    with CaptureQueriesContext(connection) as many:
        body = client.get(SEARCH, {"source": source}).content.decode()
    assert body.count('class="subscription"') == 150 and "Subscription 3" in body
    assert len(many) == len(few), [q["sql"] for q in many]
    assert sum("policies_subscription" in q["sql"] for q in many) == 1


def test_the_subscription_filter_still_takes_an_id(client, breakglass_admin):
    named_subscription(PROD, "Contoso Production")
    named_subscription(DEV, "Contoso Dev/Test")
    store_events([event(caller="prod@contoso.example"), event(sub=DEV, rg="rg-dev", caller="dev@contoso.example")])
    record_trail(2)
    client.force_login(breakglass_admin)
    body = client.get(SEARCH, {"subscription": DEV.upper()}).content.decode()
    assert "dev@contoso.example" in body and "prod@contoso.example" not in body
    assert named(DEV, "Contoso Dev/Test") in body and named(PROD, "Contoso Production") not in body
    body = client.get(SEARCH, {"source": "portal", "subscription": PROD}).content.decode()
    assert "vm-0" in body and "vm-1" not in body and named(PROD, "Contoso Production") in body


def test_the_event_pages_show_the_name_and_the_whole_id(client, breakglass_admin):
    named_subscription(PROD, "Contoso Production")
    store_events([event(), event(sub=DEV, rg="rg-dev")])
    audit_record(actor=None, action="policy.save", target_label="web-01", subscription_id=PROD)
    client.force_login(breakglass_admin)
    prod, dev = (ActivityLogEvent.objects.get(subscription_id=s) for s in (PROD, DEV))
    trail = AuditEvent.objects.get(action="policy.save")
    for page in (reverse("audit:activity_event", args=[prod.pk]), reverse("audit:trail_event", args=[trail.pk])):
        body = client.get(page).content.decode()
        assert ('<span class="subscription">Contoso Production</span> '
                f'<small class="quiet subscription-id">{PROD}</small>') in body
    body = client.get(reverse("audit:activity_event", args=[dev.pk])).content.decode()
    assert f'<span class="subscription-id">{DEV}</span>' in body


def test_the_ingestion_status_names_each_subscription(client, auditor):
    named_subscription(PROD, "Contoso Production")
    IngestionState.objects.create(subscription_id=PROD, watermark=timezone.now(),
                                  backfill_from=timezone.now() - timedelta(days=90))
    client.force_login(auditor)
    body = client.get(reverse("audit:ingestion_status")).content.decode()
    assert '<span class="subscription">Contoso Production</span>' in body and PROD in body
    assert 'aria-label="Backfill of subscription Contoso Production"' in body
