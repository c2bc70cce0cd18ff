"""The secured virtual hubs of the subscriptions an identity can read, shared between syncs.

Each sync needs the hubs of every other subscription its identity can read (a spoke may be connected to a hub in
a landing zone's connectivity subscription). Listing them on every sync would cost S*S calls a round for S
subscriptions; instead a sync that finds no reading of its identity (tenant, credential reference, ARM endpoint)
younger than ``INVENTORY_REMOTE_HUBS_MAX_AGE_SECONDS`` reads them all and stores them here, in a table the workers
of every host share, and the identity's other syncs within that period take them from it. The period bounds how
stale a hub elsewhere can be. Syncs starting at the same moment may each read them: the work stays linear in the
subscriptions, never S*S. Each reading stored deletes the stale ones of other identities.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from . import shapes
from .models import HubTopology, Subscription

log = logging.getLogger(__name__)
Hubs = dict[str, list[dict]]  # subscription id (lower case) → its secured hubs


def _identity(subscription: Subscription) -> dict[str, str]:
    return {"tenant_id": subscription.tenant_id.lower(), "credential_ref": subscription.credential_ref,
            "arm_endpoint": subscription.arm_endpoint.rstrip("/").lower()}


def registered_readers(subscription: Subscription) -> dict[str, tuple | None]:
    """The other enabled subscriptions registered in the portal, each with the credential and endpoint its own
    syncs use (``cloud.config`` ``CredentialSpec``, ``CloudEndpoint``), or ``None`` when that is the identity of
    ``subscription``: a hub in a subscription the syncing identity may not read is read as that subscription's
    syncs read it. One whose credential or endpoint the portal cannot use is left out."""
    from cloud.errors import CloudError

    from .gateway import credential_spec, endpoint_for

    identity = _identity(subscription)
    readers: dict[str, tuple | None] = {}
    for other in Subscription.objects.filter(enabled=True).exclude(pk=subscription.pk).order_by("subscription_id"):
        if _identity(other) == identity:
            readers[other.subscription_id.lower()] = None
            continue
        try:
            readers[other.subscription_id.lower()] = (credential_spec(other), endpoint_for(other))
        except CloudError as error:
            log.info("policies: the credential of subscription %s cannot be used to read its hubs (%s)", other,
                     error)
    return readers


def recent(subscription: Subscription) -> Hubs | None:
    """The hubs the identity of ``subscription`` saw, if read within the period, else ``None``."""
    max_age = timedelta(seconds=settings.INVENTORY_REMOTE_HUBS_MAX_AGE_SECONDS)
    found = HubTopology.objects.filter(**_identity(subscription), read_at__gt=timezone.now() - max_age).first()
    return found.hubs if found is not None else None


def keep(subscription: Subscription, hubs: Hubs, read_at: datetime) -> None:
    """Store ``hubs`` as what the identity of ``subscription`` saw; ``read_at``: when their reading began (its
    sync's start: the subscription's own hubs were listed first)."""
    identity = _identity(subscription)
    HubTopology.objects.update_or_create(**identity, defaults={"hubs": hubs, "read_at": read_at})
    # Other identities' readings past the period are never used again; one whose subscriptions all left (or moved
    # to another credential) would otherwise stay for good.
    max_age = timedelta(seconds=settings.INVENTORY_REMOTE_HUBS_MAX_AGE_SECONDS)
    HubTopology.objects.filter(read_at__lt=timezone.now() - max_age).exclude(**identity).delete()


def secured_hubs(firewalls: list, connections: list) -> list[dict]:
    """One subscription's secured hubs from its listed firewalls and hub connections: each hub's firewall (id,
    public IP) and the virtual networks connected to it (lower case ids)."""
    found: dict[str, dict] = {}
    for firewall in firewalls:
        hub = shapes.firewall_hub_id(firewall)
        if hub and hub not in found:
            firewall_id, _vnets, address = shapes.firewall_info(firewall, {})
            found[hub] = {"hub": hub, "firewall": firewall_id, "public_ip": address, "vnets": []}
    for connection in connections:
        hub, vnet = shapes.hub_connection_info(connection)
        if vnet and hub in found:
            found[hub]["vnets"].append(vnet)
    return list(found.values())


def spokes_of(hubs: Hubs, subscription_id: str) -> tuple[list[dict], list[dict]]:
    """(hub firewalls, hub connections), in the shapes ``policies.shapes`` reads, of the secured hubs of other
    subscriptions that connect virtual networks of ``subscription_id``."""
    own = subscription_id.lower()
    firewalls: list[dict] = []
    connections: list[dict] = []
    for other, secured in hubs.items():
        if other == own:
            continue
        for hub in secured:
            vnets = [vnet for vnet in hub["vnets"] if vnet.startswith(f"/subscriptions/{own}/")]
            if vnets:
                firewalls.append({"id": hub["firewall"], "virtual_hub_id": hub["hub"], "public_ip": hub["public_ip"]})
                connections += [{"virtual_hub_id": hub["hub"], "remote_virtual_network_id": vnet} for vnet in vnets]
    return firewalls, connections
