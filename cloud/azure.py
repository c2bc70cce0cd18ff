"""The Azure gateway: the portal's calls to Resource Manager through the official SDK clients.

Every list follows the SDK's paging (one HTTP call per page, never one per VM) and yields ``cloud.types``
dataclasses as pages arrive. Every method raises ``cloud.errors`` exceptions, never azure-core ones: an answer the
SDK or the conversion cannot read is ``Unreadable`` (``_read``, ``reading``), never a ``KeyError`` or the like.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from azure.core.exceptions import HttpResponseError, map_error
from azure.core.rest import HttpRequest
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01 import models as role_models
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.core.exceptions import ARMErrorFormat
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.security import SecurityCenter
from azure.mgmt.security.v2020_01_01 import models as jit_models

from . import azure_convert as convert
from . import types
from .activity_filter import activity_filter
from .azure_pipeline import CallRecorder, client_options
from .config import CloudEndpoint, CredentialSpec
from .credentials import CredentialCache
from .errors import PROVIDER_NOT_REGISTERED, Forbidden, Invalid, NotFound, reading, translated

CLASSIC_COMPUTE_API_VERSION = "2017-04-01"
SECURITY_POLICIES_API_VERSION = "2015-06-01-preview"
SUBSCRIPTIONS_API_VERSION = "2022-12-01"
_API_NOT_SERVED = {"NoRegisteredProviderFound", "InvalidApiVersionParameter", "InvalidResourceType"}
_CLIENTS = {"security": SecurityCenter, "compute": ComputeManagementClient, "network": NetworkManagementClient,
            "monitor": MonitorManagementClient, "authorization": AuthorizationManagementClient}


class AzureGateway:
    """One subscription's Azure calls, with the portal's own identity.

    SDK clients are built on first use and kept; build gateways through ``cloud.GatewayFactory`` to share
    credentials (and their token caches) between gateways. ``calls_made`` counts HTTP attempts and
    ``last_request_id`` is Azure's ``x-ms-request-id`` of the latest answer (``recorder``: shared with the gateway
    a ``for_subscription`` came from).
    """

    provider = "azure"

    def __init__(self, subscription_id: str, credential_spec: CredentialSpec, endpoint: CloudEndpoint, *,
                 credentials: CredentialCache | None = None, recorder: CallRecorder | None = None) -> None:
        if not isinstance(credential_spec, CredentialSpec) or not isinstance(endpoint, CloudEndpoint):
            raise TypeError("AzureGateway takes a cloud.config.CredentialSpec and a cloud.config.CloudEndpoint.")
        self.subscription_id = subscription_id
        self.credential_spec = credential_spec
        self.endpoint = endpoint
        self._owns_credentials = credentials is None
        self._credentials = credentials if credentials is not None else CredentialCache()
        self._recorder = recorder if recorder is not None else CallRecorder()
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<AzureGateway {self.subscription_id} at {self.endpoint.arm_endpoint}>"

    # --- plumbing -------------------------------------------------------------------------------------------
    @property
    def calls_made(self) -> int:
        return self._recorder.calls

    @property
    def last_request_id(self) -> str:
        return self._recorder.last_request_id

    def _client(self, name: str) -> Any:
        with self._lock:
            client = self._clients.get(name)
            if client is None:
                try:
                    credential = self._credentials.get(self.credential_spec, self.endpoint)
                except (ValueError, OSError) as error:  # unreadable certificate or token file, bad key...
                    raise Forbidden(f"The portal's Azure credential cannot be used: {error}",
                                    code="CredentialConfiguration") from error
                client = _CLIENTS[name](credential, self.subscription_id,
                                        **client_options(self.endpoint, self._recorder))
                self._clients[name] = client
            return client

    def close(self) -> None:
        """Close the SDK clients' HTTP sessions, and the credentials' if this gateway made its own
        ``CredentialCache`` (one passed in is shared: whoever passed it closes it)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
        if self._owns_credentials:
            self._credentials.close()

    def for_subscription(self, subscription_id: str, credential_spec: CredentialSpec | None = None,
                         endpoint: CloudEndpoint | None = None) -> AzureGateway:
        """A gateway on another subscription with this one's credential (and its tokens) and endpoint, or those
        given (another subscription's own, kept in this one's credential cache), whose calls count in this one's
        ``calls_made``; close it when done, before this one (which closes credentials it made)."""
        return AzureGateway(subscription_id, credential_spec or self.credential_spec, endpoint or self.endpoint,
                            credentials=self._credentials, recorder=self._recorder)

    def __enter__(self) -> AzureGateway:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def _sub(self) -> str:
        return f"/subscriptions/{self.subscription_id}"

    def _each(self, pager_factory, to_dataclass) -> Iterator[Any]:
        """Items of an SDK pager as dataclasses; SDK errors (on any page) leave as portal errors."""
        with translated(), reading():
            for item in pager_factory():
                yield to_dataclass(item)

    def _raw_pages(self, send, path: str, api_version: str) -> Iterator[dict]:
        """Items of a list the SDK has no operation for, following ``nextLink`` through the client's pipeline
        (authentication, retries and timeouts included)."""
        url: str | None = f"{self.endpoint.arm_endpoint}{path}?api-version={api_version}"
        while url:
            with translated():
                response = send(HttpRequest("GET", url, headers={"Accept": "application/json"}))
                if response.status_code >= 400:
                    map_error(status_code=response.status_code, response=response, error_map={})
                    raise HttpResponseError(response=response, error_format=ARMErrorFormat)
                with reading():
                    body = response.json() or {}
                    items, url = list(body.get("value") or []), body.get("nextLink") or None
            yield from items

    # --- subscriptions ----------------------------------------------------------------------------------------
    def list_subscriptions(self) -> Iterator[types.Subscription]:
        """Every subscription the portal's identity can read in its tenant (not only this gateway's)."""
        pages = self._raw_pages(self._client("network").send_request, "/subscriptions", SUBSCRIPTIONS_API_VERSION)
        for body in pages:
            yield _read(convert.subscription_from_json, body)

    # --- compute --------------------------------------------------------------------------------------------
    def list_virtual_machines(self) -> Iterator[types.VirtualMachine]:
        """Every VM of the subscription (Resource Manager ones)."""
        compute = self._client("compute")
        return self._each(compute.virtual_machines.list_all, convert.virtual_machine_from_sdk)

    def list_classic_virtual_machines(self) -> Iterator[types.ClassicVirtualMachine]:
        """Classic VMs (JIT cannot protect them); none when the subscription never used Classic Compute."""
        path = f"{self._sub}/providers/Microsoft.ClassicCompute/virtualMachines"
        pages = self._raw_pages(self._client("compute").send_request, path, CLASSIC_COMPUTE_API_VERSION)
        try:
            for body in pages:
                yield _read(convert.classic_virtual_machine_from_json, body)
        except NotFound:
            return
        except Invalid as error:
            if error.code not in PROVIDER_NOT_REGISTERED:
                raise

    # --- network --------------------------------------------------------------------------------------------
    def list_network_interfaces(self) -> Iterator[types.NetworkInterface]:
        return self._each(self._client("network").network_interfaces.list_all, convert.network_interface_from_sdk)

    def list_network_security_groups(self) -> Iterator[types.NetworkSecurityGroup]:
        return self._each(self._client("network").network_security_groups.list_all,
                          convert.network_security_group_from_sdk)

    def list_public_ips(self) -> Iterator[types.PublicIp]:
        return self._each(self._client("network").public_ip_addresses.list_all, convert.public_ip_from_sdk)

    def list_firewalls(self) -> Iterator[types.Firewall]:
        return self._each(self._client("network").azure_firewalls.list_all, convert.firewall_from_sdk)

    def list_virtual_networks(self) -> Iterator[types.VirtualNetwork]:
        return self._each(self._client("network").virtual_networks.list_all, convert.virtual_network_from_sdk)

    def list_virtual_hubs(self) -> Iterator[types.VirtualHub]:
        """The subscription's Virtual WAN hubs (a secured hub names its Azure Firewall)."""
        return self._each(self._client("network").virtual_hubs.list, convert.virtual_hub_from_sdk)

    def list_hub_virtual_network_connections(self, resource_group: str, hub_name: str
                                             ) -> Iterator[types.HubVirtualNetworkConnection]:
        """The spoke virtual networks connected to one virtual hub (one call per page, per hub)."""
        connections = self._client("network").hub_virtual_network_connections
        return self._each(lambda: connections.list(resource_group, hub_name), convert.hub_connection_from_sdk)

    def get_network_security_group(self, resource_group: str, name: str) -> types.NetworkSecurityGroup:
        with translated():
            nsg = self._client("network").network_security_groups.get(resource_group, name)
        return _read(convert.network_security_group_from_sdk, nsg)

    def delete_security_rule(self, resource_group: str, nsg_name: str, rule_name: str) -> None:
        """Delete one NSG rule (how "close now" removes a JIT allow rule early); a missing rule is fine."""
        with translated():
            self._client("network").security_rules.begin_delete(resource_group, nsg_name, rule_name).result()

    # --- JIT policies -----------------------------------------------------------------------------------------
    def list_jit_policies(self) -> Iterator[types.JitPolicy]:
        """Every JIT policy of the subscription (all resource groups and locations)."""
        return self._each(self._client("security").jit_network_access_policies.list, convert.jit_policy_from_sdk)

    def get_jit_policy(self, resource_group: str, location: str, name: str) -> types.JitPolicy:
        with translated():
            policy = self._client("security").jit_network_access_policies.get(resource_group, location, name)
        return _read(convert.jit_policy_from_sdk, policy)

    def put_jit_policy(self, resource_group: str, location: str, name: str,
                       vms: Iterable[types.JitPolicyVm | Mapping[str, Any]], kind: str = "Basic") -> types.JitPolicy:
        """Write the WHOLE policy: ``vms`` replaces every VM and port it had (read-modify-write is the caller's).

        ``vms`` are ``JitPolicyVm`` dataclasses or Azure-shaped dicts (``{"id", "ports": [{"number",
        "protocol", "allowedSourceAddressPrefix(es)", "maxRequestAccessDuration"}]}``).
        """
        body = jit_models.JitNetworkAccessPolicy(kind=kind, virtual_machines=convert.jit_policy_vms_to_sdk(vms))
        with translated():
            policy = self._client("security").jit_network_access_policies.create_or_update(
                resource_group, location, name, body)
        return _read(convert.jit_policy_from_sdk, policy)

    def delete_jit_policy(self, resource_group: str, location: str, name: str) -> None:
        with translated():
            self._client("security").jit_network_access_policies.delete(resource_group, location, name)

    def initiate_jit(self, resource_group: str, location: str, name: str,
                     vms: Sequence[types.JitInitiateVm | Mapping[str, Any]], justification: str | None = None
                     ) -> types.JitRequest:
        """Open ports now (``POST .../initiate``). Sent once: the gateway never retries it, because a
        retry is a second request; ``Throttled``/``Transient`` tell the caller's task to try again."""
        body = convert.jit_initiate_to_sdk(vms, justification)
        with translated():
            request = self._client("security").jit_network_access_policies.initiate(
                resource_group, location, name, body, retry_total=0)
        return _read(convert.jit_request_from_sdk, request)

    # --- Defender plan and legacy security policies --------------------------------------------------------------
    def get_pricing(self, name: str = "VirtualMachines") -> types.Pricing:
        with translated():
            pricing = self._client("security").pricings.get(f"subscriptions/{self.subscription_id}", name)
        return _read(convert.pricing_from_sdk, pricing)

    def list_security_policies(self) -> Iterator[types.SecurityPolicy]:
        """The legacy security policies (subscription and resource groups); JIT is off where one says Off."""
        send = self._client("security")._client.send_request  # no SDK operation for this api-version
        pages = self._raw_pages(send, f"{self._sub}/providers/Microsoft.Security/policies",
                                SECURITY_POLICIES_API_VERSION)
        try:
            for body in pages:
                yield _read(convert.security_policy_from_json, body)
        except NotFound:  # a cloud without the legacy API has no policy that could switch JIT off
            return
        except Invalid as error:
            if error.code not in _API_NOT_SERVED:
                raise

    # --- Activity Log -----------------------------------------------------------------------------------------
    def iter_activity_events(self, start: datetime, end: datetime, *, resource_group: str | None = None,
                             resource_uri: str | None = None, resource_provider: str | None = None,
                             correlation_id: str | None = None, next_link: str | None = None
                             ) -> Iterator[types.ActivityPage]:
        """Pages of Activity Log events in ``[start, end]`` (at most one narrowing filter).

        Each page carries the ``next_link`` to resume from; pass it back as ``next_link`` to continue a
        checkpointed read.
        """
        flt = activity_filter(start, end, resource_group=resource_group, resource_uri=resource_uri,
                              resource_provider=resource_provider, correlation_id=correlation_id)
        pages = self._client("monitor").activity_logs.list(filter=flt).by_page(continuation_token=next_link)
        with translated(), reading():
            for page in pages:
                events = tuple(convert.activity_event_from_sdk(e) for e in page)
                yield types.ActivityPage(events=events, next_link=pages.continuation_token or None)

    # --- role definitions -------------------------------------------------------------------------------------
    def put_role_definition(self, scope: str, role_definition_id: str, *, role_name: str, actions: Sequence[str],
                            assignable_scopes: Sequence[str], description: str = "",
                            not_actions: Sequence[str] = (), data_actions: Sequence[str] = (),
                            not_data_actions: Sequence[str] = ()) -> types.RoleDefinition:
        """Create or update a custom role (``role_definition_id`` is its GUID)."""
        body = role_models.RoleDefinition(
            role_name=role_name, description=description, role_type="CustomRole",
            assignable_scopes=list(assignable_scopes),
            permissions=[role_models.Permission(actions=list(actions), not_actions=list(not_actions),
                                                data_actions=list(data_actions),
                                                not_data_actions=list(not_data_actions))])
        with translated():
            role = self._client("authorization").role_definitions.create_or_update(
                _scope(scope), role_definition_id, body)
        return _read(convert.role_definition_from_sdk, role)

    def get_role_definition(self, scope: str, role_definition_id: str) -> types.RoleDefinition:
        with translated():
            role = self._client("authorization").role_definitions.get(_scope(scope), role_definition_id)
        return _read(convert.role_definition_from_sdk, role)

    def delete_role_definition(self, scope: str, role_definition_id: str) -> None:
        with translated():
            self._client("authorization").role_definitions.delete(_scope(scope), role_definition_id)


def _read(to_dataclass: Callable[[Any], Any], answer: Any) -> Any:
    """``to_dataclass(answer)``: one of Azure's answers as a ``cloud.types`` dataclass, ``Unreadable`` when it has a
    shape the conversion cannot read."""
    with reading():
        return to_dataclass(answer)


def _scope(scope: str) -> str:
    """A scope as the SDKs put it in a URL (``subscriptions/...``, no leading slash, segments quoted)."""
    return "/".join(quote(part, safe="") for part in scope.strip("/").split("/"))
