"""The demo's role mappings: the demo tenant's app roles and group, mapped to portal roles."""
from __future__ import annotations

from accounts.models import RoleMapping

PRODUCTION = "/subscriptions/c0a1b2c3-0000-4000-8000-000000000001"
DEV_TEST = "/subscriptions/c0a1b2c3-0000-4000-8000-000000000002"
WEB_REQUESTERS_GROUP = "9c1d2e3f-0000-4000-8000-000000000901"
WEB_RESOURCE_GROUP = f"{PRODUCTION}/resourceGroups/rg-web-prod"

APP_ROLE = RoleMapping.SourceKind.APP_ROLE
GROUP = RoleMapping.SourceKind.GROUP

DEMO_ROLE_MAPPINGS: list[tuple[str, str, str, str, str]] = [
    # (source kind, source value, portal role, scope, description)
    (APP_ROLE, "JIT.Requester", "requester", PRODUCTION, "Requesters reach Production VMs"),
    (GROUP, WEB_REQUESTERS_GROUP, "requester", WEB_RESOURCE_GROUP, "JIT requesters - web: the web tier"),
    (APP_ROLE, "JIT.PolicyAdmin", "policy_admin", PRODUCTION, "Security admins configure JIT in Production"),
    (APP_ROLE, "JIT.PolicyAdmin", "policy_admin", DEV_TEST, "Security admins configure JIT in Dev/Test"),
    (APP_ROLE, "JIT.Auditor", "auditor", PRODUCTION, "Auditors read Production activity"),
    (APP_ROLE, "JIT.Auditor", "auditor", DEV_TEST, "Auditors read Dev/Test activity"),
    (APP_ROLE, "JIT.Approver", "approver", PRODUCTION, "Approvers approve Production requests"),
    (APP_ROLE, "JIT.Reader", "reader", PRODUCTION, "Readers see Production JIT status"),
]


def demo_role_mappings_ensure() -> int:
    """Create the demo's role mappings that are missing; return how many were created."""
    created = 0
    for kind, value, role, scope, description in DEMO_ROLE_MAPPINGS:
        _, was_created = RoleMapping.objects.get_or_create(
            source_kind=kind, source_value=value, tenant_id="", role=role, scope=scope,
            defaults={"description": description},
        )
        created += was_created
    return created
