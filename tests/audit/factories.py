"""Builders for audit tests: users holding a portal role at a scope, and Activity Log events."""
from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

from django.utils import timezone

PROD = "c0a1b2c3-0000-4000-8000-000000000001"
DEV = "c0a1b2c3-0000-4000-8000-000000000002"
TENANT = "8a0e7c31-4a8e-4d8b-9d2a-6f6a1b2c3d4e"
INITIATE = "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action"
RULE_WRITE = "Microsoft.Network/networkSecurityGroups/securityRules/write"
_counter = itertools.count(1)


def vm_id(sub: str = PROD, rg: str = "rg-web-prod", name: str = "web-01") -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def policy_id(sub: str = PROD, rg: str = "rg-web-prod") -> str:
    return (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Security/locations/westeurope/"
            f"jitNetworkAccessPolicies/default")


def user_with_role(username: str, role: str | None, scope: str | None, app_role: str = ""):
    """A signed-in-looking user whose latest claims carry ``app_role``, mapped to ``role`` at ``scope``."""
    from accounts.models import RoleMapping, SignInClaims, User

    app_role = app_role or f"JIT.{role or 'none'}.{next(_counter)}"
    user = User.objects.create(username=username, display_name=username)
    SignInClaims.objects.create(user=user, tenant_id=TENANT, app_roles=[app_role], groups=[],
                                signed_in_at=timezone.now())
    if role and scope:
        RoleMapping.objects.get_or_create(source_kind="app_role", source_value=app_role, tenant_id="",
                                          role=role, scope=scope)
    return user


def named_subscription(subscription_id: str, name: str):
    """A registered subscription with a display name (nothing is synced: the audit pages only read its name)."""
    from policies.models import Subscription

    return Subscription.objects.create(tenant_id=TENANT, subscription_id=subscription_id, display_name=name,
                                       credential_ref="demo")


def event(*, when: datetime | None = None, sub: str = PROD, rg: str = "rg-web-prod", resource_id: str | None = None,
          operation: str = INITIATE, status: str = "Succeeded", caller: str = "alice@contoso.example",
          correlation_id: str | None = None, properties: dict | None = None, event_data_id: str | None = None):
    """An Activity Log event in the gateway's shape (``cloud.types.ActivityEvent``)."""
    from cloud.types import ActivityEvent

    when = when or timezone.now() - timedelta(minutes=next(_counter) % 50)
    resource_id = resource_id or policy_id(sub, rg)
    properties = properties if properties is not None else {"virtualMachines": vm_id(sub, rg), "ports": "22"}
    event_data_id = event_data_id or str(uuid.uuid4())
    correlation_id = correlation_id or str(uuid.uuid4())
    raw = {"eventDataId": event_data_id, "caller": caller, "resourceId": resource_id, "properties": properties,
           "operationName": {"value": operation}, "status": {"value": status}}
    return ActivityEvent(
        event_data_id=event_data_id, correlation_id=correlation_id, event_timestamp=when.astimezone(UTC),
        submission_timestamp=when.astimezone(UTC) + timedelta(seconds=12), caller=caller, operation_name=operation,
        status=status, sub_status="OK", level="Informational", category="Administrative", resource_id=resource_id,
        resource_group=rg, resource_provider=[*resource_id.split("/providers/"), ""][1].split("/")[0],
        resource_type="", subscription_id=sub, properties=properties, raw=raw,
    )


def make_activity_event_at(scope: str):
    """An Activity Log copy of a JIT initiate on a VM inside ``scope``, stored as ingestion stores it (with its
    VM index rows), for the authorization matrix."""
    from accounts.scopes import parse_scope
    from audit.ingestion import store_events
    from audit.models import ActivityLogEvent

    parsed = parse_scope(scope)
    group = parsed.resource_group or "rg-matrix"
    vm = vm_id(parsed.subscription_id, group, parsed.vm_name or "vm-matrix")
    event_id = str(uuid.uuid4())
    store_events([event(sub=parsed.subscription_id, rg=group, event_data_id=event_id,
                        properties={"virtualMachines": vm, "ports": "22"})])
    return ActivityLogEvent.objects.get(event_data_id=event_id)


def _matrix_factories() -> dict:
    from audit.models import ActivityLogEvent

    return {ActivityLogEvent: make_activity_event_at}


MATRIX_FACTORIES = _matrix_factories()


def initiate_with_rule(correlation: str, rule_name: str) -> list:
    """Azure's events of portal request #7's initiate on web-01 (port 22 from 203.0.113.7 until 2030) and of the
    NSG allow rule ``rule_name`` it wrote, under one ``correlation`` id (for ``audit.ingestion.store_events``)."""
    rule = (f"/subscriptions/{PROD}/resourceGroups/rg-web-prod/providers/Microsoft.Network/networkSecurityGroups/"
            f"nsg-web/securityRules/{rule_name}")
    return [event(correlation_id=correlation, properties={
                "virtualMachines": vm_id(), "justification": "alice: Patch the web tier (portal request #7)",
                "sourceAddressPrefixes": "203.0.113.7", "endTimeUtc": "2030-01-01T10:00:00Z"}),
            event(correlation_id=correlation, resource_id=rule, operation=RULE_WRITE, properties={"access": "Allow"})]
