"""Build the cloud gateway of a registered subscription from settings.

A subscription names a credential reference (``credential_ref``); the credential itself comes from the
environment (``PORTAL_CREDENTIALS`` in settings), never from the database. The ARM endpoint, the Entra
authority and an optional CA bundle are per subscription. A reference, credential or endpoint the portal cannot
use is ``cloud.errors.Forbidden`` (code ``CredentialConfiguration``), as an unreadable certificate is: the sync
or change that needed it fails with the reason.
"""
from __future__ import annotations

import os
import ssl
from contextlib import AbstractContextManager, nullcontext

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


def endpoint_problem(url: str) -> str | None:
    """Why the portal will not send its credential or tokens to ``url`` (a host outside Azure's clouds and
    ``CLOUD_ENDPOINT_HOSTS``), or ``None``."""
    from cloud.config import host_allowed

    if host_allowed(url, settings.CLOUD_ENDPOINT_HOSTS):
        return None
    return (f"{url} is not an Azure cloud endpoint: the portal sends its credential only to Azure's hosts and to "
            f"those its operator lists in CLOUD_ENDPOINT_HOSTS.")


CA_BUNDLE_MAX_BYTES = 10 * 1024 * 1024


def ca_bundle_problem(path: str) -> str | None:
    """Why ``path`` cannot be the CA bundle a subscription's endpoints are verified with (not an absolute path, no
    such file, unreadable, or no PEM certificate in it), or ``None``. Read as the TLS library reads it."""
    if not os.path.isabs(path):
        return "Enter the absolute path of a PEM file (it is read on the portal's servers)."
    if not os.path.exists(path):
        return "No file is at this path on the portal's server."
    if not os.path.isfile(path):
        return "This path is not a regular file: enter the path of a PEM file of CA certificates."
    if os.path.getsize(path) > CA_BUNDLE_MAX_BYTES:
        return "This file is larger than a CA bundle (10 MB): enter the path of a PEM file of CA certificates."
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        with open(path, "rb"):
            pass
        context.load_verify_locations(cafile=path)
    except PermissionError:
        return "The portal may not read this file: let the portal's user read it."
    except (OSError, ssl.SSLError, ValueError):
        return "This file holds no PEM certificate (-----BEGIN CERTIFICATE-----) the portal can read."
    if not context.cert_store_stats().get("x509_ca", 0) and not context.cert_store_stats().get("x509", 0):
        return "This file holds no PEM certificate (-----BEGIN CERTIFICATE-----) the portal can read."
    return None


def endpoint_for(subscription: Subscription):
    """The ``cloud.config.CloudEndpoint`` of the subscription (ARM URL, authority, CA bundle), refused when a host
    is not allowed (``endpoint_problem``)."""
    from cloud.config import CloudEndpoint

    for url in (subscription.arm_endpoint, subscription.authority):
        if (problem := endpoint_problem(url)) is not None:
            raise _unusable(f"The endpoint of {subscription} cannot be used: {problem}")
    try:
        return CloudEndpoint(arm_endpoint=subscription.arm_endpoint, authority=subscription.authority,
                             ca_bundle=subscription.ca_bundle or None)
    except ValueError as exc:
        raise _unusable(f"The endpoint of {subscription} cannot be used: {exc}") from exc


def gateway_for_subscription(subscription: Subscription):
    """The ``cloud.azure.AzureGateway`` of ``subscription``."""
    from cloud.azure import AzureGateway

    return AzureGateway(subscription.subscription_id, credential_spec(subscription), endpoint_for(subscription))


def gateway_in_use(subscription: Subscription, gateway=None) -> AbstractContextManager:
    """For a ``with`` block: ``gateway`` as passed (its caller closes it), or a new gateway of ``subscription``,
    closed when the block ends, however it ends."""
    return nullcontext(gateway) if gateway is not None else gateway_for_subscription(subscription)
