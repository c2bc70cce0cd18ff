"""Plain configuration the portal hands to the gateway: where Azure is, and how the portal signs in to it.

The portal fills these from its settings; nothing in ``cloud`` reads the environment itself.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

CredentialKind = Literal["client_secret", "certificate", "managed_identity", "workload_identity", "default"]
CREDENTIAL_KINDS: tuple[str, ...] = ("client_secret", "certificate", "managed_identity", "workload_identity",
                                     "default")
PUBLIC_ARM_ENDPOINT = "https://management.azure.com"
PUBLIC_AUTHORITY = "https://login.microsoftonline.com"
# Entra authorities MSAL knows; any other one (sovereign stacks, Azure Stack, the emulator) needs
# instance discovery switched off.
KNOWN_AUTHORITY_HOSTS = frozenset({
    "login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn", "login.microsoftonline.de",
    "login.windows.net", "login.microsoft.com", "sts.windows.net",
})
# Every host of Azure's own clouds a subscription's endpoints may name: their Entra authorities and Resource
# Managers (public, US Government, China, Germany).
AZURE_CLOUD_HOSTS = KNOWN_AUTHORITY_HOSTS | {
    "management.azure.com", "management.usgovcloudapi.net", "management.chinacloudapi.cn",
    "management.microsoftazure.de",
}


def host_allowed(url: str, extra_hosts: Iterable[str] = ()) -> bool:
    """Whether ``url`` names one of Azure's cloud hosts or one of ``extra_hosts`` (``host`` or ``host:port``):
    the portal sends its credential's secret to the authority and its tokens to Resource Manager, so only to hosts
    the operator allowed."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        return False
    allowed = {entry.strip().lower() for entry in extra_hosts if entry.strip()}
    return host in AZURE_CLOUD_HOSTS or host in allowed or (port is not None and f"{host}:{port}" in allowed)


@dataclass(frozen=True)
class CloudEndpoint:
    """An Azure cloud: its Resource Manager URL, Entra authority, token scope, CA bundle, timeouts and retries.

    ``retry_after_max`` caps how long the SDK itself waits on a ``Retry-After``; a longer wait surfaces as
    ``Throttled(retry_after=...)`` so the calling task can reschedule instead of sleeping in a worker.
    """

    arm_endpoint: str
    authority: str = PUBLIC_AUTHORITY
    credential_scope: str = ""
    ca_bundle: str | None = None
    connection_timeout: float = 10.0
    read_timeout: float = 60.0
    retry_total: int = 3
    retry_backoff_factor: float = 0.8
    retry_backoff_max: float = 30.0
    retry_after_max: float = 10.0

    def __post_init__(self) -> None:
        if not self.arm_endpoint.startswith("https://"):
            raise ValueError("arm_endpoint must be an https:// URL (Azure SDKs send tokens over TLS only).")
        object.__setattr__(self, "arm_endpoint", self.arm_endpoint.rstrip("/"))
        object.__setattr__(self, "authority", self.authority.rstrip("/"))
        if not self.credential_scope:
            object.__setattr__(self, "credential_scope", default_scope(self.arm_endpoint))

    @classmethod
    def for_url(cls, url: str, ca_bundle: str | None = None, **options) -> CloudEndpoint:
        """One URL serving both Resource Manager and Entra (the local emulator), tokens for public ARM."""
        return cls(arm_endpoint=url, authority=url, credential_scope=f"{PUBLIC_ARM_ENDPOINT}/.default",
                   ca_bundle=ca_bundle, **options)

    @property
    def authority_is_known(self) -> bool:
        """True for the public and sovereign Entra clouds (MSAL's instance discovery works there)."""
        return (urlsplit(self.authority).hostname or "").lower() in KNOWN_AUTHORITY_HOSTS


def default_scope(arm_endpoint: str) -> str:
    """The token scope of a Resource Manager endpoint: public ARM's for any host that is not a sovereign one."""
    host = (urlsplit(arm_endpoint).hostname or "").lower()
    if host.startswith("management.") and host != "management.azure.com":
        return f"https://{host}/.default"
    return f"{PUBLIC_ARM_ENDPOINT}/.default"


@dataclass(frozen=True)
class CredentialSpec:
    """How the portal's own identity signs in. Which fields matter depends on ``kind``:

    - ``client_secret``: tenant_id, client_id, client_secret
    - ``certificate``: tenant_id, client_id, certificate_path (PEM or PKCS#12), certificate_password
    - ``managed_identity``: client_id of a user-assigned identity (empty for the system-assigned one)
    - ``workload_identity``: tenant_id, client_id, federated_token_file
    - ``default``: azure-identity's ``DefaultAzureCredential`` chain (tenant_id/client_id optional)
    """

    kind: CredentialKind = "client_secret"
    tenant_id: str = ""
    client_id: str = ""
    client_secret: str | None = field(default=None, repr=False)
    certificate_path: str | None = None
    certificate_password: str | None = field(default=None, repr=False)
    federated_token_file: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in CREDENTIAL_KINDS:
            raise ValueError(f"Unknown credential kind {self.kind!r}; expected one of {', '.join(CREDENTIAL_KINDS)}.")
        required = {"client_secret": ("tenant_id", "client_id", "client_secret"),
                    "certificate": ("tenant_id", "client_id", "certificate_path"),
                    "workload_identity": ("tenant_id", "client_id", "federated_token_file")}.get(self.kind, ())
        missing = [name for name in required if not getattr(self, name)]
        if missing:
            raise ValueError(f"A {self.kind} credential needs {', '.join(missing)}.")
