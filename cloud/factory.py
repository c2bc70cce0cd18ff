"""Build gateways, keeping one per (provider, endpoint, credential, subscription) and sharing credentials."""
from __future__ import annotations

import threading

from .config import CloudEndpoint, CredentialSpec
from .credentials import CredentialCache
from .interface import CloudGateway

PROVIDERS = ("azure",)


def _new_gateway(provider: str, subscription_id: str, spec: CredentialSpec, endpoint: CloudEndpoint,
                 credentials: CredentialCache | None) -> CloudGateway:
    if provider == "azure":
        from .azure import AzureGateway  # imported on use: the SDKs are heavy to import

        return AzureGateway(subscription_id, spec, endpoint, credentials=credentials)
    raise ValueError(f"Unknown cloud provider {provider!r}; expected one of {', '.join(PROVIDERS)}.")


class GatewayFactory:
    """Gateways and credentials cached in this object (one per process is plenty; it holds no globals).

    ``calls_made``/``last_request_id`` of a cached gateway are shared by everyone using it in the process.
    """

    def __init__(self) -> None:
        self.credentials = CredentialCache()
        self._gateways: dict[tuple, CloudGateway] = {}
        self._lock = threading.Lock()

    def gateway(self, subscription_id: str, credential_spec: CredentialSpec, endpoint: CloudEndpoint,
                provider: str = "azure") -> CloudGateway:
        key = (provider, endpoint, credential_spec, subscription_id.lower())
        with self._lock:
            gateway = self._gateways.get(key)
            if gateway is None:
                gateway = self._gateways[key] = _new_gateway(provider, subscription_id, credential_spec, endpoint,
                                                             self.credentials)
            return gateway

    def close(self) -> None:
        with self._lock:
            gateways, self._gateways = list(self._gateways.values()), {}
        for gateway in gateways:
            gateway.close()
        self.credentials.close()


def gateway_for(subscription_id: str, credential_spec: CredentialSpec, endpoint: CloudEndpoint, *,
                provider: str = "azure", factory: GatewayFactory | None = None) -> CloudGateway:
    """A gateway for one subscription: from ``factory`` (cached) or a new one with its own credential, closed with
    it."""
    if factory is not None:
        return factory.gateway(subscription_id, credential_spec, endpoint, provider)
    return _new_gateway(provider, subscription_id, credential_spec, endpoint, None)  # closes its own on close()
