"""The API's JSON renderer: DRF's, writing every time as ``utc_iso`` does (UTC to the microsecond at a fixed width).
DRF's encoder writes ``isoformat()``, which drops the fraction of a time exactly on the second: one field came in
two shapes (``…:05Z`` and ``…:05.000007Z``)."""
from __future__ import annotations

from datetime import datetime

from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

from jitportal.lib.times import utc_iso


class ApiJsonEncoder(JSONEncoder):
    """DRF's encoder with ``utc_iso`` times."""

    def default(self, obj):
        if isinstance(obj, datetime):
            return utc_iso(obj)
        return super().default(obj)


class ApiJsonRenderer(JSONRenderer):
    """DRF's ``JSONRenderer`` with ``ApiJsonEncoder``."""

    encoder_class = ApiJsonEncoder
