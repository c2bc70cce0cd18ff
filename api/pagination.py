"""The rows per page of API lists (``limit``): default 50 (the audit search: ``AUDIT_PAGE_SIZE``); a larger limit
than 500 gives 500 rows; one that is not a whole number, or is 0 or less, is a 400 (ignoring it answered the
default page, so a client's mistake went unseen). Every list pages by cursor (``api.views.base._seek``,
``jitportal.lib.keyset``; audit events through ``audit.pagination``): no ``offset`` and no ``count``."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
LIMIT_HELP = (f"Rows per page: a whole number from 1 (default {DEFAULT_LIMIT}); a larger one than {MAX_LIMIT} gives "
              f"{MAX_LIMIT} rows. Anything else (not a whole number, 0 or less) is a 400.")


def page_size(request: Request, *, default: int = DEFAULT_LIMIT) -> int:
    """The ``limit`` query parameter: ``default`` when absent or empty, at most ``MAX_LIMIT`` (or ``default`` when
    larger); text that is not a whole number of at least 1 is a ``ValidationError`` naming it."""
    text = request.query_params.get("limit", "").strip()
    if not text:
        return default
    maximum = max(MAX_LIMIT, default)
    if text.isascii() and text.isdigit():  # int() would also take "+5", "1_000" and other scripts' digits
        number = int(text) if len(text) <= 9 else maximum  # a huge one is only larger than the maximum
        if number >= 1:
            return min(number, maximum)
    shown = text if len(text) <= 20 else text[:20] + "…"
    raise ValidationError(f"limit must be a whole number of rows per page, at least 1 (at most {maximum} are "
                          f"given), not {shown!r}.", code="limit")


class Pagination(LimitOffsetPagination):
    """DRF's paginator for any generic list view, reading ``limit`` as ``page_size`` does."""

    default_limit = DEFAULT_LIMIT
    max_limit = MAX_LIMIT

    def get_limit(self, request: Request) -> int:
        return page_size(request, default=self.default_limit)
