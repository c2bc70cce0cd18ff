"""The cloud gateway: the only package of the portal that imports ``azure.*``.

It takes plain configuration (``cloud.config``), returns plain dataclasses (``cloud.types``) and raises
portal errors (``cloud.errors``) that say whether a retry makes sense. ``gateway_for`` builds a gateway;
``GatewayFactory`` caches them. The management SDKs are imported only when a gateway is built.
"""
from .config import CloudEndpoint, CredentialSpec
from .factory import GatewayFactory, gateway_for
from .interface import CloudGateway

__all__ = ["CloudEndpoint", "CloudGateway", "CredentialSpec", "GatewayFactory", "gateway_for"]
