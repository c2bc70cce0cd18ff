"""Gateways for the access tasks, from one ``cloud.GatewayFactory`` per process.

The factory is a cache (credentials and their token caches, SDK clients and their connection pools), not
state: any process can build it again, and nothing depends on it surviving. Keeping it makes the worker's
``initiate`` cost one HTTPS call instead of a token request plus the call.
"""
from __future__ import annotations

import threading

from policies.gateway import credential_spec, endpoint_for

_lock = threading.Lock()
_factory = None


def factory():
    """This process's ``cloud.GatewayFactory`` (built on first use)."""
    global _factory
    with _lock:
        if _factory is None:
            from cloud import GatewayFactory

            _factory = GatewayFactory()
        return _factory


def gateway_for_subscription(subscription):
    """The (cached) gateway of a registered ``policies.Subscription``."""
    return factory().gateway(subscription.subscription_id, credential_spec(subscription), endpoint_for(subscription))


def reset() -> None:
    """Drop the cached gateways (tests that restart an emulator, or after a fork)."""
    global _factory
    with _lock:
        old, _factory = _factory, None
    if old is not None:
        old.close()
