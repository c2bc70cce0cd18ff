"""Approvals: approve or deny a request, and the requests waiting for your decision."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.roles import REQUEST_APPROVE
from policies.access import approvals
from policies.access import selectors as access_selectors
from policies.access.client_ip import client_ip
from policies.access.models import AccessRequest

from .. import serializers as s
from ..access import api_requires
from .access_requests import _request_json
from .base import BODY_ERRORS, NOT_FOUND, SEEK_ERRORS, ApiView, _body, _seek, seek_parameters


def _decide(request: Request, pk: int, *, approve: bool) -> Response:
    access = access_selectors.review_get(request.user, pk)
    body = s.DecisionSerializer(data=_body(request))
    body.is_valid(raise_exception=True)
    approvals.request_decide(actor=request.user, request=access, approve=approve,
                             comment=body.validated_data.get("comment", ""), client_ip=client_ip(request.META))
    return Response(_approval_json(access_selectors.review_get(request.user, pk), request))


def _approval_json(access: AccessRequest, request: Request) -> dict:
    return {**_request_json(access, request, review=True), "progress": approvals.progress(access)}


@api_requires(REQUEST_APPROVE, object_model=AccessRequest)
class RequestApproveView(ApiView):
    """Approve a pending request (approvers at every VM of it; never the requester). The last approval needed
    releases the request to open, or to wait for its scheduled start."""

    @extend_schema(operation_id="requests_approve", request=s.DecisionSerializer,
                   responses={200: s.ApprovalSerializer, **BODY_ERRORS, **NOT_FOUND}, tags=["approvals"])
    def post(self, request: Request, pk: int) -> Response:
        return _decide(request, pk, approve=True)


@api_requires(REQUEST_APPROVE, object_model=AccessRequest)
class RequestDenyView(ApiView):
    """Deny a pending request, saying why (``comment`` is required)."""

    @extend_schema(operation_id="requests_deny", request=s.DecisionSerializer,
                   responses={200: s.ApprovalSerializer, **BODY_ERRORS, **NOT_FOUND}, tags=["approvals"])
    def post(self, request: Request, pk: int) -> Response:
        return _decide(request, pk, approve=False)


@api_requires(REQUEST_APPROVE)
class ApprovalQueueView(ApiView):
    """Requests waiting for your decision, the first to expire first (requests expiring together by id), paged by
    cursor (``next``/``previous``), with no count and no offset: a deep page costs what the first does, and a request
    decided meanwhile moves no other past the page you read."""

    @extend_schema(operation_id="approvals_list", parameters=seek_parameters("next (later to expire)",
                                                                             "previous (sooner to expire)"),
                   responses={200: s.ApprovalPageSerializer, **SEEK_ERRORS},
                   tags=["approvals"])
    def get(self, request: Request) -> Response:
        queryset = access_selectors.approval_queue(request.user).prefetch_related("vms", "ports", "approvals")
        return _seek(request, queryset, lambda r: _approval_json(r, request), key="approval_expires_at",
                     descending=False)
