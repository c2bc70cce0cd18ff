"""Activity Log ingestion against the emulator through the real SDK: backfill, overlap, paging, throttling."""
import time
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.ingestion import claim, ingest_subscription
from audit.models import ActivityLogEvent, ActivityLogEventVm, IngestionState
from tests.audit.factories import PROD, vm_id

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
INITIATE = "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action"
ACTIVITY_PATH = "/providers/microsoft.insights/eventtypes/management/values"


def run_to_completion(gateway, *, attempts: int = 10):
    """Run ingestion as the task would: again after each throttle, waiting (briefly) as Azure asked."""
    outcomes = []
    for _ in range(attempts):
        outcome = ingest_subscription(PROD, gateway)
        outcomes.append(outcome)
        if outcome.retry_after is None:
            return outcomes
        time.sleep(min(outcome.retry_after, 2))
    raise AssertionError(f"ingestion did not complete: {outcomes}")


def activity_calls(emulator) -> list[dict]:
    return [c for c in emulator.calls() if ACTIVITY_PATH in c.get("path", "").lower()]


def test_the_first_run_backfills_ninety_days_in_day_windows(prod_gateway, fresh_emulator):
    outcome = run_to_completion(prod_gateway)[-1]
    assert outcome.complete and outcome.added > 0
    state = IngestionState.objects.get(subscription_id=PROD)
    assert state.last_success_at is not None and state.last_error == ""
    assert timezone.now() - state.watermark < timedelta(minutes=1)
    assert abs((state.backfill_from - (timezone.now() - timedelta(days=90))).total_seconds()) < 120
    assert state.progress == pytest.approx(1.0, abs=0.01)
    assert state.running_since is None and state.window_start is None
    assert len(activity_calls(fresh_emulator)) >= 90
    initiates = ActivityLogEvent.objects.filter(operation_name=INITIATE, caller="alice@contoso.example")
    assert initiates.exists()


def test_the_filter_sent_is_the_azure_grammar(prod_gateway, fresh_emulator):
    run_to_completion(prod_gateway)
    calls = activity_calls(fresh_emulator)
    assert calls and all(c.get("status", 200) == 200 for c in calls)
    first = calls[0]
    query = parse_qs(urlparse(first.get("url") or "?" + first.get("query", "")).query)
    assert query["$filter"][0].startswith("eventTimestamp ge '")
    assert " and eventTimestamp le '" in query["$filter"][0]


def test_re_running_ingestion_adds_no_duplicates(prod_gateway):
    first = run_to_completion(prod_gateway)[-1]
    count = ActivityLogEvent.objects.count()
    state = IngestionState.objects.get(subscription_id=PROD)
    IngestionState.objects.filter(pk=state.pk).update(watermark=None, backfill_from=None)  # read all 90 days again
    second = run_to_completion(prod_gateway)[-1]
    assert second.seen >= first.added and second.added == 0
    assert ActivityLogEvent.objects.count() == count
    assert len(set(ActivityLogEvent.objects.values_list("event_data_id", flat=True))) == count


def test_a_later_run_reads_only_from_the_watermark_with_overlap_and_adds_only_new_events(
        prod_gateway, fresh_emulator):
    run_to_completion(prod_gateway)
    before = ActivityLogEvent.objects.count()
    fresh_emulator.add_activity(
        {"resourceId": vm_id(), "operationName": "Microsoft.Compute/virtualMachines/write", "caller": "late@x.example",
         "eventTimestamp": (timezone.now() - timedelta(minutes=5)).isoformat()},
        {"resourceId": vm_id(), "operationName": "Microsoft.Compute/virtualMachines/write", "caller": "new@x.example"},
    )
    fresh_emulator.clear_calls()
    outcome = run_to_completion(prod_gateway)[-1]
    assert outcome.added == 2
    assert ActivityLogEvent.objects.count() == before + 2
    assert set(ActivityLogEvent.objects.filter(caller__in=["late@x.example", "new@x.example"])
               .values_list("vm_ids", flat=True)) == {f" {vm_id().lower()} "}
    assert len(activity_calls(fresh_emulator)) == 1  # one short window: [watermark - 15 min, now]


def test_pages_are_followed_with_a_small_page_size(prod_gateway, fresh_emulator):
    fresh_emulator.set_page_size(3)
    outcome = run_to_completion(prod_gateway)[-1]
    assert outcome.pages > 91  # more pages than day windows: nextLink was followed
    reference = ActivityLogEvent.objects.count()
    assert outcome.added == reference
    assert IngestionState.objects.get(subscription_id=PROD).pages_read == outcome.pages


def test_throttling_with_retry_after_ends_complete(prod_gateway, fresh_emulator):
    fresh_emulator.add_fault(ACTIVITY_PATH.replace(".", r"\."), "429", count=3, retry_after=1)
    outcomes = run_to_completion(prod_gateway)
    assert outcomes[-1].complete
    state = IngestionState.objects.get(subscription_id=PROD)
    assert state.last_error == "" and state.last_success_at is not None
    throttled = [o for o in outcomes if o.retry_after is not None]
    assert all(o.retry_after <= 2 for o in throttled)
    fresh_emulator.clear_faults()
    IngestionState.objects.filter(pk=state.pk).update(watermark=None, backfill_from=None)
    assert run_to_completion(prod_gateway)[-1].added == 0  # the throttled run lost nothing


def test_a_throttled_run_shows_the_error_and_keeps_its_window(prod_gateway, fresh_emulator):
    fresh_emulator.add_fault(ACTIVITY_PATH.replace(".", r"\."), "429", count=50, retry_after=30)
    outcome = ingest_subscription(PROD, prod_gateway)
    assert outcome.retry_after == pytest.approx(30, abs=1)
    state = IngestionState.objects.get(subscription_id=PROD)
    assert "Throttled" in state.last_error and state.retry_at is not None
    assert state.window_start is not None and state.running_since is None


def test_the_nsg_rules_a_jit_call_wrote_are_found_by_the_vm(prod_gateway):
    run_to_completion(prod_gateway)
    web01 = vm_id(name="web-01").lower()
    rules = ActivityLogEvent.objects.filter(operation_name__contains="securityRules", vm_ids__contains=f" {web01} ")
    assert rules.filter(operation_name__endswith="/write").exists()
    assert rules.filter(operation_name__endswith="/delete").exists()  # expiry, under another correlation id


def test_only_one_run_holds_a_subscription_at_a_time():
    assert claim(PROD) is not None
    assert claim(PROD) is None
    later = timezone.now() + timedelta(hours=1)
    assert claim(PROD, now=later) is not None  # a dead run's hold expires


def _event_data(**changes) -> dict:
    """An Activity Log entry in full (EventData, as Azure answers it) about web-01, with ``changes``."""
    from emulator.activity import make_event
    from tests.audit.factories import TENANT

    doc = make_event(subscription=PROD, tenant_id=TENANT, resource_id=vm_id(), resource_group="rg-web-prod",
                     operation_name="Microsoft.Compute/virtualMachines/write", status="Succeeded",
                     caller="good@x.example", correlation_id=str(uuid.uuid4()),
                     timestamp=timezone.now() - timedelta(minutes=5))
    return {**doc, **changes}


def test_a_malformed_event_is_skipped_counted_and_said_and_the_others_are_stored(prod_gateway, fresh_emulator, client,
                                                                                auditor):
    """An id longer than its column failed the whole page's insert on PostgreSQL (SQLite stored it): every run stopped
    at that page again, and nothing of its window was ever stored. Such an event is skipped (a cut id would no longer
    name it), counted, and said on the status page; the others are stored, and the run goes on."""
    IngestionState.objects.create(subscription_id=PROD, watermark=timezone.now() - timedelta(minutes=10),
                                  backfill_from=timezone.now() - timedelta(days=90))
    too_long = {"eventDataId": "e" * 65, "correlationId": "c" * 65, "resourceGroupName": "g" * 129}
    bad = [_event_data(**{key: value}, caller="bad@x.example") for key, value in too_long.items()]
    fresh_emulator.add_activity(_event_data(caller="before@x.example"), *bad, _event_data(caller="after@x.example"))
    outcome = run_to_completion(prod_gateway)[-1]
    assert outcome.complete and outcome.skipped == 3
    assert set(ActivityLogEvent.objects.filter(caller__endswith="@x.example").values_list("caller", flat=True)) == {
        "before@x.example", "after@x.example"}
    state = IngestionState.objects.get(subscription_id=PROD)
    assert state.last_error == "" and state.window_start is None and state.events_skipped == 3
    reasons = ["its event id has 65 characters, more than the 64 the portal stores.",
               "its correlation id has 65 characters, more than the 64 the portal stores.",
               "its resource group has 129 characters, more than the 128 the portal stores."]
    assert state.last_skipped.startswith("Skipped the event of ") and state.last_skipped.endswith(tuple(reasons))
    client.force_login(auditor)
    page = client.get(reverse("audit:ingestion_status")).content.decode()
    assert '<td data-label="Events skipped">3: <span class="errornote">Skipped the event of ' in page
    assert any(f"): {reason}</span>" in page for reason in reasons)


def test_a_vm_id_too_long_for_the_vm_index_stays_in_the_event_but_out_of_the_index(prod_gateway, fresh_emulator):
    """VM ids are found in the event's text: one longer than the VM index's column (no VM Azure can have) failed the
    page's insert on PostgreSQL."""
    IngestionState.objects.create(subscription_id=PROD, watermark=timezone.now() - timedelta(minutes=10),
                                  backfill_from=timezone.now() - timedelta(days=90))
    odd = vm_id(name="v" * 500).lower()
    fresh_emulator.add_activity(_event_data(properties={"note": odd}, caller="odd@x.example"))
    outcome = run_to_completion(prod_gateway)[-1]
    assert outcome.complete and outcome.skipped == 0
    stored = ActivityLogEvent.objects.get(caller="odd@x.example")
    assert stored.vm_ids == f" {vm_id().lower()} {odd} "
    assert list(ActivityLogEventVm.objects.filter(event_data_id=stored.event_data_id)
                .values_list("vm_id", flat=True)) == [vm_id().lower()]


@pytest.mark.parametrize(("changes", "reason"), [
    ({"subscription_id": PROD + "0" * 30},
     "its subscription id has 66 characters, more than the 64 the portal stores."),
    ({"event_timestamp": None}, "it has no time."),
])
def test_an_event_whose_place_or_time_cannot_be_stored_is_skipped_saying_why(changes, reason):
    """What the emulator does not send (Azure's answer lists a subscription's events by time): an event without a time,
    or with a subscription id too long for its column, failed the page's insert (SQLite stored the long id)."""
    from dataclasses import replace

    from audit.ingestion import store_events
    from tests.audit.factories import event

    stored = store_events([event(caller="good@x.example"), replace(event(caller="bad@x.example"), **changes)])
    assert stored.added == 1 and len(stored.skipped) == 1 and stored.skipped[0].endswith(f"): {reason}")
    assert list(ActivityLogEvent.objects.values_list("caller", flat=True)) == ["good@x.example"]


def test_an_event_holding_nul_characters_is_stored_with_each_replaced(prod_gateway, fresh_emulator):
    """PostgreSQL refuses a NUL character in text and in jsonb: one anywhere in an event (its id, caller, operation, a
    property, the JSON Azure sent) failed the whole page's insert, at every run. The event is stored with each NUL
    replaced by U+FFFD (removing it could make two different values one); the others are stored with it."""
    IngestionState.objects.create(subscription_id=PROD, watermark=timezone.now() - timedelta(minutes=10),
                                  backfill_from=timezone.now() - timedelta(days=90))
    event_id = f"{uuid.uuid4()}\x00"
    operation = "Microsoft.Compute/virtualMachines/write\x00"
    doc = _event_data(caller="nul\x00@x.example", eventDataId=event_id, description="said\x00so",
                      operationName={"value": operation, "localizedValue": operation},
                      properties={"note": "a\x00b", "key\x00": "value"},
                      claims={"name\x00": "\x00"}, httpRequest={"clientIpAddress": "10.0.0.1\x00", "method": "PUT"})
    fresh_emulator.add_activity(_event_data(caller="before@x.example"), doc, _event_data(caller="after@x.example"))
    outcome = run_to_completion(prod_gateway)[-1]
    assert outcome.complete and outcome.skipped == 0
    assert IngestionState.objects.get(subscription_id=PROD).last_error == ""
    assert set(ActivityLogEvent.objects.filter(caller__contains="@x.example").values_list("caller", flat=True)) == {
        "before@x.example", "nul\ufffd@x.example", "after@x.example"}
    stored = ActivityLogEvent.objects.get(caller="nul\ufffd@x.example")
    assert stored.event_data_id == event_id.replace("\x00", "\ufffd")
    assert stored.operation_name == "Microsoft.Compute/virtualMachines/write\ufffd"
    assert stored.properties == {"note": "a\ufffdb", "key\ufffd": "value"}
    assert stored.raw["claims"] == {"name\ufffd": "\ufffd"}
    assert stored.raw["httpRequest"]["clientIpAddress"] == "10.0.0.1\ufffd"
    assert stored.raw["description"] == "said\ufffdso"
    assert "\x00" not in stored.search_text + stored.vm_ids and "a\ufffdb" in stored.search_text
