"""Every credential kind signs in at the configured authority, trusting the configured CA bundle.

The emulator accepts client secrets only and refuses client assertions (AADSTS700027), so the certificate and
workload identity kinds are shown to reach the right token endpoint with an assertion, and to fail as
``Forbidden`` with Entra's own reason.
"""
from __future__ import annotations

import pytest
import trustme

from cloud.azure import AzureGateway
from cloud.config import CredentialSpec
from cloud.errors import Forbidden
from tests.cloud.conftest import PORTAL_CLIENT_ID, PROD, TENANT, fast_endpoint, portal_spec


def token_calls(running) -> list[dict]:
    return [c for c in running.calls() if c["path"] == f"/{TENANT}/oauth2/v2.0/token"]


def test_a_client_secret_signs_in_once_and_the_token_is_reused(gateway, fresh_emulator):
    gateway.get_pricing()
    list(gateway.list_jit_policies())

    assert len(token_calls(fresh_emulator)) == 1


def test_a_wrong_client_secret_is_forbidden_with_entras_reason(fresh_emulator):
    gateway = AzureGateway(PROD, portal_spec(secret="wrong"), fast_endpoint(fresh_emulator))

    with pytest.raises(Forbidden) as caught:
        gateway.get_pricing()

    assert "AADSTS7000215" in caught.value.message
    assert [c["status"] for c in token_calls(fresh_emulator)] == [401]


def test_a_certificate_credential_sends_a_signed_assertion_to_the_configured_authority(fresh_emulator, tmp_path):
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    pem = tmp_path / "portal.pem"
    ca.issue_cert("jitportal.example", key_type=trustme.KeyType.RSA).private_key_and_cert_chain_pem.write_to_path(
        str(pem))
    spec = CredentialSpec(kind="certificate", tenant_id=TENANT, client_id=PORTAL_CLIENT_ID, certificate_path=str(pem))

    with pytest.raises(Forbidden) as caught:
        AzureGateway(PROD, spec, fast_endpoint(fresh_emulator)).get_pricing()

    assert "AADSTS700027" in caught.value.message  # the emulator saw a client assertion
    assert token_calls(fresh_emulator)


def test_a_workload_identity_sends_the_federated_token_to_the_configured_authority(fresh_emulator, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("eyJhbGciOiJub25lIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.")
    spec = CredentialSpec(kind="workload_identity", tenant_id=TENANT, client_id=PORTAL_CLIENT_ID,
                          federated_token_file=str(token_file))

    with pytest.raises(Forbidden) as caught:
        AzureGateway(PROD, spec, fast_endpoint(fresh_emulator)).get_pricing()

    assert (caught.value.status, caught.value.code) == (401, "invalid_client")
    assert "AADSTS700027" in caught.value.message


def test_an_unusable_certificate_is_forbidden_before_any_call(fresh_emulator, tmp_path):
    missing = tmp_path / "missing.pem"
    spec = CredentialSpec(kind="certificate", tenant_id=TENANT, client_id=PORTAL_CLIENT_ID,
                          certificate_path=str(missing))

    with pytest.raises(Forbidden) as caught:
        AzureGateway(PROD, spec, fast_endpoint(fresh_emulator)).get_pricing()

    assert caught.value.code == "CredentialConfiguration" and not caught.value.retryable
    assert token_calls(fresh_emulator) == []
