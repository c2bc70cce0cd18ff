"""Gateways are built through one factory, cached per subscription, and behave as a ``CloudGateway``."""
from __future__ import annotations

import pytest

from cloud import CloudEndpoint, CloudGateway, GatewayFactory, gateway_for
from cloud.azure import AzureGateway
from tests.cloud.conftest import DEV, PROD, fast_endpoint, portal_spec


def test_the_azure_gateway_satisfies_the_cloud_gateway_interface():
    gateway = gateway_for(PROD, portal_spec(), CloudEndpoint.for_url("https://127.0.0.1:8443"))

    assert isinstance(gateway, AzureGateway) and isinstance(gateway, CloudGateway)
    assert gateway.provider == "azure"


def test_the_factory_caches_a_gateway_per_subscription_and_shares_credentials(fresh_emulator):
    factory = GatewayFactory()
    endpoint = fast_endpoint(fresh_emulator)

    prod = factory.gateway(PROD, portal_spec(), endpoint)
    dev = factory.gateway(DEV, portal_spec(), endpoint)

    assert factory.gateway(PROD.upper(), portal_spec(), endpoint) is prod and dev is not prod
    assert prod.get_pricing().jit_available and not dev.get_pricing().jit_available
    assert len(factory.credentials) == 1  # one sign-in identity for both subscriptions
    token_calls = [c for c in fresh_emulator.calls() if c["path"].endswith("/oauth2/v2.0/token")]
    assert len(token_calls) == 1  # and one token, reused
    factory.close()


def test_an_unknown_provider_is_refused():
    with pytest.raises(ValueError, match="Unknown cloud provider"):
        gateway_for(PROD, portal_spec(), CloudEndpoint.for_url("https://127.0.0.1:8443"), provider="gcp")


def test_the_gateway_takes_only_the_config_dataclasses():
    with pytest.raises(TypeError, match="CredentialSpec"):
        AzureGateway(PROD, ("tenant", "client", "secret"), "https://127.0.0.1:8443")


def test_closing_a_gateway_closes_the_credentials_it_made_but_never_shared_ones(fresh_emulator):
    from cloud.credentials import CredentialCache

    endpoint = fast_endpoint(fresh_emulator)
    for gateway in (AzureGateway(PROD, portal_spec(), endpoint), gateway_for(PROD, portal_spec(), endpoint)):
        assert gateway.get_pricing().jit_available
        made = gateway._credentials
        with gateway.for_subscription(DEV) as other:  # shares the store it was made with, so leaves it open
            assert not other.get_pricing().jit_available
        assert len(made) == 1
        gateway.close()
        assert len(made) == 0  # its credentials' HTTP sessions closed with it

    shared = CredentialCache()
    with AzureGateway(PROD, portal_spec(), endpoint, credentials=shared) as borrower:
        borrower.get_pricing()
    assert len(shared) == 1  # the caller's to close
    shared.close()
