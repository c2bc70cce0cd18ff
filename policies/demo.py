"""The demo's subscriptions: Contoso Production (Defender for Servers Plan 2) and Dev/Test (Free tier),
registered against the local emulator with the portal app's credentials (credential reference ``demo``)."""
from __future__ import annotations

from django.conf import settings

from .models import Subscription

CONTOSO = "8a0e7c31-4a8e-4d8b-9d2a-6f6a1b2c3d4e"
DEMO_SUBSCRIPTIONS = [
    ("c0a1b2c3-0000-4000-8000-000000000001", "Contoso Production"),
    ("c0a1b2c3-0000-4000-8000-000000000002", "Contoso Dev/Test"),
]


def seed(*, endpoint: str | None = None, ca_bundle: str | None = None, sync: bool = True) -> list[Subscription]:
    """Register (or update) the two demo subscriptions at ``endpoint`` (default: the demo emulator's
    ``DEMO_EMULATOR_URL``); queue a sync of each after commit when ``sync``."""
    from . import services

    endpoint = endpoint or settings.DEMO_EMULATOR_URL
    ca = ca_bundle if ca_bundle is not None else str(settings.BASE_DIR / "var" / "emulator" / "ca.pem")
    subscriptions = []
    for subscription_id, name in DEMO_SUBSCRIPTIONS:
        existing = Subscription.objects.filter(subscription_id=subscription_id).first()
        values = {"tenant_id": CONTOSO, "display_name": name, "arm_endpoint": endpoint, "authority": endpoint,
                  "ca_bundle": ca, "credential_ref": "demo", "enabled": True}
        if existing is None:
            subscriptions.append(services.subscription_register(actor=None, subscription_id=subscription_id,
                                                                sync=sync, **values))
        else:
            for field, value in values.items():
                setattr(existing, field, value)
            existing.save()
            if sync:
                services.sync_request(actor=None, subscription=existing)
            subscriptions.append(existing)
    return subscriptions


DEMO_ACCESS_RULES = [
    # (name, scope, effect, fields)
    ("Databases need two approvers", f"/subscriptions/{DEMO_SUBSCRIPTIONS[0][0]}/resourceGroups/rg-data-prod",
     "manual", {"approvals_required": 2, "justification_pattern": r"[A-Z]+-[0-9]+",
                "justification_hint": "Name the change or incident ticket (e.g. CHG-1234)."}),
    ("Never open RDP to the internet", f"/subscriptions/{DEMO_SUBSCRIPTIONS[0][0]}", "deny",
     {"ports": [3389], "source_prefixes": ["*"], "message": "RDP is never opened to any source (*); ask for your IP."}),
]


def seed_access_rules() -> int:
    """The demo's access rules (created once, by name): two approvers on the data tier, no RDP from anywhere."""
    from .access.models import AccessRule

    created = 0
    for name, scope, effect, fields in DEMO_ACCESS_RULES:
        _, was_created = AccessRule.objects.get_or_create(name=name, defaults={"scope": scope, "effect": effect,
                                                                               **fields})
        created += was_created
    return created
