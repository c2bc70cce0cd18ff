"""Gateway configuration: endpoints, credential specs and the credential options they produce."""
from __future__ import annotations

import dataclasses

import pytest

from cloud.config import CloudEndpoint, CredentialSpec
from cloud.credentials import CredentialCache, credential_options


def test_the_public_cloud_needs_only_its_arm_endpoint():
    endpoint = CloudEndpoint("https://management.azure.com/")

    assert endpoint.arm_endpoint == "https://management.azure.com"
    assert endpoint.credential_scope == "https://management.azure.com/.default"
    assert endpoint.authority_is_known
    assert "disable_instance_discovery" not in credential_options(endpoint)


def test_a_sovereign_cloud_gets_its_own_token_scope():
    endpoint = CloudEndpoint("https://management.usgovcloudapi.net", authority="https://login.microsoftonline.us")

    assert endpoint.credential_scope == "https://management.usgovcloudapi.net/.default"
    assert endpoint.authority_is_known


def test_a_private_authority_switches_instance_discovery_off_and_trusts_the_ca_bundle():
    endpoint = CloudEndpoint.for_url("https://127.0.0.1:8443", ca_bundle="/etc/ssl/private-ca.pem",
                                     connection_timeout=3, read_timeout=7)

    options = credential_options(endpoint)

    assert endpoint.authority == "https://127.0.0.1:8443"
    assert endpoint.credential_scope == "https://management.azure.com/.default"
    assert options["disable_instance_discovery"] is True
    assert options["connection_verify"] == "/etc/ssl/private-ca.pem"
    assert (options["connection_timeout"], options["read_timeout"]) == (3, 7)


def test_plain_http_is_refused_because_azure_sdks_send_tokens_over_tls_only():
    with pytest.raises(ValueError, match="https"):
        CloudEndpoint("http://127.0.0.1:8000")


@pytest.mark.parametrize(("kind", "fields", "missing"), [
    ("client_secret", {"tenant_id": "t", "client_id": "c"}, "client_secret"),
    ("certificate", {"tenant_id": "t", "client_id": "c"}, "certificate_path"),
    ("workload_identity", {"tenant_id": "t", "client_id": "c"}, "federated_token_file"),
])
def test_a_credential_spec_names_what_its_kind_is_missing(kind, fields, missing):
    with pytest.raises(ValueError, match=missing):
        CredentialSpec(kind=kind, **fields)


def test_an_unknown_credential_kind_is_refused():
    with pytest.raises(ValueError, match="Unknown credential kind"):
        CredentialSpec(kind="password")


def test_managed_identity_needs_nothing_and_secrets_stay_out_of_repr():
    assert CredentialSpec(kind="managed_identity").client_id == ""
    spec = CredentialSpec(tenant_id="t", client_id="c", client_secret="hunter2")

    assert "hunter2" not in repr(spec)


def test_the_cache_builds_one_credential_per_endpoint_and_spec():
    cache = CredentialCache()
    endpoint = CloudEndpoint.for_url("https://127.0.0.1:8443")
    spec = CredentialSpec(tenant_id="t", client_id="c", client_secret="s")

    first = cache.get(spec, endpoint)

    assert cache.get(dataclasses.replace(spec), CloudEndpoint.for_url("https://127.0.0.1:8443")) is first
    assert cache.get(dataclasses.replace(spec, client_secret="other"), endpoint) is not first
    assert cache.get(spec, CloudEndpoint.for_url("https://127.0.0.1:9443")) is not first
    assert len(cache) == 3
    cache.close()
    assert len(cache) == 0
