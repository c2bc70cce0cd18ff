"""The demo identities every part of the project may rely on (Contoso and Fabrikam)."""
from __future__ import annotations

CONTOSO = "8a0e7c31-4a8e-4d8b-9d2a-6f6a1b2c3d4e"
FABRIKAM = "5b1f2d3c-7e8a-4b9c-8d0e-1f2a3b4c5d6e"
PROD_SUBSCRIPTION = "c0a1b2c3-0000-4000-8000-000000000001"
DEV_SUBSCRIPTION = "c0a1b2c3-0000-4000-8000-000000000002"
PORTAL_CLIENT_ID = "0d3b6a9e-5c1f-4e2a-9b7d-1a2b3c4d5e6f"
PORTAL_SECRET = "demo-portal-secret"
PORTAL_SP_OID = "0d3b6a9e-0000-4000-8000-00000000a001"
PORTAL_REDIRECT = "http://127.0.0.1:8000/accounts/oidc/entra/login/callback/"
APP_ROLES = ["JIT.Reader", "JIT.Requester", "JIT.PolicyAdmin", "JIT.Auditor", "JIT.Approver"]
WEB_REQUESTERS_GROUP = "9c1d2e3f-0000-4000-8000-000000000901"
# Grace is in more groups than an Entra ID token lists (200): her tokens carry the overage indicator instead,
# and the portal reads her groups (the web requesters' last) from Microsoft Graph.
PROJECT_GROUPS = [f"9c1d2e3f-0001-4000-8000-{n:012d}" for n in range(1, 251)]
USERS = [  # (number, user name, display name, app roles, groups)
    (1, "alice", "Alice Requester", ["JIT.Requester"], [WEB_REQUESTERS_GROUP]),
    (2, "bob", "Bob Security Admin", ["JIT.PolicyAdmin"], []),
    (3, "carol", "Carol Auditor", ["JIT.Auditor"], []),
    (4, "dave", "Dave Approver", ["JIT.Approver"], []),
    (5, "erin", "Erin Approver", ["JIT.Approver"], []),
    (6, "frank", "Frank Reader", ["JIT.Reader"], []),
    (7, "oscar", "Oscar Outsider", [], []),
    (8, "grace", "Grace Many-Groups", [], [*PROJECT_GROUPS, WEB_REQUESTERS_GROUP]),
]


def user_oid(number: int) -> str:
    return f"8a0e7c31-0000-4000-8000-{number:012d}"


def demo_identities() -> list[dict]:
    """Tenants as plain dicts in the shape of ``emulator.entra.models.EntraTenant``."""
    portal_app = {"client_id": PORTAL_CLIENT_ID, "client_secret": PORTAL_SECRET, "display_name": "JIT Portal",
                  "service_principal_oid": PORTAL_SP_OID, "redirect_uris": [PORTAL_REDIRECT],
                  "app_roles": list(APP_ROLES), "graph_permissions": ["GroupMember.Read.All"]}
    contoso = {
        "tenant_id": CONTOSO, "display_name": "Contoso", "domain": "contoso.example",
        "users": [{"oid": user_oid(n), "username": f"{name}@contoso.example", "display_name": display,
                   "app_roles": list(roles), "groups": list(groups)} for n, name, display, roles, groups in USERS],
        "groups": [{"oid": WEB_REQUESTERS_GROUP, "display_name": "JIT requesters - web"},
                   *({"oid": oid, "display_name": f"Project team {n:03d}"} for n, oid in enumerate(PROJECT_GROUPS, 1))],
        "apps": [portal_app],
    }
    fabrikam = {
        "tenant_id": FABRIKAM, "display_name": "Fabrikam", "domain": "fabrikam.example",
        "users": [{"oid": "5b1f2d3c-0000-4000-8000-00000000f001", "username": "mallory@fabrikam.example",
                   "display_name": "Mallory", "app_roles": [], "groups": []}],
        "groups": [],
        "apps": [dict(portal_app)],
    }
    return [contoso, fabrikam]
