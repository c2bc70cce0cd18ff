"""Access requests: list and create, read one, close it, extend it."""
from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied as ApiPermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import authz
from accounts.roles import AUDIT_READ, JIT_INITIATE, REQUEST_APPROVE
from policies import jit_json, rules
from policies.access import selectors as access_selectors
from policies.access import services as access_services
from policies.access import validation as access_validation
from policies.access.client_ip import client_ip
from policies.access.filtersets import AccessRequestFilterSet
from policies.access.models import AccessRequest, PortState

from .. import serializers as s
from ..access import api_authenticated, api_requires
from .base import (
    BODY_ERRORS,
    ERRORS,
    KEY_REUSED,
    MADE_AT,
    NOT_FOUND,
    READ_ERRORS,
    SEEK_PARAMETERS,
    ApiView,
    _body,
    _seek,
)


def _idempotency_key(request: Request) -> str:
    """The ``Idempotency-Key`` header, scoped to the caller (fits the 64-character column), else a fresh key."""
    given = request.headers.get("Idempotency-Key", "").strip()
    if not given:
        return f"api:{uuid.uuid4().hex}"
    if len(given) > 200:
        raise ValidationError("Idempotency-Key must be at most 200 characters.")
    return f"api:{request.user.pk}:" + hashlib.sha256(given.encode()).hexdigest()[:48]


def _fingerprint(request: Request) -> str:
    """SHA-256 of the JSON body (keys sorted): a retry with an ``Idempotency-Key`` must send the same body."""
    return hashlib.sha256(json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str
                                     ).encode()).hexdigest()


REQUEST_FILTERS = [
    OpenApiParameter("state", str, enum=[v.value for v in PortState]),
    OpenApiParameter("all", bool, description="Policy admins and auditors: every request in your scope, not only "
                                              "yours (true or false, 1 or 0; anything else is a 400)."),
    OpenApiParameter("q", str, description="Part of a VM's name, the requester or the reason (as on the Requests "
                                           "page): only what you are shown of someone else's request, so neither "
                                           "a VM outside your scope nor a reason naming one finds it."),
    OpenApiParameter("created_after", OpenApiTypes.DATE, description="Requested on or after this day (a whole day "
                                                                     "of the portal's time zone, as on the "
                                                                     "Requests page)."),
    OpenApiParameter("created_before", OpenApiTypes.DATE, description="Requested on or before this day (a whole day "
                                                                      "of the portal's time zone, as on the "
                                                                      "Requests page)."),
]


FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False, "": False}


def _flag(request: Request, name: str) -> bool:
    """A yes/no query parameter: true/false, 1/0 (or yes/no), in any case; absent or empty is false. Anything else
    is a 400 naming it (read as false, ``all=on`` listed only the caller's own requests, without a word)."""
    text = request.query_params.get(name, "").strip()
    if text.lower() not in FLAGS:
        shown = text if len(text) <= 20 else text[:20] + "…"
        raise ValidationError(f"{name} must be true or false (or 1 or 0), not {shown!r}.", code=name)
    return FLAGS[text.lower()]


def _request_json(access: AccessRequest, request: Request, *, review: bool = False) -> dict:
    """The request as ``request_to_json`` shapes it. Someone else's request lists only the VMs the caller may read
    (``vm_rows_shown``; ``withheld`` counts the others): one spanning several scopes is seen through the VM in the
    caller's, never with the names and addresses of the others (Azure too shows each policy's part of a request only
    to who may read that policy), nor their names in its justification, Azure's messages or the approvers' comments
    (``request_redactor``, as on its page); its connection details are the requester's alone (``connection`` null),
    as on an approver's ``review``."""
    url = request.build_absolute_uri(reverse("api:request", kwargs={"pk": access.pk}))
    now = timezone.now()  # as the pages show it, before the reconcile: past its approval deadline or its end
    access_selectors.show_as_timed_out(access, now)
    access_selectors.show_as_ended(access, now)
    body = jit_json.request_to_json(access, connection=not review and access.requester_id == request.user.pk)
    shown, withheld = access_selectors.vm_rows_shown(access, request.user)
    if withheld:
        redact = access_selectors.request_redactor(access, request.user, shown)
        seen = {row.vm_arm_id for row in shown}
        body["virtualMachines"] = [{**vm, "ports": [{**port, "error": redact(port["error"])} for port in vm["ports"]]}
                                   for vm in body["virtualMachines"] if vm["id"] in seen]
        body["justification"] = redact(body["justification"])
        if "approvals" in body:
            body["approvals"] = [{**item, "comment": redact(item["comment"])} for item in body["approvals"]]
    return {**body, "withheld": withheld, "url": url}


def _made(request: Request, access: AccessRequest, created: bool) -> Response:
    """The answer to a new request or extension: 201 (200 for a retry with its ``Idempotency-Key``), its body, and
    its URL in ``Location``."""
    body = _request_json(access_selectors.request_get(request.user, access.pk), request)
    return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
                    headers={"Location": body["url"]})


def _with_ports(queryset):
    return queryset.prefetch_related("vms", "ports", "approvals")


@api_authenticated
class RequestListView(ApiView):
    """Your access requests (``GET``; ``?all=1``: every request in your policy-admin or audit scope) and new ones
    (``POST``, a ``Start-AzJitNetworkAccessPolicy`` body; send an ``Idempotency-Key`` header to retry safely).
    The list is newest first, paged by cursor (``next``/``previous``), with no count: a page costs the same however
    deep and however many requests match."""

    @extend_schema(operation_id="requests_list", parameters=[*REQUEST_FILTERS, *SEEK_PARAMETERS],
                   responses={200: s.RequestPageSerializer, **ERRORS}, tags=["requests"])
    def get(self, request: Request) -> Response:
        everyone = _flag(request, "all")
        queryset = access_selectors.request_list(request.user, everyone=everyone)
        state = request.query_params.get("state")
        if state and state not in PortState.values:  # the filter set below selects it, as the Requests page does
            raise ValidationError(f"state must be one of {', '.join(PortState.values)}.")
        filterset = AccessRequestFilterSet(request.query_params, queryset=queryset, user=request.user)
        if not filterset.is_valid():  # ignoring it would answer every request
            raise ValidationError([f"{field}: {message}" for field, messages in filterset.errors.items()
                                   for message in messages])
        return _seek(request, _with_ports(filterset.qs), lambda r: _request_json(r, request), key="created_at",
                     prepare=lambda rows: access_selectors.show_list_as_reconciled(rows, timezone.now()))

    @extend_schema(operation_id="requests_create", request=s.RequestCreateSerializer,
                   parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER,
                                                description="Same key, same body: a retry returns the first "
                                                            "request (200); the key sent with another body or for "
                                                            "another operation is a 422."), MADE_AT],
                   responses={201: s.RequestSerializer, 200: s.RequestSerializer, **BODY_ERRORS, **NOT_FOUND,
                              **KEY_REUSED},
                   tags=["requests"])
    def post(self, request: Request) -> Response:
        body = s.RequestCreateSerializer(data=_body(request))
        body.is_valid(raise_exception=True)
        if not authz.holds_anywhere(request.user, JIT_INITIATE):
            raise ApiPermissionDenied(f"You need a role that allows {JIT_INITIATE}.")
        wanted = jit_json.request_from_azure(request.data, user=request.user)
        extra = {"start_at": wanted.start_at} if wanted.start_at else {}
        source = wanted.source_prefix
        access, created = access_services.request_create(
            actor=request.user, selections=wanted.selections, source_prefix=source, duration=wanted.duration,
            justification=wanted.justification, idempotency_key=_idempotency_key(request),
            idempotency_fingerprint=_fingerprint(request),
            source_kind=access_validation.source_kind(source),
            client_ip=client_ip(request.META), **extra)
        return _made(request, access, created)


@api_requires(JIT_INITIATE, REQUEST_APPROVE, AUDIT_READ, object_model=AccessRequest, owner_field="requester")
class RequestDetailView(ApiView):
    """One access request: per VM and port, its state, end time and Azure's status. Whoever may open its page reads
    it: requesters and policy admins at one of its VMs, auditors at one of them (read only), and approvers the
    requests they may review (as the approve and deny answers show them). The requester always reads their own, even
    after their role was taken away."""

    @extend_schema(operation_id="requests_retrieve", responses={200: s.RequestSerializer, **READ_ERRORS,
                                                                 **NOT_FOUND}, tags=["requests"])
    def get(self, request: Request, pk: int) -> Response:
        access, review = access_selectors.request_or_review_get(request.user, pk)
        return Response(_request_json(access, request, review=review))


@api_requires(JIT_INITIATE, REQUEST_APPROVE, AUDIT_READ, object_model=AccessRequest, owner_field="requester")
class RequestCloseView(ApiView):
    """Close a request now (new connections are refused; established ones are not cut). The requester may always
    close their own, even after their role was taken away (closing only reduces exposure); anyone else who may read
    it (its approvers and auditors too) gets a 403 saying who may close it."""

    @extend_schema(operation_id="requests_close", request={"application/json": s.EMPTY_BODY},
                   responses={200: s.RequestSerializer, **BODY_ERRORS, **NOT_FOUND}, tags=["requests"])
    def post(self, request: Request, pk: int) -> Response:
        access, _ = access_selectors.request_or_review_get(request.user, pk)
        s.EmptyBodySerializer(data=_body(request)).is_valid(raise_exception=True)
        access_services.request_close(actor=request.user, request=access)
        return Response(_request_json(access_selectors.request_get(request.user, pk), request))


def _extend_duration(data: dict) -> timedelta:
    """How long an extension lasts: ``duration`` from now, or until ``endTimeUtc``; exactly one of them."""
    if "duration" in data and "endTimeUtc" in data:
        raise ValidationError("Give duration or endTimeUtc, not both.")
    if "endTimeUtc" in data:
        end, now = data["endTimeUtc"], timezone.now()
        if end <= now:  # refused as a new request's is (a negative window read "-2 hours 4 minutes")
            raise ValidationError(f"'endTimeUtc' {jit_json.said(end)} is not after now: ask for a window that has "
                                  "not ended.")
        return timedelta(minutes=round((end - now).total_seconds() / 60))
    if "duration" in data:
        return rules.parse_duration(data["duration"])
    raise ValidationError("Give duration (such as PT1H) or endTimeUtc.")


@api_requires(JIT_INITIATE, REQUEST_APPROVE, AUDIT_READ, object_model=AccessRequest)
class RequestExtendView(ApiView):
    """Extend: ask again for the same VMs, ports and source, ending ``duration`` from now or at ``endTimeUtc``
    (give one of them, not both). Anyone else who may read the request (its approvers and auditors too) gets a 403
    saying only the requester may extend it."""

    @extend_schema(operation_id="requests_extend", request=s.ExtendSerializer,
                   parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER,
                                                description="Same key, same body: a retry returns the first "
                                                            "extension (200); the key sent with another body or "
                                                            "for another operation is a 422."), MADE_AT],
                   responses={201: s.RequestSerializer, 200: s.RequestSerializer, **BODY_ERRORS, **NOT_FOUND,
                              **KEY_REUSED},
                   tags=["requests"])
    def post(self, request: Request, pk: int) -> Response:
        access, _ = access_selectors.request_or_review_get(request.user, pk)
        access_services.ensure_may_extend(request.user, access)
        body = s.ExtendSerializer(data=_body(request))
        body.is_valid(raise_exception=True)
        data = body.validated_data
        extension, created = access_services.request_extend(
            actor=request.user, original=access, duration=_extend_duration(data),
            idempotency_key=_idempotency_key(request), idempotency_fingerprint=_fingerprint(request),
            justification=data.get("justification", ""), client_ip=client_ip(request.META))
        return _made(request, extension, created)
