"""The rows per page of API lists (``limit``: default 50, at most 500). Every list pages by cursor
(``api.views.base._seek``, ``jitportal.lib.keyset``; audit events through ``audit.pagination``): no ``offset`` and
no ``count``."""
from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500
