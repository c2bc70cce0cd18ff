"""Audit tests: the suite's personas and demo emulator (root plugins), and a gateway of Contoso Production
pointed at the emulator (the real azure-identity and azure-mgmt-monitor clients over HTTPS)."""
import pytest

from tests.audit.factories import PROD, TENANT

PORTAL_CLIENT_ID = "0d3b6a9e-5c1f-4e2a-9b7d-1a2b3c4d5e6f"
PORTAL_SECRET = "demo-portal-secret"


def gateway_for(running_emulator, subscription_id: str = PROD):
    """The real gateway for one emulated subscription; the SDK waits at most 2 s on a Retry-After itself."""
    from cloud.azure import AzureGateway
    from cloud.config import CloudEndpoint, CredentialSpec

    credential = CredentialSpec(tenant_id=TENANT, client_id=PORTAL_CLIENT_ID, client_secret=PORTAL_SECRET)
    endpoint = CloudEndpoint(arm_endpoint=running_emulator.url, authority=running_emulator.url,
                             ca_bundle=str(running_emulator.ca_pem), retry_total=2, retry_backoff_factor=0.1,
                             retry_after_max=2.0)
    return AzureGateway(subscription_id, credential, endpoint)


@pytest.fixture
def prod_gateway(fresh_emulator):
    return gateway_for(fresh_emulator)
