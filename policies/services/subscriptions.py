"""Subscriptions: register one (and sync it), update its settings; each with its audit row."""
from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from accounts import authz
from accounts.roles import SETTINGS_WRITE
from audit.services import audit_record
from jitportal.lib.basis import changed_fields, fields_digest, stale

from ..models import Subscription
from .sync import sync_request


def _require_settings(actor, subscription_id: str) -> None:
    if not authz.has_permission(actor, SETTINGS_WRITE, f"/subscriptions/{subscription_id.lower()}"):
        raise PermissionDenied("Only admins at the subscription's scope may manage it.")


def subscription_register(*, actor, tenant_id: str, subscription_id: str, credential_ref: str, display_name: str = "",
                          arm_endpoint: str = "https://management.azure.com",
                          authority: str = "https://login.microsoftonline.com", ca_bundle: str = "",
                          enabled: bool = True, sync: bool = True, client_ip: str | None = None) -> Subscription:
    """Register a subscription and, after commit, sync its inventory (``client_ip``: the caller's, for the trail)."""
    if actor is not None:
        _require_settings(actor, subscription_id)
    with transaction.atomic():
        subscription = Subscription.objects.create(
            tenant_id=tenant_id.lower(), subscription_id=subscription_id.lower(), display_name=display_name,
            arm_endpoint=arm_endpoint, authority=authority, ca_bundle=ca_bundle, credential_ref=credential_ref,
            enabled=enabled, created_by=actor if getattr(actor, "pk", None) else None)
        audit_record(actor=actor, action="subscription.register", target_type="subscription",
                     target_id=subscription.pk, target_label=str(subscription),
                     subscription_id=subscription.subscription_id,
                     after={"tenant_id": subscription.tenant_id, "arm_endpoint": arm_endpoint,
                            "credential_ref": credential_ref, "enabled": enabled}, client_ip=client_ip)
        if sync and enabled:
            sync_request(actor=actor, subscription=subscription, client_ip=client_ip)
    return subscription


SUBSCRIPTION_FIELDS = ("display_name", "tenant_id", "credential_ref", "arm_endpoint", "authority", "ca_bundle",
                       "enabled")


def subscription_values(subscription: Subscription) -> dict[str, object]:
    """The settings of ``subscription`` its edit form shows, by field name."""
    return {name: getattr(subscription, name) for name in SUBSCRIPTION_FIELDS}


def subscription_basis(subscription: Subscription) -> str:
    """The digest the edit form of ``subscription`` carries (``jitportal.lib.basis``): which settings changed since,
    it tells."""
    return fields_digest(subscription_values(subscription))


class SubscriptionChanged(ValidationError):
    """A subscription's edit form shown before its settings changed: ``changed`` names the fields that did (``None``
    when the form does not say what it was shown with), ``current`` is the subscription as it is now."""

    def __init__(self, current: Subscription, changed: list[str] | None) -> None:
        super().__init__(f"The settings of {current} changed since its form was shown.", code="subscription_changed")
        self.current, self.changed = current, changed


def subscription_update(*, actor, subscription: Subscription, client_ip: str | None = None,
                        shown: str | None = None, **changes) -> Subscription:
    """Save the settings of ``subscription`` (``SUBSCRIPTION_FIELDS`` only: what a sync stores on the row meanwhile,
    its Defender check and last sync, stays). With ``shown``, the ``subscription_basis`` its form was shown with
    ("" when it carried none): ``SubscriptionChanged`` when the stored settings changed since (read under the row's
    lock), unless the edit sets exactly what they hold now."""
    _require_settings(actor, subscription.subscription_id)
    with transaction.atomic():
        stored = Subscription.objects.select_for_update(no_key=True).get(pk=subscription.pk)
        before = subscription_values(stored)
        wanted = {**before, **{name: value for name, value in changes.items() if name in SUBSCRIPTION_FIELDS}}
        if shown is not None and stale(shown, subscription_basis(stored), sets_current=wanted == before):
            raise SubscriptionChanged(stored, changed_fields(shown, before))
        for name, value in wanted.items():
            setattr(subscription, name, value)
        subscription.save(update_fields=SUBSCRIPTION_FIELDS)
        audit_record(actor=actor, action="subscription.update", target_type="subscription",
                     target_id=subscription.pk, target_label=str(subscription),
                     subscription_id=subscription.subscription_id, before=before, after=wanted, client_ip=client_ip)
    return subscription
