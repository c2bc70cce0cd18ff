"""The secured virtual hubs of the subscriptions an identity can read, shared between syncs.

Each sync needs the hubs of every other subscription its identity can read (a spoke may be connected to a hub in
a landing zone's connectivity subscription). Listing them on every sync would cost S*S calls a round for S
subscriptions; instead a sync that finds no reading of its identity (tenant, credential reference, ARM endpoint)
younger than ``INVENTORY_REMOTE_HUBS_MAX_AGE_SECONDS`` reads them all and stores them here, in a table the workers
of every host share, and the identity's other syncs within that period take them from it. The period bounds how
stale a hub elsewhere can be. Each reading stored deletes the stale ones of other identities.

One sync at a time reads them again: it claims the identity's row with a conditional update (a token in
``reader``) and, while it reads, shows it is alive (``reader_seen_at``) every ``BEAT_SECONDS``. Syncs starting
meanwhile wait for its reading, holding no lock, at most ``WAIT_SECONDS``; past that they read for themselves.
A reader that fails gives its claim back; one that dies (a killed worker) falls silent, and after
``SILENT_SECONDS`` the next sync takes its claim over.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from . import shapes
from .models import HubTopology, Subscription

log = logging.getLogger(__name__)
Hubs = dict[str, list[dict]]  # subscription id (lower case) → its secured hubs
BEAT_SECONDS = 2.0  # a reader shows it is alive at most this often (as its lists progress)
SILENT_SECONDS = 15.0  # a reader not seen for this long is presumed dead: the next sync takes its claim over
WAIT_SECONDS = 20.0  # a sync waits this long at most for another's reading, then reads for itself
POLL_SECONDS = 0.2


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


def shared(subscription: Subscription, read: Callable[[Callable[[], None]], Hubs], read_at: datetime) -> Hubs:
    """The hubs the identity of ``subscription`` saw within the period; when there is no such reading, the one
    ``read(beat)`` makes (calling ``beat`` as it progresses) if this sync may claim the reading, else the one
    the sync holding the claim stores (waited for, at most ``WAIT_SECONDS``). ``read_at``: see ``keep``."""
    if settings.INVENTORY_REMOTE_HUBS_MAX_AGE_SECONDS <= 0:  # every sync reads them: nothing to share
        hubs = read(lambda: None)
        keep(subscription, hubs, read_at)
        return hubs
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        hubs = recent(subscription)
        if hubs is not None:
            return hubs
        token = _claim(subscription)
        if token is not None or time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
    if token is None:
        log.info("policies: another sync of %s's identity is still reading the hubs elsewhere; reading them too",
                 subscription)
    try:
        hubs = read(_beat(subscription, token))
        keep(subscription, hubs, read_at)
    finally:
        if token is not None:
            HubTopology.objects.filter(**_identity(subscription), reader=token).update(reader="", reader_seen_at=None)
    return hubs


def _claim(subscription: Subscription) -> str | None:
    """A token when this sync now holds the reading of its identity's hubs: there is no reading within the
    period, and no other sync holds it or the one that does fell silent (``SILENT_SECONDS``). ``None`` otherwise."""
    identity = _identity(subscription)
    if not HubTopology.objects.filter(**identity).exists():
        HubTopology.objects.bulk_create([HubTopology(**identity, hubs={}, read_at=None)], ignore_conflicts=True)
    now = timezone.now()
    stale = now - timedelta(seconds=settings.INVENTORY_REMOTE_HUBS_MAX_AGE_SECONDS)
    token = uuid.uuid4().hex
    claimed = HubTopology.objects.filter(**identity).filter(
        Q(read_at__isnull=True) | Q(read_at__lte=stale)).filter(
        Q(reader="") | Q(reader_seen_at__isnull=True) | Q(reader_seen_at__lt=now - timedelta(seconds=SILENT_SECONDS))
    ).update(reader=token, reader_seen_at=now)
    return token if claimed else None


def _beat(subscription: Subscription, token: str | None) -> Callable[[], None]:
    """What the reader calls as it progresses: shows it is alive, at most every ``BEAT_SECONDS``."""
    if token is None:
        return lambda: None
    identity = _identity(subscription)
    last = [time.monotonic()]

    def beat() -> None:
        if time.monotonic() - last[0] >= BEAT_SECONDS:
            last[0] = time.monotonic()
            HubTopology.objects.filter(**identity, reader=token).update(reader_seen_at=timezone.now())

    return beat


def keep(subscription: Subscription, hubs: Hubs, read_at: datetime) -> None:
    """Store ``hubs`` as what the identity of ``subscription`` saw, unless a reading begun later is stored;
    ``read_at``: when their reading began (its sync's start: the subscription's own hubs were listed first)."""
    identity = _identity(subscription)
    if not HubTopology.objects.filter(**identity).exists():
        HubTopology.objects.bulk_create([HubTopology(**identity, hubs={}, read_at=None)], ignore_conflicts=True)
    HubTopology.objects.filter(**identity).filter(Q(read_at__isnull=True) | Q(read_at__lt=read_at)).update(
        hubs=hubs, read_at=read_at)
    # Other identities' readings past the period are never used again; one whose subscriptions all left (or moved
    # to another credential) would otherwise stay for good. A row another sync is reading into stays.
    now = timezone.now()
    max_age = timedelta(seconds=settings.INVENTORY_REMOTE_HUBS_MAX_AGE_SECONDS)
    HubTopology.objects.filter(Q(read_at__isnull=True) | Q(read_at__lt=now - max_age)).exclude(**identity).exclude(
        reader_seen_at__gte=now - timedelta(seconds=SILENT_SECONDS)).delete()


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
