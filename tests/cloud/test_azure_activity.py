"""Activity Log reads: the exact $filter forms, page by page with a resumable next_link."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs

import pytest

from cloud.activity_filter import activity_filter
from cloud.errors import Throttled
from cloud.types import ActivityEvent, ActivityPage
from tests.cloud.conftest import PROD, arm_calls, emulator_now

INITIATE = "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action"
WEB_POLICY = (f"/subscriptions/{PROD}/resourceGroups/rg-web-prod/providers/Microsoft.Security/locations/westeurope/"
              f"jitNetworkAccessPolicies/default")


@pytest.fixture
def window(fresh_emulator):
    now = emulator_now(fresh_emulator)
    return now - timedelta(days=30), now + timedelta(minutes=5)


def events_of(pages) -> list[ActivityEvent]:
    return [event for page in pages for event in page.events]


def test_it_reads_the_demo_activity_as_events_with_every_field(gateway, window):
    pages = list(gateway.iter_activity_events(*window))
    events = events_of(pages)

    assert all(isinstance(p, ActivityPage) for p in pages) and pages[-1].next_link is None
    initiates = [e for e in events if e.operation_name == INITIATE and e.resource_id.lower() == WEB_POLICY.lower()]
    assert initiates
    event = initiates[0]
    assert event.event_timestamp.utcoffset() == timedelta(0)
    assert window[0] <= event.event_timestamp <= window[1]
    assert event.submission_timestamp >= event.event_timestamp
    assert (event.subscription_id, event.resource_group.lower()) == (PROD, "rg-web-prod")
    assert (event.resource_provider.lower(), event.category) == ("microsoft.security", "Administrative")
    assert event.status in ("Started", "Succeeded", "Accepted") and event.level == "Informational"
    assert event.caller.endswith("@contoso.example") or event.caller
    assert event.event_data_id and event.correlation_id
    assert event.raw["eventDataId"] == event.event_data_id
    assert event.raw["operationName"]["value"] == INITIATE
    assert len({e.event_data_id for e in events}) == len(events)


def test_it_filters_by_resource_group(gateway, window):
    events = events_of(gateway.iter_activity_events(*window, resource_group="rg-data-prod"))

    assert events and {e.resource_group.lower() for e in events} == {"rg-data-prod"}


def test_it_filters_by_resource_uri(gateway, window):
    events = events_of(gateway.iter_activity_events(*window, resource_uri=WEB_POLICY))

    assert events and {e.resource_id.lower() for e in events} == {WEB_POLICY.lower()}


def test_it_filters_by_resource_provider(gateway, window):
    everything = events_of(gateway.iter_activity_events(*window))
    network = events_of(gateway.iter_activity_events(*window, resource_provider="Microsoft.Network"))

    assert network and {e.resource_provider.lower() for e in network} == {"microsoft.network"}
    assert len(network) < len(everything)


def test_it_filters_by_correlation_id(gateway, window):
    first = events_of(gateway.iter_activity_events(*window))[0]

    events = events_of(gateway.iter_activity_events(*window, correlation_id=first.correlation_id))

    assert first.event_data_id in {e.event_data_id for e in events}
    assert {e.correlation_id for e in events} == {first.correlation_id}


def test_it_sends_the_filter_exactly_as_the_grammar_wants(gateway, fresh_emulator, window):
    list(gateway.iter_activity_events(*window, resource_group="rg-web-prod"))

    query = parse_qs(arm_calls(fresh_emulator)[0]["query"])
    assert query["$filter"] == [activity_filter(*window, resource_group="rg-web-prod")]
    assert query["$filter"][0].endswith(" and resourceGroupName eq 'rg-web-prod'")
    assert query["api-version"] == ["2015-04-01"]


def test_two_narrowing_filters_are_refused_before_any_call(gateway, fresh_emulator, window):
    with pytest.raises(ValueError, match="only one"):
        list(gateway.iter_activity_events(*window, resource_group="rg-web-prod", correlation_id="x"))

    assert arm_calls(fresh_emulator) == []


def test_pages_follow_next_link_and_return_every_event(gateway, fresh_emulator, window):
    everything = events_of(gateway.iter_activity_events(*window))
    fresh_emulator.set_page_size(25)
    fresh_emulator.clear_calls()

    pages = list(gateway.iter_activity_events(*window))

    assert len(pages) == -(-len(everything) // 25) > 2
    assert all(p.next_link for p in pages[:-1]) and pages[-1].next_link is None
    assert [e.event_data_id for e in events_of(pages)] == [e.event_data_id for e in everything]
    assert len(arm_calls(fresh_emulator)) == len(pages)


def test_a_read_resumes_from_a_pages_next_link(gateway, fresh_emulator, window):
    fresh_emulator.set_page_size(25)
    pages = gateway.iter_activity_events(*window)
    first, second = next(pages), next(pages)
    pages.close()

    resumed = list(gateway.iter_activity_events(*window, next_link=first.next_link))

    assert [e.event_data_id for e in resumed[0].events] == [e.event_data_id for e in second.events]


def test_a_throttle_mid_read_raises_throttled_and_the_read_resumes_from_the_checkpoint(gateway, fresh_emulator,
                                                                                       window):
    everything = events_of(gateway.iter_activity_events(*window))
    fresh_emulator.set_page_size(25)
    pages = gateway.iter_activity_events(*window)
    first = next(pages)
    fresh_emulator.add_fault(r"/eventtypes/management/values$", "429", retry_after=300)

    with pytest.raises(Throttled) as caught:
        next(pages)
    assert caught.value.retry_after == 300

    fresh_emulator.clear_faults()
    rest = events_of(gateway.iter_activity_events(*window, next_link=first.next_link))
    assert [e.event_data_id for e in first.events + tuple(rest)] == [e.event_data_id for e in everything]
