"""A 403 or 404 a user caused is one log line, printed once, without a traceback; a 500 keeps its traceback."""
from __future__ import annotations

import logging

from jitportal.lib.logfilters import ClientErrorsWithoutTraceback


def _record(level: int) -> logging.LogRecord:
    try:
        raise PermissionError("no")
    except PermissionError:
        import sys

        return logging.LogRecord("django.request", level, __file__, 1, "Forbidden: /x/", (), sys.exc_info())


def test_client_errors_lose_their_traceback_and_server_errors_keep_it():
    warning, error = _record(logging.WARNING), _record(logging.ERROR)
    assert ClientErrorsWithoutTraceback().filter(warning) and warning.exc_info is None
    assert ClientErrorsWithoutTraceback().filter(error) and error.exc_info is not None


def test_a_forbidden_page_logs_one_line_without_a_traceback(client, requester, caplog):
    import logging as _logging

    from django.conf import settings
    from django.urls import reverse

    client.force_login(requester)
    assert client.get(reverse("settings")).status_code == 403
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert (record.levelno, record.exc_info) == (_logging.WARNING, None)
    assert settings.LOGGING["loggers"]["django"]["handlers"] == []  # printed once, by the root handler
