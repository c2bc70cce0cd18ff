"""azure-identity credentials built from a ``CredentialSpec`` and a ``CloudEndpoint``, cached in an object."""
from __future__ import annotations

import threading
from typing import Any

from azure.core.credentials import TokenCredential
from azure.identity import (
    CertificateCredential,
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
    WorkloadIdentityCredential,
)

from .azure_pipeline import SignInRetryPolicy
from .config import CloudEndpoint, CredentialSpec


def credential_options(endpoint: CloudEndpoint) -> dict[str, Any]:
    """Keyword arguments every azure-identity credential takes: authority, instance discovery, CA, timeouts."""
    options: dict[str, Any] = {
        "authority": endpoint.authority,
        "connection_timeout": endpoint.connection_timeout,
        "read_timeout": endpoint.read_timeout,
        "retry_total": endpoint.retry_total,
        "retry_backoff_factor": endpoint.retry_backoff_factor,
        "retry_backoff_max": endpoint.retry_backoff_max,
    }
    if not endpoint.authority_is_known:
        options["disable_instance_discovery"] = True
    if endpoint.ca_bundle:
        options["connection_verify"] = endpoint.ca_bundle
    return options


def build_credential(spec: CredentialSpec, endpoint: CloudEndpoint) -> TokenCredential:
    """A new azure-identity credential for ``spec`` that signs in at ``endpoint.authority``."""
    options = credential_options(endpoint)
    # the credentials that call Entra's token endpoint themselves get the sign-in retry (a 429 stays a throttle);
    # managed identity and the default chain keep azure-identity's own
    entra = {**options, "retry_policy_class": SignInRetryPolicy, "retry_after_max": endpoint.retry_after_max}
    if spec.kind == "client_secret":
        return ClientSecretCredential(spec.tenant_id, spec.client_id, spec.client_secret or "", **entra)
    if spec.kind == "certificate":
        return CertificateCredential(spec.tenant_id, spec.client_id, spec.certificate_path,
                                     password=spec.certificate_password, **entra)
    if spec.kind == "workload_identity":
        return WorkloadIdentityCredential(tenant_id=spec.tenant_id, client_id=spec.client_id,
                                          token_file_path=spec.federated_token_file, **entra)
    if spec.kind == "managed_identity":
        options.pop("authority")  # the managed identity endpoint is local to the host, not Entra
        options.pop("disable_instance_discovery", None)
        return ManagedIdentityCredential(client_id=spec.client_id or None, **options)
    if spec.kind == "default":
        extra = {"managed_identity_client_id": spec.client_id} if spec.client_id else {}
        if spec.tenant_id:
            extra["workload_identity_tenant_id"] = spec.tenant_id
        options.pop("disable_instance_discovery", None)
        return DefaultAzureCredential(exclude_interactive_browser_credential=True, **extra, **options)
    raise ValueError(f"Unknown credential kind {spec.kind!r}.")


class CredentialCache:
    """One credential per (endpoint, spec), so its token cache is shared by every gateway that uses it.

    Keep one instance per process (for example on the object that builds gateways); it holds no globals.
    """

    def __init__(self) -> None:
        self._credentials: dict[tuple[CloudEndpoint, CredentialSpec], TokenCredential] = {}
        self._lock = threading.Lock()

    def get(self, spec: CredentialSpec, endpoint: CloudEndpoint) -> TokenCredential:
        key = (endpoint, spec)
        with self._lock:
            credential = self._credentials.get(key)
            if credential is None:
                credential = self._credentials[key] = build_credential(spec, endpoint)
            return credential

    def __len__(self) -> int:
        return len(self._credentials)

    def close(self) -> None:
        """Close every cached credential's HTTP session."""
        with self._lock:
            credentials, self._credentials = list(self._credentials.values()), {}
        for credential in credentials:
            close = getattr(credential, "close", None)
            if close is not None:
                close()
