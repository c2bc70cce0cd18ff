"""Logging filters of the portal's settings."""
from __future__ import annotations

import logging


class ClientErrorsWithoutTraceback(logging.Filter):
    """``django.request`` warnings (a 403 or 404 the user caused) keep their one line, not the traceback of the
    ``PermissionDenied``/``Http404`` behind them; errors (5xx) keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            record.exc_info = None
            record.exc_text = None
        return True
