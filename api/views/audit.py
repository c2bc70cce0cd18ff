"""Audit: search JIT activity (the Activity Log copies or the portal's own trail) and export it as CSV."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotAcceptable
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import authz
from accounts.roles import AUDIT_EXPORT, AUDIT_READ
from audit import selectors as audit_selectors
from audit.callers import caller_label, portal_identities
from audit.csv_export import csv_lines, encoded, export_columns
from audit.filtersets import (
    OPERATION_CHOICES,
    STATUS_CHOICES,
    VM_FILTER_MAX_LENGTH,
    ActivityFilterSet,
    TrailFilterSet,
    foreign_filters,
)
from audit.pagination import keyset_page
from audit.redaction import AuditScope
from audit.services import audit_record
from jitportal.lib.tables import SEARCH_MAX_LENGTH
from policies.access.client_ip import client_ip

from .. import serializers as s
from ..access import api_requires
from ..negotiation import format_asked, format_refused
from ..pagination import MAX_LIMIT, page_size
from .base import ERRORS, ApiView

CSV_TYPE = "text/csv"
# The text filters: longer text is a 400 (SQLite refuses a LIKE pattern over 50,000 bytes).
_TEXT = {"type": "string", "maxLength": SEARCH_MAX_LENGTH}

AUDIT_FILTERS = [
    OpenApiParameter("source", str, enum=["azure", "portal"], description="azure: the Activity Log copies "
                                                                          "(default); portal: the portal's trail. "
                                                                          "A filter of the other source is a 400."),
    OpenApiParameter("range", str, enum=["1h", "24h", "7d", "30d", "custom"]),
    OpenApiParameter("since", OpenApiTypes.DATETIME), OpenApiParameter("until", OpenApiTypes.DATETIME),
    OpenApiParameter("subscription", _TEXT), OpenApiParameter("resource_group", _TEXT),
    OpenApiParameter("vm", {"type": "string", "maxLength": VM_FILTER_MAX_LENGTH},
                     description="A VM's ARM id, or its name (every VM of that name)."),
    OpenApiParameter("caller", _TEXT, description="azure: callers starting with this, in any case (a user's name "
                                                  "before the @ finds them; jitportal the portal's own calls)."),
    OpenApiParameter("operation", str, enum=[value for value, _label in OPERATION_CHOICES],
                     description="azure: the operation name."),
    OpenApiParameter("status", str, enum=[value for value, _label in STATUS_CHOICES], description="azure."),
    OpenApiParameter("correlation", _TEXT, description="azure: the correlation id."),
    OpenApiParameter("user", _TEXT, description="portal: users starting with this, in any case (a user's name "
                                                "before the @ finds them; jitportal the portal's own actions)."),
    OpenApiParameter("action", _TEXT, description="portal: the action (e.g. access.requested)."),
    OpenApiParameter("q", _TEXT, description="Free text."),
]


CURSOR_PARAMETERS = [
    OpenApiParameter("limit", {"type": "integer", "minimum": 1}, description=(
        "Events per page: a whole number from 1 (default: the audit page's, AUDIT_PAGE_SIZE, 50 unless set); a larger "
        f"one than {MAX_LIMIT} gives {MAX_LIMIT}. Anything else (not a whole number, 0 or less) is a 400.")),
    OpenApiParameter("after", str, description="The cursor of the next (older) page, as `next` gives it; any other "
                                               "value, or both after and before, is a 400."),
    OpenApiParameter("before", str, description="The cursor of the previous (newer) page, as `previous` gives it."),
]


def _audit_filterset(request: Request, action: str):
    source = request.query_params.get("source", "azure")
    if source not in ("azure", "portal"):
        raise ValidationError("source must be azure or portal.")
    foreign = [name for name, _label in foreign_filters(source, request.query_params)]
    if foreign:  # ignoring it would answer the whole, unfiltered search
        other_source = "azure" if source == "portal" else "portal"
        own = TrailFilterSet if source == "portal" else ActivityFilterSet
        raise ValidationError(f"{', '.join(foreign)} appl{'y' if len(foreign) > 1 else 'ies'} only to "
                              f"source={other_source}; source={source} filters by {', '.join(own.base_filters)}.")
    if source == "portal":
        filterset = TrailFilterSet(request.query_params, queryset=audit_selectors.trail_for_user(request.user, action))
    else:
        filterset = ActivityFilterSet(request.query_params,
                                      queryset=audit_selectors.activity_for_user(request.user, action),
                                      scopes=authz.permitted_scopes(request.user, action))
    if not filterset.is_valid():
        errors = [f"{field}: {message}" for field, messages in filterset.errors.items() for message in messages]
        raise ValidationError(errors)
    return source, filterset


def _event_json(event, source: str, names: Mapping[str, str], identities: Mapping[str, str]) -> dict:
    """One audit event as the viewer may see it (``audit_selectors.activity_as_seen``/``trail_as_seen``: ``withheld``
    counts the VMs outside their scope left out); ``names`` are the page's subscription display names by lower-case id
    (``audit_selectors.subscription_names``: one query per page), ``subscriptionName`` null where it has none.
    ``callerName`` is the caller as the search page and the CSV's ``Caller name`` show it: the portal's own identity by
    name (``identities``: ``audit.callers.portal_identities``), anyone else as logged; the trail's user as it is."""
    name = names.get(event.subscription_id.lower())
    if source == "portal":
        return {"id": event.pk, "source": source, "occurredAt": event.occurred_at, "operation": event.action,
                "status": "", "caller": event.actor_label, "callerName": event.actor_label,
                "subscriptionId": event.subscription_id,
                "subscriptionName": name, "resourceGroup": event.resource_group, "resourceId": event.resource_id,
                "target": event.target_label or event.target_id, "correlationId": event.correlation_id,
                "details": {"before": event.before, "after": event.after}, "withheld": event.withheld}
    return {"id": event.pk, "source": source, "occurredAt": event.occurred_at, "operation": event.operation_name,
            "status": event.status, "caller": event.caller, "callerName": caller_label(event.caller, identities),
            "subscriptionId": event.subscription_id,
            "subscriptionName": name, "resourceGroup": event.resource_group, "resourceId": event.resource_id,
            "target": event.resource_id, "correlationId": event.correlation_id, "details": event.properties,
            "withheld": event.withheld}


@api_requires(AUDIT_READ)
class AuditEventListView(ApiView):
    """Search JIT activity, newest first: the Azure Activity Log copies or the portal's own trail, with the
    audit page's filters and scope. Pages by cursor (``next``/``previous``), ``limit`` events a page; no counts."""

    @extend_schema(operation_id="audit_events_list",
                   parameters=[*AUDIT_FILTERS, *CURSOR_PARAMETERS],
                   responses={200: s.AuditPageSerializer, **ERRORS}, tags=["audit"])
    def get(self, request: Request) -> Response:
        source, filterset = _audit_filterset(request, AUDIT_READ)
        page = keyset_page(filterset.qs, after=request.query_params.get("after"),
                           before=request.query_params.get("before"),
                           size=page_size(request, default=settings.AUDIT_PAGE_SIZE))
        shown = (audit_selectors.trail_as_seen if source == "portal" else audit_selectors.activity_as_seen)(
            request.user, page.rows)
        names = audit_selectors.subscription_names(e.subscription_id for e in shown)
        identities = portal_identities()

        def link(key: str, cursor: str | None) -> str | None:
            if not cursor:
                return None
            query = request.query_params.copy()
            query.pop("after", None)
            query.pop("before", None)
            query[key] = cursor
            return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")

        return Response({"next": link("after", page.older), "previous": link("before", page.newer),
                         "results": [_event_json(e, source, names, identities) for e in shown]})


@api_requires(AUDIT_EXPORT)
class AuditExportView(ApiView):
    """The current search as CSV (streamed; only rows in your export scopes). The export itself is audited."""

    def perform_content_negotiation(self, request: Request, force: bool = False):
        """``Accept: text/csv`` is what this view answers (DRF knows only JSON renderers and would say 406);
        errors still come as JSON. A ``format`` other than csv is refused (406), as on every API URL, and so is an
        ``Accept`` that takes no CSV (``application/json``): the client would read CSV as something else."""
        if not force and format_asked(request) not in ("", "csv"):
            raise format_refused(format_asked(request), ["csv"])
        if (not force and not format_asked(request) and request.headers.get("Accept", "").strip()
                and not request.accepts(CSV_TYPE)):
            raise NotAcceptable(f"This URL answers {CSV_TYPE}: accept it (or */*), or leave Accept out.")
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(operation_id="audit_events_csv", parameters=AUDIT_FILTERS,
                   responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV rows."),
                              **ERRORS}, tags=["audit"])
    def get(self, request: Request) -> StreamingHttpResponse:
        source, filterset = _audit_filterset(request, AUDIT_EXPORT)
        audit_record(actor=request.user, action="audit.export", target_type="audit_search",
                     target_label="API export", after={"source": source, "filters": filterset.applied(), "api": True},
                     client_ip=client_ip(request.META))
        columns = export_columns(source, audit_selectors.subscription_names())
        scope = AuditScope.of(request.user, AUDIT_EXPORT)
        return _csv_response(source, encoded(csv_lines(filterset.qs, columns, scope=scope)))

    def head(self, request: Request) -> StreamingHttpResponse:
        """The status and headers a ``GET`` would answer, without its rows: nothing is exported, nothing audited
        (Django would otherwise run ``get`` for a ``HEAD``)."""
        source, _filterset = _audit_filterset(request, AUDIT_EXPORT)
        return _csv_response(source, iter(()))


def _csv_response(source: str, content: Iterable[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(content, content_type=f"{CSV_TYPE}; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="jit-{source}-activity-{stamp}.csv"'
    return response
