"""The Activity Log $filter follows the 2015-04-01 grammar exactly."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from cloud.activity_filter import activity_filter, iso_utc

START = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
END = datetime(2024, 5, 2, 10, 0, 30, 123456, tzinfo=UTC)


def test_a_window_alone_bounds_event_timestamp_on_both_sides():
    assert activity_filter(START, END) == ("eventTimestamp ge '2024-05-01T10:00:00.000000Z' and "
                                           "eventTimestamp le '2024-05-02T10:00:30.123456Z'")


@pytest.mark.parametrize(("keyword", "field"), [("resource_group", "resourceGroupName"),
                                                ("resource_uri", "resourceUri"),
                                                ("resource_provider", "resourceProvider"),
                                                ("correlation_id", "correlationId")])
def test_one_narrowing_condition_is_appended_with_eq(keyword, field):
    assert activity_filter(START, END, **{keyword: "v"}).endswith(f" and {field} eq 'v'")


def test_times_in_other_zones_are_written_in_utc():
    paris = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))

    assert iso_utc(paris) == "2024-05-01T10:00:00.000000Z"


def test_a_quote_in_a_value_is_doubled():
    assert activity_filter(START, END, resource_group="o'brien").endswith("resourceGroupName eq 'o''brien'")


def test_two_narrowing_conditions_are_refused():
    with pytest.raises(ValueError, match="only one"):
        activity_filter(START, END, resource_group="rg", resource_provider="Microsoft.Security")


def test_a_window_that_ends_before_it_starts_is_refused():
    with pytest.raises(ValueError, match="starts after it ends"):
        activity_filter(END, START)


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        activity_filter(datetime(2024, 5, 1), END)
