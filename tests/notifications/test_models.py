"""The notification models name access events in the pages' words."""
from __future__ import annotations

import pytest

from notifications.models import Notification, PendingEvent, event_label
from policies.access.signals import EVENTS


@pytest.mark.parametrize("model", [Notification, PendingEvent])
def test_an_events_choice_label_is_the_name_pages_give_it(model):
    """The choices said "needs approval" (the admin's lists and filters) where every page says "Needs approval"."""
    for event in EVENTS:
        assert model(event=event).get_event_display() == event_label(event)
    assert model(event="needs_approval").get_event_display() == "Needs approval"
    assert model(event="approval_expired").get_event_display() == "Approval expired"
