"""Keyset pagination: every row exactly once going older, the same pages coming back, no COUNT(*)."""
import base64
from datetime import UTC, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from audit.ingestion import store_events
from audit.models import ActivityLogEvent
from audit.pagination import decode_cursor, keyset_page
from tests.audit.factories import event

pytestmark = pytest.mark.django_db


def test_pages_walk_every_row_once_newest_first_and_back_again(django_assert_num_queries):
    now = timezone.now()
    same_second = now - timedelta(hours=1)
    store_events([event(when=same_second) for _ in range(4)] + [event(when=now - timedelta(minutes=m))
                                                                  for m in range(5)])
    queryset = ActivityLogEvent.objects.all()
    pages, cursor = [], None
    while True:
        with django_assert_num_queries(1):  # one LIMIT query per page, never a count
            page = keyset_page(queryset, after=cursor, size=3)
        pages.append([row.pk for row in page.rows])
        cursor = page.older
        if cursor is None:
            break
    seen = [pk for rows in pages for pk in rows]
    expected = list(ActivityLogEvent.objects.order_by("-occurred_at", "-id").values_list("pk", flat=True))
    assert seen == expected and len(pages) == 3
    back = keyset_page(queryset, before=keyset_page(queryset, after=keyset_page(queryset, size=3).older,
                                                      size=3).newer, size=3)
    assert [row.pk for row in back.rows] == pages[0]
    assert back.newer is None and back.older is not None


def forged(moment: str, pk: str = "7") -> str:
    return base64.urlsafe_b64encode(f"{moment}|{pk}".encode()).decode()


@pytest.mark.parametrize("token", ["not-a-cursor", "!!", forged("2030-01-01T00:00:00"),
                                   forged("2030-01-01T00:00:00+00:00", "x"),
                                   forged("2030-01-01T00:00:00+00:00", "0"),
                                   forged("2030-01-01T00:00:00+00:00", str(2**63))])
def test_a_forged_cursor_is_refused_naming_its_parameter(token):
    with pytest.raises(ValidationError) as refused:
        decode_cursor(token, name="before")
    assert refused.value.messages[0].startswith("The before cursor is not one this search gave")


def test_a_missing_cursor_names_nothing():
    assert decode_cursor(None) is None and decode_cursor("") is None


def test_a_forged_cursor_outside_the_calendar_in_utc_is_refused_and_others_are_read_in_utc():
    for moment in ("0001-01-01T00:00:00+23:00", "9999-12-31T23:59:00-23:00"):
        with pytest.raises(ValidationError):
            decode_cursor(forged(moment))
    moment, pk = decode_cursor(forged("2030-01-01T23:59:00+23:59"))  # PostgreSQL refuses offsets past 15:59
    assert (moment.utcoffset(), moment.hour, pk) == (timedelta(0), 0, 7) and moment.tzinfo is UTC


def test_a_page_asked_both_after_and_before_a_cursor_is_refused():
    store_events([event() for _ in range(2)])
    cursor = keyset_page(ActivityLogEvent.objects.all(), size=1).older
    with pytest.raises(ValidationError, match="not both"):
        keyset_page(ActivityLogEvent.objects.all(), after=cursor, before=cursor, size=1)
