"""What the portal needs from a cloud backend. ``AzureGateway`` implements it; an AWS one could later."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from . import types


@runtime_checkable
class CloudGateway(Protocol):
    """One subscription (account) of one cloud, called with the portal's own identity.

    Lists are iterators fed page by page. Errors are ``cloud.errors.CloudError`` subclasses.
    """

    provider: str
    subscription_id: str

    @property
    def calls_made(self) -> int: ...

    @property
    def last_request_id(self) -> str: ...

    def list_virtual_machines(self) -> Iterator[types.VirtualMachine]: ...

    def list_classic_virtual_machines(self) -> Iterator[types.ClassicVirtualMachine]: ...

    def list_network_interfaces(self) -> Iterator[types.NetworkInterface]: ...

    def list_network_security_groups(self) -> Iterator[types.NetworkSecurityGroup]: ...

    def list_public_ips(self) -> Iterator[types.PublicIp]: ...

    def list_firewalls(self) -> Iterator[types.Firewall]: ...

    def list_virtual_networks(self) -> Iterator[types.VirtualNetwork]: ...

    def get_network_security_group(self, resource_group: str, name: str) -> types.NetworkSecurityGroup: ...

    def delete_security_rule(self, resource_group: str, nsg_name: str, rule_name: str) -> None: ...

    def list_jit_policies(self) -> Iterator[types.JitPolicy]: ...

    def get_jit_policy(self, resource_group: str, location: str, name: str) -> types.JitPolicy: ...

    def put_jit_policy(self, resource_group: str, location: str, name: str,
                       vms: Iterable[types.JitPolicyVm | Mapping[str, Any]], kind: str = "Basic"
                       ) -> types.JitPolicy: ...

    def delete_jit_policy(self, resource_group: str, location: str, name: str) -> None: ...

    def initiate_jit(self, resource_group: str, location: str, name: str,
                     vms: Sequence[types.JitInitiateVm | Mapping[str, Any]], justification: str | None = None
                     ) -> types.JitRequest: ...

    def get_pricing(self, name: str = "VirtualMachines") -> types.Pricing: ...

    def list_security_policies(self) -> Iterator[types.SecurityPolicy]: ...

    def iter_activity_events(self, start: datetime, end: datetime, *, resource_group: str | None = None,
                             resource_uri: str | None = None, resource_provider: str | None = None,
                             correlation_id: str | None = None, next_link: str | None = None
                             ) -> Iterator[types.ActivityPage]: ...

    def put_role_definition(self, scope: str, role_definition_id: str, *, role_name: str, actions: Sequence[str],
                            assignable_scopes: Sequence[str], description: str = "",
                            not_actions: Sequence[str] = (), data_actions: Sequence[str] = (),
                            not_data_actions: Sequence[str] = ()) -> types.RoleDefinition: ...

    def get_role_definition(self, scope: str, role_definition_id: str) -> types.RoleDefinition: ...

    def delete_role_definition(self, scope: str, role_definition_id: str) -> None: ...

    def close(self) -> None: ...
