"""Build the cloud gateway of a registered subscription from settings.

A subscription names a credential reference (``credential_ref``); the credential itself comes from the
environment (``PORTAL_CREDENTIALS`` in settings), never from the database. The ARM endpoint, the Entra
authority and an optional CA bundle are per subscription. A reference, credential or endpoint the portal cannot
use is ``cloud.errors.Forbidden`` (code ``CredentialConfiguration``), as an unreadable certificate is: the sync
or change that needed it fails with the reason.
"""
from __future__ import annotations

from django.conf import settings

from cloud.errors import Forbidden

from .models import Subscription


def _unusable(message: str) -> Forbidden:
    return Forbidden(message, code="CredentialConfiguration")

CREDENTIAL_FIELDS = ("kind", "tenant_id", "client_id", "client_secret", "certificate_path", "certificate_password",
                     "federated_token_file")


def credential_config(ref: str) -> dict:
    """The settings entry of credential ``ref`` (``kind``, ``tenant_id``, ``client_id``, ``client_secret``, …)."""
    credentials = getattr(settings, "PORTAL_CREDENTIALS", {})
    if ref not in credentials:
        raise _unusable(f"No credential '{ref}' is configured (PORTAL_CREDENTIALS).")
    return credentials[ref]


def credential_spec(subscription: Subscription):
    """The ``cloud.config.CredentialSpec`` the subscription's reference resolves to."""
    from cloud.config import CredentialSpec

    config = {k: v for k, v in credential_config(subscription.credential_ref).items()
              if k in CREDENTIAL_FIELDS and v not in (None, "")}
    config.setdefault("tenant_id", subscription.tenant_id)
    try:
        return CredentialSpec(**config)
    except (TypeError, ValueError) as exc:
        raise _unusable(f"The credential '{subscription.credential_ref}' cannot be used: {exc}") from exc


def endpoint_for(subscription: Subscription):
    """The ``cloud.config.CloudEndpoint`` of the subscription (ARM URL, authority, CA bundle)."""
    from cloud.config import CloudEndpoint

    try:
        return CloudEndpoint(arm_endpoint=subscription.arm_endpoint, authority=subscription.authority,
                             ca_bundle=subscription.ca_bundle or None)
    except ValueError as exc:
        raise _unusable(f"The endpoint of {subscription} cannot be used: {exc}") from exc


def gateway_for_subscription(subscription: Subscription):
    """The ``cloud.azure.AzureGateway`` of ``subscription``."""
    from cloud.azure import AzureGateway

    return AzureGateway(subscription.subscription_id, credential_spec(subscription), endpoint_for(subscription))
