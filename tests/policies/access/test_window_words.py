"""How a request's window reads in words (``validation.window_label``), on pages, e-mails and chat cards."""
from __future__ import annotations

from datetime import timedelta

import pytest

from policies.access.validation import window_label


@pytest.mark.parametrize(("window", "words"), [
    (timedelta(hours=2), "2 hours"),
    (timedelta(hours=1), "1 hour"),
    (timedelta(minutes=61), "1 hour 1 minute"),
    (timedelta(minutes=90), "1 hour 30 minutes"),
    (timedelta(minutes=1), "1 minute"),
    (timedelta(minutes=15), "15 minutes"),
    (timedelta(minutes=59, seconds=59), "59 minutes"),
    (timedelta(seconds=30), "0 minutes"),
])
def test_a_window_reads_in_words_with_each_unit_singular_for_one(window, words):
    assert window_label(window) == words
