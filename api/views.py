"""The REST API views (``/api/v1/``). Each view: check the HTTP shape, call a selector or a service, answer JSON.

Authorization is the pages': every class declares its rule (``api.access``), objects load through the same
selectors (``vm_get``, ``change_get``, ``request_get``), writes go through the same services, which check the
caller's roles at the object's scope again. Objects out of scope answer 404, exactly like missing ones.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed, NotAcceptable, NotAuthenticated, Throttled
from rest_framework.exceptions import PermissionDenied as ApiPermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import authz
from accounts.roles import AUDIT_EXPORT, AUDIT_READ, JIT_INITIATE, JIT_POLICY_READ, REQUEST_APPROVE, VM_READ
from audit import selectors as audit_selectors
from audit.csv_export import csv_lines, encoded, export_columns
from audit.filtersets import OPERATION_CHOICES, STATUS_CHOICES, ActivityFilterSet, TrailFilterSet
from audit.pagination import keyset_page
from audit.services import audit_record
from policies import jit_json, rules
from policies import selectors as policy_selectors
from policies import services as policy_services
from policies.access import approvals
from policies.access import selectors as access_selectors
from policies.access import services as access_services
from policies.access import validation as access_validation
from policies.access.client_ip import client_ip
from policies.access.filtersets import AccessRequestFilterSet
from policies.access.models import AccessRequest, PortState
from policies.filtersets import OS_CHOICES
from policies.models import ConnectionType, PolicyChange, VirtualMachine, VmState

from . import serializers as s
from .access import api_authenticated, api_requires
from .negotiation import format_asked, format_refused
from .pagination import Pagination
from .throttling import FailedAuthThrottle

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
PAGE_PARAMETERS = [OpenApiParameter("limit", int, description="Rows per page (default 50, at most 500)."),
                   OpenApiParameter("offset", int, description="Rows to skip.")]


CSV_TYPE = "text/csv"
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


def _paginate(view: APIView, request: Request, queryset, render) -> Response:
    paginator = Pagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response([render(item) for item in page])


# --- who am I --------------------------------------------------------------------------------------------------
@api_authenticated
class MeView(ApiView):
    """The caller: who the token or session acts as, and the portal roles it carries."""

    @extend_schema(operation_id="me", responses={200: s.MeSerializer, **READ_ERRORS}, tags=["me"])
    def get(self, request: Request) -> Response:
        auth = request.auth
        kind = "session" if auth is None else ("entra" if isinstance(auth, dict) else "api_token")
        grants = authz.grants_for(request.user)
        roles = [{"role": g.role.name, "scope": g.scope} for g in grants]
        if authz.is_superuser(request.user):
            roles.insert(0, {"role": "superuser", "scope": authz.EVERYWHERE})
        return Response({"username": request.user.get_username(),
                         "displayName": getattr(request.user, "display_name", "") or "",
                         "authentication": kind, "roles": roles})


# --- VMs -------------------------------------------------------------------------------------------------------
VM_FILTERS = [
    OpenApiParameter("state", str, enum=[v.value for v in VmState], description="configured, not_configured, "
                                                                                  "unsupported"),
    OpenApiParameter("subscription", str, description="Subscription id."),
    OpenApiParameter("resourceGroup", str, description="Resource group name (the inventory's resource_group)."),
    OpenApiParameter("resource_group", str, description="The inventory's name for resourceGroup."),
    OpenApiParameter("search", str, description="Part of the name or resource group, or an IP address (the "
                                                "inventory's q)."),
    OpenApiParameter("q", str, description="The inventory's name for search."),
    OpenApiParameter("os", str, enum=[value for value, _label in OS_CHOICES]),
    OpenApiParameter("location", str, description="Azure region, e.g. westeurope."),
    OpenApiParameter("connection", str, enum=ConnectionType.values, description="Where JIT acts."),
]


def _vm_filter(params, name: str, page_name: str = "") -> str:
    """A filter's value, given by its API name or by the inventory page's (``q``, ``resource_group``): a link
    copied from the page filters the same rows, not the whole list."""
    values = {params.get(n, "").strip() for n in (name, page_name) if n} - {""}
    if len(values) > 1:
        raise ValidationError(f"{name} and {page_name} are the same filter; give one value.")
    return values.pop() if values else ""


@api_requires(VM_READ)
class VmListView(ApiView):
    """The VMs you may read, with their JIT state and ports (``limit``/``offset`` pages)."""

    @extend_schema(operation_id="vms_list", parameters=[*VM_FILTERS, *PAGE_PARAMETERS],
                   responses={200: s.VmPageSerializer, **ERRORS}, tags=["vms"])
    def get(self, request: Request) -> Response:
        queryset = policy_selectors.vm_list(request.user)
        params = request.query_params
        if params.get("state"):
            if params["state"] not in VmState.values:
                raise ValidationError(f"state must be one of {', '.join(VmState.values)}.")
            queryset = queryset.filter(state=params["state"])
        if params.get("subscription"):
            queryset = queryset.filter(subscription_key=params["subscription"].strip().lower())
        if group := _vm_filter(params, "resourceGroup", "resource_group"):
            queryset = queryset.filter(resource_group=group.lower())
        if os_type := _vm_filter(params, "os"):
            if os_type not in dict(OS_CHOICES):
                raise ValidationError(f"os must be one of {', '.join(dict(OS_CHOICES))}.")
            queryset = queryset.filter(os_type=os_type)
        if location := _vm_filter(params, "location"):
            queryset = queryset.filter(location__iexact=location)
        if connection := _vm_filter(params, "connection"):
            if connection not in ConnectionType.values:
                raise ValidationError(f"connection must be one of {', '.join(ConnectionType.values)}.")
            queryset = queryset.filter(connection_type=connection)
        text = _vm_filter(params, "search", "q")
        if text:
            queryset = queryset.filter(Q(name__icontains=text) | Q(resource_group__icontains=text.lower())
                                       | Q(private_ip=text) | Q(public_ip=text))
        return _paginate(self, request, queryset.order_by("name", "pk"), lambda vm: s.vm_json(vm, request))


@api_requires(VM_READ, object_model=VirtualMachine)
class VmDetailView(ApiView):
    """One VM with its JIT state and ports."""

    @extend_schema(operation_id="vms_retrieve", responses={200: s.VmSerializer, **READ_ERRORS, **NOT_FOUND},
                   tags=["vms"])
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.vm_json(policy_selectors.vm_get(request.user, pk), request))


def _vm_jit(vm: VirtualMachine) -> dict:
    pending = list(vm.changes.filter(state__in=policy_services.PENDING_CHANGE)
                   .order_by("pk").values_list("pk", flat=True))
    return {**jit_json.vm_jit_to_azure(vm), "state": vm.state, "policyId": vm.policy_id, "pendingChanges": pending}


def _accepted(request: Request, changes: list[PolicyChange]) -> Response:
    body = {"changes": [s.change_json(c, request) for c in changes],
            "statusUrl": request.build_absolute_uri(reverse("api:policy_change", kwargs={"pk": changes[0].pk}))}
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["statusUrl"]})


@api_requires(VM_READ, object_model=VirtualMachine)  # the ports show on the VM too; writes need a policy admin
class VmJitView(ApiView):
    """A VM's JIT ports: read (``GET``), set (``PUT``, as ``Set-AzJitNetworkAccessPolicy``), remove (``DELETE``).

    Writes are queued as a policy change and applied to Azure by a worker: the answer is 202 with the change
    and a URL to poll. The same write sent again while its change is pending answers that change, queueing nothing.
    """

    @extend_schema(operation_id="vms_jit_retrieve", responses={200: s.VmJitSerializer, **READ_ERRORS, **NOT_FOUND},
                   tags=["jit"])
    def get(self, request: Request, pk: int) -> Response:
        return Response(_vm_jit(policy_selectors.vm_get(request.user, pk, VM_READ)))

    @extend_schema(operation_id="vms_jit_update", request=s.PolicyPutSerializer, parameters=[QUEUED_AT],
                   responses={202: s.PolicyChangeAcceptedSerializer, **BODY_ERRORS, **NOT_FOUND}, tags=["jit"])
    def put(self, request: Request, pk: int) -> Response:
        vm = policy_selectors.vm_get(request.user, pk, VM_READ)
        body = s.PolicyPutSerializer(data=_body(request))
        body.is_valid(raise_exception=True)
        ports = jit_json.policy_ports_from_azure(request.data["ports"], vm_label=vm.name)
        if vm.state == VmState.NOT_CONFIGURED:  # sets the ports, as the Edit page: a pending enable gets a newer one
            changes = policy_services.policy_enable(actor=request.user, vms=[vm], ports=ports, replace_pending=True)
        else:
            changes = [policy_services.policy_save(actor=request.user, vm=vm, ports=ports)]
        return _accepted(request, changes)

    @extend_schema(operation_id="vms_jit_destroy", request=None, parameters=[QUEUED_AT],
                   responses={202: s.PolicyChangeAcceptedSerializer, **ERRORS, **NOT_FOUND}, tags=["jit"])
    def delete(self, request: Request, pk: int) -> Response:
        vm = policy_selectors.vm_get(request.user, pk, VM_READ)
        return _accepted(request, [policy_services.policy_remove(actor=request.user, vm=vm)])


@api_requires(JIT_POLICY_READ, object_model=PolicyChange)
class PolicyChangeView(ApiView):
    """One queued JIT policy change: ``queued`` → ``running`` → ``applied`` or ``failed`` (with Azure's message)."""

    @extend_schema(operation_id="policy_changes_retrieve",
                   responses={200: s.PolicyChangeSerializer, **READ_ERRORS, **NOT_FOUND}, tags=["jit"])
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.change_json(policy_selectors.change_get(request.user, pk), request))


# --- requests --------------------------------------------------------------------------------------------------
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
    OpenApiParameter("all", bool, description="Policy admins: every request in your scope, not only yours."),
    OpenApiParameter("q", str, description="Part of a VM's name, the requester or the reason (as on the Requests "
                                           "page)."),
    OpenApiParameter("created_after", OpenApiTypes.DATE, description="Requested on or after this day (UTC)."),
    OpenApiParameter("created_before", OpenApiTypes.DATE, description="Requested on or before this day (UTC)."),
]


def _request_json(access: AccessRequest, request: Request, *, review: bool = False) -> dict:
    """The request as ``request_to_json`` shapes it. Someone else's request lists only the VMs the caller may read:
    one spanning several scopes is seen through the VM in the caller's, never with the names and addresses of the
    others (Azure too shows each policy's part of a request only to who may read that policy)."""
    url = request.build_absolute_uri(reverse("api:request", kwargs={"pk": access.pk}))
    access_selectors.show_as_timed_out(access, timezone.now())  # as the pages show it, before the reconcile
    body = jit_json.request_to_json(access, review=review)
    if access.requester_id != request.user.pk:
        body["virtualMachines"] = [vm for vm in body["virtualMachines"]
                                   if authz.has_permission(request.user, VM_READ, vm["id"])]
    return {**body, "url": url}


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
    """Your access requests (``GET``; ``?all=1``: every request in your policy-admin scope) and new ones
    (``POST``, a ``Start-AzJitNetworkAccessPolicy`` body; send an ``Idempotency-Key`` header to retry safely)."""

    @extend_schema(operation_id="requests_list", parameters=[*REQUEST_FILTERS, *PAGE_PARAMETERS],
                   responses={200: s.RequestPageSerializer, **ERRORS}, tags=["requests"])
    def get(self, request: Request) -> Response:
        everyone = request.query_params.get("all", "").lower() in ("1", "true", "yes")
        queryset = access_selectors.request_list(request.user, everyone=everyone)
        state = request.query_params.get("state")
        if state and state not in PortState.values:  # the filter set below selects it, as the Requests page does
            raise ValidationError(f"state must be one of {', '.join(PortState.values)}.")
        filterset = AccessRequestFilterSet(request.query_params, queryset=queryset, user=request.user)
        if not filterset.is_valid():  # ignoring it would answer every request
            raise ValidationError([f"{field}: {message}" for field, messages in filterset.errors.items()
                                   for message in messages])
        return _paginate(self, request, _with_ports(filterset.qs).order_by("-created_at", "-pk"),
                         lambda r: _request_json(r, request))

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


@api_requires(JIT_INITIATE, REQUEST_APPROVE, object_model=AccessRequest, owner_field="requester")
class RequestDetailView(ApiView):
    """One access request: per VM and port, its state, end time and Azure's status. Approvers read the requests
    they may review (as the approve and deny answers show them); nobody else sees other people's requests. The
    requester always reads their own, even after their role was taken away."""

    @extend_schema(operation_id="requests_retrieve", responses={200: s.RequestSerializer, **READ_ERRORS,
                                                                 **NOT_FOUND}, tags=["requests"])
    def get(self, request: Request, pk: int) -> Response:
        access, review = access_selectors.request_or_review_get(request.user, pk)
        return Response(_request_json(access, request, review=review))


@api_requires(JIT_INITIATE, object_model=AccessRequest, owner_field="requester")
class RequestCloseView(ApiView):
    """Close a request now (new connections are refused; established ones are not cut). The requester may always
    close their own, even after their role was taken away (closing only reduces exposure)."""

    @extend_schema(operation_id="requests_close", request=None,
                   responses={200: s.RequestSerializer, **ERRORS, **NOT_FOUND}, tags=["requests"])
    def post(self, request: Request, pk: int) -> Response:
        access = access_selectors.request_get(request.user, pk)
        access_services.request_close(actor=request.user, request=access)
        return Response(_request_json(access_selectors.request_get(request.user, pk), request))


def _extend_duration(data: dict) -> timedelta:
    """How long an extension lasts: ``duration`` from now, or until ``endTimeUtc``; exactly one of them."""
    if "duration" in data and "endTimeUtc" in data:
        raise ValidationError("Give duration or endTimeUtc, not both.")
    if "endTimeUtc" in data:
        return timedelta(minutes=round((data["endTimeUtc"] - timezone.now()).total_seconds() / 60))
    if "duration" in data:
        return rules.parse_duration(data["duration"])
    raise ValidationError("Give duration (such as PT1H) or endTimeUtc.")


@api_requires(JIT_INITIATE, object_model=AccessRequest)
class RequestExtendView(ApiView):
    """Extend: ask again for the same VMs, ports and source, ending ``duration`` from now or at ``endTimeUtc``
    (give one of them, not both)."""

    @extend_schema(operation_id="requests_extend", request=s.ExtendSerializer,
                   parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER,
                                                description="Same key, same body: a retry returns the first "
                                                            "extension (200); the key sent with another body or "
                                                            "for another operation is a 422."), MADE_AT],
                   responses={201: s.RequestSerializer, 200: s.RequestSerializer, **BODY_ERRORS, **NOT_FOUND,
                              **KEY_REUSED},
                   tags=["requests"])
    def post(self, request: Request, pk: int) -> Response:
        access = access_selectors.request_get(request.user, pk)
        body = s.ExtendSerializer(data=_body(request))
        body.is_valid(raise_exception=True)
        data = body.validated_data
        extension, created = access_services.request_extend(
            actor=request.user, original=access, duration=_extend_duration(data),
            idempotency_key=_idempotency_key(request), idempotency_fingerprint=_fingerprint(request),
            justification=data.get("justification", ""), client_ip=client_ip(request.META))
        return _made(request, extension, created)


# --- approvals -------------------------------------------------------------------------------------------------
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
    """Requests waiting for your decision, the first to expire first (``limit``/``offset`` pages)."""

    @extend_schema(operation_id="approvals_list", parameters=PAGE_PARAMETERS,
                   responses={200: s.ApprovalPageSerializer, **READ_ERRORS},
                   tags=["approvals"])
    def get(self, request: Request) -> Response:
        queryset = access_selectors.approval_queue(request.user).prefetch_related("vms", "ports", "approvals")
        return _paginate(self, request, queryset, lambda r: _approval_json(r, request))


# --- audit -----------------------------------------------------------------------------------------------------
AUDIT_FILTERS = [
    OpenApiParameter("source", str, enum=["azure", "portal"], description="azure: the Activity Log copies "
                                                                          "(default); portal: the portal's trail. "
                                                                          "A filter of the other source is a 400."),
    OpenApiParameter("range", str, enum=["1h", "24h", "7d", "30d", "custom"]),
    OpenApiParameter("since", OpenApiTypes.DATETIME), OpenApiParameter("until", OpenApiTypes.DATETIME),
    OpenApiParameter("subscription", str), OpenApiParameter("resource_group", str),
    OpenApiParameter("vm", str, description="A VM's ARM id, or its name (every VM of that name)."),
    OpenApiParameter("caller", str, description="azure: the caller."),
    OpenApiParameter("operation", str, enum=[value for value, _label in OPERATION_CHOICES],
                     description="azure: the operation name."),
    OpenApiParameter("status", str, enum=[value for value, _label in STATUS_CHOICES], description="azure."),
    OpenApiParameter("correlation", str, description="azure: the correlation id."),
    OpenApiParameter("user", str, description="portal: the actor."),
    OpenApiParameter("action", str, description="portal: the action (e.g. access.requested)."),
    OpenApiParameter("q", str, description="Free text."),
]


CURSOR_PARAMETERS = [
    OpenApiParameter("after", str, description="The cursor of the next (older) page, as `next` gives it; any other "
                                               "value, or both after and before, is a 400."),
    OpenApiParameter("before", str, description="The cursor of the previous (newer) page, as `previous` gives it."),
]


def _audit_filterset(request: Request, action: str):
    source = request.query_params.get("source", "azure")
    if source not in ("azure", "portal"):
        raise ValidationError("source must be azure or portal.")
    own, other = ((TrailFilterSet, ActivityFilterSet) if source == "portal" else (ActivityFilterSet, TrailFilterSet))
    foreign = [name for name in other.base_filters
               if name not in own.base_filters and request.query_params.get(name, "").strip()]
    if foreign:  # ignoring it would answer the whole, unfiltered search
        other_source = "azure" if source == "portal" else "portal"
        raise ValidationError(f"{', '.join(foreign)} appl{'y' if len(foreign) > 1 else 'ies'} only to "
                              f"source={other_source}; source={source} filters by {', '.join(own.base_filters)}.")
    if source == "portal":
        filterset = TrailFilterSet(request.query_params, queryset=audit_selectors.trail_for_user(request.user, action))
    else:
        filterset = ActivityFilterSet(request.query_params,
                                      queryset=audit_selectors.activity_for_user(request.user, action))
    if not filterset.is_valid():
        errors = [f"{field}: {message}" for field, messages in filterset.errors.items() for message in messages]
        raise ValidationError(errors)
    return source, filterset


def _event_json(event, source: str, names: Mapping[str, str]) -> dict:
    """One audit event; ``names`` are the page's subscription display names by lower-case id
    (``audit_selectors.subscription_names``: one query per page), ``subscriptionName`` null where it has none."""
    name = names.get(event.subscription_id.lower())
    if source == "portal":
        return {"id": event.pk, "source": source, "occurredAt": event.occurred_at, "operation": event.action,
                "status": "", "caller": event.actor_label, "subscriptionId": event.subscription_id,
                "subscriptionName": name, "resourceGroup": event.resource_group, "resourceId": event.resource_id,
                "target": event.target_label or event.target_id, "correlationId": event.correlation_id,
                "details": {"before": event.before, "after": event.after}}
    return {"id": event.pk, "source": source, "occurredAt": event.occurred_at, "operation": event.operation_name,
            "status": event.status, "caller": event.caller, "subscriptionId": event.subscription_id,
            "subscriptionName": name, "resourceGroup": event.resource_group, "resourceId": event.resource_id,
            "target": event.resource_id, "correlationId": event.correlation_id, "details": event.properties}


@api_requires(AUDIT_READ)
class AuditEventListView(ApiView):
    """Search JIT activity, newest first: the Azure Activity Log copies or the portal's own trail, with the
    audit page's filters and scope. Pages by cursor (``next``/``previous``); no counts."""

    @extend_schema(operation_id="audit_events_list",
                   parameters=[*AUDIT_FILTERS, *CURSOR_PARAMETERS],
                   responses={200: s.AuditPageSerializer, **ERRORS}, tags=["audit"])
    def get(self, request: Request) -> Response:
        source, filterset = _audit_filterset(request, AUDIT_READ)
        page = keyset_page(filterset.qs, after=request.query_params.get("after"),
                           before=request.query_params.get("before"), size=settings.AUDIT_PAGE_SIZE)
        names = audit_selectors.subscription_names(e.subscription_id for e in page.rows)

        def link(key: str, cursor: str | None) -> str | None:
            if not cursor:
                return None
            query = request.query_params.copy()
            query.pop("after", None)
            query.pop("before", None)
            query[key] = cursor
            return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")

        return Response({"next": link("after", page.older), "previous": link("before", page.newer),
                         "results": [_event_json(e, source, names) for e in page.rows]})


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
        return _csv_response(source, encoded(csv_lines(filterset.qs, columns)))

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

