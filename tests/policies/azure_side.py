"""Out-of-band changes and checks "in Azure" (the emulator) through the real Azure SDK, as someone who
bypasses the portal would make them."""
from __future__ import annotations

import requests
from azure.identity import ClientSecretCredential
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.security import SecurityCenter

from tests.policies.factories import PROD, TENANT

CLIENT_ID = "0d3b6a9e-5c1f-4e2a-9b7d-1a2b3c4d5e6f"
SECRET = "demo-portal-secret"
SCOPE = "https://management.azure.com/.default"


def vm_id(group: str, name: str, subscription: str = PROD) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{name}"


class Azure:
    """SDK clients against one emulator."""

    def __init__(self, emu, subscription: str = PROD) -> None:
        credential = ClientSecretCredential(TENANT, CLIENT_ID, SECRET, authority=emu.url,
                                            disable_instance_discovery=True, connection_verify=emu.ca_pem)
        kwargs = {"base_url": emu.url, "credential_scopes": [SCOPE], "connection_verify": emu.ca_pem}
        self.emu = emu
        self.credential = credential
        self.subscription = subscription
        self.security = SecurityCenter(credential, subscription, **kwargs)
        self.network = NetworkManagementClient(credential, subscription, **kwargs)

    def policy(self, group: str, location: str, name: str = "default"):
        return self.security.jit_network_access_policies.get(group, location, name)

    def policy_ports(self, group: str, location: str, vm: str, name: str = "default") -> dict[int, dict]:
        """Port number → the port rule (as a dict) of ``vm`` in the policy ``name`` of its group and location."""
        policy = self.policy(group, location, name)
        for entry in policy.virtual_machines:
            if entry.id.lower() == vm.lower():
                return {p.number: p.as_dict() for p in entry.ports}
        return {}

    def jit_rules(self, vm: str, access: str) -> dict[str, dict]:
        """Name → properties of ``vm``'s JIT rules with ``access`` in its NSGs (emulator control API)."""
        view = self.emu.nsg_rules(vm)
        return {f"{nsg['id']}|{rule['name']}": rule["properties"] for nsg in view["nsgs"]
                for rule in nsg["securityRules"]
                if rule["name"].startswith("SecurityCenter-JITRule") and rule["properties"]["access"] == access
                and rule["properties"]["destinationAddressPrefix"] == view["privateIpAddress"]}

    def jit_ports(self, vm: str) -> set[int]:
        """Ports with a JIT deny rule in the NSGs of ``vm``."""
        return {int(p["destinationPortRange"]) for p in self.jit_rules(vm, "Deny").values()}

    def set_jit_security_policy(self, group: str, value: str) -> None:
        """Turn JIT "On"/"Off" in a resource group's (legacy) security policy, as an admin in Azure would."""
        token = self.credential.get_token(SCOPE).token
        response = requests.put(
            f"{self.emu.url}/subscriptions/{self.subscription}/resourceGroups/{group}/providers/Microsoft.Security/"
            f"policies/default", params={"api-version": "2015-06-01-preview"},
            json={"properties": {"recommendations": {"jitNetworkAccess": value}}},
            headers={"Authorization": f"Bearer {token}"}, verify=self.emu.ca_pem, timeout=30)
        response.raise_for_status()

    def set_servers_plan(self, tier: str, sub_plan: str = "") -> None:
        """Set Defender for Servers (pricing ``VirtualMachines``) on the subscription, as an admin in Azure would:
        ``Free``, or ``Standard`` with sub-plan ``P1``/``P2``."""
        token = self.credential.get_token(SCOPE).token
        properties = {"pricingTier": tier, **({"subPlan": sub_plan} if sub_plan else {})}
        response = requests.put(
            f"{self.emu.url}/subscriptions/{self.subscription}/providers/Microsoft.Security/pricings/VirtualMachines",
            params={"api-version": "2024-01-01"}, json={"properties": properties},
            headers={"Authorization": f"Bearer {token}"}, verify=self.emu.ca_pem, timeout=30)
        response.raise_for_status()
