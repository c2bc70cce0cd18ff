"""VMs: the list, one VM, its JIT ports (read, set, remove) and the policy changes a write queues."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.roles import JIT_POLICY_READ, VM_READ
from jitportal.lib.tables import SEARCH_MAX_LENGTH
from policies import jit_json
from policies import selectors as policy_selectors
from policies import services as policy_services
from policies.access.client_ip import client_ip
from policies.filtersets import OS_CHOICES
from policies.models import ConnectionType, PolicyChange, VirtualMachine, VmState

from .. import serializers as s
from ..access import api_requires
from .base import BODY_ERRORS, ERRORS, NOT_FOUND, QUEUED_AT, READ_ERRORS, ApiView, _body, _seek, seek_parameters

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
    """The VMs you may read, with their JIT state and ports, by name (VMs of the same name by id), paged by cursor
    (``next``/``previous``), with no count and no offset: a deep page costs what the first does."""

    @extend_schema(operation_id="vms_list", parameters=[*VM_FILTERS, *seek_parameters()],
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
        if len(text) > SEARCH_MAX_LENGTH:
            raise ValidationError(f"search holds at most {SEARCH_MAX_LENGTH} characters (it has {len(text)}).")
        if text:
            queryset = queryset.filter(Q(name__icontains=text) | Q(resource_group__icontains=text.lower())
                                       | Q(private_ip=text) | Q(public_ip=text))
        return _seek(request, queryset, lambda vm: s.vm_json(vm, request), key="name", descending=False)


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
    shown = policy_selectors.changes_as_seen(request.user, changes)
    body = {"changes": [s.change_json(c, request) for c in shown],
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
            changes = policy_services.policy_enable(actor=request.user, vms=[vm], ports=ports, replace_pending=True,
                                                    client_ip=client_ip(request.META))
        else:
            changes = [policy_services.policy_save(actor=request.user, vm=vm, ports=ports,
                                                   client_ip=client_ip(request.META))]
        return _accepted(request, changes)

    @extend_schema(operation_id="vms_jit_destroy", request=None, parameters=[QUEUED_AT],
                   description="Remove JIT from the VM. Send no body (or `{}`): a field is a 400, a body that is not "
                               "JSON a 415.",
                   responses={202: s.PolicyChangeAcceptedSerializer, **BODY_ERRORS, **NOT_FOUND}, tags=["jit"])
    def delete(self, request: Request, pk: int) -> Response:
        vm = policy_selectors.vm_get(request.user, pk, VM_READ)
        s.EmptyBodySerializer(data=_body(request)).is_valid(raise_exception=True)
        return _accepted(request, [policy_services.policy_remove(actor=request.user, vm=vm,
                                                                 client_ip=client_ip(request.META))])


@api_requires(JIT_POLICY_READ, VM_READ, object_model=PolicyChange)
class PolicyChangeView(ApiView):
    """One queued JIT policy change: ``queued`` → ``running`` → ``applied`` or ``failed`` (with Azure's message), for
    whoever may read one of its VMs, showing only what concerns those (as the change's line on the VM page)."""

    @extend_schema(operation_id="policy_changes_retrieve",
                   responses={200: s.PolicyChangeSerializer, **READ_ERRORS, **NOT_FOUND}, tags=["jit"])
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.change_json(policy_selectors.change_seen_get(request.user, pk), request))
