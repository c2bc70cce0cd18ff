"""Cloud gateway tests: the real Azure SDK over HTTPS against the emulator (fixtures from tests.plugins.emulator)."""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from cloud.azure import AzureGateway
from cloud.config import CloudEndpoint, CredentialSpec

ROOT = Path(__file__).resolve().parents[2]
TENANT = "8a0e7c31-4a8e-4d8b-9d2a-6f6a1b2c3d4e"
PROD = "c0a1b2c3-0000-4000-8000-000000000001"
DEV = "c0a1b2c3-0000-4000-8000-000000000002"
PORTAL_CLIENT_ID = "0d3b6a9e-5c1f-4e2a-9b7d-1a2b3c4d5e6f"
PORTAL_SECRET = "demo-portal-secret"


def vm_id(name: str, rg: str = "rg-web-prod", sub: str = PROD) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def specs_dir() -> Path:
    """The official Azure REST examples: ``../shared/azure-specs`` from the repository, or ``AZURE_SPECS_DIR``."""
    return Path(os.environ.get("AZURE_SPECS_DIR") or ROOT.parent / "shared" / "azure-specs")


def fast_endpoint(running, **options) -> CloudEndpoint:
    """The emulator as the cloud, with retries quick enough for tests."""
    settings = {"retry_total": 3, "retry_backoff_factor": 0.01, "retry_backoff_max": 0.05, "read_timeout": 5.0,
                "connection_timeout": 5.0, **options}
    return CloudEndpoint.for_url(running.url, ca_bundle=str(running.ca_pem), **settings)


def portal_spec(secret: str = PORTAL_SECRET) -> CredentialSpec:
    return CredentialSpec(kind="client_secret", tenant_id=TENANT, client_id=PORTAL_CLIENT_ID, client_secret=secret)


def emulator_now(running) -> datetime:
    """The emulator's (virtual) clock."""
    return datetime.fromisoformat(running.control("GET", "clock").json()["now"].replace("Z", "+00:00"))


@pytest.fixture
def gateway(fresh_emulator):
    """A gateway on the Production subscription of a freshly reset demo emulator."""
    with AzureGateway(PROD, portal_spec(), fast_endpoint(fresh_emulator)) as gw:
        yield gw


@pytest.fixture
def dev_gateway(fresh_emulator):
    with AzureGateway(DEV, portal_spec(), fast_endpoint(fresh_emulator)) as gw:
        yield gw


def arm_calls(running) -> list[dict]:
    """The emulator's log of Resource Manager calls (sign-in calls left out)."""
    return [c for c in running.calls() if c["path"].startswith("/subscriptions")]
