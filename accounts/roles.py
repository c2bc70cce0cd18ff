"""Portal roles as code: named sets of Azure action strings, exactly the seed's permission table.

Three roles mirror the seed's table and become Azure custom roles (``jit_roles``); ``auditor`` and
``approver`` are the portal's own and never leave it. Actions in the ``JitPortal/`` namespace exist only
inside the portal and are never written into an Azure role definition.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

PORTAL_NAMESPACE = "JitPortal/"

# Actions the portal checks, named once.
JIT_POLICY_READ = "Microsoft.Security/locations/jitNetworkAccessPolicies/read"
JIT_POLICY_WRITE = "Microsoft.Security/locations/jitNetworkAccessPolicies/write"
JIT_INITIATE = "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action"
VM_READ = "Microsoft.Compute/virtualMachines/read"
VM_WRITE = "Microsoft.Compute/virtualMachines/write"
PRICINGS_READ = "Microsoft.Security/pricings/read"
ACTIVITY_READ = "Microsoft.Insights/eventtypes/values/read"
AUDIT_READ = "JitPortal/audit/read"
AUDIT_EXPORT = "JitPortal/audit/export/action"
REQUEST_APPROVE = "JitPortal/requests/approve/action"
SETTINGS_WRITE = "JitPortal/settings/write"

# The seed's table, verbatim ("Read JIT policies", "Request JIT access", "Configure or edit a JIT policy").
SEED_READ_JIT_POLICIES = (
    "Microsoft.Security/locations/jitNetworkAccessPolicies/read",
    "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action",
    "Microsoft.Security/policies/read",
    "Microsoft.Security/pricings/read",
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Network/*/read",
)
SEED_REQUEST_JIT_ACCESS = (
    "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action",
    "Microsoft.Security/locations/jitNetworkAccessPolicies/*/read",
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Network/networkInterfaces/*/read",
    "Microsoft.Network/publicIPAddresses/read",
)
SEED_CONFIGURE_JIT_POLICY = (
    "Microsoft.Security/locations/jitNetworkAccessPolicies/write",
    "Microsoft.Compute/virtualMachines/write",
)


@dataclass(frozen=True)
class Role:
    """A portal role: a name, a label and the actions it allows (Azure-style patterns)."""

    name: str
    label: str
    description: str
    actions: tuple[str, ...]

    @property
    def azure_actions(self) -> tuple[str, ...]:
        """The actions that belong in an Azure custom role (portal-only actions left out)."""
        return tuple(a for a in self.actions if not is_portal_action(a))

    @property
    def is_azure_role(self) -> bool:
        """Whether ``jit_roles`` writes an Azure custom role for this portal role."""
        return self.name in AZURE_ROLE_NAMES

    def allows(self, action: str) -> bool:
        """Whether any of the role's patterns matches ``action``."""
        return any(action_matches(pattern, action) for pattern in self.actions)


def _unique(*groups: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a for group in groups for a in group))


READER = Role(
    "reader",
    "JIT reader",
    "Reads JIT policies and their status (Defender for Cloud's 'Read JIT policies' permissions).",
    SEED_READ_JIT_POLICIES,
)
REQUESTER = Role(
    "requester",
    "JIT requester",
    "Requests JIT access to VMs (Defender for Cloud's 'Request JIT access to a VM' permissions).",
    SEED_REQUEST_JIT_ACCESS,
)
POLICY_ADMIN = Role(
    "policy_admin",
    "JIT policy admin",
    "Configures and edits JIT policies (Defender for Cloud's 'Configure or edit a JIT policy' permissions, plus "
    "read), and manages the portal's role mappings within its scope.",
    _unique(SEED_CONFIGURE_JIT_POLICY, SEED_READ_JIT_POLICIES, (AUDIT_READ, SETTINGS_WRITE)),
)
AUDITOR = Role(
    "auditor",
    "Auditor",
    "Searches JIT activity and the portal's audit trail and downloads results as CSV (portal role).",
    (JIT_POLICY_READ, ACTIVITY_READ, VM_READ, AUDIT_READ, AUDIT_EXPORT),
)
APPROVER = Role(
    "approver",
    "Approver",
    "Approves or rejects other people's access requests (portal role).",
    (REQUEST_APPROVE, JIT_POLICY_READ, VM_READ),
)

ROLES: dict[str, Role] = {role.name: role for role in (READER, REQUESTER, POLICY_ADMIN, AUDITOR, APPROVER)}
AZURE_ROLE_NAMES = ("reader", "requester", "policy_admin")
ROLE_CHOICES = [(role.name, role.label) for role in ROLES.values()]


def is_portal_action(action: str) -> bool:
    """Whether ``action`` is one of the portal's own (never sent to Azure)."""
    return action.lower().startswith(PORTAL_NAMESPACE.lower())


@lru_cache(maxsize=512)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.IGNORECASE | re.DOTALL)


def action_matches(pattern: str, action: str) -> bool:
    """Match an action against a pattern as Azure does: case-insensitive, ``*`` matches any characters.

    ``Microsoft.Network/*/read`` matches ``Microsoft.Network/networkInterfaces/ipConfigurations/read`` (the
    wildcard spans segments) but not ``Microsoft.Network/read`` (the slashes around it are literal).
    """
    return _pattern(pattern).fullmatch(action) is not None


def get_role(name: str) -> Role:
    """The role named ``name``; ``KeyError`` if there is none."""
    return ROLES[name]
