"""Fixtures for the emulator's own tests: Azure SDK clients and raw ARM calls, both with real tokens."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import requests
from azure.identity import ClientSecretCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.security import SecurityCenter

from emulator.scenarios.identities import CONTOSO, PORTAL_CLIENT_ID, PORTAL_SECRET, PROD_SUBSCRIPTION
from emulator.testing import RunningEmulator

ARM_SCOPE = "https://management.azure.com/.default"
JIT_API = "2020-01-01"


@dataclass
class Arm:
    """SDK clients and raw HTTPS calls against one emulator, as the portal's service principal."""

    emu: RunningEmulator
    credential: ClientSecretCredential

    def client(self, cls, subscription: str = PROD_SUBSCRIPTION, **kwargs):
        return cls(self.credential, subscription, base_url=self.emu.url, credential_scopes=[ARM_SCOPE],
                   connection_verify=self.emu.ca_pem, **kwargs)

    def security(self, subscription: str = PROD_SUBSCRIPTION) -> SecurityCenter:
        return self.client(SecurityCenter, subscription)

    def compute(self, subscription: str = PROD_SUBSCRIPTION) -> ComputeManagementClient:
        return self.client(ComputeManagementClient, subscription)

    def network(self, subscription: str = PROD_SUBSCRIPTION) -> NetworkManagementClient:
        return self.client(NetworkManagementClient, subscription)

    def monitor(self, subscription: str = PROD_SUBSCRIPTION) -> MonitorManagementClient:
        return self.client(MonitorManagementClient, subscription)

    def authorization(self, subscription: str = PROD_SUBSCRIPTION) -> AuthorizationManagementClient:
        return self.client(AuthorizationManagementClient, subscription)

    def token(self) -> str:
        return self.credential.get_token(ARM_SCOPE).token

    def call(self, method: str, path: str, *, api_version: str = JIT_API, token: str | None = "auto",
             **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token == "auto":
            token = self.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        params = {"api-version": api_version, **kwargs.pop("params", {})}
        return requests.request(method, self.emu.url + path, headers=headers, params=params,
                                verify=self.emu.ca_pem, timeout=30, **kwargs)


def make_arm(emu: RunningEmulator, tenant: str = CONTOSO) -> Arm:
    credential = ClientSecretCredential(tenant, PORTAL_CLIENT_ID, PORTAL_SECRET, authority=emu.url,
                                        disable_instance_discovery=True, connection_verify=emu.ca_pem)
    return Arm(emu, credential)


@pytest.fixture
def arm(request) -> Arm:
    """SDK access to the session emulator, freshly reset to the demo scenario."""
    return make_arm(request.getfixturevalue("fresh_emulator"))


def in_hours(hours: float, *, base: datetime | None = None) -> str:
    moment = (base or datetime.now(UTC)) + timedelta(hours=hours)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def vm_id(group: str, name: str, subscription: str = PROD_SUBSCRIPTION) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{name}"


def policy_path(group: str, location: str, name: str = "default", subscription: str = PROD_SUBSCRIPTION) -> str:
    return (f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Security/locations/"
            f"{location}/jitNetworkAccessPolicies/{name}")
