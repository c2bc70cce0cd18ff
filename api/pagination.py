"""Pages of API lists: ``limit``/``offset`` (VMs, requests); audit events page by cursor (``audit.pagination``)."""
from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500
