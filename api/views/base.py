"""The API views' base class, their body and page helpers, and the error answers and parameters the schema
documents for them."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated, Throttled
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jitportal.lib.keyset import seek_page

from .. import serializers as s
from ..pagination import LIMIT_HELP, page_size
from ..throttling import FailedAuthThrottle

ERRORS = {400: OpenApiResponse(s.ErrorSerializer, description="Invalid input; `errors` lists each problem."),
          401: OpenApiResponse(s.ErrorSerializer, description=(
              "No, an unknown, revoked or expired token, a deactivated user's, or one whose user's latest sign-in "
              "is too old.")),
          403: OpenApiResponse(s.ErrorSerializer, description="Your roles do not allow this.")}
NOT_FOUND = {404: OpenApiResponse(s.ErrorSerializer, description="No such object, or not in your scope.")}
KEY_REUSED = {422: OpenApiResponse(s.ErrorSerializer, description="This Idempotency-Key was already used for "
                                                                  "another operation or with another body.")}
THROTTLED = {429: OpenApiResponse(s.ErrorSerializer, description="Too many calls; try again after Retry-After "
                                                                  "seconds.")}
NOT_ACCEPTABLE = {406: OpenApiResponse(s.ErrorSerializer, description="A `format` query parameter or an `Accept` "
                                                                       "header this URL does not answer.")}
ERRORS |= NOT_ACCEPTABLE | THROTTLED
BAD_QUERY = {400: OpenApiResponse(s.ErrorSerializer, description="A query parameter holds a NUL character, or the "
                                                                 "query has more parameters than the portal accepts.")}
READ_ERRORS = {**BAD_QUERY, 401: ERRORS[401], 403: ERRORS[403], **NOT_ACCEPTABLE, **THROTTLED}
BODY_ERRORS = {**ERRORS, 415: OpenApiResponse(s.ErrorSerializer, description="A body that is not JSON: send "
                                                                              "Content-Type: application/json.")}
MADE_AT = OpenApiParameter("Location", OpenApiTypes.URI, OpenApiParameter.HEADER, response=[200, 201],
                          description="The URL of the request made (or found again for a retry).")
QUEUED_AT = OpenApiParameter("Location", OpenApiTypes.URI, OpenApiParameter.HEADER, response=[202],
                             description="The URL of the queued change (statusUrl).")


# Lists paged by cursor (``jitportal.lib.keyset``): no offset and no count, so a page costs the same at any depth.
def seek_parameters(following: str = "next", preceding: str = "previous") -> list[OpenApiParameter]:
    """``limit``, the ``after``/``before`` cursors and the refused ``offset`` of a list paged by cursor;
    ``following`` and ``preceding`` name its next and previous pages in the list's order (``older``/``newer``)."""
    return [
        OpenApiParameter("limit", {"type": "integer", "minimum": 1}, description=LIMIT_HELP),
        OpenApiParameter("after", str, description=f"The cursor of the {following} page, as `next` gives it; any "
                                                   "other value, or both after and before, is a 400."),
        OpenApiParameter("before", str, description=f"The cursor of the {preceding} page, as `previous` gives it."),
        OpenApiParameter("offset", int, description="Not used any more: only 0 (or none) is taken; follow `next` "
                                                    "instead. Any other value is a 400."),
    ]


SEEK_PARAMETERS = seek_parameters("next (older)", "previous (newer)")  # newest first
# The 400 a list paged by cursor answers besides a bad query: a cursor it did not give, both, or an offset.
SEEK_ERRORS = {**READ_ERRORS, 400: OpenApiResponse(s.ErrorSerializer, description=(
    "An `after` or `before` cursor this list did not give, both at once, a non-zero `offset`, or a `limit` that is not "
    "a whole number of at least 1; a query parameter holding a NUL character, or more parameters than the portal "
    "accepts."))}


NUL_MESSAGE = "Text must not contain NUL (0x00) characters."


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


class ApiView(APIView):
    """The API's base view: query text with NUL characters is refused up front (PostgreSQL cannot store or
    compare it, and no name, address or reason contains one); bodies are checked by ``_body``."""

    def initial(self, request: Request, *args, **kwargs) -> None:
        guard = FailedAuthThrottle()
        if guard.exceeded(request):
            raise Throttled(wait=guard.wait())
        try:
            super().initial(request, *args, **kwargs)
        except (NotAuthenticated, AuthenticationFailed):
            guard.record(request)
            raise
        if any(_has_nul(v) for v in request.query_params.lists()):
            raise ValidationError(NUL_MESSAGE)


def _body(request: Request):
    """The parsed JSON body, refused when any text in it holds a NUL character. Views read it only after
    loading their object, so a caller out of scope learns nothing from a malformed body."""
    if _has_nul(request.data):
        raise ValidationError(NUL_MESSAGE)
    return request.data


def _seek(request: Request, queryset, render, *, key: str, descending: bool = True, prepare=None) -> Response:
    """A page of ``queryset`` sorted by ``key`` then id, after or before the cursor the query names
    (``jitportal.lib.keyset``), ``limit`` rows (``api.pagination.page_size``): ``next`` and ``previous`` are URLs
    (the query with the other cursor, or ``offset``, left out); no ``count``. ``prepare`` is given the page's rows
    before each is rendered (to load what they need for all at once). A non-zero ``offset``, a ``limit`` that
    is not a whole number of at least 1, or a cursor this list did not give, is a ``ValidationError`` (400)."""
    offset = request.query_params.get("offset", "").strip()
    if offset not in ("", "0"):  # ignoring it would give the first page again and again to a client that counts
        raise ValidationError("offset is no longer taken by this list: follow the `next` URL of each page (its "
                              "`after` cursor) instead.")
    size = page_size(request)
    page = seek_page(queryset, key=key, descending=descending, after=request.query_params.get("after"),
                     before=request.query_params.get("before"), size=size)

    def link(name: str, cursor: str | None) -> str | None:
        if not cursor:
            return None
        query = request.query_params.copy()
        for other in ("after", "before", "offset"):
            query.pop(other, None)
        query[name] = cursor
        return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")

    if prepare is not None:
        prepare(page.rows)
    return Response({"next": link("after", page.next), "previous": link("before", page.previous),
                     "results": [render(item) for item in page.rows]})
